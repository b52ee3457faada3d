"""Train the learned hint network (float, then quantisation-aware) and export it to integer weights.

Two sub-commands, so training can run on a GPU machine that has only torch + numpy:

    python3 tools/train.py fit --data data.npz --out run/ --channels 64 --layers 3 --steps 40000 --batch 128
    python3 tools/train.py export --run run/ --data data.npz --hints 2 --passes 1 2 3 4

``fit`` is seeded (torch, numpy) and writes ``state.pt`` (float weights after quantisation-aware
fine-tuning) and ``log.json`` (train/validation bits per predicted coefficient every ``--eval-every``
steps) to ``--out``; ``--max-seconds`` ends it early on a time budget (the log then says at which step).
``export`` turns them into the integer form of ``jpegshrink.model.network`` and picks per-coefficient
hint thresholds: quantiles of the exact integer ``mu`` on training crops (default), or with
``--thresholds ordinal`` the head's own cut points, so that hint = predicted median magnitude class
0..7 (for a coupling in which the hint replaces adaptive-1's neighbour prior; see tools/ablate_hints.py).
It writes ``learned-<hash8>.npz``.

The network (one per component kind: luma, chroma): input = ``features.block_features`` plus the
interior nonzero count, with the channels not yet decoded before the coding pass (``stage``) of
``jpegshrink.model.adaptive`` zeroed; first layer 3x3 conv plus a bias from the stage and from the
quantiser classes; ReLU activations capped at 127/ACT_SCALE; more 3x3 convs; a 1x1 head
giving ``mu`` per coefficient. Loss: ordinal logistic (cumulative link) on the magnitude class of
every coefficient coded in that pass: P(class >= j) = sigmoid(mu - theta_j).
Augmentation: random horizontal/vertical mirror and transpose of the block grid, with the matching
sign flips / index permutation of the DCT coefficients (and the quantisation table).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

N_CLASSES = 8
ACT_SCALE = 16.0  # integer activation = round(float activation * ACT_SCALE), in [0, 127]
ACT_MAX = 127
SHIFT = 24
KINDS = ("luma", "chroma")

# zigzag position of each natural index (same table as jpegshrink.model.features; no import so this
# file runs standalone on a training machine)
_ZIGZAG = [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6,
           7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31,
           39, 46, 53, 60, 61, 54, 47, 55, 62, 63]
TRANSPOSE = np.array([(n % 8) * 8 + n // 8 for n in range(64)])
ODD_COL = np.array([n % 8 % 2 == 1 for n in range(64)])
ODD_ROW = np.array([n // 8 % 2 == 1 for n in range(64)])
# the coding passes of jpegshrink.model.adaptive that get hints (stage = pass index): what is known
# before the pass (interior coefficients of earlier passes + the nonzero count) and what it codes
INTERIOR = [n for n in _ZIGZAG if n // 8 >= 1 and n % 8 >= 1]
EDGES = [1, 2, 3, 4, 5, 6, 7, 8, 16, 24, 32, 40, 48, 56]
STAGE_CODES = {1: INTERIOR[0:3], 2: INTERIOR[3:10], 3: INTERIOR[10:21], 4: INTERIOR[21:49], 5: EDGES}
STAGE_KNOWN = {1: [], 2: INTERIOR[0:3], 3: INTERIOR[0:10], 4: INTERIOR[0:21], 5: INTERIOR}
N_STAGES = 8
COUNT_CHANNEL = 64
KNOWN = np.zeros((N_STAGES, 65), bool)
TARGET = np.zeros((N_STAGES, 64), bool)
for _st in STAGE_CODES:
    KNOWN[_st, STAGE_KNOWN[_st] + [COUNT_CHANNEL]] = True
    TARGET[_st, STAGE_CODES[_st]] = True


def fake_round(x: torch.Tensor) -> torch.Tensor:
    """round() with a straight-through gradient."""
    return x + (torch.round(x) - x).detach()


class HintNet(nn.Module):
    def __init__(self, channels: int, layers: int):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(65 if i == 0 else channels, channels, 3, padding=1) for i in range(layers))
        self.emb = nn.Parameter(torch.zeros(N_STAGES, channels))
        self.wq = nn.Parameter(torch.zeros(64, channels))
        self.head = nn.Conv2d(channels, 64, 1)
        self.theta0 = nn.Parameter(torch.zeros(64, 1))
        self.theta_gaps = nn.Parameter(torch.full((64, N_CLASSES - 2), 0.5))
        self.quant = False

    def weight(self, conv: nn.Conv2d) -> torch.Tensor:
        w = conv.weight
        if not self.quant:
            return w
        scale = w.detach().abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8) / 127
        return fake_round(w / scale) * scale

    def act(self, x: torch.Tensor) -> torch.Tensor:
        x = x.clamp(0, ACT_MAX / ACT_SCALE)
        return fake_round(x * ACT_SCALE) / ACT_SCALE if self.quant else x

    def forward(self, x: torch.Tensor, stage: torch.Tensor, qcls: torch.Tensor) -> torch.Tensor:
        """x: [B, 65, H, W] masked inputs; stage [B] long; qcls [B, 64] -> mu [B, 64, H, W]."""
        for i, conv in enumerate(self.convs):
            x = F.conv2d(x, self.weight(conv), conv.bias, padding=1)
            if i == 0:
                x = x + (self.emb[stage] + qcls @ self.wq)[:, :, None, None]
            x = self.act(x)
        return F.conv2d(x, self.weight(self.head), self.head.bias)

    def thetas(self) -> torch.Tensor:
        return torch.cat([self.theta0, self.theta0 + torch.cumsum(F.softplus(self.theta_gaps) + 1e-3, 1)], 1)


def ordinal_nll(mu: torch.Tensor, target: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """-log P(target) under P(class >= j) = sigmoid(mu - theta_j); mu, target [..., 64], theta [64, K-1]."""
    a = mu[..., None] - theta  # [..., 64, K-1], decreasing in j
    ls_pos, ls_neg = F.logsigmoid(a), F.logsigmoid(-a)
    k = target.long().clamp(0, N_CLASSES - 1)
    lo = k.clamp(max=N_CLASSES - 2)  # a_k index for lower bound (class >= k), valid for 1 <= k
    hi = (k - 1).clamp(min=0)
    a_lo = a.gather(-1, lo[..., None])[..., 0]  # a_{k+1} in 1-based theta indexing
    a_hi = a.gather(-1, hi[..., None])[..., 0]  # a_k
    middle = (F.logsigmoid(a_hi) + F.logsigmoid(-a_lo) + torch.log(-torch.expm1(a_lo - a_hi).clamp(max=-1e-6)))
    first = ls_neg[..., 0]
    last = ls_pos[..., -1]
    logp = torch.where(k == 0, first, torch.where(k == N_CLASSES - 1, last, middle))
    return -logp


def augment(feats: torch.Tensor, hw: torch.Tensor, qcls: torch.Tensor, gen: torch.Generator):
    """Mirror / transpose the block grid with the matching DCT-domain changes. feats [B, H, W, 64]."""
    dev = feats.device
    full = ((hw[:, 0] == feats.shape[1]) & (hw[:, 1] == feats.shape[2]))[:, None, None, None]  # mirror full crops only
    if torch.rand(1, generator=gen).item() < 0.5:
        flipped = feats.flip(2) * torch.where(torch.from_numpy(ODD_COL).to(dev), -1, 1).to(feats.dtype)
        feats = torch.where(full, flipped, feats)
    if torch.rand(1, generator=gen).item() < 0.5:
        flipped = feats.flip(1) * torch.where(torch.from_numpy(ODD_ROW).to(dev), -1, 1).to(feats.dtype)
        feats = torch.where(full, flipped, feats)
    if torch.rand(1, generator=gen).item() < 0.5:
        perm = torch.from_numpy(TRANSPOSE).to(dev)
        feats = feats.transpose(1, 2)[..., perm]
        qcls = qcls[:, perm]
        hw = hw.flip(1)
    return feats, hw, qcls


def batch_loss(net: HintNet, feats: torch.Tensor, hw: torch.Tensor, qcls: torch.Tensor, stage: torch.Tensor):
    """Summed nll (nats) and number of predicted coefficients for one batch of crops."""
    B, H, W, _ = feats.shape
    dev = feats.device
    counts = (feats[..., INTERIOR] != 0).sum(-1, keepdim=True).to(feats.dtype)
    known = torch.from_numpy(KNOWN).to(dev)[stage]  # [B, 65]
    x = (torch.cat([feats, counts], -1) * known[:, None, None, :]).permute(0, 3, 1, 2).float()
    mu = net(x, stage, qcls.float()).permute(0, 2, 3, 1)  # [B, H, W, 64]
    target = feats.abs().clamp(max=N_CLASSES - 1)
    nll = ordinal_nll(mu, target, net.thetas())
    rows = torch.arange(H, device=feats.device)[None, :, None] < hw[:, 0, None, None]
    cols = torch.arange(W, device=feats.device)[None, None, :] < hw[:, 1, None, None]
    mask = (rows & cols)[..., None] & torch.from_numpy(TARGET).to(dev)[stage][:, None, None, :]
    return (nll * mask).sum(), mask.sum()


def load_split(data: dict, split: str, kind: int, device: str):
    sel = data[f"{split}_kind"] == kind
    return (torch.from_numpy(data[f"{split}_feats"][sel]).to(device),
            torch.from_numpy(data[f"{split}_hw"][sel].astype(np.int64)).to(device),
            torch.from_numpy(data[f"{split}_qcls"][sel].astype(np.float32)).to(device))


@torch.no_grad()
def evaluate(net: HintNet, split, seed: int) -> float:
    """Validation bits per predicted coefficient, over fixed random stages 1..5."""
    feats, hw, qcls = split
    gen = np.random.default_rng(seed)
    total, count = 0.0, 0
    for i in range(0, len(feats), 64):
        f, h, q = feats[i:i + 64], hw[i:i + 64], qcls[i:i + 64]
        stage = torch.from_numpy(gen.integers(1, 6, len(f))).to(f.device)
        s, n = batch_loss(net, f, h, q, stage)
        total, count = total + s.item(), count + n.item()
    return total / max(count, 1) / math.log(2)


def fit(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    device = "cuda" if torch.cuda.is_available() else "cpu"
    data = dict(np.load(args.data))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = dict(args=vars(args), device=device, torch=torch.__version__, kinds={})
    states = {}
    for kind, name in enumerate(KINDS):
        train, val = load_split(data, "train", kind, device), load_split(data, "val", kind, device)
        net = HintNet(args.channels, args.layers).to(device)
        gen = torch.Generator(device="cpu").manual_seed(args.seed + kind)
        steps = args.steps if kind == 0 else args.steps // 2
        budget = args.max_seconds * (2 / 3 if kind == 0 else 1 / 3)
        opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
        curve, t0, running, step = [], time.time(), [], 0
        while True:
            # progress by steps, or by time when the time budget binds first (then the log says so)
            progress = max(step / steps, (time.time() - t0) / budget)
            if progress >= 1:
                break
            net.quant = progress >= 1 - args.qat_fraction
            lr = args.lr * min(1.0, (step + 1) / 200) * 0.5 * (1 + math.cos(math.pi * progress))
            for g in opt.param_groups:
                g["lr"] = lr
            idx = torch.randint(0, len(train[0]), (args.batch,), generator=gen).to(device)
            f, hw, q = augment(train[0][idx], train[1][idx], train[2][idx], gen)
            stage = torch.randint(1, 6, (args.batch,), generator=gen).to(device)
            s, n = batch_loss(net, f, hw, q, stage)
            loss = s / n
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            running.append(loss.item() / math.log(2))
            if step % args.eval_every == 0:
                curve.append(dict(step=step, train_bits=float(np.mean(running)), val_bits=evaluate(net, val, args.seed),
                                  quant=net.quant, seconds=round(time.time() - t0, 1)))
                running = []
                print(name, curve[-1], flush=True)
        net.quant = True
        curve.append(dict(step=step, train_bits=float(np.mean(running or [float("nan")])),
                          val_bits=evaluate(net, val, args.seed), quant=True, seconds=round(time.time() - t0, 1)))
        print(name, "final", curve[-1], flush=True)
        log["kinds"][name] = dict(curve=curve, n_train=len(train[0]), n_val=len(val[0]), steps=steps)
        states[name] = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    torch.save(dict(states=states, channels=args.channels, layers=args.layers), out / "state.pt")
    (out / "log.json").write_text(json.dumps(log, indent=1))


def export(args: argparse.Namespace) -> None:
    """Float state -> integer arrays of jpegshrink.model.network; thresholds from exact inference."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from jpegshrink.model.network import ExactNetwork

    run = Path(args.run)
    saved = torch.load(run / "state.pt", map_location="cpu")
    data = dict(np.load(args.data))
    arrays: dict[str, np.ndarray] = {"n_hints": np.array(args.hints), "passes": np.array(args.passes)}
    for kind, name in enumerate(KINDS):
        net = HintNet(saved["channels"], saved["layers"])
        net.load_state_dict(saved["states"][name])
        p = name
        a_in = 1.0
        arrays[f"{p}.n_layers"] = np.array(len(net.convs))
        for i, conv in enumerate(net.convs):
            w = conv.weight.detach().double().numpy()  # [cout, cin, 3, 3]
            scale = np.maximum(np.abs(w).max(axis=(1, 2, 3)), 1e-8) / 127
            w_int = np.round(w / scale[:, None, None, None]).astype(np.int8)
            acc_unit = scale / a_in  # float value of one accumulator unit, per output channel
            bias = conv.bias.detach().double().numpy()
            arrays[f"{p}.w{i}"] = w_int.transpose(2, 3, 1, 0).copy()  # [3, 3, cin, cout]
            arrays[f"{p}.b{i}"] = np.round(bias / acc_unit).astype(np.int64)
            arrays[f"{p}.m{i}"] = np.round(acc_unit * ACT_SCALE * 2 ** SHIFT).astype(np.int64)
            if i == 0:
                arrays[f"{p}.emb"] = np.round(net.emb.detach().double().numpy() / acc_unit).astype(np.int64)
                arrays[f"{p}.wq"] = np.round(net.wq.detach().double().numpy() / acc_unit).astype(np.int64)
            a_in = ACT_SCALE
        w = net.head.weight.detach().double().numpy()[:, :, 0, 0]  # [64, c]
        scale = np.maximum(np.abs(w).max(axis=1), 1e-8) / 127
        arrays[f"{p}.wh"] = np.round(w / scale[:, None]).astype(np.int8).T.copy()
        arrays[f"{p}.bh"] = np.round(net.head.bias.detach().double().numpy() / (scale / a_in)).astype(np.int64)
        if args.thresholds == "ordinal":  # hint = median magnitude class under the ordinal head (0..7)
            unit = scale / a_in  # float value of one unit of the integer mu, per coefficient
            theta = net.thetas().detach().double().numpy()
            arrays[f"{p}.thr"] = np.ceil(theta / unit[:, None]).astype(np.int64)
            arrays["n_hints"] = np.array(N_CLASSES)
            continue
        arrays[f"{p}.thr"] = np.zeros((64, args.hints - 1), np.int64)
        exact = ExactNetwork.from_arrays(arrays, p)
        arrays[f"{p}.thr"] = hint_thresholds(exact, data, kind, args.hints, args.seed)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    digest = hashlib.sha256(buf.getvalue()).hexdigest()[:8]
    Path(args.out).mkdir(parents=True, exist_ok=True)
    out = Path(args.out) / f"learned-{digest}.npz"
    out.write_bytes(buf.getvalue())
    print(out)


