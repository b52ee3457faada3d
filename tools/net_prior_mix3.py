"""Does a network prior pay for its cost as one more mixer input of mix3? (issue 16 asks to measure it)

A small network predicts, for every block, the bit length of each of its 63 AC coefficients from blocks
a decoder already has when it starts a block row: the north, north-north, north-west and north-east
blocks of the same component inside the stripe, and for chroma the co-located luma block (luma is coded
first in a stripe). Leaving out the west block is what makes it affordable: a decoder runs the network
once per block row, as one batched product, instead of once per block. The prediction, in thirds of a
bit length (16 classes), is the context of AC slot 6 (kernel part ``net_hint``), which the FAST
profile otherwise leaves out; the mixer learns its weight inside each image.

``train`` fits the network (torch, CPU) on blocks of the training items of ``tools/train_priors.py
collect`` (the validation packages are never used). ``measure`` codes the held-out items (``val``:
the validation packages' originals, ``valvar``: their re-encodings) with a FAST weights file with and
without the hint and reports the stream bytes, checks that the hinted streams decode, and times the
network's float inference per block row, which is what a decoder would add (a shipped version would need
an exact integer network, as learned-6165e90d has, to decode the same on every machine).

    python3 tools/net_prior_mix3.py train --work /work/mix3data --out /work/netprior/net.pt
    python3 tools/net_prior_mix3.py measure --work /work/mix3data --net /work/netprior/net.pt \\
        --weights /work/mix3w/mix3-40d0ebcb.npz
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from jpegshrink.model import _mix3, mix3  # noqa: E402
from train_mix3 import load_item  # noqa: E402

NEIGHBOURS = ("N", "NN", "NW", "NE", "luma")
N_IN = len(NEIGHBOURS) * 64 + 64 + len(NEIGHBOURS) + 1
HINT_CLASSES = 16
HINT_STEPS = 3  # classes per bit length


def _log_features(co: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Dequantised coefficients as a signed log, float32 [R, C, 64]."""
    x = co.astype(np.float32) * q.astype(np.float32).reshape(1, 1, 64)
    return (np.sign(x) * np.log2(1.0 + np.abs(x)) / 8.0).astype(np.float32)


