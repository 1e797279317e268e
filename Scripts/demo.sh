#!/usr/bin/env bash
# One command from a fresh clone to a result: install, fetch the sample clip, build in release,
# run the demo graph. Re-running it reuses everything cached.
set -euo pipefail
cd "$(dirname "$0")/.."
bash Scripts/setup.sh
bash Scripts/fetch-sample.sh
swift build -c release --product pgflow
graph=${1:-Graphs/transcode.json}
.build/release/pgflow exec "$graph" --explain
