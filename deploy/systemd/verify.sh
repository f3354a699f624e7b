#!/usr/bin/env bash
# Checks the systemd units with `systemd-analyze verify`, as installed: binaries that are not
# installed here (roomcast in /usr/local/bin, coturn's turnserver) are replaced by stand-ins of
# the same name in a scratch root, which is all `verify` needs to find them executable.
set -euo pipefail
cd "$(dirname "$0")"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for unit in roomcast.service roomcast-turn.service; do
  sed -e "s#/usr/local/bin/roomcast#$scratch/bin/roomcast#" \
      -e "s#/usr/bin/turnserver#$scratch/bin/turnserver#" \
      -e "s#/etc/roomcast/roomcast.env#$scratch/roomcast.env#" "$unit" >"$scratch/$unit"
done
mkdir -p "$scratch/bin"
for b in roomcast turnserver; do printf '#!/bin/sh\nexit 0\n' >"$scratch/bin/$b"; chmod +x "$scratch/bin/$b"; done
cp roomcast.env.example "$scratch/roomcast.env"
out="$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify "$scratch/roomcast.service" "$scratch/roomcast-turn.service" 2>&1 || true)"
# Messages about units on this machine that ours do not touch are not ours to fix.
ours="$(grep -E "roomcast" <<<"$out" || true)"
if [[ -n "$ours" ]]; then
  echo "$ours" >&2
  exit 1
fi
echo "systemd units verify clean"
