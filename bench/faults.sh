#!/usr/bin/env bash
# Faults between hosts (docs/design.md, "Faults between hosts"; issue 16):
# the broker, the S3 server and two `vigie ingest` instances on network
# namespaces of their own; links cut, delay and connection resets added by
# the harness's TCP proxies; after each fault, every event produced so far
# must be in the bucket exactly once. Prints the table of faults injected
# and events lost or duplicated.
#
# Usage (as root: it creates namespaces, bridges and veth pairs):
#   bench/faults.sh [ROUNDS] [WORKERS]     (default 3 rounds, 24 workers)
# CI runs one round of 8 workers (the test
# faults_netns::faults_between_hosts_lose_nothing_and_store_nothing_twice).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
workers=${2:-24}
[ "$(id -u)" = 0 ] || { echo "bench/faults.sh: needs root (ip netns, veth pairs)" >&2; exit 2; }
command -v ip >/dev/null || { apt-get update -qq && apt-get install -y -qq iproute2; }
command -v tansu >/dev/null || cargo install tansu --version 0.6.0 --locked --features dynostore
command -v s3s-fs >/dev/null || cargo install s3s-fs --version 0.14.1 --features binary --locked
table=$(mktemp)
trap 'rm -f "$table"' EXIT
VIGIE_TEST_TOOLS=required VIGIE_FAULTS_ROUNDS="$rounds" VIGIE_FAULTS_WORKERS="$workers" \
  VIGIE_FAULTS_TABLE="$table" VIGIE_FAULTS_KEEP="${VIGIE_FAULTS_KEEP:-}" \
  cargo test --release --locked --test it -- --exact \
  faults_netns::faults_between_hosts_lose_nothing_and_store_nothing_twice --nocapture >&2
echo "machine: $(nproc) cores; $rounds rounds, $workers workers"
cat "$table"
