#!/usr/bin/env bash
# Runs vigie's whole test suite on a Debian machine: installs what the tests
# need, builds once (release profile, shared by tests and benchmarks), then
# runs every test. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install Rust with rustup (https://rustup.rs), then run this again." >&2
  exit 1
fi

# System packages: a C toolchain for crates that build C code (librdkafka
# among them); Chromium to render the report (screenshot and PDF tests);
# pdfinfo and pdftoppm to check the printed report's pages; /usr/bin/time
# for the DuckDB cross-check; Prometheus and promtool for the
# exporter's tests; ssh-keygen to check that OpenSSH itself verifies the
# signed manifest.
need=()
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v make >/dev/null 2>&1 || need+=(make)
command -v perl >/dev/null 2>&1 || need+=(perl)
dpkg -s zlib1g-dev >/dev/null 2>&1 || need+=(zlib1g-dev)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
[ -x /usr/bin/time ] || need+=(time)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v pdfinfo >/dev/null 2>&1 || need+=(poppler-utils)
command -v python3 >/dev/null 2>&1 || need+=(python3 python3-pip)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
# kill(1), with which the tests signal the processes they start.
{ [ -x /bin/kill ] || [ -x /usr/bin/kill ]; } || need+=(procps)
# ip(8): network namespaces, bridges and veth pairs for the faults between
# hosts (tests/it/faults_netns.rs).
command -v ip >/dev/null 2>&1 || need+=(iproute2)
# The deployment files' validators (deploy/validate.sh): a Python venv,
# npm, and systemd-analyze.
python3 -c "import ensurepip" >/dev/null 2>&1 || need+=(python3-venv)
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
if [ ${#need[@]} -gt 0 ]; then
  log "Installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

# A Kafka-protocol broker for the service's end-to-end tests: tansu 0.6.0
# with its in-memory storage (built once per machine, about 11 minutes).
if ! command -v tansu >/dev/null 2>&1 || ! tansu --version 2>/dev/null | grep -q "0.6.0"; then
  log "Installing the tansu broker (cargo install, once per machine)"
  cargo install tansu --version 0.6.0 --locked --features dynostore
fi

# An S3 server for the store's object tests: s3s-fs 0.14.1, which keeps
# objects as files and honours If-None-Match and If-Match on PUT (built
# once per machine, about 3 minutes; later versions need a newer rustc).
if ! command -v s3s-fs >/dev/null 2>&1 || ! s3s-fs --version 2>/dev/null | grep -q "0.14.1"; then
  log "Installing the s3s-fs S3 server (cargo install, once per machine)"
  cargo install s3s-fs --version 0.14.1 --features binary --locked
fi

log "Formatting"
cargo fmt --all -- --check

# Clippy's lints run inside the one build: clippy-driver is the compiler
# of the workspace's own crates (as `cargo clippy` sets it up), so that
# the dependencies (Polars, librdkafka) are compiled once, not a second
# time in check mode as a separate `cargo clippy` would; a warning fails
# the build. The tests below run under the same wrapper and reuse it.
driver=$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver || true)
if [ -n "$driver" ]; then
  export RUSTC_WORKSPACE_WRAPPER="$driver"
  export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
  log "Building (release profile) with clippy's lints"
  cargo build --release --workspace --all-targets --locked
else
  log "Building (release profile)"
  cargo build --release --workspace --all-targets --locked
  log "Lints"
  cargo clippy --release --workspace --all-targets --locked -- -D warnings
fi

log "Deployment files (deploy/validate.sh: hadolint, Compose schema, kustomize and Kubernetes schemas, systemd-analyze, Grafana's schema)"
deploy/validate.sh

log "Cross-check against an independent implementation (DuckDB SQL)"
python3 -c "import duckdb" 2>/dev/null || python3 -m pip install --quiet "duckdb==2.0.1"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
target/release/vigie generate --out "$scratch/site.parquet" --workers 40 --days 14 --seed 3 --scenario demo
python3 bench/compare.py "$scratch/site.parquet" 1 "$scratch"

# A free port on loopback, and a wait until a server listens on it.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.2
  done
}

log "Starting a Kafka-protocol broker on loopback"
broker_port=$(free_port)
tansu broker --listener-url "tcp://127.0.0.1:$broker_port" --advertised-listener-url "tcp://127.0.0.1:$broker_port" \
  --storage-engine memory://tansu/ --silent > "$scratch/tansu.log" 2>&1 &
tansu_pid=$!
trap 'kill "$tansu_pid" 2>/dev/null; rm -rf "$scratch"' EXIT
wait_port "$broker_port"
export VIGIE_TEST_BROKER="127.0.0.1:$broker_port"

log "Starting an S3 server on loopback"
s3_port=$(free_port)
mkdir -p "$scratch/s3/vigie-test"
export VIGIE_TEST_S3_KEY=vigie VIGIE_TEST_S3_SECRET="vigie-secret-$RANDOM$RANDOM"
s3s-fs --host 127.0.0.1 --port "$s3_port" --access-key "$VIGIE_TEST_S3_KEY" --secret-key "$VIGIE_TEST_S3_SECRET" \
  "$scratch/s3" > "$scratch/s3s.log" 2>&1 &
s3_pid=$!
trap 'kill "$tansu_pid" "$s3_pid" 2>/dev/null; rm -rf "$scratch"' EXIT
wait_port "$s3_port"
export VIGIE_TEST_S3="http://127.0.0.1:$s3_port"
# Here every tool is installed and the servers started: a test that finds
# one missing fails (run alone, `cargo test` skips such a test and says so).
export VIGIE_TEST_TOOLS=required

log "Tests"
# Unit and integration tests (the project has no doc-tests); the totals
# close the run.
set +e
cargo test --release --locked --workspace --no-fail-fast --lib --bins --tests 2>&1 | tee "$scratch/tests.log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "\ntests: %d passed, %d failed\n", p, f }' "$scratch/tests.log"
exit "$status"
