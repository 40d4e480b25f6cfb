#!/usr/bin/env bash
# Runs each fuzz target of fuzz/ for SECONDS (default 600) with cargo-fuzz
# (libFuzzer, AddressSanitizer) on the nightly toolchain, one after the
# other, and prints a line per target: runs, corpus size, crashes.
# Usage: bench/fuzz.sh [SECONDS] [TARGET...]
#
# Installs what it needs once per machine: the nightly toolchain (rustup)
# and cargo-fuzz. Seeds come from fuzz/seeds/TARGET; the growing corpus
# lives in fuzz/corpus/TARGET and crashes in fuzz/artifacts/TARGET (both
# ignored by git: turn each crash into a regression test).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(door_json redact csv_reader parquet_reader)
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export CARGO_INCREMENTAL=0
cargo +nightly fuzz build -O
log=$(mktemp -d)
status=0
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  seeds=()
  [ -d "fuzz/seeds/$t" ] && seeds=("fuzz/seeds/$t")
  # Inputs up to 64 KiB; a run that takes over 10 s or 2 GB is a failure too.
  if cargo +nightly fuzz run -O "$t" "fuzz/corpus/$t" "${seeds[@]}" -- \
      -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      >"$log/$t.log" 2>&1; then
    result=ok
  else
    result=CRASH
    status=1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log/$t.log" | grep -o '[0-9]*$' || echo '?')
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  crashes=$(find "fuzz/artifacts/$t" -type f | wc -l)
  printf '%-16s %s  %8s s  runs %-10s corpus %-6s artifacts %s\n' "$t" "$result" "$seconds" "$runs" "$corpus" "$crashes"
  [ "$result" = ok ] || tail -n 40 "$log/$t.log"
done
exit "$status"
