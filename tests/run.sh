#!/usr/bin/env bash
# The whole test suite: unit + end-to-end Rust tests, web unit tests, browser tests.
# Installs what it needs (apt packages, npm packages) first, so it works on a fresh Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/roomcast-target}"
export CARGO_TERM_COLOR=never

deploy/install-deps.sh --test

echo "== web app: install, unit tests, build"
(cd web && npm ci --no-audit --no-fund && npm test && npm run build)

echo "== MongoDB for the store tests: SecantusDB (PyPI) in a virtualenv, on a free port"
# The store contract suite runs against it for real (gateway/tests/store_contract.rs); with CI
# set and no ROOMCAST_TEST_MONGODB_URI, the MongoDB half fails instead of skipping.
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends python3-venv
fi
MONGO_VENV=/var/tmp/roomcast-venv
[[ -x "$MONGO_VENV/bin/python" ]] || python3 -m venv "$MONGO_VENV"
"$MONGO_VENV/bin/pip" install --quiet --disable-pip-version-check SecantusDB==0.7.0b3
MONGO_DIR="$(mktemp -d /var/tmp/roomcast-mongo.XXXXXX)"
MONGO_PID=""
stop_mongo() {
  if [[ -n "$MONGO_PID" ]]; then kill "$MONGO_PID" 2>/dev/null || true; wait "$MONGO_PID" 2>/dev/null || true; fi
  rm -rf "$MONGO_DIR"
}
trap stop_mongo EXIT
# Binds port 0 (the kernel picks a free one), prints the port, serves until SIGTERM.
"$MONGO_VENV/bin/python" - "$MONGO_DIR/data" >"$MONGO_DIR/port" 2>"$MONGO_DIR/log" <<'PY' &
import signal, sys
from secantus import SecantusDBServer
server = SecantusDBServer(host="127.0.0.1", port=0, storage_path=sys.argv[1], replica_set_name=None, enable_test_commands=False)
server.start()
print(server.port, flush=True)
def stop(*_):
    server.stop()
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
while True:
    signal.pause()
PY
MONGO_PID=$!
for _ in $(seq 1 300); do
  [[ -s "$MONGO_DIR/port" ]] && break
  kill -0 "$MONGO_PID" 2>/dev/null || { cat "$MONGO_DIR/log" >&2; echo "SecantusDB did not start" >&2; exit 1; }
  sleep 0.1
done
[[ -s "$MONGO_DIR/port" ]] || { cat "$MONGO_DIR/log" >&2; echo "SecantusDB did not report its port within 30 s" >&2; exit 1; }
export ROOMCAST_TEST_MONGODB_URI="mongodb://127.0.0.1:$(cat "$MONGO_DIR/port")"
echo "SecantusDB (pid $MONGO_PID) at $ROOMCAST_TEST_MONGODB_URI"

echo "== deploy files: systemd units (systemd-analyze verify)"
deploy/systemd/verify.sh

echo "== Rust: format and lint (rustfmt.toml; clippy with warnings as errors)"
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  command -v rustup >/dev/null || { echo "rustfmt and clippy are required (rustup component add rustfmt clippy)" >&2; exit 1; }
  rustup component add rustfmt clippy
fi
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
# The gateway alone, as a release build has it: without the test-only fault-injection feature.
cargo clippy -p roomcast --all-targets -- -D warnings

echo "== Rust: build and test the workspace"
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast -- --test-threads=1

echo "== browser tests (headless Chromium)"
export ROOMCAST_BIN="$CARGO_TARGET_DIR/debug/roomcast"
(cd tests/browser && npm ci --no-audit --no-fund && npm test)
