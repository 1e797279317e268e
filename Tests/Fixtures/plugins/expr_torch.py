"""expr_torch: pgflow's built-in expression encoder written again in PyTorch, with autograd for the
backward pass, as an `expression` plugin. It is the reference the ExprLoss plugin path is tested
against (features and gradients must agree with the Swift encoder), and a template for plugging in
a real network such as EMOCA: encode(crop) -> features, vjp(crop, cotangent) -> d<features, cot>/d crop."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "Nodes", "plugins"))
import numpy as np  # noqa: E402
import pgplugin  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_default_dtype(torch.float64)


def features(crop, cells, blur):
    """crop: [S, S, 3] tensor. Luminance, Gaussian blur (clamped borders), central differences,
    structure tensor per cell, doubled-angle orientation scaled by coherence."""
    y = 0.299 * crop[..., 0] + 0.587 * crop[..., 1] + 0.114 * crop[..., 2]
    r = max(1, int(np.ceil(3 * blur)))
    k = torch.exp(-torch.arange(-r, r + 1, dtype=torch.float64) ** 2 / (2 * blur * blur))
    k = k / k.sum()
    x = y[None, None]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")[0, 0]
    gx = 0.5 * (p[1:-1, 2:] - p[1:-1, :-2])
    gy = 0.5 * (p[2:, 1:-1] - p[:-2, 1:-1])
    a = F.avg_pool2d((gx * gx)[None, None], crop.shape[0] // cells)[0, 0].reshape(-1)
    b = F.avg_pool2d((gx * gy)[None, None], crop.shape[0] // cells)[0, 0].reshape(-1)
    c = F.avg_pool2d((gy * gy)[None, None], crop.shape[0] // cells)[0, 0].reshape(-1)
    e = 0.05 * ((a + c).mean() + 1e-12)
    d = a + c + e
    return torch.stack([(a - c) / d, 2 * b / d], dim=1).reshape(-1)


def settings(params):
    return int(pgplugin.param(params, "cells", 32)), float(pgplugin.param(params, "blur", 3.0))


def encode(image, params):
    cells, blur = settings(params)
    return features(torch.from_numpy(image.astype(np.float64)), cells, blur).numpy()


def vjp(image, params, cotangent):
    cells, blur = settings(params)
    crop = torch.from_numpy(image.astype(np.float64)).requires_grad_(True)
    f = features(crop, cells, blur)
    (f * torch.from_numpy(cotangent)).sum().backward()
    return crop.grad.numpy().astype(np.float32)


pgplugin.serve(name="expr_torch", version="1.0.0", encode=encode, vjp=vjp)
