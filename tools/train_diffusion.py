"""Train the diffusion networks of the issue-15 decoders on CPU, time-boxed, and store them by hash.

    nice -n 10 env OMP_NUM_THREADS=1 python tools/train_diffusion.py prior --minutes 30
    nice -n 10 env OMP_NUM_THREADS=1 python tools/train_diffusion.py cdc --minutes 30 --codec <codec id>

``prior``: the unconditional eps-prediction patch prior used by the idempotence decoder.
``cdc``: CDC-lite, an X-parameterised denoiser conditioned on the frozen MSE codec's decode of the
crop (trained on top of the frozen codec, at rates drawn from the codec's registered rates).

Data: the training crops of tools/image_data.py (issue 14's set; validation photos are held out by
source package and only used for the validation loss printed here). Scale, stated honestly: a
sub-million-parameter U-Net, ~35 photos, a time box of CPU minutes at one thread.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jpegshrink.perceptual.diffusion import cdc, schedule, weights  # noqa: E402
from jpegshrink.perceptual.diffusion.unet import TinyUNet, UNetConfig  # noqa: E402

CACHE = Path("/work/cache/perceptual")
VAL_DIR = CACHE / "val"


def batches(crops: np.ndarray, size: int, batch: int, rng: np.random.Generator):
    """Random size x size sub-crops with flips, as float tensors in [-1, 1], forever."""
    n, h, w, _ = crops.shape
    while True:
        idx = np.sort(rng.choice(n, batch, replace=False))
        ys, xs = rng.integers(0, h - size + 1, batch), rng.integers(0, w - size + 1, batch)
        out = np.stack([crops[i, y:y + size, x:x + size] for i, y, x in zip(idx, ys, xs)]).astype(np.float32)
        flip = rng.random(batch) < 0.5
        out[flip] = out[flip, :, ::-1]
        yield torch.from_numpy(out).permute(0, 3, 1, 2).contiguous() / 127.5 - 1, None


def load_codec(spec: str | None):
    """The frozen MSE codec: a registered perceptual codec id (None: the default), an exported weight file
    (.npz, named by its id), or an issue-14 training checkpoint (.pt, float hyper-decoder)."""
    if spec is not None and spec.endswith(".pt"):
        from jpegshrink.perceptual.network import HyperpriorCodec
        ck = torch.load(spec, weights_only=False)
        cfg = ck["config"]
        net = HyperpriorCodec(cfg["n"], cfg["m"], cfg["nz"], len(ck["lambdas"]))
        net.load_state_dict(ck["model"])
        net.h_s.fake_quant = ck.get("fake_quant", False)
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
        return net
    from jpegshrink.perceptual import model
    if spec is not None and spec.endswith(".npz"):   # an exported weight file not yet registered here
        with np.load(spec) as f:
            return model.LearnedCodec(Path(spec).stem, {k: f[k] for k in f.files})
    return model.load(spec)


def mse_decode(codec, x: torch.Tensor, rate: float) -> torch.Tensor:
    """The frozen codec's MSE reconstruction in [0, 1] of one image x in [-1, 1] at ``rate``."""
    x01 = (x + 1) / 2
    with torch.no_grad():
        if hasattr(codec, "encode_latents"):       # registered codec: the container's exact integer latents
            lat = codec.encode_latents(x01, rate)
            return codec.synthesis(lat.y_hat(), rate).clamp(0, 1)
        g = codec.gain(torch.tensor([float(rate)]))  # training checkpoint: float path of network.HyperpriorCodec
        y = codec.g_a(x01) * g
        means = codec.h_s(codec.h_a(y).round())[0]
        return codec.g_s(((y - means).round() + means) / g).clamp(0, 1)


