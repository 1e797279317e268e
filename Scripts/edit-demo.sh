#!/usr/bin/env bash
# Edits a real portrait video the PortraitGen way, from nothing: installs what is missing, builds in
# release, then runs Graphs/edit.json on the sample clip (data/single_face.mp4, 72 frames, 256²):
# detect the face, fit the head model, matte the person, reconstruct the 3D avatar, edit it by
# iterative dataset update with the style editor (face-aware, with expression guidance), render
# every frame. About 9 minutes on 2 cores after the build; running it again reuses everything.
#   bash Scripts/edit-demo.sh [extra pgflow exec options, e.g. --set 'edit={"style": "14", "input": "source"}' or --set video=my.mp4]
set -euo pipefail
cd "$(dirname "$0")/.."
bash Scripts/setup.sh
bash Scripts/setup-plugins.sh   # style, landmarks (MediaPipe), matte
bash Scripts/fetch-sample.sh
swift build -c release --product pgflow
pgflow=.build/release/pgflow
"$pgflow" exec Graphs/edit.json "$@"
"$pgflow" report Graphs/edit.json
echo
echo "The edited video:   Graphs/out/edit/edited.mp4"
echo "Side by side:       Graphs/out/edit/comparison.mp4 (source | per-frame 2D edit | pgflow's edit)"
echo "Metrics:            Graphs/out/edit/metrics.json (flicker_vs_per_frame, colour distances, expression drift)"
echo "                    Graphs/out/edit/per-frame-metrics.json (the per-frame edit, measured the same way)"
echo "The run report:     Graphs/out/edit/edit-report.html (and its numbers in edit-report.json)"
