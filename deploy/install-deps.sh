#!/usr/bin/env bash
# Installs what Roomcast needs on Debian 12 (idempotent; skips apt when everything is present).
#   deploy/install-deps.sh          runtime + build: GStreamer 1.22, Rust build deps, Node (npm) for the web app
#   deploy/install-deps.sh --test   also Chromium, ffmpeg and nginx (the LL-HLS edge) for the browser/media tests
set -euo pipefail
packages=(pkg-config build-essential ca-certificates curl
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools gstreamer1.0-x fonts-dejavu-core)
if [[ "${1:-}" == "--test" ]]; then
  packages+=(chromium ffmpeg nginx systemd)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
command -v cargo >/dev/null || { echo "Rust (cargo) is required: https://rustup.rs" >&2; exit 1; }
command -v npm >/dev/null || { echo "Node.js 20+ with npm is required" >&2; exit 1; }
