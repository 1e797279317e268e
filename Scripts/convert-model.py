#!/usr/bin/env python3
"""Convert SMPL-X / FLAME model releases to the NPZ layout pgflow reads.

The official releases are Python-2 pickles whose arrays are partly chumpy objects and scipy
sparse matrices. This script needs only NumPy: it unpickles them with stand-ins for chumpy and
scipy.sparse, turns every numeric entry into a plain array, and writes an NPZ with the models'
own key names (v_template, shapedirs, posedirs, J_regressor, weights, kintree_table, f, vt, ft,
...). pgflow never reads pickles, and the converted file also loads in the `smplx` package.

Usage:
  convert-model.py SMPLX_NEUTRAL.pkl smplx.npz
  convert-model.py SMPLX_NEUTRAL.npz smplx.npz          # drop pickled members from the npz release
  convert-model.py generic_model.pkl flame.npz --uv FLAME_texture.npz --landmarks landmark_embedding.npy
  convert-model.py --make-test-model tiny-smplx.npz     # pgflow's tiny SMPL-X-keyed test model, and
                                                        # tiny-smplx-expected.npz: a pose posed by smplx's lbs

Options:
  --uv FILE          merge `vt` and `ft` from FLAME's texture-space file (FLAME_texture.npz);
                     pgflow's GaussianField needs a UV layout.
  --landmarks FILE   merge FLAME's landmark_embedding.npy as lmk_faces_idx / lmk_bary_coords
                     (the 68-point `full_*` embedding when present, else the static one).
  --num-betas N      record how many shapedirs columns are shape (the rest are expression);
                     without it pgflow follows the smplx package (300 when there are >= 400, 10 of 20).
Model files are licensed: do not commit the converted files.
"""
import argparse
import pickle
import sys

import numpy as np