def hint_thresholds(net, data: dict, kind: int, n_hints: int, seed: int) -> np.ndarray:
    """Per coefficient: quantiles of exact ``mu`` on training crops, at the stage that codes it."""
    rng = np.random.default_rng(seed)
    sel = np.flatnonzero(data["train_kind"] == kind)
    sel = rng.choice(sel, min(len(sel), 1500), replace=False)
    samples: list[list[np.ndarray]] = [[] for _ in range(64)]
    for i in sel:
        h, w = data["train_hw"][i]
        feats = data["train_feats"][i][:h, :w]
        counts = (feats[..., INTERIOR] != 0).sum(-1)
        inputs = np.concatenate([feats, counts.astype(np.int8)[..., None]], -1)
        qcls = data["train_qcls"][i].astype(np.int64)
        stage = int(rng.integers(1, 6))
        targets = np.array(STAGE_CODES[stage])
        mu = net.predict(inputs, qcls, stage, np.flatnonzero(KNOWN[stage]), targets)
        for j, t in enumerate(targets):
            samples[t].append(mu[..., j].ravel())
    thr = np.zeros((64, n_hints - 1), np.int64)
    for t in range(64):
        if samples[t]:
            v = np.concatenate(samples[t])
            thr[t] = np.quantile(v, np.arange(1, n_hints) / n_hints, method="lower").astype(np.int64)
    thr = np.maximum.accumulate(thr, axis=1)
    return thr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fit")
    f.add_argument("--data", required=True)
    f.add_argument("--out", required=True)
    f.add_argument("--channels", type=int, default=32)
    f.add_argument("--layers", type=int, default=3)
    f.add_argument("--steps", type=int, default=6000)
    f.add_argument("--batch", type=int, default=64)
    f.add_argument("--lr", type=float, default=2e-3)
    f.add_argument("--qat-fraction", type=float, default=0.2)
    f.add_argument("--eval-every", type=int, default=500)
    f.add_argument("--seed", type=int, default=1)
    f.add_argument("--max-seconds", type=float, default=1e9, help="time budget (luma 2/3, chroma 1/3)")
    e = sub.add_parser("export")
    e.add_argument("--run", required=True)
    e.add_argument("--data", required=True)
    e.add_argument("--hints", type=int, default=2)
    e.add_argument("--thresholds", choices=("quantile", "ordinal"), default="quantile",
                   help="hint = quantile bucket of mu (--hints of them) or the median magnitude class")
    e.add_argument("--passes", type=int, nargs="+", default=[1, 2, 3, 4],
                   help="adaptive-1 passes that get hints (5 = edges)")
    e.add_argument("--out", default="jpegshrink/model/weights")
    e.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    fit(args) if args.cmd == "fit" else export(args)


if __name__ == "__main__":
    main()
