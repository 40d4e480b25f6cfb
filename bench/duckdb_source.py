"""The table function DuckDB reads an input file with: read_parquet for
Parquet, read_json with the contract's column types for NDJSON (what a
user would write; types given, so nothing is sampled or guessed)."""

NDJSON_COLUMNS = (
    "{event_id: 'VARCHAR', ts: 'TIMESTAMPTZ', site: 'VARCHAR', worker: 'VARCHAR', "
    "kind: 'VARCHAR', team: 'VARCHAR', zone: 'VARCHAR', process: 'VARCHAR', device: 'VARCHAR', "
    "quantity: 'INTEGER', weight_kg: 'DOUBLE', threshold_s: 'DOUBLE', gap_s: 'DOUBLE', "
    "target_per_hour: 'DOUBLE'}"
)


def source(path: str) -> str:
    quoted = "'" + path.replace("'", "''") + "'"
    if path.endswith((".ndjson", ".jsonl")):
        return f"read_json({quoted}, format = 'newline_delimited', columns = {NDJSON_COLUMNS})"
    return f"read_parquet({quoted})"
