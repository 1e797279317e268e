"""Drive the landmarks and matte plugins over the protocol, as pgflow would, without pgflow.

    .venv/bin/python3 Scripts/check-face-plugins.py detect Nodes/plugins/landmarks.json \
        [--params '{"detector": "dlib"}'] [--video data/single_face.mp4] [--frames 0,36,71] \
        [--size 256] [--expect-faces 1] [--png /tmp/lmk.png] [--show]
    .venv/bin/python3 Scripts/check-face-plugins.py matte Nodes/plugins/matte.json [--png /tmp/matte.png]

Starts the worker from its manifest with Tests/Fixtures/plugins/drive.py's Worker (argv, "$python",
cwd and environment as pgflow sets them), shakes hands (the capabilities must be the manifest's
kind's op), sends detect or matte requests for real frames of the video (its own size, or the
centre square resized to --size²), checks every reply (fields, point count per layout, points
inside a margin of the frame, matte shape/range), repeats each frame after the others to check
that results do not depend on earlier frames (IMAGE mode), draws the first frame's points or
matte to a PNG, says goodbye (exit status 0) and prints the worker's own milliseconds per frame.
--show prints the first reply in full with the points cut short. Exit status 1 on a failed check.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "Tests", "Fixtures", "plugins"))
from drive import Worker, check, defaults, failures  # noqa: E402

import cv2  # noqa: E402

OPS = {"landmarks": "detect", "matte": "matte"}
POINTS = {"mediapipe478": 478, "ibug68": 68}


def read_frames(video, indices, size):
    cap = cv2.VideoCapture(video)
    out, i = {}, 0
    while len(out) < len(indices):
        ok, bgr = cap.read()
        if not ok:
            break
        if i in indices:
            if size:
                h, w = bgr.shape[:2]
                s = min(h, w)
                bgr = bgr[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
                bgr = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA if s > size else cv2.INTER_CUBIC)
            out[i] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        i += 1
    return out


def show(reply):
    r = dict(reply)
    if isinstance(r.get("points"), list) and len(r["points"]) > 3:
        r["points"] = r["points"][:3] + [f"... {len(reply['points']) - 3} more"]
    if isinstance(r.get("blendshapes"), list) and len(r["blendshapes"]) > 6:
        r["blendshapes"] = r["blendshapes"][:6] + [f"... {len(reply['blendshapes']) - 6} more"]
    return json.dumps(r)


def draw_points(img, points, path):
    bgr = cv2.cvtColor((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR)
    scale = 2 if max(bgr.shape[:2]) <= 400 else 1          # small frames drawn at 2× so points show
    bgr = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    for x, y in points:                                     # continuous coordinates: pixel centre at i + 0.5
        cv2.circle(bgr, (int(round((x - 0.5) * scale * 4)), int(round((y - 0.5) * scale * 4))), 4, (0, 255, 0), -1,
                   cv2.LINE_AA, shift=2)
    cv2.imwrite(path, bgr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("op", choices=["detect", "matte"])
    ap.add_argument("manifest")
    ap.add_argument("--params", default="{}")
    ap.add_argument("--video", default=os.path.join(REPO, "data", "single_face.mp4"))
    ap.add_argument("--frames", default="0,36,71")
    ap.add_argument("--size", type=int, default=0, help="centre square resized to size² (0: the video's own size)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--expect-faces", type=int, default=None)
    ap.add_argument("--png")
    ap.add_argument("--show", action="store_true")
    ap.add_argument("--repeat", type=int, default=1, help="requests per frame in the timing pass")
    args = ap.parse_args()

    scratch = tempfile.mkdtemp(prefix="pgplugin-")
    worker = Worker(os.path.abspath(args.manifest), scratch, args.threads)
    m = worker.manifest
    op = args.op
    check(OPS.get(m["kind"]) == op, f"manifest kind {m['kind']!r} does {op}")
    reply, secs = worker.hello()
    check(reply == {"ok": True, "protocol": 1, "name": m["name"], "version": m["version"], "capabilities": [op]},
          f"handshake in {secs:.2f} s: {reply}")
    params = defaults(m, json.loads(args.params))
    indices = [int(x) for x in args.frames.split(",")]
    frames = read_frames(args.video, indices, args.size)
    check(len(frames) == len(indices), f"{len(frames)} frames read from {args.video}")
    image_path = os.path.join(scratch, "w1-image.npy")      # one file per worker, rewritten in place
    output_path = os.path.join(scratch, "w1-output.npy")
    rid, first, results, timings = 0, {}, {}, []

    def request(i, img):
        nonlocal rid
        rid += 1
        pgplugin_write(image_path, img)
        with open(output_path, "wb") as f:
            f.write(b"PGFLOW-NOT-WRITTEN")
        t0 = time.perf_counter()
        r = worker.request({"op": op, "id": rid, "frame": i, "params": params,
                            "inputs": {"image": image_path}, "output": output_path}, m.get("timeout", 60))
        wall = time.perf_counter() - t0
        if not check(bool(r and r.get("ok") and r.get("id") == rid), f"frame {i}: ok (round trip {wall:.3f} s)"):
            print(f"  reply: {r}\n  stderr: " + "\n  stderr: ".join(worker.log_tail(8)))
            return None
        return r

    for rounds in range(2):                                 # the second round checks independence of order
        for i in (indices if rounds == 0 else list(reversed(indices))):
            img = frames[i]
            r = request(i, img)
            if r is None:
                continue
            if op == "detect":
                result = {k: v for k, v in r.items() if k not in ("id", "seconds")}
                if rounds == 0:
                    keys = ["id", "ok", "faces", "layout", "points", "confidence", "blendshapes", "head_pose", "seconds"]
                    check(sorted(r) == sorted(keys), f"frame {i}: fields {list(r)}")
                    n, h, w = len(r["points"]), img.shape[0], img.shape[1]
                    if r["faces"]:
                        check(n == POINTS.get(r["layout"], n), f"frame {i}: {r['faces']} face(s), {n} points, layout {r['layout']}, confidence {r['confidence']}")
                        pts = np.asarray(r["points"])
                        inside = bool(((pts >= -0.1 * max(h, w)) & (pts <= 1.1 * np.array([w, h]))).all())
                        check(inside, f"frame {i}: points within the frame (x {pts[:, 0].min():.1f}…{pts[:, 0].max():.1f}, y {pts[:, 1].min():.1f}…{pts[:, 1].max():.1f} of {w}×{h})")
                        if r["blendshapes"] is not None:
                            check(len(r["blendshapes"]) == 52 and 0 <= min(r["blendshapes"]) and max(r["blendshapes"]) <= 1,
                                  f"frame {i}: 52 blendshapes in 0…1")
                        if r["head_pose"] is not None:
                            check(len(r["head_pose"]) == 16 and r["head_pose"][12:] == [0, 0, 0, 1], f"frame {i}: 4×4 head pose")
                    else:
                        check(r == {"id": r["id"], "ok": True, "faces": 0, "layout": r["layout"], "points": [], "confidence": 0,
                                    "blendshapes": None, "head_pose": None, "seconds": r["seconds"]}, f"frame {i}: no face, {r}")
                    if args.expect_faces is not None:
                        check(r["faces"] == args.expect_faces, f"frame {i}: faces {r['faces']} (expected {args.expect_faces})")
                    results[i] = result
                    if not first:
                        first = r
                else:
                    check(result == results.get(i), f"frame {i} again, after other frames: the same reply")
            else:
                out = np.load(output_path)
                if rounds == 0:
                    check(out.dtype == np.float32 and out.shape == img.shape[:2] + (1,), f"frame {i}: matte {out.dtype} {list(out.shape)}")
                    check(bool(np.isfinite(out).all()) and out.min() >= 0 and out.max() <= 1,
                          f"frame {i}: finite, range {out.min():.3f}…{out.max():.3f}, mean {out.mean():.3f}, "
                          f"soft pixels {float(((out > 0.02) & (out < 0.98)).mean()) * 100:.1f}%")
                    results[i] = out
                    if not first:
                        first = r
                        if args.png:
                            a = np.repeat(out, 3, axis=2)
                            row = np.concatenate([img, a, img * a], axis=1)
                            cv2.imwrite(args.png, cv2.cvtColor((row * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR))
                            print(f"        image | matte | image × matte: {args.png}")
                else:
                    check(np.array_equal(out, results.get(i)), f"frame {i} again, after other frames: identical matte")
            if op == "detect" and rounds == 0 and args.png and r is first:
                draw_points(img, r["points"], args.png)
                print(f"        points drawn: {args.png}")
    for _ in range(args.repeat):
        for i in indices:
            r = request(i, frames[i])
            if r:
                timings.append(r["seconds"])
    if args.show and first:
        print("REPLY " + show(first))
    code = worker.bye()
    check(code == 0, f"bye: exit status {code}")
    h, w = next(iter(frames.values())).shape[:2]
    if timings:
        print(f"TIMING {m['name']} {json.dumps(json.loads(args.params))}: {np.median(timings) * 1000:.1f} ms per {w}×{h} frame "
              f"(worker's own time, median of {len(timings)}, OMP_NUM_THREADS={args.threads})")
    shutil.rmtree(scratch, ignore_errors=True)
    if failures:
        print(f"{len(failures)} check(s) failed")
        sys.exit(1)


def pgplugin_write(path, arr):
    """pgflow's way: one image file per worker, rewritten in place."""
    arr = np.ascontiguousarray(arr, dtype="<f4")
    with open(path, "r+b" if os.path.exists(path) else "wb") as f:
        np.save(f, arr, allow_pickle=False)
        f.truncate()


if __name__ == "__main__":
    main()