def cdc_batches(codec, crops: np.ndarray, size: int, batch: int, rng: np.random.Generator, big: int = 128):
    """(x0, condition) pairs: ``big``^2 crops coded whole at a random ladder rate, then ``size``^2 sub-crops,
    so the codec sees image-like extents while the denoiser trains on small patches."""
    per = 4
    images = batches(crops, big, batch // per, rng)
    while True:
        x, _ = next(images)
        cond = torch.cat([cdc.condition(mse_decode(codec, x[i:i + 1], rng.uniform(0, codec.rates - 1)))
                          for i in range(len(x))])
        xs, cs = [], []
        for i in range(len(x)):
            for _ in range(per):
                y, z = rng.integers(0, big - size + 1, 2)
                xs.append(x[i, :, y:y + size, z:z + size])
                cs.append(cond[i, :, y:y + size, z:z + size])
        yield torch.stack(xs), torch.stack(cs)


def val_crops(size: int, per_image: int = 16, seed: int = 1) -> torch.Tensor:
    from PIL import Image
    rng = np.random.default_rng(seed)
    out = []
    for p in sorted(VAL_DIR.glob("*.png")):
        a = np.asarray(Image.open(p).convert("RGB"))
        for _ in range(per_image):
            y, x = rng.integers(0, a.shape[0] - size + 1), rng.integers(0, a.shape[1] - size + 1)
            out.append(a[y:y + size, x:x + size])
    return torch.from_numpy(np.stack(out).astype(np.float32)).permute(0, 3, 1, 2) / 127.5 - 1


def diffusion_loss(net: TinyUNet, x0: torch.Tensor, param: schedule.Parameterisation, cond=None,
                   t: torch.Tensor | None = None, gen: torch.Generator | None = None) -> torch.Tensor:
    """eps-MSE (EPS) or min(SNR, 5)-weighted x0-MSE (X, X_RESIDUAL: CDC's truncated SNR weighting)."""
    b = x0.shape[0]
    if t is None:
        t = torch.rand(b, generator=gen)
    eps = torch.randn(x0.shape, generator=gen)
    a, s = schedule.alpha_sigma(t)
    xt = a[:, None, None, None] * x0 + s[:, None, None, None] * eps
    out = net(xt, schedule.log_snr(t), cond)
    if param is schedule.Parameterisation.EPS:
        return (out - eps).pow(2).mean()
    if param is schedule.Parameterisation.X_RESIDUAL:
        out = cond[:, :3] + out
    w = (a ** 2 / s ** 2).clamp(max=5.0)
    return (w[:, None, None, None] * (out - x0).pow(2)).mean()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("role", choices=[r.value for r in weights.Role])
    ap.add_argument("--minutes", type=float, default=30.0, help="wall-clock time box for the training loop")
    ap.add_argument("--size", type=int, default=32, help="crop side (multiple of 4)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--ema", type=float, default=0.998)
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--codec", default=None, help="cdc: id of the frozen perceptual codec (default: the registered one)")
    ap.add_argument("--init", default=None, help="start from this stored model id (fine-tuning)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--crops", type=Path, default=None, help="uint8 [n,S,S,3] crops (default: newest in the cache)")
    ap.add_argument("--max-crops", type=int, default=5000, help="crops held in memory")
    ap.add_argument("--out", type=Path, default=weights.WEIGHTS_DIR)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    role = weights.Role(args.role)
    rng = np.random.default_rng(args.seed)
    crops_path = args.crops or max(CACHE.glob("train_crops_*.npy"), key=lambda p: p.stat().st_mtime)
    crops = np.load(crops_path, mmap_mode="r")
    # an in-memory copy of a random subset: the cache file may be rebuilt while this runs
    crops = np.ascontiguousarray(crops[np.sort(rng.choice(len(crops), min(len(crops), args.max_crops), replace=False))])
    if role is weights.Role.PRIOR:
        param, cfg, codec = schedule.Parameterisation.EPS, UNetConfig(args.channels), None
        data = batches(crops, args.size, args.batch, rng)
    else:
        codec = load_codec(args.codec)
        param, cfg = schedule.Parameterisation.X_RESIDUAL, UNetConfig(args.channels, cond_channels=cdc.COND_CHANNELS)
        data = cdc_batches(codec, crops, args.size, args.batch, rng)
    net = TinyUNet(cfg)
    if args.init:   # continue from a stored model (e.g. fine-tune CDC-lite on the final codec)
        init, init_param, _ = weights.load(args.init, args.out)
        if init.config != cfg or init_param is not param:
            raise SystemExit(f"--init {args.init} has another architecture or parameterisation")
        net.load_state_dict(init.state_dict())
        for p in net.parameters():
            p.requires_grad_(True)
        net.train()
    ema = copy.deepcopy(net)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    val = val_crops(args.size)
    vgen_seed = 123
    if codec is not None:   # 64^2 validation crops coded at rates spread over the ladder, centres kept
        big = val_crops(64)
        val_rates = np.linspace(0, codec.rates - 1, len(big))
        val_cond = torch.cat([cdc.condition(mse_decode(codec, big[i:i + 1], r)) for i, r in enumerate(val_rates)])
        o = (64 - args.size) // 2
        val, val_cond = big[:, :, o:o + args.size, o:o + args.size], val_cond[:, :, o:o + args.size, o:o + args.size]
    val_t = torch.linspace(0.05, 0.95, 8).repeat_interleave(math.ceil(len(val) / 8))[:len(val)]

    def validate(model) -> float:
        g = torch.Generator().manual_seed(vgen_seed)
        with torch.no_grad():
            cond = None if codec is None else val_cond
            return float(diffusion_loss(model, val, param, cond, t=val_t, gen=g))

    n_params = sum(p.numel() for p in net.parameters())
    print(f"{role.value}: {n_params} parameters, {len(crops)} training crops of {crops.shape[1]}^2 -> {args.size}^2, "
          f"{len(val)} validation crops, time box {args.minutes} min", flush=True)
    start, it, losses = time.time(), 0, []
    deadline = start + 60 * args.minutes
    while time.time() < deadline:
        x0, cond = next(data)
        lr = args.lr * min(1.0, (it + 1) / 200)
        for g in opt.param_groups:
            g["lr"] = lr
        loss = diffusion_loss(net, x0, param, cond)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            d = min(args.ema, (1 + it) / (10 + it))
            for pe, p in zip(ema.parameters(), net.parameters()):
                pe.mul_(d).add_(p, alpha=1 - d)
        losses.append(loss.item())
        it += 1
        if it % 200 == 0:
            print(f"it {it} {time.time() - start:.0f}s train {np.mean(losses[-200:]):.4f} val(ema) {validate(ema):.4f}",
                  flush=True)
    final_val = validate(ema)
    provenance = {"tool": "tools/train_diffusion.py", "init": args.init, "codec": None if codec is None else
                  getattr(codec, "model_id", args.codec), "args": {k: str(v) for k, v in vars(args).items()},
                  "iterations": it, "seconds": round(time.time() - start), "val_loss": round(final_val, 5),
                  "data": f"tools/image_data.py train crops {crops_path.name} (tools/perceptual_images.tsv)", "parameters": n_params}
    model_id = weights.save(ema, role, param, provenance, args.out)
    print(json.dumps({"model_id": model_id, **provenance}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
