"""lpips: the LPIPS perceptual distance (Zhang et al. 2018, v0.1, AlexNet) as a `perceptual` plugin,
for the edit loss's LPIPS term (PortraitGen's paper code adds 10·LPIPS after epoch 5).

The network is written out here (torchvision's AlexNet `features` layout and the `lpips` package's
scaling, unit-normalisation, learned per-channel weights and spatial mean), so neither torchvision
nor the `lpips` package has to import. Weights are never downloaded:
  - backbone: an AlexNet state dict, torchvision's `alexnet-owt-7be5be79.pth` (keys features.N.*),
    which the user brings (the `backbone` param). Without it there is no LPIPS.
  - linear: the five learned 1×1 layers, `lpips/weights/v0.1/alex.pth` of the lpips 0.1.4 wheel,
    which Scripts/setup-plugins.sh --full unpacks into <venv>/share/pgflow/models (or the `linear` param).
distance(image, target) -> (d, ∂d/∂image by autograd when asked). Images are [H, W, 3] in 0…1.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import numpy as np  # noqa: E402
import pgplugin  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

MODEL_DIR = os.path.join(sys.prefix, "share", "pgflow", "models")     # where setup-plugins.sh puts them
LINEAR = os.path.join(MODEL_DIR, "lpips-alex-v0.1.pth")

# torchvision's alexnet().features up to the fifth ReLU: (index, stride, padding) of each conv;
# a 3×3/2 max-pool follows the first two ReLUs. LPIPS taps the five ReLUs.
CONVS = [(0, 4, 2), (3, 1, 2), (6, 1, 1), (8, 1, 1), (10, 1, 1)]
SHIFT = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
SCALE = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

_loaded = {}


def _load(path, what):
    if not path or not os.path.isfile(path):
        raise pgplugin.PluginError(f"{what} weights file {path!r} does not exist")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise pgplugin.PluginError(f"{what} weights file {path!r} cannot be read by torch.load ({exc})")
    return {k.removeprefix("module."): v.float() for k, v in sd.items()}


def network(params):
    backbone = pgplugin.param(params, "backbone")
    if not backbone:
        raise pgplugin.PluginError("param 'backbone' is not set: LPIPS needs AlexNet weights "
                                   "(torchvision's alexnet-owt-7be5be79.pth), which pgflow cannot download")
    linear = pgplugin.param(params, "linear") or LINEAR
    key = (backbone, linear)
    if key not in _loaded:
        net, lin = _load(backbone, "the backbone"), _load(linear, "the linear")
        convs = []
        for index, stride, padding in CONVS:
            w, b = net.get(f"features.{index}.weight"), net.get(f"features.{index}.bias")
            if w is None or b is None:
                raise pgplugin.PluginError(f"the backbone {backbone!r} has no features.{index}.weight/bias: "
                                           "is it torchvision's AlexNet?")
            convs.append((w, b, stride, padding))
        weights = []
        for i, (w, _, _, _) in enumerate(convs):
            lw = lin.get(f"lin{i}.model.1.weight")
            if lw is None or lw.numel() != w.shape[0]:
                raise pgplugin.PluginError(f"the linear weights {linear!r} have no lin{i}.model.1.weight of {w.shape[0]} values")
            weights.append(lw.view(1, -1, 1, 1))
        _loaded[key] = (convs, weights)
    return _loaded[key]


def taps(x, convs):
    """The five ReLU outputs for x [1, 3, H, W] in LPIPS's input range."""
    out = []
    h = (x - SHIFT) / SCALE
    for i, (w, b, stride, padding) in enumerate(convs):
        if i in (1, 2):
            h = F.max_pool2d(h, 3, 2)
        h = F.relu(F.conv2d(h, w, b, stride=stride, padding=padding))
        out.append(h)
    return out


def lpips(image, target, convs, weights):
    d = 0
    for fx, fy, w in zip(taps(image, convs), taps(target, convs), weights):
        nx = fx / (fx.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        ny = fy / (fy.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        d = d + ((nx - ny).pow(2) * w).sum(1).mean()
    return d


def distance(image, target, params, gradient):
    convs, weights = network(params)

    def tensor(a):   # [H, W, 3] in 0…1 -> [1, 3, H, W] in -1…1 (lpips' normalize=True)
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).permute(2, 0, 1)[None] * 2 - 1

    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).requires_grad_(gradient)
    xt = x.permute(2, 0, 1)[None] * 2 - 1
    with torch.set_grad_enabled(gradient):
        d = lpips(xt, tensor(target), convs, weights)
        if not gradient:
            return float(d), None
        d.backward()
    return float(d.detach()), x.grad.numpy()


if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    pgplugin.serve(name="lpips", version="1.0.0", distance=distance)
