"""opencv: OpenCV's non-photorealistic filters (cv2.photo) as an editor.

stylization, pencilSketch (the colour sketch), detailEnhance and edgePreservingFilter work on
8-bit BGR pixels: the frame is quantised to 8 bits, filtered and returned as float RGB.
sigma_s is in pixels of the working resolution (`size`), so set size for a look that does not
depend on the frame size. Deterministic.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pgplugin  # noqa: E402  (reserves stdout before anything else loads)

import numpy as np  # noqa: E402

try:
    import cv2
    missing = None
except ImportError as exc:                 # reported by every request, so the handshake still works
    cv2, missing = None, exc

NAME, VERSION = "opencv", "1.0.0"

# OpenCV's own defaults for each filter
DEFAULTS = {
    "stylization": {"sigma_s": 60.0, "sigma_r": 0.45},
    "pencilSketch": {"sigma_s": 60.0, "sigma_r": 0.07},
    "detailEnhance": {"sigma_s": 10.0, "sigma_r": 0.15},
    "edgePreservingFilter": {"sigma_s": 60.0, "sigma_r": 0.4},
}
FLAGS = {"recursive": 1, "normconv": 2}   # cv2.RECURS_FILTER, cv2.NORMCONV_FILTER

threads = pgplugin.torch_threads()
if threads and cv2 is not None:
    cv2.setNumThreads(threads)


def edit(image, params, seed, source=None, mask=None):
    if missing:
        raise pgplugin.PluginError(f"opencv needs the light plugin environment (opencv-python-headless): "
                                   f"run bash Scripts/setup-plugins.sh ({missing})")
    frame = pgplugin.choose_input(image, source, params)
    h, w = image.shape[:2]
    name = pgplugin.param(params, "filter", "stylization")
    if name not in DEFAULTS:
        raise pgplugin.PluginError(f"filter must be one of {', '.join(DEFAULTS)}, not {name!r}")
    sigma_s = float(pgplugin.param(params, "sigma_s", DEFAULTS[name]["sigma_s"]))
    sigma_r = float(pgplugin.param(params, "sigma_r", DEFAULTS[name]["sigma_r"]))
    if not 0.0 < sigma_s <= 200.0:
        raise pgplugin.PluginError(f"sigma_s must be in (0, 200], not {sigma_s}")
    if not 0.0 < sigma_r <= 1.0:
        raise pgplugin.PluginError(f"sigma_r must be in (0, 1], not {sigma_r}")
    bgr = cv2.cvtColor((np.clip(frame, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR)
    size = pgplugin.param(params, "size")
    fh, fw = bgr.shape[:2]
    if size and max(fh, fw) != int(size):
        scale = int(size) / max(fh, fw)
        bgr = cv2.resize(bgr, (max(1, round(fw * scale)), max(1, round(fh * scale))),
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    if name == "stylization":
        out = cv2.stylization(bgr, sigma_s=sigma_s, sigma_r=sigma_r)
    elif name == "pencilSketch":
        shade = float(pgplugin.param(params, "shade_factor", 0.02))
        if not 0.0 <= shade <= 0.1:
            raise pgplugin.PluginError(f"shade_factor must be in 0…0.1, not {shade}")
        _, out = cv2.pencilSketch(bgr, sigma_s=sigma_s, sigma_r=sigma_r, shade_factor=shade)
    elif name == "detailEnhance":
        out = cv2.detailEnhance(bgr, sigma_s=sigma_s, sigma_r=sigma_r)
    else:
        flags = pgplugin.param(params, "flags", "recursive")
        if flags not in FLAGS:
            raise pgplugin.PluginError(f"flags must be 'recursive' or 'normconv', not {flags!r}")
        out = cv2.edgePreservingFilter(bgr, flags=FLAGS[flags], sigma_s=sigma_s, sigma_r=sigma_r)
    out = cv2.cvtColor(out, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    if out.shape[:2] != (h, w):
        shrink = out.shape[0] > h
        out = cv2.resize(out, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    return out


if __name__ == "__main__":
    pgplugin.serve(name=NAME, version=VERSION, edit=edit)
