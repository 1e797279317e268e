"""matte: a person (foreground) matte per frame, offline, with MediaPipe's selfie segmentation.

mediapipe 1.2.3's Tasks ImageSegmenter (IMAGE mode: each frame on its own, deterministic) runs the
selfie segmentation models of MediaPipe's legacy solution, selfie_segmentation.tflite (256×256
input, "general") and selfie_segmentation_landscape.tflite (144×256, "landscape"). Those ship
inside the mediapipe 0.10.21 wheel, which cannot be installed beside 1.2.3 (it needs numpy < 2 and
protobuf < 5); Scripts/setup-plugins.sh takes the two files out of that wheel, checks their
SHA-256 and puts them in <venv>/share/pgflow/models. The result equals the legacy solution's
segmentation_mask (max |Δ| 1.4e-5 on single_face.mp4). Nothing is downloaded at run time.

The matte is the model's person probability, [H, W, 1] in 0…1 at the frame's size (the model's
output is scaled up by the ImageSegmenter). soft false makes it 0/1 at threshold; feather blurs
the result with a Gaussian of that many pixels (sigma).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pgplugin  # noqa: E402  (reserves stdout before anything else loads)

import numpy as np  # noqa: E402

NAME, VERSION = "matte", "1.0.0"
SETUP = "run bash Scripts/setup-plugins.sh"
MODELS = {"general": "selfie_segmentation.tflite", "landscape": "selfie_segmentation_landscape.tflite"}
MODEL_DIR = os.path.join(sys.prefix, "share", "pgflow", "models")     # where setup-plugins.sh puts them
_mp = None
_segmenters = {}


def mediapipe_modules():
    global _mp
    if _mp is None:
        try:
            import mediapipe
            from mediapipe.tasks.python import vision
            from mediapipe.tasks.python.core.base_options import BaseOptions
        except ImportError as exc:
            raise pgplugin.PluginError(f"matte needs mediapipe 1.2.3: {SETUP} ({exc})") from None
        _mp = (mediapipe, vision, BaseOptions)
    return _mp


def segmenter(model):
    if model not in _segmenters:
        _, vision, BaseOptions = mediapipe_modules()
        path = os.path.join(MODEL_DIR, MODELS[model])
        if not os.path.isfile(path):
            raise pgplugin.PluginError(f"the {model} selfie segmentation model {path} is missing: {SETUP}")
        options = vision.ImageSegmenterOptions(
            base_options=BaseOptions(model_asset_path=path),
            running_mode=vision.RunningMode.IMAGE,
            output_confidence_masks=True,
            output_category_mask=False)
        _segmenters[model] = vision.ImageSegmenter.create_from_options(options)
        pgplugin.log(f"matte: selfie segmentation ({model}) loaded from {path}")
    return _segmenters[model]


def matte(image, params):
    model = pgplugin.param(params, "model", "general")
    if model not in MODELS:
        raise pgplugin.PluginError(f"model must be one of {', '.join(MODELS)}, not {model!r}")
    soft = pgplugin.param(params, "soft", True)
    if not isinstance(soft, bool):
        raise pgplugin.PluginError(f"soft must be true or false, not {soft!r}")
    threshold = pgplugin.param(params, "threshold", 0.5)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise pgplugin.PluginError(f"threshold must be a number in 0…1, not {threshold!r}")
    feather = pgplugin.param(params, "feather", 0.0)
    if isinstance(feather, bool) or not isinstance(feather, (int, float)) or not 0.0 <= feather <= 50.0:
        raise pgplugin.PluginError(f"feather must be a number of pixels in 0…50, not {feather!r}")
    mediapipe = mediapipe_modules()[0]
    h, w = image.shape[:2]
    pixels = np.ascontiguousarray((np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))
    result = segmenter(model).segment(mediapipe.Image(image_format=mediapipe.ImageFormat.SRGB, data=pixels))
    masks = result.confidence_masks or []
    if len(masks) != 1:
        raise pgplugin.PluginError(f"the segmenter gave {len(masks)} confidence masks, expected 1")
    alpha = np.array(masks[0].numpy_view(), dtype=np.float32).reshape(h, w)
    if not soft:
        alpha = (alpha >= threshold).astype(np.float32)
    if feather > 0:
        import cv2
        alpha = cv2.GaussianBlur(alpha, (0, 0), sigmaX=float(feather), borderType=cv2.BORDER_REPLICATE)
    return np.clip(alpha, 0.0, 1.0)[:, :, None]


def close():
    for s in _segmenters.values():
        s.close()                           # before interpreter teardown, which makes close() fail noisily
    _segmenters.clear()


if __name__ == "__main__":
    import atexit
    atexit.register(close)
    pgplugin.serve(name=NAME, version=VERSION, matte=matte)
