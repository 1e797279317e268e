"""Drive a pgflow plugin by its manifest, without pgflow: a check of the plugins themselves.

    .venv/bin/python3 Tests/Fixtures/plugins/drive.py edit Nodes/plugins/style.json \
        --params '{"style": "19"}' [--frames 0,36] [--size 512] [--out /tmp/plugin-check]
    .venv/bin/python3 Tests/Fixtures/plugins/drive.py misbehave

`edit` starts the worker as pgflow would (argv from the manifest, "$python" = $PGFLOW_PYTHON or
<repo>/.venv/bin/python3, cwd = the manifest's folder, the protocol's environment), shakes hands,
edits real frames of data/single_face.mp4 (centre square, resized to size²; the source input is
the same frame), checks every output (shape, finite, in 0…1, different from the input), repeats
each request to check that the same seed gives the same bytes, tries a second seed, saves
before|after PNGs and prints the worker's own seconds per frame. `misbehave` runs every mode of
the misbehave test plugin and checks what each one does. Exit status 1 on any failed check.
Needs numpy; OpenCV (cv2) to read the video and write PNGs.
"""
import argparse
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
VIDEO = os.path.join(REPO, "data", "single_face.mp4")
failures = []


def check(ok, what):
    print(("  ok    " if ok else "  FAIL  ") + what, flush=True)
    if not ok:
        failures.append(what)
    return ok


class Worker:
    def __init__(self, manifest_path, scratch, threads=2):
        self.manifest = json.load(open(manifest_path))
        folder = os.path.dirname(os.path.abspath(manifest_path))
        python = os.environ.get("PGFLOW_PYTHON") or os.path.join(REPO, ".venv", "bin", "python3")
        argv = []
        for a in self.manifest["run"]:
            if a == "$python":
                a = python
            elif os.path.isfile(os.path.join(folder, a)):
                a = os.path.join(folder, a)
            argv.append(a)
        env = dict(os.environ, PGFLOW_PLUGIN_PROTOCOL="1", PGFLOW_PLUGIN_SCRATCH=scratch,
                   OMP_NUM_THREADS=str(threads), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                   HF_DATASETS_OFFLINE="1")
        self.scratch = scratch
        self.stderr_path = os.path.join(scratch, f"{self.manifest['name']}-stderr.log")
        self.stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(argv, cwd=folder, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.stderr)

    def send(self, obj):
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        self.proc.stdin.flush()

    def receive(self, timeout):
        """The next stdout line, or None on timeout/EOF."""
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.proc.stdout.readline()
        return line.decode("utf-8", "replace").strip() if line else None

    def request(self, obj, timeout):
        self.send(obj)
        line = self.receive(timeout)
        return json.loads(line) if line else None

    def hello(self):
        t0 = time.perf_counter()
        reply = self.request({"op": "hello", "protocol": 1, "plugin": self.manifest["name"],
                              "scratch": self.scratch}, 30)
        return reply, time.perf_counter() - t0

    def bye(self):
        try:
            self.send({"op": "bye"})
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            return self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return "killed"

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def log_tail(self, n=3):
        self.stderr.flush()
        lines = open(self.stderr_path, "rb").read().decode("utf-8", "replace").splitlines()
        return lines[-n:]


def defaults(manifest, overrides):
    params = {k: v["default"] for k, v in manifest.get("params", {}).items() if "default" in v}
    params.update(overrides)
    return params


