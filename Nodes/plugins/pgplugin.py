"""pgplugin: the worker side of pgflow's plugin protocol (version 1), see README.md here.

A plugin is a function; this module runs the protocol loop around it:

    import pgplugin

    def edit(image, params, seed, source=None, mask=None):
        return 1.0 - image          # float32 [H, W, 3] in 0…1

    pgplugin.serve(name="invert", version="1.0.0", edit=edit)

An edit function that also takes `box=None` (or **kwargs) gets EditorCall's head box, the
request's [x0, y0, x1, y1] in pixels, or None. Import pgplugin before anything that may print.

Landmark and matte plugins give `detect` or `matte` instead (or as well):

    def detect(image, params):      # float32 [H, W, 3] in 0…1
        return {"faces": 1, "layout": "ibug68", "points": [[x, y], ...], "confidence": 0.9,
                "blendshapes": None, "head_pose": None}

    def matte(image, params):
        return alpha                # float32 [H, W, 1] (or [H, W]) in 0…1

    pgplugin.serve(name="face", version="1.0.0", detect=detect)

Importing this module reserves stdout for the protocol: file descriptor 1 and sys.stdout are
pointed at stderr, so a stray print() or a C library writing to stdout lands in the node's log
instead of corrupting the replies. Replies go to a private duplicate of the original stdout, one
JSON object per line, flushed per line. Needs numpy and the standard library only.
"""
import inspect
import json
import math
import os
import sys
import time
import traceback

import numpy as np

PROTOCOL = 1

# --- reserve stdout for the protocol (at import, before any library can print) -------------------
try:
    sys.stdout.flush()
except Exception:
    pass
_reply_fd = os.dup(1)          # the real stdout, for replies only
os.dup2(2, 1)                  # fd 1 (C code, child processes) now writes to stderr
_replies = os.fdopen(_reply_fd, "w", encoding="utf-8", buffering=1, closefd=True)
sys.stdout = sys.stderr        # print() goes to the log
_requests = sys.stdin.buffer   # raw bytes: decode each line ourselves

scratch = os.environ.get("PGFLOW_PLUGIN_SCRATCH")   # updated from the hello message


def log(*args):
    """Write a line to the node's log (stderr)."""
    print(*args, file=sys.stderr, flush=True)


