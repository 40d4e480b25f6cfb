#!/usr/bin/env bash
# Many tiny groups: an audit of one site with TEAMS teams of two workers
# each (four events a worker), timed by /usr/bin/time, for each TEAMS
# given (default 8000 32000). The analysis should grow linearly with the
# number of groups (docs/benchmarks.md, "Many groups").
# Usage: bench/groups.sh [TEAMS...]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -gt 0 ]; then sizes=("$@"); else sizes=(8000 32000); fi
dir=${BENCH_DIR:-/tmp/vigie-bench}/groups
rm -rf "$dir"; mkdir -p "$dir"
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }
cargo build --release --locked --bin vigie
head -c 32 /dev/urandom > "$dir/k.key"; chmod 600 "$dir/k.key"
printf '| teams | events | wall s | peak RSS MiB | published groups |\n|---:|---:|---:|---:|---:|\n'
for teams in "${sizes[@]}"; do
  python3 - "$teams" "$dir/in.ndjson" <<'PY'
import json, sys
teams, path = int(sys.argv[1]), sys.argv[2]
n = 0
with open(path, "w") as f:
    for w in range(2 * teams):
        for t, k in [("08:00:00", "shift_start"), ("08:10:00", "scan"), ("08:20:00", "scan"), ("16:00:00", "shift_end")]:
            n += 1
            f.write(json.dumps({"event_id": f"e{n}", "ts": f"2026-03-02T{t}+01:00", "site": "s1",
                                "worker": f"w{w}", "kind": k, "team": f"t{w // 2}"}) + "\n")
PY
  rm -rf "$dir/out"
  read -r wall rss < <(/usr/bin/time -f "%e %M" target/release/vigie audit --input "$dir/in.ndjson" \
    --out "$dir/out" --key-file "$dir/k.key" 2>&1 >/dev/null | tail -n 1)
  groups=$(python3 -c "import json,sys; f=json.load(open(sys.argv[1])); print(len({x['group'] for x in f['findings']}))" "$dir/out/findings.json")
  printf '| %s | %s | %s | %s | %s |\n' "$teams" "$((8 * teams))" "$wall" "$((rss / 1024))" "$groups"
done
