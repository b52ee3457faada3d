"""Train the restoration filter of ``decode_image(blob, restore=True)`` (jpegshrink/lossy/restore.py).

Pairs: the TUNING photos of tools/bench_lossy.py (never its HELDOUT ones), box-downscaled 2x, 3x and
4x (their own JPEG artefacts vanish; three scales so the filter sees fine texture as well as smooth
areas), each encoded by our lossy mode at several qualities and decoded with Pillow (exactly what
``decode_image`` feeds the filter). The last tuning photo is the validation photo (its crops are never
trained on). The network corrects luma (restore.py says why); loss: MSE of the luma correction in
[0, 1] units; Adam, cosine learning rate over the time box.

The whole run (data, training, validation, saving) is time-boxed by ``--minutes`` of wall clock, on
``--threads`` torch threads. Output: ``<out>/restore-<sha8>.npz`` (named by its sha256); register it in
restore.MODELS (and DEFAULT) by hand, after measuring it with ``tools/bench_lossy.py --restore``.

    OMP_NUM_THREADS=1 nice -n 10 python tools/train_restore.py --minutes 20 --threads 1 \\
        --out jpegshrink/lossy/weights --log /work/logs/lossyport-restore.log
"""
from __future__ import annotations

import argparse
import io
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from bench_lossy import TUNING, manifest_path  # noqa: E402

#: Qualities of our lossy mode the pairs are made at (the filter must adapt from coarse to fine).
QUALITIES = (50, 60, 70, 80, 85, 90, 95)
DOWNSCALES = (2, 3, 4)


def make_pairs(photos, log) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """(decoded lossy JPEG, original, quantisation plane value) per photo, scale and quality, uint8 RGB."""
    from PIL import Image

    import jpegshrink
    from jpegshrink.lossy import restore
    out = []
    for package, suffix in photos:
        full = Image.open(manifest_path(package, suffix)).convert("RGB")
        for factor in DOWNSCALES:
            img = full.reduce(factor)
            a = np.ascontiguousarray(np.asarray(img)[: img.height // 16 * 16, : img.width // 16 * 16])
            for q in QUALITIES:
                jpeg = jpegshrink.decompress(jpegshrink.encode_image(a, quality=q, measure=False))
                dec = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
                out.append((dec, a, restore.qstep_plane_value(restore.jpeg_luma_steps(jpeg))))
            log(f"pairs: {package}:{suffix} /{factor} {a.shape[1]}x{a.shape[0]} at {len(QUALITIES)} qualities")
    return out


def crops(pairs, rng, n: int, size: int, augment: bool):
    """A batch (inputs [n, 2, size, size]: luma and quantisation plane; targets [n, 1, size, size]: the
    luma correction) of random crops, in [0, 1] units."""
    from jpegshrink.lossy.restore import luma
    xs, ys = [], []
    for _ in range(n):
        dec, orig, q = pairs[rng.integers(len(pairs))]
        y0, x0 = rng.integers(dec.shape[0] - size + 1), rng.integers(dec.shape[1] - size + 1)
        d = luma(dec[y0:y0 + size, x0:x0 + size].astype(np.float32) / 255.0)
        o = luma(orig[y0:y0 + size, x0:x0 + size].astype(np.float32) / 255.0)
        if augment:
            k = int(rng.integers(4))
            d, o = np.rot90(d, k), np.rot90(o, k)
            if rng.integers(2):
                d, o = d[:, ::-1], o[:, ::-1]
        xs.append(np.stack([d, np.full_like(d, q)]))
        ys.append((o - d)[None])
    return np.ascontiguousarray(np.stack(xs)), np.ascontiguousarray(np.stack(ys))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=20.0, help="wall-clock budget of the whole run")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--channels", type=int, default=24)
    ap.add_argument("--layers", type=int, default=7)
    ap.add_argument("--crop", type=int, default=48)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--loss", choices=("mse", "l1"), default="mse",
                    help="mse (what PSNR measures; l1 learned nothing in a first 20-minute run: the median "
                         "of a JPEG's error is 0 almost everywhere)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "jpegshrink" / "lossy" / "weights")
    ap.add_argument("--log", type=Path, default=None)
    args = ap.parse_args(argv)
    start = time.monotonic()
    deadline = start + args.minutes * 60 - 45  # leave time for the final validation and saving

    def log(msg: str) -> None:
        line = f"[{time.monotonic() - start:7.1f}s] {msg}"
        print(line, flush=True)
        if args.log:
            with open(args.log, "a") as f:
                f.write(line + "\n")

    import torch

    from jpegshrink.lossy import restore
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    log(f"args: {vars(args)}")
    train = make_pairs(TUNING[:-1], log)
    val = make_pairs(TUNING[-1:], log)
    vx, vy = crops(val, np.random.default_rng(12345), 96, 64, augment=False)
    vx_t, vy_t = torch.from_numpy(vx), torch.from_numpy(vy)
    base_mse = float(np.mean(vy ** 2))        # the decoded JPEG's own luma error
    net = restore.build(torch, args.channels, args.layers)
    with torch.no_grad():  # start as the identity: the residual is zero
        last = net[-1]
        last.weight.zero_()
        last.bias.zero_()
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    train_start = time.monotonic()

    def validate() -> float:
        with torch.no_grad():
            mse = float(torch.mean((net(vx_t) - vy_t) ** 2))
        return 10 * math.log10(base_mse / mse)   # luma PSNR gain over the decoded JPEG, dB

    step, loss_sum = 0, 0.0
    while time.monotonic() < deadline:
        frac = (time.monotonic() - train_start) / max(1.0, deadline - train_start)
        lr = args.lr * (0.5 * (1 + math.cos(math.pi * min(1.0, frac)))) * min(1.0, (step + 1) / 100)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = crops(train, rng, args.batch, args.crop, augment=True)
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        err = net(x) - y
        loss = (err * err).mean() if args.loss == "mse" else err.abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss_sum += float(loss.detach())
        step += 1
        if step % 200 == 0:
            log(f"step {step} lr {lr:.2e} train {args.loss} {loss_sum / 200:.3e} val luma PSNR gain {validate():+.3f} dB")
            loss_sum = 0.0
    gain = validate()
    log(f"done: {step} steps, val luma PSNR gain {gain:+.3f} dB")
    meta = {"arch": restore.ARCH, "loss": args.loss, "channels": args.channels, "layers": args.layers, "qstep_scale": restore.QSTEP_SCALE,
            "steps": step, "qualities": list(QUALITIES), "downscales": list(DOWNSCALES), "val_luma_psnr_gain_db": round(gain, 3),
            "train_photos": [f"{p}:{s}" for p, s in TUNING[:-1]], "val_photo": "%s:%s" % TUNING[-1]}
    data = restore.to_npz(net, meta)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{restore.name_of(data)}.npz"
    path.write_bytes(data)
    log(f"wrote {path} ({len(data)} bytes); meta {json.dumps(meta)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
