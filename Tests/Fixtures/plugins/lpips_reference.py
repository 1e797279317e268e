"""The lpips plugin's test fixture, in NumPy (no torch in the arithmetic), so the plugin is checked
against code written apart from it:
  python lpips_reference.py backbone OUT.pth      a seeded random AlexNet state dict (torchvision's keys)
  python lpips_reference.py distance BACKBONE LINEAR A.npy B.npy
                                                  LPIPS v0.1 of two [H, W, 3] images in 0…1, printed
The backbone's weights are random (the real ones cannot be downloaded here); LINEAR is the real
lpips 0.1.4 alex.pth that Scripts/setup-plugins.sh --full unpacks."""
import sys

import numpy as np

# torchvision's AlexNet features: (index, out, in, kernel, stride, padding); max-pool 3/2 after 1 and 2.
CONVS = [(0, 64, 3, 11, 4, 2), (3, 192, 64, 5, 1, 2), (6, 384, 192, 3, 1, 1), (8, 256, 384, 3, 1, 1), (10, 256, 256, 3, 1, 1)]


def backbone(path):
    import torch
    rng = np.random.default_rng(11)
    sd = {}
    for index, out, cin, k, _, _ in CONVS:
        std = np.sqrt(2.0 / (cin * k * k))
        sd[f"features.{index}.weight"] = torch.from_numpy(rng.normal(0, std, (out, cin, k, k)).astype(np.float32))
        sd[f"features.{index}.bias"] = torch.from_numpy(rng.normal(0, 0.05, out).astype(np.float32))
    torch.save(sd, path)


def conv(x, w, b, stride, pad):
    """x [C, H, W], w [O, C, k, k] -> [O, H', W'] by sliding windows."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    k = w.shape[2]
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))[:, ::stride, ::stride]   # [C, H', W', k, k]
    return np.einsum("chwij,ocij->ohw", win, w, optimize=True) + b[:, None, None]


def maxpool(x):
    win = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(1, 2))[:, ::2, ::2]
    return win.max(axis=(3, 4))


def taps(img, sd):
    x = img.transpose(2, 0, 1).astype(np.float64) * 2 - 1
    x = (x - np.array([-0.030, -0.088, -0.188])[:, None, None]) / np.array([0.458, 0.448, 0.450])[:, None, None]
    out = []
    for i, (index, _, _, _, stride, pad) in enumerate(CONVS):
        if i in (1, 2):
            x = maxpool(x)
        x = np.maximum(conv(x, sd[f"features.{index}.weight"], sd[f"features.{index}.bias"], stride, pad), 0)
        out.append(x)
    return out


def distance(backbone_path, linear_path, a, b):
    import torch
    sd = {k: v.double().numpy() for k, v in torch.load(backbone_path, map_location="cpu", weights_only=True).items()}
    lin = {k: v.double().numpy() for k, v in torch.load(linear_path, map_location="cpu", weights_only=True).items()}
    d = 0.0
    for i, (fa, fb) in enumerate(zip(taps(a, sd), taps(b, sd))):
        na = fa / (np.sqrt((fa ** 2).sum(0, keepdims=True)) + 1e-10)
        nb = fb / (np.sqrt((fb ** 2).sum(0, keepdims=True)) + 1e-10)
        w = lin[f"lin{i}.model.1.weight"].reshape(-1, 1, 1)
        d += ((na - nb) ** 2 * w).sum(0).mean()
    return d


if __name__ == "__main__":
    if sys.argv[1] == "backbone":
        backbone(sys.argv[2])
    else:
        print(repr(float(distance(sys.argv[2], sys.argv[3], np.load(sys.argv[4]), np.load(sys.argv[5])))))
