"""Choose the distortion weight of the perceptual encoder's rate-distortion optimised rounding.

jpegshrink/perceptual/rounding.py estimates a latent's rounding distortion through the synthesis' linear
path and scales it by ``DISTORTION_WEIGHT`` for what the nonlinear path adds. This measures, for each
weight asked for, the BD-rate (PSNR) of the rounded latents against nearest rounding on crops of the
*training* images (the validation photos stay unseen), every rate of the ladder, true code lengths of
the codec's integer tables and the float decode. Run it again when a codec is retrained.

    OMP_NUM_THREADS=1 python tools/tune_rd_rounding.py --model hp1-c925b62f --weights 1.5,2,3,4,6
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_lossy import _log_rate_at, _monotone  # noqa: E402
from jpegshrink.perceptual import model, refine, rounding  # noqa: E402
from jpegshrink.perceptual.model import Latents, Rounding  # noqa: E402


def curves(codec, crops, weights, size: int = 128) -> dict:
    """{weight (0 = nearest): [[{"bpp", "psnr"} per rate] per crop]}"""
    import torch
    out = {w: [] for w in [0.0, *weights]}
    for crop in crops:
        a = np.ascontiguousarray(crop[:size, :size])
        x = codec.to_tensor(a)
        target = x[0, :, :size, :size]
        pts = {w: [] for w in out}
        for rate in range(codec.rates):
            near = codec.encode_latents(x, rate, Rounding.NEAREST)
            with torch.no_grad():
                v = codec.analysis(x, rate)[0].double().numpy() - near.means / codec.mean_denom
            for w in out:
                sym = near.symbols if w == 0 else rounding.rd_round(codec, v, near.index, rate, w)
                lat = Latents(near.z, sym, near.means, near.index, float(rate))
                with torch.no_grad():
                    xh = codec.synthesis(lat.y_hat(), rate)[0, :, :size, :size].clamp(0, 1)
                mse = float((((xh * 255).round() / 255 - target) ** 2).mean())
                pts[w].append({"bpp": refine.exact_bits(codec, lat) / size ** 2, "psnr": 10 * np.log10(1 / mse)})
        for w in out:
            out[w].append(pts[w])
    return out


def bd(test: list, anchor: list) -> float:
    """Mean BD-rate (percent) of per-crop curves over each pair's common PSNR range."""
    d = []
    for t, a in zip(test, anchor):
        tx, _ = _monotone(t, "psnr")
        ax, _ = _monotone(a, "psnr")
        lo, hi = max(tx[0], ax[0]), min(tx[-1], ax[-1])
        if hi - lo > 0.5:
            d.append(np.exp(np.mean(_log_rate_at(t, "psnr", lo, hi) - _log_rate_at(a, "psnr", lo, hi))) - 1)
    return 100 * float(np.mean(d))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="registered codec id (default: the library's)")
    ap.add_argument("--weights", default="1.5,2,3,4,6")
    ap.add_argument("--crops", type=int, default=32)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    from train_perceptual import CROPS
    codec = model.load(args.model)
    crops = np.load(CROPS, mmap_mode="r")
    pick = np.random.default_rng(args.seed).choice(len(crops), args.crops, replace=False)
    weights = [float(w) for w in args.weights.split(",")]
    res = curves(codec, crops[pick], weights)
    for w in weights:
        print(json.dumps({"model": codec.model_id, "weight": w, "bd_rate_vs_nearest": round(bd(res[w], res[0.0]), 2),
                          "crops": args.crops}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