def _send(obj):
    line = json.dumps(obj, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    _replies.write(line + "\n")
    _replies.flush()


def _sentence(exc):
    """One line naming the exception's type and message."""
    msg = " ".join(str(exc).split())
    if isinstance(exc, PluginError) and msg:
        text = msg                                   # already says what went wrong
    else:
        text = f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
    return text if len(text) <= 600 else text[:597] + "..."


class PluginError(Exception):
    """Raise this for bad input or params; its message becomes the reply's error."""


# --- image files ------------------------------------------------------------------------------------
def read_npy(path, channels=None, what="input"):
    """Read a float32 [H, W, C] .npy file; a 2-D [H, W] array is read as [H, W, 1]."""
    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise PluginError(f"{what} file not found: {path}") from None
    except ValueError as exc:
        raise PluginError(f"{what} file {path} is not a readable .npy array ({exc})") from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise PluginError(f"{what} has shape {list(arr.shape)}, expected [H, W, C]")
    if channels is not None and arr.shape[2] != channels:
        raise PluginError(f"{what} has {arr.shape[2]} channels, expected {channels}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def write_npy(path, arr):
    """Write a little-endian float32 .npy to exactly this path, in place: pgflow reuses one output
    file per worker and reads it only after the reply, and overwriting keeps its memory instead of
    allocating a new file for every frame (1.8 ms → 0.3 ms at 512² here)."""
    arr = np.ascontiguousarray(arr, dtype="<f4")
    with open(path, "r+b" if os.path.exists(path) else "wb") as f:
        np.save(f, arr, allow_pickle=False)
        f.truncate()


def check_output(out, shape):
    """The editor's result as float32 [H, W, 3] in 0…1, or PluginError."""
    if out is None:
        raise PluginError("the editor returned nothing")
    try:
        out = np.asarray(out, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise PluginError(f"the editor's result is not a numeric array ({exc})") from None
    want = (shape[0], shape[1], 3)
    if out.shape != want:
        raise PluginError(f"the editor returned shape {list(out.shape)}, expected {list(want)}")
    bad = int(np.size(out) - np.count_nonzero(np.isfinite(out)))
    if bad:
        raise PluginError(f"the editor's result has {bad} NaN or infinite values")
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


def check_matte(out, shape):
    """The matte as float32 [H, W, 1] in 0…1 (a [H, W] result is read as [H, W, 1]), or PluginError."""
    if out is None:
        raise PluginError("the matte function returned nothing")
    try:
        out = np.asarray(out, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise PluginError(f"the matte is not a numeric array ({exc})") from None
    if out.ndim == 2:
        out = out[:, :, None]
    want = (shape[0], shape[1], 1)
    if out.shape != want:
        raise PluginError(f"the matte has shape {list(out.shape)}, expected {list(want)}")
    bad = int(np.size(out) - np.count_nonzero(np.isfinite(out)))
    if bad:
        raise PluginError(f"the matte has {bad} NaN or infinite values")
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


DETECTION_FIELDS = ("faces", "layout", "points", "confidence", "blendshapes", "head_pose")


def _finite(value, what):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise PluginError(f"{what} is not a number: {value!r}") from None
    if not math.isfinite(v):
        raise PluginError(f"{what} is not finite: {v}")
    return v


def _floats(values, what, count=None):
    """A flat list of finite floats from a list or array, or None for None."""
    if values is None:
        return None
    try:
        flat = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise PluginError(f"{what} must be a list of numbers or null") from None
    if not np.isfinite(flat).all():
        raise PluginError(f"{what} has NaN or infinite values")
    if count is not None and flat.size != count:
        raise PluginError(f"{what} has {flat.size} values, expected {count} (or null)")
    return flat.tolist()


def check_detection(result):
    """A detect function's result as the reply's fields, exactly those of DETECTION_FIELDS, with plain
    JSON numbers (NumPy arrays and scalars are accepted); or PluginError. With faces 0 the reply is
    always points [], confidence 0, blendshapes and head_pose null."""
    if not isinstance(result, dict):
        raise PluginError(f"the detect function returned {type(result).__name__}, expected a dict")
    unknown = sorted(set(result) - set(DETECTION_FIELDS))
    if unknown:
        raise PluginError(f"the detection has unknown fields {unknown} (expected {list(DETECTION_FIELDS)})")
    faces = result.get("faces")
    if isinstance(faces, bool) or not isinstance(faces, (int, np.integer)) or faces < 0:
        raise PluginError(f"faces must be a count (0 or more), not {faces!r}")
    faces = int(faces)
    layout = result.get("layout")
    if not isinstance(layout, str) or not layout:
        raise PluginError(f"layout must name the point layout, not {layout!r}")
    raw = result.get("points")
    pts = np.asarray([] if raw is None else raw, dtype=np.float64)
    if pts.size == 0:
        pts = pts.reshape(0, 2)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise PluginError(f"points must be [[x, y], ...], not an array of shape {list(pts.shape)}")
    if not np.isfinite(pts).all():
        raise PluginError("points has NaN or infinite coordinates")
    if faces == 0 and len(pts):
        raise PluginError(f"faces is 0 but {len(pts)} points were given")
    if faces > 0 and not len(pts):
        raise PluginError(f"faces is {faces} but no points were given")
    if faces == 0:                                   # no face: the documented empty reply
        return {"faces": 0, "layout": layout, "points": [], "confidence": 0.0,
                "blendshapes": None, "head_pose": None}
    confidence = _finite(result.get("confidence", 1.0), "confidence")
    if not 0.0 <= confidence <= 1.0:
        raise PluginError(f"confidence must be in 0…1, not {confidence}")
    return {"faces": faces, "layout": layout, "points": pts.tolist(), "confidence": confidence,
            "blendshapes": _floats(result.get("blendshapes"), "blendshapes"),
            "head_pose": _floats(result.get("head_pose"), "head_pose", 16)}


# --- the loop -----------------------------------------------------------------------------------------
def _accepts_box(edit):
    try:
        ps = inspect.signature(edit).parameters
    except (TypeError, ValueError):
        return False
    return "box" in ps or any(p.kind is p.VAR_KEYWORD for p in ps.values())


def _edit(req, edit):
    inputs = req.get("inputs") or {}
    if not isinstance(inputs, dict) or "image" not in inputs:
        raise PluginError("the request has no image input")
    output = req.get("output")
    if not isinstance(output, str) or not output:
        raise PluginError("the request names no output file")
    params = req.get("params") or {}
    if not isinstance(params, dict):
        raise PluginError("params must be a JSON object")
    seed = req.get("seed", 0)
    seed = int(seed) if isinstance(seed, (int, float)) and math.isfinite(seed) else 0
    image = read_npy(inputs["image"], 3, "image")
    source = read_npy(inputs["source"], 3, "source") if inputs.get("source") else None
    mask = read_npy(inputs["mask"], 1, "mask") if inputs.get("mask") else None
    extra = {}
    if _accepts_box(edit):                           # optional: [x0, y0, x1, y1] head box in pixels
        box = req.get("box")
        extra["box"] = [float(v) for v in box] if isinstance(box, list) and len(box) == 4 else None
    t0 = time.perf_counter()
    out = edit(image, params, seed, source=source, mask=mask, **extra)
    seconds = time.perf_counter() - t0
    write_npy(output, check_output(out, image.shape))
    return {"output": output, "seconds": round(seconds, 6)}


def _image_request(req):
    """(image [H, W, 3], params, output path or None) of a detect or matte request."""
    inputs = req.get("inputs") or {}
    if not isinstance(inputs, dict) or "image" not in inputs:
        raise PluginError("the request has no image input")
    params = req.get("params") or {}
    if not isinstance(params, dict):
        raise PluginError("params must be a JSON object")
    output = req.get("output")
    return read_npy(inputs["image"], 3, "image"), params, output if isinstance(output, str) and output else None


def _detect(req, detect):
    image, params, _ = _image_request(req)           # the output path is not used: the reply is the result
    t0 = time.perf_counter()
    result = detect(image, params)
    seconds = time.perf_counter() - t0
    return {**check_detection(result), "seconds": round(seconds, 6)}


def _matte(req, matte):
    image, params, output = _image_request(req)
    if output is None:
        raise PluginError("the request names no output file")
    t0 = time.perf_counter()
    out = matte(image, params)
    seconds = time.perf_counter() - t0
    write_npy(output, check_matte(out, image.shape))
    return {"output": output, "seconds": round(seconds, 6)}


def _features(values, what):
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        raise PluginError(f"{what} must be a non-empty list of finite numbers")
    return arr


def _encode(req, encode):
    image, params, _ = _image_request(req)
    t0 = time.perf_counter()
    features = _features(encode(image, params), "the features")
    return {"features": [float(v) for v in features], "seconds": round(time.perf_counter() - t0, 6)}


def _vjp(req, vjp):
    image, params, output = _image_request(req)
    if output is None:
        raise PluginError("the request names no output file")
    cot = _features(req.get("cotangent"), "the request's cotangent")
    t0 = time.perf_counter()
    grad = np.asarray(vjp(image, params, cot), dtype=np.float32)
    if grad.shape != image.shape or not np.all(np.isfinite(grad)):
        raise PluginError(f"the image gradient must be finite and shaped like the image {list(image.shape)}, got {list(grad.shape)}")
    write_npy(output, grad)
    return {"output": output, "seconds": round(time.perf_counter() - t0, 6)}


def _distance(req, distance):
    """A perceptual plugin's op: distance(image, target, params, gradient) -> (d, d/d image or None)."""
    image, params, output = _image_request(req)
    inputs = req.get("inputs") or {}
    if "target" not in inputs:
        raise PluginError("the request has no target input")
    target = read_npy(inputs["target"], 3, "target")
    if target.shape != image.shape:
        raise PluginError(f"the target {list(target.shape)} and the image {list(image.shape)} differ in shape")
    want = bool(req.get("gradient"))
    if want and output is None:
        raise PluginError("the request asks for a gradient but names no output file")
    t0 = time.perf_counter()
    d, grad = distance(image, target, params, want)
    d = float(d)
    if not np.isfinite(d):
        raise PluginError(f"the distance is not finite ({d})")
    reply = {"distance": d}
    if want:
        grad = np.asarray(grad, dtype=np.float32)
        if grad.shape != image.shape or not np.all(np.isfinite(grad)):
            raise PluginError(f"the image gradient must be finite and shaped like the image {list(image.shape)}, got {list(grad.shape)}")
        write_npy(output, grad)
        reply["output"] = output
    reply["seconds"] = round(time.perf_counter() - t0, 6)
    return reply


def serve(name, version, edit=None, detect=None, matte=None, encode=None, vjp=None, distance=None, capabilities=None):
    """Answer pgflow's requests until 'bye' or end of input; exits the process (0 on a clean end).
    edit, detect, matte, encode, vjp, distance: the functions for those ops (any of them);
    capabilities, reported in the handshake, default to the ops given."""
    global scratch
    handlers = {op: (run, fn) for op, run, fn in (("edit", _edit, edit), ("detect", _detect, detect),
                                                  ("matte", _matte, matte), ("encode", _encode, encode),
                                                  ("vjp", _vjp, vjp), ("distance", _distance, distance)) if fn is not None}
    if capabilities is None:
        capabilities = list(handlers)
    greeted = False
    try:
        while True:
            raw = _requests.readline()
            if not raw:
                break                                   # EOF: pgflow closed stdin
            line = raw.decode("utf-8", errors="replace").strip()
            if not line:
                continue
            try:
                req = json.loads(line)
                if not isinstance(req, dict):
                    raise ValueError("not a JSON object")
            except ValueError as exc:
                _send({"id": None, "ok": False, "error": f"unreadable request ({_sentence(exc)})"})
                continue
            op = req.get("op")
            if op == "hello":
                if req.get("protocol") != PROTOCOL:
                    _send({"ok": False, "protocol": PROTOCOL, "name": name, "version": version,
                           "error": f"{name} speaks plugin protocol {PROTOCOL}, not {req.get('protocol')!r}"})
                    sys.exit(2)
                if req.get("scratch"):
                    scratch = str(req["scratch"])
                greeted = True
                _send({"ok": True, "protocol": PROTOCOL, "name": name, "version": version,
                       "capabilities": list(capabilities)})
            elif op == "bye":
                break
            elif op in handlers:
                rid = req.get("id")
                if not greeted:
                    _send({"id": rid, "ok": False, "error": f"{op} before hello"})
                    continue
                run, fn = handlers[op]
                try:
                    reply = {"id": rid, "ok": True, **run(req, fn)}
                    json.dumps(reply, allow_nan=False)   # unsendable results fail here, as this request's error
                except Exception as exc:                 # a bad request or model error, not fatal
                    if not isinstance(exc, PluginError):
                        traceback.print_exc(file=sys.stderr)
                    log(f"{name}: frame {req.get('frame')}: {_sentence(exc)}")
                    _send({"id": rid, "ok": False, "error": _sentence(exc)})
                    continue
                _send(reply)
            elif op in ("edit", "detect", "matte", "encode", "vjp"):
                _send({"id": req.get("id"), "ok": False,
                       "error": f"{name} does not do {op} (it does {', '.join(handlers) or 'nothing'})"})
            else:
                _send({"id": req.get("id"), "ok": False, "error": f"unknown op {op!r}"})
    except BrokenPipeError:
        os._exit(0)                                     # pgflow went away: nothing to answer
    except KeyboardInterrupt:
        os._exit(130)
    sys.stderr.flush()
    sys.exit(0)


# --- helpers for editors ---------------------------------------------------------------------------------
def param(params, key, default=None):
    """params[key], or default when absent or null."""
    value = params.get(key)
    return default if value is None else value


def choose_input(image, source, params, key="input"):
    """The frame to edit: `source` when params[key] == 'source' and it is connected, else `image`."""
    which = param(params, key, "image")
    if which not in ("image", "source"):
        raise PluginError(f"{key} must be 'image' or 'source', not {which!r}")
    return source if which == "source" and source is not None else image


def torch_threads():
    """OMP_NUM_THREADS as an int (pgflow sets it from --threads), or None."""
    try:
        n = int(os.environ.get("OMP_NUM_THREADS", ""))
        return n if n > 0 else None
    except ValueError:
        return None
