#!/usr/bin/env bash
# One command to a running demo: installs dependencies, builds the web app and the gateway,
# and starts `roomcast serve` on http://127.0.0.1:8080 (embedded store in ./roomcast-data).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
(cd web && npm ci --no-audit --no-fund && npm run build)
cargo build --release -p roomcast -p roomcast-compositor
export PATH="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys;print(json.load(sys.stdin)["target_directory"])')/release:$PATH"
exec roomcast serve --web-dir web/dist "$@"
