#!/usr/bin/env bash
# `vigie ingest` against the ceiling: a bare librdkafka consumer that only
# counts the same topic on the same broker (docs/benchmarks.md, "The
# ingestion service"). Usage: bench/ingest.sh [MILLIONS] (default 10).
#
# Starts a tansu broker (in-memory storage) on loopback, produces the
# generated events once into a 4-partition topic, then drains it RUNS
# times with each consumer, alternating, timed by /usr/bin/time.
# STORE=s3: vigie's store is a bucket of an S3 server (s3s-fs, started on
# loopback) instead of a folder.
set -euo pipefail
cd "$(dirname "$0")/.."
millions=${1:-10}
runs=${RUNS:-3}
dir=${BENCH_DIR:-/tmp/vigie-bench}/ingest
rm -rf "$dir"; mkdir -p "$dir"
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }
command -v tansu >/dev/null || cargo install tansu --version 0.6.0 --locked --features dynostore
cargo build --release --locked --bin vigie --example kafka_bench
vigie=target/release/vigie
kb=target/release/examples/kafka_bench

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
brokers="127.0.0.1:$port"
tansu broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
  --storage-engine memory://tansu/ --silent > "$dir/tansu.log" 2>&1 &
tansu_pid=$!
trap 'kill $tansu_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
kind="a folder"
if [ "${STORE:-folder}" = s3 ]; then
  command -v s3s-fs >/dev/null || cargo install s3s-fs --version 0.14.1 --features binary --locked
  s3_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$dir/s3/bench"
  export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY="bench-$RANDOM$RANDOM"
  s3s-fs --host 127.0.0.1 --port "$s3_port" --access-key "$AWS_ACCESS_KEY_ID" \
    --secret-key "$AWS_SECRET_ACCESS_KEY" "$dir/s3" > "$dir/s3s.log" 2>&1 &
  s3_pid=$!
  trap 'kill $tansu_pid $s3_pid 2>/dev/null || true' EXIT
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$s3_port") 2>/dev/null && break; sleep 0.2; done
  (umask 077; head -c 32 /dev/urandom | base64 > "$dir/key")
  kind="a bucket (s3s-fs on loopback)"
fi

# About 714 events per worker-day; recent dates, so that no event is in the
# future and the raw tier's retention keeps them all.
workers=$((millions * 1000000 / 714 / 28 + 1))
start=$(date -d "-35 days" +%F)
$vigie generate --out "$dir/events.ndjson" --workers "$workers" --days 28 --seed 7 --start "$start" >/dev/null
events=$(wc -l < "$dir/events.ndjson")
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $events events, $(du -m "$dir/events.ndjson" | cut -f1) MB of NDJSON"
$kb produce "$brokers" events 4 "$dir/events.ndjson"
rm -f "$dir/events.ndjson"

echo "| consumer | run | wall s | events/s | peak MiB |"
echo "|---|---|---|---|---|"
for run in $(seq "$runs"); do
  # The ceiling: count every message, nothing else.
  out=$(/usr/bin/time -f "%e %M" $kb count "$brokers" events 2>"$dir/time" )
  read -r wall kib < <(tail -1 "$dir/time")
  echo "| bare rdkafka consumer (count only) | $run | $wall | $(python3 -c "print(round($events/$wall))") | $((kib / 1024)) |"

  # vigie ingest: a fresh group and store, until every offset is committed.
  store="$dir/store-$run"
  store_path="path = \"$store\""
  if [ "${STORE:-folder}" = s3 ]; then
    # The objects are files of s3s-fs's folder: measured there.
    store="$dir/s3/bench/run-$run"
    store_path="path = \"s3://bench/run-$run\"
s3_endpoint = \"http://127.0.0.1:$s3_port\"
s3_allow_http = true
key_file = \"$dir/key\""
  fi
  cat > "$dir/vigie-$run.toml" <<EOF
[kafka]
brokers = "$brokers"
topics = ["events"]
group_id = "bench-$run-$$"
shutdown_deadline_ms = 60000
[store]
$store_path
raw_retention_days = 60
[analysis]
interval_s = 86400
[metrics]
listen = "127.0.0.1:0"
EOF
  began=$(date +%s.%N)
  /usr/bin/time -f "%e %M" -o "$dir/time" $vigie ingest --config "$dir/vigie-$run.toml" 2>"$dir/ingest-$run.log" &
  tpid=$!
  while [ "$($kb committed "$brokers" "bench-$run-$$" events)" -lt "$events" ]; do sleep 0.5; done
  drained=$(date +%s.%N)
  pkill -TERM -P "$tpid" vigie || true
  wait "$tpid" || true
  read -r _ kib < <(tail -1 "$dir/time")
  wall=$(python3 -c "print(round($drained - $began, 2))")
  echo "| vigie ingest (validate, pseudonymise, Parquet, commit), store in $kind | $run | $wall | $(python3 -c "print(round($events/$wall))") | $((kib / 1024)) |"
  if [ "$run" = 1 ]; then
    # The store's size per tier (docs/design.md, "Scale arithmetic"): the
    # raw tier as ingested, then one analysis over it (a restart runs one
    # at once), which writes the summaries and the aggregates.
    before=$(stat -c %Y "$store/findings.json" 2>/dev/null || echo 0)
    sleep 1
    $vigie ingest --config "$dir/vigie-$run.toml" 2>>"$dir/ingest-$run.log" &
    apid=$!
    for _ in $(seq 1 1200); do
      [ "$(stat -c %Y "$store/findings.json" 2>/dev/null || echo 0)" -gt "$before" ] && break
      sleep 0.5
    done
    kill -TERM "$apid"; wait "$apid" || true
    sizes="$dir/store-sizes.txt"
    for tier in raw summaries aggregates; do
      bytes=$(du -sb "$store/$tier" 2>/dev/null | cut -f1)
      files=$(find "$store/$tier" -name '*.parquet' | wc -l)
      echo "$tier $bytes $files" >> "$sizes"
    done
    echo "store after $events events (first run): tier, bytes, Parquet files, bytes per event"
    awk -v n="$events" '{ printf "  %-10s %12d B %6d files %8.2f B/event\n", $1, $2, $3, $2 / n }' "$sizes"
  fi
  rm -rf "$store"
done
