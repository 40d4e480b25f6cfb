#!/usr/bin/env python3
"""Times `vigie audit` against the same core metrics in DuckDB on one
Parquet or NDJSON file, and against a DuckDB scan of the same columns (the floor),
alternating runs, with /usr/bin/time (wall seconds, peak resident memory),
then checks that vigie and the DuckDB peer found the same figures.

Usage: compare.py FILE RUNS WORKDIR (FILE: .parquet, .ndjson or .jsonl)"""
import json
import pathlib
import statistics
import subprocess
import sys

path, runs, work = sys.argv[1], int(sys.argv[2]), pathlib.Path(sys.argv[3])
root = pathlib.Path(__file__).resolve().parent.parent
vigie = root / "target" / "release" / "vigie"
key = work / "bench.key"
key.write_bytes(b"k" * 32)
key.chmod(0o600)


def timed(cmd):
    out = subprocess.run(["/usr/bin/time", "-f", "%e %M", *cmd], capture_output=True, text=True, check=True)
    wall, rss_kb = out.stderr.strip().splitlines()[-1].split()
    return float(wall), int(rss_kb) / 1024, out.stdout


commands = {
    "vigie": [str(vigie), "audit", "--input", path, "--out", str(work / "audit"), "--key-file", str(key)],
    "duckdb": [sys.executable, str(root / "bench" / "duckdb_core.py"), path],
    "scan": [sys.executable, str(root / "bench" / "duckdb_scan.py"), path],
}
results = {name: [] for name in commands}
ratios = []
floor_ratios = []
duck_out = None
for _ in range(runs):
    pair = {}
    for name, cmd in commands.items():
        wall, rss, stdout = timed(cmd)
        results[name].append((wall, rss))
        pair[name] = wall
        if name == "duckdb":
            duck_out = json.loads(stdout)
    ratios.append(pair["vigie"] / pair["duckdb"])
    floor_ratios.append(pair["vigie"] / pair["scan"])

for name, rows in results.items():
    walls = [w for w, _ in rows]
    rss = [r for _, r in rows]
    print(f"| {name} | {len(rows)} | {statistics.median(walls):.1f} | {min(walls):.1f}-{max(walls):.1f} | {statistics.median(rss):.0f} |")
print(f"ratio vigie/duckdb (wall, per pair): median {statistics.median(ratios):.2f}, "
      f"min {min(ratios):.2f}, max {max(ratios):.2f}")
print(f"ratio vigie/scan floor (wall, per run): median {statistics.median(floor_ratios):.2f}, "
      f"min {min(floor_ratios):.2f}, max {max(floor_ratios):.2f}")

# Cross-check: vigie's site-level findings against DuckDB's figures.
findings = json.loads((work / "audit" / "findings.json").read_text())
totals = {}
for f in findings["findings"]:
    if f["group"] == "site" and f["observed"] is not None:
        totals[f["rule"]] = totals.get(f["rule"], 0) + f["observed"]
pairs = {
    "events": findings["input"]["events"],
    "break_after_6h": totals.get("worktime.break_after_6h"),
    "daily_rest_11h": totals.get("worktime.daily_rest_11h"),
    "daily_max_10h": totals.get("worktime.daily_max_10h"),
    "weekly_max_48h": totals.get("worktime.weekly_max_48h"),
    "idle_flag_threshold": totals.get("pause.idle_flag_threshold"),
    "flags_during_breaks": totals.get("pause.flags_during_breaks"),
    "justification_burden": totals.get("pause.justification_burden"),
    "speed_flags": totals.get("speed.speed_flags"),
    "rush_share": totals.get("cadence.rush_share"),
}
bad = {k: (v, duck_out[k]) for k, v in pairs.items() if v is not None and abs(float(v) - float(duck_out[k])) > 1e-9}
print("cross-check:", "same figures" if not bad else f"DIFFERENT {bad}")
sys.exit(1 if bad else 0)
