"""misbehave: a test plugin that fails on request, one way per `mode` (stdlib only).

ok           inverts the image (1 − x)
crash        prints a line to stderr and exits 3 on its first request
crash_once   like crash the first time it runs in a scratch folder (a marker file there), then ok
hang         never answers (sleeps)
garbage      writes a line that is not JSON to stdout
wrong_shape  writes [H, W, 4]
wrong_size   writes [H/2, W/2, 3] (at least 1×1)
nan          writes the inverted image with NaN in the first row
no_file      answers ok but writes no file
error        answers ok: false with an error text
`delay` seconds are slept before any of them. Run with --bad-hello (manifest bad_hello.json), the
handshake reports version 9.9.9 instead of its manifest's 1.0.0.
"""
import array
import math
import os
import sys
import time

import miniplugin

BAD_HELLO = "--bad-hello" in sys.argv[1:]
NAME = "bad_hello" if BAD_HELLO else "misbehave"
VERSION = "9.9.9" if BAD_HELLO else "1.0.0"


def inverted(req):
    shape, values = miniplugin.read_npy(req["inputs"]["image"])
    return shape, array.array("f", (1.0 - v for v in values))


def edit(req, scratch):
    params = req.get("params") or {}
    mode = params.get("mode", "ok")
    time.sleep(float(params.get("delay", 0) or 0))
    out = req["output"]
    if mode == "crash_once":
        marker = os.path.join(scratch or ".", "misbehave-crashed-once")
        if not os.path.exists(marker):
            open(marker, "w").close()
            mode = "crash"
        else:
            mode = "ok"
    if mode == "ok":
        shape, values = inverted(req)
        miniplugin.write_npy(out, shape, values)
    elif mode == "crash":
        print(f"misbehave: crashing on frame {req.get('frame')} as asked", file=sys.stderr, flush=True)
        os._exit(3)
    elif mode == "hang":
        print("misbehave: hanging as asked", file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)
    elif mode == "garbage":
        miniplugin.send_raw("this is not JSON {")
        return None
    elif mode == "wrong_shape":
        shape, values = miniplugin.read_npy(req["inputs"]["image"])
        h, w = shape[0], shape[1]
        miniplugin.write_npy(out, (h, w, 4), array.array("f", bytes(4 * h * w * 4)))
    elif mode == "wrong_size":
        shape, _ = miniplugin.read_npy(req["inputs"]["image"])
        h, w = max(1, shape[0] // 2), max(1, shape[1] // 2)
        miniplugin.write_npy(out, (h, w, 3), array.array("f", bytes(4 * h * w * 3)))
    elif mode == "nan":
        shape, values = inverted(req)
        for i in range(shape[1] * shape[2]):
            values[i] = math.nan
        miniplugin.write_npy(out, shape, values)
    elif mode == "no_file":
        if os.path.exists(out):
            os.remove(out)
    elif mode == "error":
        raise RuntimeError("misbehave was asked to fail (mode error)")
    else:
        raise ValueError(f"unknown mode {mode!r}")
    return {"output": out}


miniplugin.serve(NAME, VERSION, edit)
