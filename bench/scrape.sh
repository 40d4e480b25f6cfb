#!/usr/bin/env bash
# Scrape latency and body size of /metrics at the series budget (50 sites
# of 20 groups), and for one site, timed with curl from a second process.
# Usage: bench/scrape.sh (docs/benchmarks.md, "Scrape").
set -euo pipefail
cd "$(dirname "$0")/.."
n=${SCRAPES:-200}
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl; }
cargo build --release --locked --example scrape_bench
echo "| deployment | series | body KiB | scrapes | median ms | p99 ms | max ms |"
echo "|---|---|---|---|---|---|---|"
for shape in "50 20" "1 20"; do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  target/release/examples/scrape_bench "127.0.0.1:$port" $shape > /tmp/scrape-bench.out &
  pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/metrics" -o /dev/null && break; sleep 0.1; done
  series=$(awk '{print $1}' /tmp/scrape-bench.out)
  for _ in $(seq 1 20); do curl -s "http://127.0.0.1:$port/metrics" -o /dev/null; done  # warm-up
  for _ in $(seq 1 "$n"); do
    curl -s -H 'Accept-Encoding: identity' "http://127.0.0.1:$port/metrics" -o /dev/null -w '%{time_total} %{size_download}\n'
  done | python3 -c '
import sys, statistics
rows = [tuple(map(float, l.split())) for l in sys.stdin if l.strip()]
t = sorted(r[0] * 1000 for r in rows)
size = rows[-1][1] / 1024
p99 = t[min(len(t) - 1, int(round(0.99 * (len(t) - 1))))]
print(f"| {sys.argv[1]} sites x {sys.argv[2]} groups | {sys.argv[3]} | {size:.0f} | {len(t)} | {statistics.median(t):.1f} | {p99:.1f} | {t[-1]:.1f} |")
' $shape "$series"
  kill $pid
done
