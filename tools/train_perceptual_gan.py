"""Train the perceptual decoder (jpegshrink/perceptual/gan.py) on a frozen codec, CPU, time-boxed; export it.

PO-ELIC's loss mix (He et al. 2022) with no pretrained network anywhere:
  L_G = CHAR * Charbonnier(G, x) + STYLE * Gram-L1 on random multi-scale conv features (fixed, seeded;
        Ustyuzhaninov et al. 2017: random filters capture texture statistics) + FEAT * feature-L1 on them
        + ADV * hinge generator loss;
  L_D = hinge loss of a spectrally normalised patch discriminator that also sees the decoded latents
        (``--uncond`` drops them: the conditional-vs-unconditional ablation).
The codec is frozen: the latents come from its exact encoder path (integer means), so the generator
trains on exactly what containers hold. Rates are drawn uniformly over the codec's whole ladder.

    OMP_NUM_THREADS=1 nice -n 10 python tools/train_perceptual_gan.py --minutes 30 --out /work/cache/perceptual/gan
    python tools/train_perceptual_gan.py --export /work/cache/perceptual/gan/last.pt
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jpegshrink.perceptual import gan, model  # noqa: E402
from train_perceptual import CROPS, batches  # noqa: E402

CHAR, STYLE, FEAT, ADV = 1.0, 4.0, 0.1, 0.04


def charbonnier(a, b, eps=1e-3):
    return torch.sqrt((a - b) ** 2 + eps ** 2).mean()


class RandomFeatures(nn.Module):
    """Fixed random conv features at three scales (never trained; seeded so the loss is reproducible)."""

    def __init__(self, seed: int = 1234) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        chans = [(3, 32, 1), (32, 64, 2), (64, 64, 2)]
        self.convs = nn.ModuleList()
        for i, o, s in chans:
            c = nn.Conv2d(i, o, 3, s, 1)
            c.weight.data = torch.randn(o, i, 3, 3, generator=g) * (2 / (9 * i)) ** 0.5
            c.bias.data.zero_()
            c.requires_grad_(False)
            self.convs.append(c)

    def forward(self, x):
        feats = []
        h = x - 0.5
        for c in self.convs:
            h = F.relu(c(h))
            feats.append(h)
        return feats


def gram(f):
    b, c, h, w = f.shape
    f = f.reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (h * w)


class Discriminator(nn.Module):
    """Spectral-norm patch discriminator; conditional: latent features join at 1/8 resolution."""

    def __init__(self, m: int, cond: bool = True, ch: int = 64) -> None:
        super().__init__()
        sn = nn.utils.spectral_norm
        self.cond = cond
        self.a = nn.Sequential(sn(nn.Conv2d(3, ch, 4, 2, 1)), nn.LeakyReLU(0.2),
                               sn(nn.Conv2d(ch, ch, 4, 2, 1)), nn.LeakyReLU(0.2),
                               sn(nn.Conv2d(ch, ch, 4, 2, 1)), nn.LeakyReLU(0.2))
        self.c = sn(nn.Conv2d(m, ch, 1)) if cond else None
        self.b = nn.Sequential(sn(nn.Conv2d(ch, ch, 3, 1, 1)), nn.LeakyReLU(0.2), sn(nn.Conv2d(ch, 1, 3, 1, 1)))

    def forward(self, x, feats):
        h = self.a(x)
        if self.cond:
            h = h + self.c(F.interpolate(feats, size=h.shape[2:], mode="nearest"))
        return self.b(h)


def latents(codec, x, rates):
    """Exact-path quantised latent features for a batch (one rate per sample)."""
    out = []
    with torch.no_grad():
        for i in range(len(x)):
            y = codec.analysis(x[i:i + 1], float(rates[i]))
            out.append(codec.latent_features(codec.quantize(y), float(rates[i])))
    return torch.cat(out)


def train(args) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    codec = model.load(args.codec)
    gen = gan.Generator(codec.n, codec.m, codec.klt)
    gen.load_synthesis(codec.g_s)
    disc = Discriminator(codec.m, cond=not args.uncond)
    feat_net = RandomFeatures()
    # the noise strengths start at zero and need to grow within a short run: a larger step for them
    noise = [gen.noise_strength]
    rest = [p for n, p in gen.named_parameters() if n != "noise_strength"]
    opt_g = torch.optim.Adam([{"params": rest}, {"params": noise, "lr": 30 * args.lr}], lr=args.lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(disc.parameters(), lr=2 * args.lr, betas=(0.5, 0.9))
    data = batches(np.load(CROPS, mmap_mode="r"), args.batch, args.patch, rng)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(json.dumps({"start": time.strftime("%H:%M:%S"), "args": vars(args), "codec": codec.model_id,
                      "weights": {"char": CHAR, "style": STYLE, "feat": FEAT, "adv": ADV}}), flush=True)
    start, it, last_ck = time.time(), 0, time.time()
    acc = np.zeros(5)
    while time.time() - start < args.minutes * 60:
        x = next(data)
        rates = rng.uniform(0, codec.rates - 1, len(x))
        feats = latents(codec, x, rates)
        seed = int(rng.integers(0, 2 ** 31))
        fake = gen(feats, seed)
        # discriminator step (hinge)
        d_real = disc(x, feats)
        d_fake = disc(fake.detach(), feats)
        loss_d = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        # generator step
        fr, ff = feat_net(x), feat_net(fake)
        l_char = charbonnier(fake, x)
        l_style = sum((gram(a) - gram(b)).abs().mean() for a, b in zip(ff, fr))
        l_feat = sum((a - b).abs().mean() for a, b in zip(ff, fr))
        l_adv = -disc(fake, feats).mean()
        loss_g = CHAR * l_char + STYLE * l_style + FEAT * l_feat + ADV * l_adv
        opt_g.zero_grad()
        loss_g.backward()
        torch.nn.utils.clip_grad_norm_(gen.parameters(), 1.0)
        opt_g.step()
        it += 1
        acc += [loss_d.item(), l_char.item(), l_style.item(), l_adv.item(),
                10 * torch.log10(1 / F.mse_loss(fake.clamp(0, 1), x)).item()]
        if it % args.log_every == 0:
            a = acc / args.log_every
            print(json.dumps({"it": it, "min": round((time.time() - start) / 60, 2), "loss_d": round(a[0], 4),
                              "char": round(a[1], 5), "style": round(a[2], 5), "adv": round(a[3], 4),
                              "psnr": round(a[4], 2),
                              "noise": gen.noise_strength.abs().mean(1).detach().round(decimals=4).tolist()}),
                  flush=True)
            acc[:] = 0
        if time.time() - last_ck > 300:
            save(gen, codec, out / "last.pt", it, args)
            last_ck = time.time()
    save(gen, codec, out / "last.pt", it, args)
    print(json.dumps({"it": it, "done": True}), flush=True)


def save(gen, codec, path, it, args):
    torch.save({"model": gen.state_dict(), "codec": codec.model_id, "n": codec.n, "m": codec.m, "klt": codec.klt,
                "iteration": it,
                "conditional": not args.uncond, "weights": [CHAR, STYLE, FEAT, ADV]}, path)


def export(path: Path) -> Path:
    ck = torch.load(path, weights_only=False)
    arrays = {k: v.numpy().astype(np.float16) for k, v in ck["model"].items()}
    meta = {"family": "gan1", "codec": ck["codec"], "n": ck["n"], "m": ck["m"], "klt": ck.get("klt", False),
            "iterations": ck["iteration"],
            "conditional_d": ck["conditional"], "loss_weights": ck["weights"]}
    arrays["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), np.uint8)
    h = hashlib.sha256()
    for k in sorted(arrays):
        h.update(f"{k}|{arrays[k].dtype.str}|{arrays[k].shape}|".encode() + arrays[k].tobytes())
    target = model.WEIGHTS_DIR / f"gan1-{h.hexdigest()[:8]}.npz"
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    target.write_bytes(buf.getvalue())
    return target


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--codec", default=None, help="codec weights id (default: the package default)")
    ap.add_argument("--out", default="/work/cache/perceptual/gan")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--patch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--uncond", action="store_true", help="unconditional discriminator (ablation)")
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--export", default="")
    args = ap.parse_args(argv)
    if args.export:
        print(export(Path(args.export)))
        return 0
    train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
