"""identity: returns the image unchanged (stdlib only), for measuring pgflow's per-request overhead."""
import time

import miniplugin


def edit(req, scratch):
    t0 = time.perf_counter()
    shape, values = miniplugin.read_npy(req["inputs"]["image"])
    if len(shape) != 3 or shape[2] != 3:
        raise ValueError(f"image has shape {list(shape)}, expected [H, W, 3]")
    miniplugin.write_npy(req["output"], shape, values)
    return {"output": req["output"], "seconds": round(time.perf_counter() - t0, 6)}


miniplugin.serve("identity", "1.0.0", edit)
