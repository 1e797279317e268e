#!/usr/bin/env bash
# One command from a fresh clone to a result: install the libraries, build in release, make the
# synthetic sample (builtin:head performing a seeded script) and reconstruct it as PortraitGen
# does — train the neural Gaussian texture and renderer on 60% of the frames, render all of them,
# measure the held-out 40%. Re-running reuses everything cached; `--set crf=23` re-encodes only.
#   bash Scripts/demo.sh [extra pgflow exec options for the reconstruction, e.g. --set steps=800]
set -euo pipefail
cd "$(dirname "$0")/.."
bash Scripts/setup.sh
bash Scripts/setup-plugins.sh   # the plugins' Python environment, light set (style, opencv, landmarks, matte)
# The real clip some tests read (the demo itself does not need it): fetched once, never fatal here.
bash Scripts/fetch-sample.sh || echo "demo: could not fetch data/single_face.mp4; the tests that read it will say they skipped"
swift build -c release --product pgflow
pgflow=.build/release/pgflow
"$pgflow" exec Graphs/make-sample.json
"$pgflow" exec Graphs/reconstruct.json "$@"
"$pgflow" report Graphs/reconstruct.json   # one HTML page: loss curves, metrics, frames, the graph
# Per-frame 2D editing of the real clip with the style plugin (the baseline PortraitGen improves on).
if [ -f data/single_face.mp4 ]; then "$pgflow" exec Graphs/edit-frames.json --set size=256; fi
echo
echo "The sample:         Graphs/out/sample.mp4 (matte sample_matte.mp4, tracking sample_tracking.json)"
echo "The reconstruction: Graphs/out/reconstruction.mp4, side by side with the sample: Graphs/out/comparison.mp4"
echo "The trained avatar: Graphs/out/avatar.ply (3DGS point cloud with the neural features as f_feat_*)"
echo "Held-out metrics:   Graphs/out/report.json; loss history: Graphs/out/reconstruct-loss.csv; weights: Graphs/out/weights/"
echo "The run report:     Graphs/out/reconstruct-report.html (open it in a browser)"
if [ -f Graphs/out/edit-frames.mp4 ]; then
  echo "Per-frame style edit: Graphs/out/edit-frames.mp4, side by side: Graphs/out/edit-frames-comparison.mp4"
fi
