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

echo "== Rust: build and test the workspace"
cargo build --workspace --all-targets
cargo test --workspace -- --test-threads=1

echo "== browser tests (headless Chromium)"
export ROOMCAST_BIN="$CARGO_TARGET_DIR/debug/roomcast"
(cd tests/browser && npm ci --no-audit --no-fund && npm test)
