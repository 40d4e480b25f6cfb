#!/usr/bin/env python3
"""Runs bench/core_metrics.sql with DuckDB on one Parquet or NDJSON file and
prints the site-level figures as JSON. Usage: duckdb_core.py FILE [TZ]"""
import json
import pathlib
import sys

import duckdb

from duckdb_source import source

path, tz = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "Europe/Paris")
sql = (pathlib.Path(__file__).with_name("core_metrics.sql").read_text()
       .replace("__SOURCE__", source(path)).replace("__TZ__", tz))
con = duckdb.connect()
result = None
for statement in sql.split(";"):
    body = "\n".join(l for l in statement.splitlines() if not l.strip().startswith("--")).strip()
    if body:
        result = con.execute(body)
cols = [d[0] for d in result.description]
print(json.dumps(dict(zip(cols, result.fetchone()))))
