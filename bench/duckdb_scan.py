#!/usr/bin/env python3
"""The scan floor: DuckDB reads and decodes every contract column vigie
reads from one Parquet or NDJSON file (a sum or a length of each, so that
no column is answered from the file's statistics), and nothing else.
Prints the figures as JSON. Usage: duckdb_scan.py FILE"""
import json
import sys

import duckdb

from duckdb_source import source

path = sys.argv[1]
sql = """
SELECT count(*) AS rows,
       sum(length(event_id)) AS id_bytes,
       sum(epoch_us(ts)) AS ts_sum,
       sum(length(site)) AS site_bytes,
       sum(length(worker)) AS worker_bytes,
       sum(length(kind)) AS kind_bytes,
       sum(length(team)) AS team_bytes,
       sum(length(zone)) AS zone_bytes,
       sum(length(process)) AS process_bytes,
       sum(length(device)) AS device_bytes,
       sum(quantity) AS quantity,
       sum(weight_kg) AS weight_kg,
       sum(threshold_s) AS threshold_s,
       sum(gap_s) AS gap_s,
       sum(target_per_hour) AS target_per_hour
FROM __SOURCE__
""".replace("__SOURCE__", source(path))
cols_row = duckdb.execute(sql)
cols = [d[0] for d in cols_row.description]
print(json.dumps(dict(zip(cols, cols_row.fetchone())), default=str))
