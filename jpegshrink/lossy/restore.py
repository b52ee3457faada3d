"""Optional restoration of decoded JPEG pixels: a small learned deblocking / deringing filter.

``decode_image(blob, restore=True)`` runs the decoded pixels (of any JPEG container) through a few-layer
residual CNN trained by ``tools/train_restore.py`` on (our lossy JPEG, original) pairs of the tuning
photos. It is post-processing of pixels only: the JPEG bytes ``decompress`` returns never change, and
nothing here feeds an entropy coder, so floating point is fine (the output may differ in the last bit
between CPUs and torch builds; it is a picture for viewing, not a stored value).

The network (in the spirit of KBNet, arXiv 2303.02881, cut down to what trains in 20 CPU minutes: no
kernel-basis attention, plain 3x3 convolutions): input the decoded *luma* in [0, 1] plus one constant
plane with the JPEG's quantisation coarseness (mean luma step / :data:`QSTEP_SCALE`), so one set of
weights adapts its strength from q50 to q97; ``conv -> ReLU`` x (layers - 1), ``conv``: a luma
correction, added to R, G and B alike (chroma is left as decoded). Luma only, because a first RGB
version trained on the tuning photos (one package of wallpapers) learned their colours: +1.6 dB RGB
PSNR on them, -0.3 to -1.5 dB on the held-out photos.

Weights are ``.npz`` files in ``weights/`` named ``restore-<first 8 hex of their sha256>``; the name is
checked against the file's hash when it is loaded, and every name ever shipped stays in :data:`MODELS`.
torch is needed only here (``pip install 'jpegshrink[restore]'``; a one-line error without it).
"""
from __future__ import annotations

import hashlib
import io
import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from jpegshrink.errors import MissingDependency, UnknownModel

WEIGHTS = Path(__file__).resolve().parent / "weights"
#: Every restoration model shipped (name -> file in WEIGHTS). Never remove an entry.
MODELS: dict[str, str] = {
    # tools/train_restore.py --minutes 20 --threads 1 (2026-12-07): 4800 steps, MSE, 24 ch x 7 layers, luma
    "restore-599b00e3": "restore-599b00e3.npz",
}
#: What ``restore=True`` uses.
DEFAULT: str | None = "restore-599b00e3"
#: The one architecture (meta["arch"] of a weights file): luma in, a luma correction out.
ARCH = "residual-cnn-luma"
#: BT.601 luma weights (the correction is added to R, G and B alike, which changes luma only).
LUMA = (0.299, 0.587, 0.114)
#: The quantisation plane is mean(luma steps) / QSTEP_SCALE.
QSTEP_SCALE = 32.0
#: Pixels per side of the tiles inference runs on (bounds memory on 12 MP images) and their overlap.
TILE = 512
OVERLAP = 16


def torch_module():
    try:
        import torch
    except ImportError:
        raise MissingDependency("decode_image(restore=True) needs torch: pip install 'jpegshrink[restore]'") from None
    return torch


def build(torch, channels: int, layers: int):
    """The network (an ``nn.Sequential``: [luma, quantisation plane] -> the luma correction)."""
    nn = torch.nn
    mods = [nn.Conv2d(2, channels, 3, padding=1), nn.ReLU()]
    for _ in range(layers - 2):
        mods += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU()]
    mods.append(nn.Conv2d(channels, 1, 3, padding=1))
    return nn.Sequential(*mods)


def to_npz(net, meta: dict) -> bytes:
    """Serialise a trained network's weights (float32) and its architecture."""
    arrays = {f"p{i:02d}": p.detach().cpu().numpy().astype(np.float32) for i, p in enumerate(net.parameters())}
    b = io.BytesIO()
    np.savez(b, meta=np.frombuffer(json.dumps(meta, sort_keys=True).encode(), np.uint8), **arrays)
    return b.getvalue()


def name_of(data: bytes) -> str:
    return "restore-" + hashlib.sha256(data).hexdigest()[:8]


@lru_cache(maxsize=4)
def load(name: str):
    """(network in eval mode, meta) of a registered model; the file must hash to its name."""
    if name not in MODELS:
        raise UnknownModel(f"no restoration model {name!r}; shipped: {', '.join(MODELS) or 'none'}")
    data = (WEIGHTS / MODELS[name]).read_bytes()
    if name_of(data) != name:
        raise UnknownModel(f"restoration weights {MODELS[name]} do not hash to {name}: damaged install")
    torch = torch_module()
    z = np.load(io.BytesIO(data))
    meta = json.loads(bytes(z["meta"]).decode())
    if meta.get("arch") != ARCH:
        raise UnknownModel(f"restoration model {name} has architecture {meta.get('arch')!r}, not {ARCH!r}")
    net = build(torch, meta["channels"], meta["layers"])
    with torch.no_grad():
        for i, p in enumerate(net.parameters()):
            p.copy_(torch.from_numpy(z[f"p{i:02d}"]))
    net.eval()
    return net, meta


def qstep_plane_value(luma_steps, scale: float = QSTEP_SCALE) -> float:
    """The network's conditioning input from a JPEG's luma quantisation table (64 steps)."""
    return float(np.mean(np.asarray(luma_steps, np.float64))) / scale


def jpeg_luma_steps(jpeg: bytes) -> list[int]:
    """The luma quantisation table of a JPEG (Pillow reads it; 64 values, any order)."""
    from PIL import Image
    q = Image.open(io.BytesIO(jpeg)).quantization or {0: [1] * 64}
    return list(q[min(q)])


def restore(pixels: np.ndarray, luma_steps, name: str | None = None) -> np.ndarray:
    """uint8 pixels (H x W x 3 or H x W) after the restoration filter; same shape.

    Runs on tiles of :data:`TILE` pixels overlapping by :data:`OVERLAP` (more than the network's
    receptive field), so memory stays bounded on 12 MP images and the seams are invisible.
    """
    name = name or DEFAULT
    if name is None:
        raise UnknownModel("no restoration model ships with this version")
    net, meta = load(name)
    torch = torch_module()
    grey = pixels.ndim == 2
    x = pixels.astype(np.float32) / 255.0
    y = x if grey else luma(x)
    h, w = y.shape
    q = np.float32(qstep_plane_value(luma_steps, meta.get("qstep_scale", QSTEP_SCALE)))
    delta = np.empty_like(y)
    step = TILE - 2 * OVERLAP
    with torch.no_grad():
        for y0 in range(0, h, step):
            for x0 in range(0, w, step):
                ya, xa = max(0, y0 - OVERLAP), max(0, x0 - OVERLAP)
                yb, xb = min(h, y0 + step + OVERLAP), min(w, x0 + step + OVERLAP)
                tile = y[ya:yb, xa:xb]
                t = torch.from_numpy(np.ascontiguousarray(np.stack([tile, np.full_like(tile, q)])))[None]
                res = net(t)[0, 0].numpy()
                ye, xe = min(h, y0 + step), min(w, x0 + step)
                delta[y0:ye, x0:xe] = res[y0 - ya:ye - ya, x0 - xa:xe - xa]
    out = x + (delta if grey else delta[:, :, None])
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of float RGB [..., 3] (same scale)."""
    return (LUMA[0] * rgb[..., 0] + LUMA[1] * rgb[..., 1] + LUMA[2] * rgb[..., 2]).astype(np.float32)