def frames(indices, size):
    """RGB float32 [size, size, 3] frames (centre square of the video), or a gradient without cv2."""
    try:
        import cv2
    except ImportError:
        y, x = np.mgrid[0:size, 0:size] / size
        return {i: np.stack([x, y, (x + y + i / 10) % 1], 2).astype(np.float32) for i in indices}
    cap = cv2.VideoCapture(VIDEO)
    out, i = {}, 0
    while len(out) < len(indices):
        ok, bgr = cap.read()
        if not ok:
            break
        if i in indices:
            h, w = bgr.shape[:2]
            s = min(h, w)
            sq = bgr[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
            sq = cv2.resize(sq, (size, size), interpolation=cv2.INTER_AREA if s > size else cv2.INTER_CUBIC)
            out[i] = cv2.cvtColor(sq, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        i += 1
    return out


def save_png(path, *images):
    try:
        import cv2
    except ImportError:
        return
    row = np.concatenate([np.clip(im, 0, 1) for im in images], axis=1)
    cv2.imwrite(path, cv2.cvtColor((row * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR))


def cmd_edit(args):
    manifest_path = os.path.abspath(args.manifest)
    overrides = json.loads(args.params)
    indices = [int(x) for x in args.frames.split(",")]
    os.makedirs(args.out, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="pgplugin-")
    worker = Worker(manifest_path, scratch, args.threads)
    m = worker.manifest
    tag = args.tag or m["name"]
    print(f"{m['name']} {m['version']}: {' '.join(m['run'])}  params {json.dumps(overrides)}")
    reply, secs = worker.hello()
    check(reply == {"ok": True, "protocol": 1, "name": m["name"], "version": m["version"],
                    "capabilities": ["edit"]}, f"handshake in {secs:.2f} s: {reply}")
    params = defaults(m, overrides)
    timeout = m.get("timeout", 60)
    rid = 0
    timings = []
    for i, img in frames(indices, args.size).items():
        inputs = {"image": os.path.join(scratch, f"{i}-image.npy"), "source": os.path.join(scratch, f"{i}-source.npy")}
        np.save(inputs["image"], img)
        np.save(inputs["source"], img)
        outs = []
        for seed in (1000 + i, 1000 + i, 7 + i):
            rid += 1
            out_path = os.path.join(scratch, f"{rid}-out.npy")
            t0 = time.perf_counter()
            reply = worker.request({"op": "edit", "id": rid, "frame": i, "seed": seed, "params": params,
                                    "inputs": inputs, "output": out_path}, timeout)
            wall = time.perf_counter() - t0
            if not check(bool(reply and reply.get("ok") and reply.get("id") == rid),
                         f"frame {i} seed {seed}: {reply} (round trip {wall:.3f} s)"):
                print("  stderr: " + "\n  stderr: ".join(worker.log_tail(8)))
                break
            out = np.load(out_path)
            outs.append(out)
            if len(outs) > 1:
                timings.append(reply["seconds"])        # the first request includes loading
            elif rid == 1:
                print(f"        first request {reply['seconds']:.3f} s (includes loading), round trip {wall:.3f} s")
        if len(outs) < 3:
            continue
        out = outs[0]
        check(out.dtype == np.float32 and out.shape == img.shape, f"frame {i}: output {out.dtype} {list(out.shape)}")
        check(bool(np.isfinite(out).all()) and out.min() >= 0 and out.max() <= 1,
              f"frame {i}: finite, range {out.min():.3f}…{out.max():.3f}")
        diff = float(np.abs(out - img).mean())
        check(diff > 1e-3, f"frame {i}: differs from the input (mean |out − in| = {diff:.4f})")
        check(np.array_equal(outs[0], outs[1]), f"frame {i}: same seed gives identical output")
        other = float(np.abs(outs[2] - outs[0]).mean())
        print(f"        another seed: mean |Δ| = {other:.5f}")
        png = os.path.join(args.out, f"{tag}-frame{i}.png")
        save_png(png, img, out)
        print(f"        before|after: {png}")
    code = worker.bye()
    check(code == 0, f"bye: exit status {code}")
    if timings:
        print(f"TIMING {tag}: {np.median(timings):.3f} s per {args.size}² frame (median of {len(timings)}, "
              f"{args.threads} threads)")
    shutil.rmtree(scratch, ignore_errors=True)


def cmd_misbehave(args):
    manifest = os.path.join(HERE, "misbehave.json")
    scratch = tempfile.mkdtemp(prefix="pgplugin-")
    img = np.random.default_rng(0).random((4, 5, 3), dtype=np.float32)
    inp = os.path.join(scratch, "image.npy")
    np.save(inp, img)

    def start(path=manifest):
        w = Worker(path, scratch)
        reply, _ = w.hello()
        return w, reply

    def edit(w, mode, rid, timeout=5):
        out = os.path.join(scratch, f"{rid}-out.npy")
        if os.path.exists(out):
            os.remove(out)
        w.send({"op": "edit", "id": rid, "frame": 0, "seed": 1, "params": {"mode": mode, "delay": 0},
                "inputs": {"image": inp}, "output": out})
        return w.receive(timeout), out

    w, hello = start()
    check(hello and hello.get("version") == "1.0.0", f"misbehave hello: {hello}")
    line, out = edit(w, "ok", 1)
    check(json.loads(line)["ok"] and np.allclose(np.load(out), 1 - img), "ok: inverts the image")
    line, out = edit(w, "error", 2)
    r = json.loads(line)
    check(r == {"id": 2, "ok": False, "error": r.get("error")} and "mode error" in r["error"], f"error: {line}")
    line, out = edit(w, "wrong_shape", 3)
    check(json.loads(line)["ok"] and np.load(out).shape == (4, 5, 4), "wrong_shape: writes [H, W, 4]")
    line, out = edit(w, "wrong_size", 4)
    check(json.loads(line)["ok"] and np.load(out).shape == (2, 2, 3), "wrong_size: writes [H/2, W/2, 3]")
    line, out = edit(w, "nan", 5)
    check(json.loads(line)["ok"] and np.isnan(np.load(out)).any(), "nan: writes NaN")
    line, out = edit(w, "no_file", 6)
    check(json.loads(line)["ok"] and not os.path.exists(out), "no_file: ok without a file")
    line, out = edit(w, "garbage", 7)
    try:
        json.loads(line)
        check(False, f"garbage: {line}")
    except ValueError:
        check(True, f"garbage: writes {line!r}")
    t0 = time.perf_counter()
    line, out = edit(w, "hang", 8, timeout=2)
    check(line is None and w.proc.poll() is None, f"hang: no answer in {time.perf_counter() - t0:.1f} s, still running")
    w.kill()

    w, _ = start()
    line, _ = edit(w, "crash", 9)
    code = w.proc.wait(5)
    check(line is None and code == 3 and "crashing" in " ".join(w.log_tail()),
          f"crash: exit {code}, stderr {w.log_tail(1)}")

    w, _ = start()
    line, _ = edit(w, "crash_once", 10)
    code = w.proc.wait(5)
    check(line is None and code == 3, f"crash_once, first start: exit {code}")
    w, _ = start()
    line, out = edit(w, "crash_once", 11)
    check(line and json.loads(line)["ok"] and np.allclose(np.load(out), 1 - img), "crash_once, restarted: works")
    check(w.bye() == 0, "bye: exit 0")

    w, hello = start(os.path.join(HERE, "bad_hello.json"))
    check(hello and hello.get("version") == "9.9.9" and w.manifest["version"] == "1.0.0",
          f"bad_hello: handshake version {hello.get('version')} vs manifest {w.manifest['version']}")
    w.bye()

    w, hello = start(os.path.join(HERE, "identity.json"))
    big = np.random.default_rng(1).random((512, 512, 3), dtype=np.float32)
    np.save(inp, big)
    secs, walls = [], []
    for rid in range(20):
        t0 = time.perf_counter()
        line, out = edit(w, "ok", 100 + rid)
        walls.append(time.perf_counter() - t0)
        r = json.loads(line)
        secs.append(r["seconds"])
    check(np.array_equal(np.load(out), big), "identity: returns the image unchanged")
    print(f"TIMING identity: {np.median(secs) * 1000:.1f} ms own, {np.median(walls) * 1000:.1f} ms round trip per 512² frame")
    check(w.bye() == 0, "identity bye: exit 0")
    shutil.rmtree(scratch, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("edit")
    e.add_argument("manifest")
    e.add_argument("--params", default="{}")
    e.add_argument("--frames", default="0,36")
    e.add_argument("--size", type=int, default=512)
    e.add_argument("--threads", type=int, default=2)
    e.add_argument("--out", default="/tmp/plugin-check")
    e.add_argument("--tag")
    sub.add_parser("misbehave")
    args = ap.parse_args()
    {"edit": cmd_edit, "misbehave": cmd_misbehave}[args.cmd](args)
    if failures:
        print(f"{len(failures)} check(s) failed")
        sys.exit(1)


if __name__ == "__main__":
    main()
