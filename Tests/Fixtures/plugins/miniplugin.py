"""A stdlib-only worker side of pgflow's plugin protocol, for the test plugins (no numpy needed).

Images are little-endian float32 .npy files [H, W, C]; read_npy gives (shape, array('f')),
write_npy writes one back. serve() answers hello / edit / bye like Nodes/plugins/pgplugin.py,
but leaves writing the output to the edit function (tests need broken outputs).
"""
import array
import ast
import json
import os
import sys
import time

_out = sys.stdout
sys.stdout = sys.stderr            # stray prints go to the log, not the protocol


def read_npy(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x93NUMPY":
        raise ValueError(f"{path} is not a .npy file")
    major = data[6]
    hlen_size = 2 if major == 1 else 4
    hlen = int.from_bytes(data[8:8 + hlen_size], "little")
    start = 8 + hlen_size + hlen
    header = ast.literal_eval(data[8 + hlen_size:start].decode("latin-1"))
    if header["descr"] not in ("<f4", "=f4") or header["fortran_order"]:
        raise ValueError(f"{path}: expected little-endian float32 in C order, got {header['descr']}")
    values = array.array("f")
    values.frombytes(data[start:])
    if sys.byteorder == "big":
        values.byteswap()
    return tuple(header["shape"]), values


def npy_bytes(shape, values):
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % "".join(f"{n}, " for n in shape)
    header = header.encode("latin-1")
    pad = 64 - (10 + len(header) + 1) % 64
    header += b" " * (pad % 64) + b"\n"
    if sys.byteorder == "big":
        values = array.array("f", values)
        values.byteswap()
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + values.tobytes()


def write_npy(path, shape, values):
    with open(path, "wb") as f:
        f.write(npy_bytes(shape, values))


def send(obj):
    _out.write(json.dumps(obj) + "\n")
    _out.flush()


def send_raw(line):
    _out.write(line + "\n")
    _out.flush()


def serve(name, version, edit):
    """edit(request, scratch) returns the reply's extra fields (output, seconds) or raises."""
    scratch = os.environ.get("PGFLOW_PLUGIN_SCRATCH")
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        op = req.get("op")
        if op == "hello":
            scratch = req.get("scratch") or scratch
            send({"ok": True, "protocol": 1, "name": name, "version": version, "capabilities": ["edit"]})
        elif op == "edit":
            t0 = time.perf_counter()
            try:
                reply = edit(req, scratch)
            except Exception as exc:
                send({"id": req.get("id"), "ok": False, "error": f"{type(exc).__name__}: {exc}"})
                continue
            if reply is not None:
                reply.setdefault("seconds", round(time.perf_counter() - t0, 6))
                send({"id": req.get("id"), "ok": True, **reply})
        elif op == "bye":
            break
        else:
            send({"id": req.get("id"), "ok": False, "error": f"unknown op {op!r}"})
    sys.exit(0)