class _ChumpyStandIn:
    """Whatever chumpy class was pickled: keep its state, resolve it to an array later."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.__dict__["_state"] = state


class _SparseStandIn:
    """A scipy.sparse matrix without scipy: keep its state and densify it."""

    kind = "csc"

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.__dict__["_state"] = state


def _sparse_class(name):
    kind = "csr" if name.startswith("csr") else ("coo" if name.startswith("coo") else "csc")
    return type(name, (_SparseStandIn,), {"kind": kind})


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module.startswith("chumpy"):
            return _ChumpyStandIn
        if module.startswith("scipy.sparse"):
            if name.endswith("_matrix") or name.endswith("_array"):
                return _sparse_class(name)
        return super().find_class(module, name)


def _to_array(value):
    """A plain NumPy array for a numeric entry, or None for anything else."""
    if isinstance(value, _ChumpyStandIn):
        state = value._state if isinstance(value._state, dict) else {}
        # A terminal chumpy.Ch keeps its array in 'x'; derived nodes keep their input in 'a'.
        for key in ("x", "a", "_x"):
            if key in state:
                return _to_array(state[key])
        return None
    if isinstance(value, _SparseStandIn):
        s = value._state
        shape = tuple(s.get("_shape", s.get("shape")))
        dense = np.zeros(shape, dtype=np.asarray(s.get("data", [0.0])).dtype)
        if value.kind == "coo":
            np.add.at(dense, (np.asarray(s["row"]), np.asarray(s["col"])), np.asarray(s["data"]))
            return dense
        data, indices, indptr = np.asarray(s["data"]), np.asarray(s["indices"]), np.asarray(s["indptr"])
        for major in range(len(indptr) - 1):
            for k in range(indptr[major], indptr[major + 1]):
                if value.kind == "csc":
                    dense[indices[k], major] += data[k]
                else:
                    dense[major, indices[k]] += data[k]
        return dense
    if hasattr(value, "toarray"):          # a real scipy matrix, when scipy did the unpickling
        return np.asarray(value.toarray())
    if isinstance(value, np.ndarray):
        return value if value.dtype.kind in "biuf" else None
    if isinstance(value, (list, tuple, int, float)):
        try:
            a = np.asarray(value)
        except ValueError:
            return None
        return a if a.dtype.kind in "biuf" else None
    return None


def load_model(path):
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=True) as z:
            raw = {k: z[k] for k in z.files}
    else:
        with open(path, "rb") as f:
            raw = _Unpickler(f, encoding="latin1").load()
    out = {}
    for key, value in raw.items():
        a = _to_array(value)
        if a is not None:
            out[key] = a
    missing = [k for k in ("v_template", "shapedirs", "J_regressor", "weights", "kintree_table", "f") if k not in out]
    if missing:
        sys.exit(f"{path}: no {', '.join(missing)} among its entries ({', '.join(sorted(raw))})")
    return out


def merge_landmarks(model, path):
    emb = np.load(path, allow_pickle=True, encoding="latin1")
    emb = emb.item() if emb.dtype == object else emb
    for prefix in ("full_", "static_", ""):
        faces, bary = emb.get(prefix + "lmk_faces_idx"), emb.get(prefix + "lmk_bary_coords")
        if faces is not None and bary is not None:
            model["lmk_faces_idx"] = np.asarray(faces).reshape(-1).astype(np.int64)
            model["lmk_bary_coords"] = np.asarray(bary).reshape(-1, 3)
            return
    sys.exit(f"{path}: no lmk_faces_idx / lmk_bary_coords in it ({', '.join(sorted(emb))})")


def make_test_model(path):
    """A tiny body with SMPL-X key names, dtypes and conventions: 4 joints in a chain, uint32
    faces, the root's parent stored as 2^32 - 1, 10 shape + 10 expression directions (SMPL-X v1.0),
    pose correctives, a UV layout with a seam, landmarks and members pgflow must ignore."""
    rng = np.random.default_rng(0)
    cols, rings = 12, 10
    heights = np.linspace(0.02, 0.73, rings)
    radius = 0.1 + 0.05 * np.sin(np.linspace(0, np.pi, rings))
    angles = 2 * np.pi * np.arange(cols) / cols
    verts = [[0.0, 0.0, 0.0]]
    for h, r in zip(heights, radius):
        for a in angles:
            verts.append([r * np.sin(a), h, r * np.cos(a)])
    verts.append([0.0, 0.75, 0.0])
    v = np.array(verts)
    n = len(v)
    ring = lambda i, j: 1 + i * cols + (j % cols)
    f, ft, vt = [], [], []
    for i in range(rings):
        for j in range(cols + 1):
            vt.append([j / cols, (i + 1) / (rings + 1)])
    uv_ring = lambda i, j: i * (cols + 1) + j
    bottom_uv, top_uv = len(vt), len(vt) + cols
    vt += [[(j + 0.5) / cols, 0.0] for j in range(cols)] + [[(j + 0.5) / cols, 1.0] for j in range(cols)]
    for j in range(cols):
        f.append([0, ring(0, j + 1), ring(0, j)])
        ft.append([bottom_uv + j, uv_ring(0, j + 1), uv_ring(0, j)])
    for i in range(rings - 1):
        for j in range(cols):
            a, b, c, d = ring(i, j), ring(i, j + 1), ring(i + 1, j + 1), ring(i + 1, j)
            f += [[a, b, c], [a, c, d]]
            ua, ub, uc, ud = uv_ring(i, j), uv_ring(i, j + 1), uv_ring(i + 1, j + 1), uv_ring(i + 1, j)
            ft += [[ua, ub, uc], [ua, uc, ud]]
    for j in range(cols):
        f.append([ring(rings - 1, j), ring(rings - 1, j + 1), n - 1])
        ft.append([uv_ring(rings - 1, j), uv_ring(rings - 1, j + 1), top_uv + j])

    joint_heights = np.array([0.05, 0.3, 0.52, 0.65])
    regressor = np.zeros((4, n))
    for k, h in enumerate(joint_heights):
        i = int(np.argmin(np.abs(heights - h)))
        regressor[k, [ring(i, j) for j in range(cols)]] = 1.0 / cols
    dist = np.abs(v[:, 1:2] - joint_heights[None, :])
    weights = np.exp(-(dist / 0.08) ** 2)
    weights /= weights.sum(1, keepdims=True)
    shapedirs = np.zeros((n, 3, 20))
    for k in range(20):
        scale = 0.01 if k < 10 else 0.004
        shapedirs[:, :, k] = scale * rng.standard_normal((n, 3)) * (1 + np.sin(v[:, 1:2] * (k + 1)))
    posedirs = 0.01 * rng.standard_normal((n, 3, 27))
    lmk_faces = rng.integers(0, len(f), 5)
    lmk_bary = rng.dirichlet(np.ones(3), 5)
    np.savez_compressed(
        path,
        v_template=v, shapedirs=shapedirs.astype(np.float32), posedirs=posedirs.astype(np.float32), J_regressor=regressor, weights=weights,
        kintree_table=np.array([[4294967295, 0, 1, 2], [0, 1, 2, 3]], dtype=np.uint32),
        f=np.array(f, dtype=np.uint32), vt=np.array(vt), ft=np.array(ft, dtype=np.uint32),
        lmk_faces_idx=lmk_faces.astype(np.int64), lmk_bary_coords=lmk_bary,
        hands_meanl=np.zeros(45), joint2num=np.array({"pelvis": 0}, dtype=object))


def smplx_lbs(model, betas, expression, full_pose, transl, num_betas):
    """The smplx package's `lbs` in NumPy (float64): the oracle pgflow's LBS is tested against."""
    v_template = model["v_template"].astype(np.float64)
    shapedirs = model["shapedirs"].astype(np.float64)
    coeffs = np.zeros(shapedirs.shape[2])
    coeffs[:len(betas)] = betas
    coeffs[num_betas:num_betas + len(expression)] = expression
    v_shaped = v_template + shapedirs @ coeffs
    joints = model["J_regressor"] @ v_shaped

    def rodrigues(r):
        angle = np.linalg.norm(r + 1e-8)
        k = r / angle
        kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
        return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx

    rot = np.stack([rodrigues(r) for r in full_pose])
    pose_feature = (rot[1:] - np.eye(3)).reshape(-1)
    posedirs = model["posedirs"].astype(np.float64).reshape(-1, pose_feature.size).T
    v_posed = v_shaped + (pose_feature @ posedirs).reshape(-1, 3)
    parents = model["kintree_table"][0].astype(np.int64)
    transforms = []
    for j in range(len(rot)):
        rel = joints[j] - (joints[parents[j]] if j > 0 else 0)
        t = np.eye(4)
        t[:3, :3], t[:3, 3] = rot[j], rel
        transforms.append(t if j == 0 else transforms[parents[j]] @ t)
    posed_joints = np.stack([t[:3, 3] for t in transforms])
    a = np.stack([t - np.pad((t[:3, :3] @ joints[j])[:, None], ((0, 1), (3, 0))) for j, t in enumerate(transforms)])
    per_vertex = np.einsum("vj,jab->vab", model["weights"], a)
    homogeneous = np.concatenate([v_posed, np.ones((len(v_posed), 1))], 1)
    vertices = np.einsum("vab,vb->va", per_vertex, homogeneous)[:, :3] + transl
    return vertices, posed_joints + transl


def make_expected(model_path, path):
    """Posed vertices of the test model for one seeded pose, from `smplx_lbs`."""
    rng = np.random.default_rng(1)
    with np.load(model_path, allow_pickle=True) as z:
        model = {k: z[k] for k in z.files if z[k].dtype != object}
    betas, expression = rng.normal(0, 1, 7), rng.normal(0, 1, 10)
    full_pose, transl = rng.normal(0, 0.4, (4, 3)), rng.normal(0, 0.1, 3)
    vertices, joints = smplx_lbs(model, betas, expression, full_pose, transl, num_betas=10)
    np.savez_compressed(path, betas=betas, expression=expression, full_pose=full_pose, transl=transl,
                        vertices=vertices, joints=joints)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("input", nargs="?", help="the model .pkl (or .npz) release")
    p.add_argument("output", nargs="?", help="the .npz to write")
    p.add_argument("--uv", help="FLAME_texture.npz to take vt/ft from")
    p.add_argument("--landmarks", help="FLAME landmark_embedding.npy")
    p.add_argument("--num-betas", type=int, help="how many shapedirs columns are shape directions")
    p.add_argument("--make-test-model", metavar="OUT", help="write the tiny SMPL-X-keyed test model and exit")
    args = p.parse_args()
    if args.make_test_model:
        make_test_model(args.make_test_model)
        expected = args.make_test_model[:-4] + "-expected.npz"
        make_expected(args.make_test_model, expected)
        print(f"wrote {args.make_test_model} and {expected}")
        return
    if not args.input or not args.output:
        p.error("give the model file and the .npz to write")
    model = load_model(args.input)
    if args.uv:
        with np.load(args.uv, allow_pickle=True) as tex:
            model["vt"], model["ft"] = np.asarray(tex["vt"]), np.asarray(tex["ft"])
    if args.landmarks:
        merge_landmarks(model, args.landmarks)
    if args.num_betas is not None:
        model["num_betas"] = np.array([args.num_betas])
    if "shapedirs" in model and model["shapedirs"].ndim == 2:
        model["shapedirs"] = model["shapedirs"][:, :, None]
    np.savez_compressed(args.output, **model)
    sd = model["shapedirs"]
    print(f"wrote {args.output}: {len(model['v_template'])} vertices, {len(model['f'])} faces, "
          f"{model['kintree_table'].shape[1]} joints, shapedirs {sd.shape}, "
          f"{'a UV layout' if 'vt' in model and 'ft' in model else 'no UV layout'}; "
          f"arrays: {', '.join(sorted(model))}")


if __name__ == "__main__":
    main()
