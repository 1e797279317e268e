"""pgplugin: the worker side of pgflow's plugin protocol (version 1), see README.md here.

A plugin is a function; this module runs the protocol loop around it:

    import pgplugin

    def edit(image, params, seed, source=None, mask=None):
        return 1.0 - image          # float32 [H, W, 3] in 0…1

    pgplugin.serve(name="invert", version="1.0.0", edit=edit)

An edit function that also takes `box=None` (or **kwargs) gets EditorCall's head box, the
request's [x0, y0, x1, y1] in pixels, or None. Import pgplugin before anything that may print.

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


def serve(name, version, edit, capabilities=("edit",)):
    """Answer pgflow's requests until 'bye' or end of input; exits the process (0 on a clean end)."""
    global scratch
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
            elif op == "edit":
                rid = req.get("id")
                if not greeted:
                    _send({"id": rid, "ok": False, "error": "edit before hello"})
                    continue
                try:
                    reply = _edit(req, edit)
                    _send({"id": rid, "ok": True, **reply})
                except Exception as exc:                 # a bad request or model error, not fatal
                    if not isinstance(exc, PluginError):
                        traceback.print_exc(file=sys.stderr)
                    log(f"{name}: frame {req.get('frame')}: {_sentence(exc)}")
                    _send({"id": rid, "ok": False, "error": _sentence(exc)})
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
