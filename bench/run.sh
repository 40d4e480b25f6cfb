#!/usr/bin/env bash
# Reproduces docs/benchmarks.md. Usage: bench/run.sh [SIZES...]
# SIZES are millions of events (default: 10 50), each as Parquet, then as
# NDJSON. Needs about 3 GB of disk per 10 M events in $BENCH_DIR (default
# /tmp/vigie-bench): the NDJSON file is 2 GB, the audit's scratch 1 GB.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -gt 0 ]; then sizes=("$@"); else sizes=(10 50); fi
dir=${BENCH_DIR:-/tmp/vigie-bench}
runs=${RUNS:-3}
mkdir -p "$dir"
(umask 077; head -c 32 /dev/urandom > "$dir/bench.key")
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }
python3 -c "import duckdb" 2>/dev/null || python3 -m pip install --quiet "duckdb==2.0.1"
cargo build --release --locked
vigie=target/release/vigie
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; duckdb $(python3 -c 'import duckdb; print(duckdb.__version__)')"

echo
echo "## vigie generate (NDJSON), 2.2 M events"
/usr/bin/time -f "wall %e s, peak %M KiB" $vigie generate --out "$dir/gen.ndjson" --workers 100 --days 28 --seed 1
rm -f "$dir/gen.ndjson"

echo
echo "## vigie audit on NDJSON: memory against input size"
for workers in 50 250 500; do
  $vigie generate --out "$dir/n.ndjson" --workers $workers --days 28 --seed 7 >/dev/null
  events=$(wc -l < "$dir/n.ndjson")
  for i in $(seq "$runs"); do
    /usr/bin/time -f "$events events: wall %e s, peak %M KiB" $vigie audit --input "$dir/n.ndjson" --out "$dir/n-out" --key-file "$dir/bench.key" 2>&1 >/dev/null | tail -1 || true
  done
done
rm -f "$dir/n.ndjson"

for m in "${sizes[@]}"; do
  workers=$((m * 50))
  for format in parquet ndjson; do
    input="$dir/e${m}m.$format"
    echo
    echo "## $m M events ($format): vigie audit against DuckDB"
    $vigie generate --out "$input" --workers $workers --days 28 --seed 7
    echo "| tool | runs | median wall s | min-max | median peak MiB |"
    echo "|---|---|---|---|---|"
    python3 bench/compare.py "$input" "$runs" "$dir"
    rm -f "$input"
  done
done