def _shift(f: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """out[y, x] = f[y - dy, x - dx] (zero outside)."""
    out = np.zeros_like(f)
    R, C = f.shape[:2]
    ys, yd = (slice(0, R - dy), slice(dy, R)) if dy >= 0 else (slice(-dy, R), slice(0, R + dy))
    xs, xd = (slice(0, C - dx), slice(dx, C)) if dx >= 0 else (slice(-dx, C), slice(0, C + dx))
    out[yd, xd] = f[ys, xs]
    return out


def component_features(cos, specs, ci: int, row_start: np.ndarray) -> np.ndarray:
    """Network input for every block of component ``ci``, float32 [R, C, N_IN]; ``row_start[y]`` is
    the first block row of the stripe that holds row ``y`` (no north neighbours above it)."""
    co, spec = cos[ci], specs[ci]
    R, C = co.shape[:2]
    f = _log_features(co, np.asarray(spec.quant_table))
    rows = np.arange(R)
    parts, masks = [], []
    for name, dy, dx in (("N", 1, 0), ("NN", 2, 0), ("NW", 1, 1), ("NE", 1, -1)):
        ok_row = (rows - dy) >= row_start
        ok = np.zeros((R, C), bool)
        ok[:] = ok_row[:, None]
        if dx == 1:
            ok[:, 0] = False
        elif dx == -1:
            ok[:, -1] = False
        parts.append(_shift(f, dy, dx) * ok[..., None])
        masks.append(ok)
    if ci > 0:
        lco, lspec = cos[0], specs[0]
        lf = _log_features(lco, np.asarray(lspec.quant_table))
        ny = max(1, lspec.v_samp // max(1, spec.v_samp))
        nx = max(1, lspec.h_samp // max(1, spec.h_samp))
        Rl, Cl = (lf.shape[0] // ny) * ny, (lf.shape[1] // nx) * nx
        pooled = lf[:Rl, :Cl].reshape(Rl // ny, ny, Cl // nx, nx, 64).mean(axis=(1, 3))
        lum = np.zeros_like(f)
        ok = np.zeros((R, C), bool)
        r, c = min(R, pooled.shape[0]), min(C, pooled.shape[1])
        lum[:r, :c] = pooled[:r, :c]
        ok[:r, :c] = True
        parts.append(lum)
        masks.append(ok)
    else:
        parts.append(np.zeros_like(f))
        masks.append(np.zeros((R, C), bool))
    qf = np.broadcast_to(np.log2(np.asarray(spec.quant_table, np.float32)).reshape(1, 1, 64) / 8.0, (R, C, 64))
    cls = np.full((R, C, 1), 1.0 if ci > 0 else 0.0, np.float32)
    return np.concatenate(parts + [qf, np.stack(masks, -1).astype(np.float32), cls], axis=-1)


def targets(co: np.ndarray) -> np.ndarray:
    """Bit length of each AC coefficient, float32 [R, C, 63], capped at 10."""
    a = np.abs(co[..., 1:].astype(np.int32))
    return np.minimum(np.where(a > 0, np.floor(np.log2(np.maximum(a, 1))) + 1, 0), 10).astype(np.float32)


def _row_start(specs, ci: int) -> np.ndarray:
    """First block row of the stripe of each block row of component ``ci``, as the model cuts them."""
    n = mix3.stripe_count(specs)
    start = np.zeros(specs[ci].block_rows, np.int64)
    for stripe in mix3.stripe_rows(specs, n):
        r0, r1 = stripe[ci]
        start[r0:r1] = r0
    return start


def _net(torch):
    return torch.nn.Sequential(torch.nn.Linear(N_IN, 192), torch.nn.ReLU(), torch.nn.Linear(192, 192),
                               torch.nn.ReLU(), torch.nn.Linear(192, 63))


def train(args) -> None:
    import torch
    torch.manual_seed(1)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(1)
    items = sorted(args.work.glob("*.train.*npz"))[:: args.step]
    xs, ys = [], []
    for path in items:
        cos, specs = load_item(path)
        for ci in range(len(cos)):
            x = component_features(cos, specs, ci, _row_start(specs, ci)).reshape(-1, N_IN)
            y = targets(cos[ci]).reshape(-1, 63)
            keep = rng.permutation(len(x))[: args.per_item]
            xs.append(x[keep])
            ys.append(y[keep])
    x = torch.from_numpy(np.concatenate(xs))
    y = torch.from_numpy(np.concatenate(ys))
    n_val = len(x) // 20
    perm = torch.randperm(len(x))
    xv, yv, xt, yt = x[perm[:n_val]], y[perm[:n_val]], x[perm[n_val:]], y[perm[n_val:]]
    print(f"{len(items)} items, {len(xt)} training blocks, {n_val} check blocks (training items)", flush=True)
    net = _net(torch)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    steps = args.epochs * (len(xt) // args.batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    base = float(((yv - yt.mean(0)) ** 2).mean())
    print(f"check MSE of the per-position mean: {base:.4f}", flush=True)
    step = 0
    for epoch in range(args.epochs):
        order = torch.randperm(len(xt))
        for i in range(0, len(xt) - args.batch + 1, args.batch):
            idx = order[i:i + args.batch]
            loss = ((net(xt[idx]) - yt[idx]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
        with torch.no_grad():
            mse = float(((net(xv) - yv) ** 2).mean())
        print(f"epoch {epoch + 1}: step {step}, check MSE {mse:.4f}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), args.out)
    print(f"wrote {args.out}")


class Prior:
    """The trained network, run per block row as a decoder would."""

    def __init__(self, path: Path, threads: int) -> None:
        import torch
        torch.set_num_threads(threads)
        self.torch = torch
        self.net = _net(torch)
        self.net.load_state_dict(torch.load(path))
        self.net.eval()
        self.seconds = 0.0
        self.blocks = 0

    def hints(self, cos, specs) -> list[np.ndarray]:
        out = []
        for ci in range(len(cos)):
            x = component_features(cos, specs, ci, _row_start(specs, ci))
            R, C = x.shape[:2]
            h = np.zeros((R, C, 64), np.uint8)
            with self.torch.no_grad():
                t0 = time.process_time()
                for r in range(R):  # one product per block row, as a decoder would run it
                    pred = self.net(self.torch.from_numpy(np.ascontiguousarray(x[r]))).numpy()
                    h[r, :, 1:] = np.clip(np.rint(pred * HINT_STEPS), 0, HINT_CLASSES - 1).astype(np.uint8)
                self.seconds += time.process_time() - t0
            self.blocks += R * C
            out.append(h)
        return out


def measure(args) -> None:
    prior = Prior(args.net, args.threads)
    plain = mix3.Mix3Model(args.weights, threads=1)
    hinted = mix3.Mix3Model(args.weights, threads=1, flags=_mix3.FLAGS["net_hint"])
    for split in args.splits.split(","):
        items = sorted(args.work.glob(f"*.{split}.*npz"))
        a = b = 0
        for path in items:
            cos, specs = load_item(path)
            a += sum(map(len, plain.encode(cos, specs)))
            hints = prior.hints(cos, specs)
            streams = hinted.encode(cos, specs, hints=hints)
            b += sum(map(len, streams))
            back = hinted.decode(streams, specs, hints=hints)
            if not all(np.array_equal(x, y) for x, y in zip(back, cos)):
                raise SystemExit(f"{path.name}: hinted stream does not decode")
        print(f"{split}: {len(items)} items, {args.weights.name} {a} bytes, + network prior {b} bytes "
              f"({100 * (b / a - 1):+.2f} %)", flush=True)
    print(f"network: {prior.blocks} blocks, {prior.seconds:.1f} CPU s "
          f"({1e6 * prior.seconds / max(1, prior.blocks):.1f} us per block, float32, {args.threads} thread)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--work", type=Path, required=True)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--step", type=int, default=4, help="every N-th training item")
    t.add_argument("--per-item", type=int, default=3000, help="blocks sampled per item and component")
    t.add_argument("--epochs", type=int, default=6)
    t.add_argument("--batch", type=int, default=512)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--threads", type=int, default=2)
    m = sub.add_parser("measure")
    m.add_argument("--work", type=Path, required=True)
    m.add_argument("--net", type=Path, required=True)
    m.add_argument("--weights", type=Path, required=True, help="a FAST-profile weights file (slot 6 unused)")
    m.add_argument("--splits", default="val,valvar")
    m.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    train(args) if args.cmd == "train" else measure(args)


if __name__ == "__main__":
    main()
