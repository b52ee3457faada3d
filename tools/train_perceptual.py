"""Train the perceptual mode's MSE codec (gained mean-scale hyperprior) on CPU, time-boxed; export weights.

One network, a ladder of rates (see jpegshrink/perceptual/network.py): every batch element draws one of
the LAMBDAS and the loss is sum over elements of lambda_r * 255^2 * MSE + bpp (Ballé's R + lambda D).
The last ``--quant-frac`` of the run trains h_s with fake int8 weights / uint8 activations (activation
scales calibrated once, then frozen), so the exported integer hyper-decoder is the one that was trained.

    OMP_NUM_THREADS=1 nice -n 10 python tools/train_perceptual.py --minutes 60 --out /work/cache/perceptual/mse
    python tools/train_perceptual.py --export /work/cache/perceptual/mse/last.pt   # -> weights/hp1-<sha8>.npz

Logs one line per ``--log-every`` iterations (running means per rate of bpp and PSNR) to stdout, and a
validation line (true container bytes need the integer path, so this uses the likelihood estimate on
four 256^2 validation crops) every ``--val-every`` iterations.
"""
from __future__ import annotations

import argparse
import collections
import copy
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jpegshrink.perceptual.network import HyperpriorCodec, MultiSample  # noqa: E402

#: lambda per ladder rate (loss = lambda * 255^2 * MSE + bpp, MSE on [0, 1] pixels): ~0.05..0.6 bpp here.
LAMBDAS = (0.0005, 0.001, 0.002, 0.004, 0.008, 0.016)
GAIN_LR_FACTOR = 20
#: Divergence guard: a step whose loss exceeds this multiple of the recent median is skipped, and
#: after ROLLBACK_AFTER skips in a row the run goes back to its last good state with half the lr.
SPIKE = 5.0
ROLLBACK_AFTER = 50
GOOD_DRIFT = 1.5
CROPS = Path("/work/cache/perceptual/train_crops_136.npy")
VAL = Path("/work/cache/perceptual/val")


def batches(crops: np.ndarray, size: int, patch: int, rng: np.random.Generator):
    n, s = crops.shape[0], crops.shape[1]
    while True:
        idx = rng.integers(0, n, size)
        out = np.empty((size, patch, patch, 3), np.uint8)
        for i, j in enumerate(idx):
            y, x = rng.integers(0, s - patch + 1, 2)
            c = crops[j, y:y + patch, x:x + patch]
            if rng.random() < 0.5:
                c = c[:, ::-1]
            if rng.random() < 0.5:
                c = c.transpose(1, 0, 2)
            out[i] = c
        yield torch.from_numpy(out).permute(0, 3, 1, 2).float() / 255


def val_crops() -> torch.Tensor:
    from PIL import Image
    names = ["pyiqa__I03", "pyiqa__I19", "python3-skimage__coffee", "lxqt-themes__after-the-rain"]
    out = []
    for n in names:
        a = np.asarray(Image.open(VAL / f"{n}.png").convert("RGB"))
        out.append(a[:256, :256])
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255


def rd(net, x, rate, samples: int = 1, bound=None):
    out = net(x, rate, samples, bound)
    pixels = x.shape[2] * x.shape[3]
    if "log_lik" in out:  # an image-level bound: nats per image
        bits = -out["log_lik"] / math.log(2)
    else:
        bits = -(out["lik_y"].log2().sum((1, 2, 3)) + out["lik_z"].log2().sum((1, 2, 3)))
    bpp = bits / pixels
    mse = ((out["x_hat"] - x) ** 2).mean((1, 2, 3))
    return bpp, mse


def calibrate(net, x) -> None:
    """Fix h_s's activation scales from a batch (99.9th percentile maps to 255), then fake-quantise."""
    hs = net.h_s
    with torch.no_grad():
        g = net.gain(torch.arange(len(x)).float() % net.rates)
        z = net.h_a(net.g_a(x) * g).round()
        acts = [[], []]
        hs.fake_quant = False
        hs(z, calibrate=acts)
        for i in range(2):
            a = torch.cat([t.flatten() for t in acts[i]])
            hs.act_scale[i] = torch.quantile(a[a > 0][:1_000_000], 0.999).clamp_min(1e-4) / 255
    hs.fake_quant = True


def train(args) -> None:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    crops = np.load(CROPS, mmap_mode="r")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    net = HyperpriorCodec(args.n, args.m, args.nz, len(LAMBDAS), klt=args.klt)
    if args.klt and not args.resume:
        from jpegshrink.perceptual.network import init_klt
        idx = rng.integers(0, len(crops), 20000)
        off = rng.integers(0, crops.shape[1] - 16, (20000, 2))
        init_klt(net.g_a, net.g_s, np.stack([crops[i, y:y + 16, x:x + 16] for i, (y, x) in zip(idx, off)]))
    it0 = 0
    if args.resume:
        ck = torch.load(args.resume, weights_only=False)
        net.load_state_dict(ck["model"])
        net.h_s.fake_quant = ck.get("fake_quant", False)
        it0 = ck["iteration"]
    # the per-rate gains move the whole ladder: at the base lr they need thousands of steps to find their
    # rates, so they get GAIN_LR_FACTOR x the step
    rest = [p for n, p in net.named_parameters() if n != "log_gain"]
    opt = torch.optim.Adam([{"params": rest, "scale": 1.0},
                            {"params": [net.log_gain], "scale": GAIN_LR_FACTOR}], lr=args.lr)
    if args.resume and "optimizer" in ck:
        opt.load_state_dict(ck["optimizer"])
    lam = torch.tensor(LAMBDAS)  # (--lambdas replaces the module default)
    data = batches(crops, args.batch, args.patch, rng)
    vx = val_crops()
    start = time.time()
    # --cpu-minutes: budget in this process's CPU time, so two runs on a shared, unevenly loaded machine
    # get the same compute (an ablation's condition); --minutes: wall clock
    clock = time.process_time if args.cpu_minutes else time.time
    cpu0 = clock()
    budget = (args.cpu_minutes or args.minutes) * 60
    stats = {r: [0.0, 0.0, 0] for r in range(len(LAMBDAS))}
    recent = collections.deque(maxlen=200)
    skipped = streak = 0
    lr_factor = 1.0
    it = it0
    # the last good state: taken after a log interval with no skipped step whose mean loss is within
    # GOOD_DRIFT x the median of the earlier good intervals' (a slow blow-up skips nothing at first)
    good = snapshot(net, opt, it)
    skipped_at_good = 0
    interval, good_means = [], collections.deque(maxlen=20)
    last_ck = start
    print(json.dumps({"start": time.strftime("%H:%M:%S"), "args": vars(args), "lambdas": LAMBDAS}), flush=True)
    while True:
        elapsed = clock() - cpu0
        frac = elapsed / budget
        if frac >= 1:
            break
        if args.flat:
            frac = 0.0  # an intermediate stage of a staged run: no decay, no quantisation phase yet
        if not net.h_s.fake_quant and frac >= 1 - args.quant_frac:
            calibrate(net, next(data))
            print(json.dumps({"it": it, "calibrated_act_scale": net.h_s.act_scale.tolist()}), flush=True)
        # lr: flat, then x0.3 for the last 20 %, x0.1 for the last 7 %
        lr = args.lr * lr_factor * (1.0 if frac < 0.8 else 0.3 if frac < 0.93 else 0.1)
        for g in opt.param_groups:
            g["lr"] = lr * g.get("scale", 1.0)  # (also overrides the lr stored with a resumed optimizer)
        x = next(data)
        rate = torch.from_numpy(rng.integers(0, len(LAMBDAS), len(x))).float()
        bpp, mse = rd(net, x, rate, args.iwae, MultiSample(args.iwae_bound))
        loss = (lam[rate.long()] * 255 ** 2 * mse + bpp).mean()
        # Divergence guard: a run at lr 3e-4 blew up after 8 000 good steps (loss 0.3 -> 8 -> 1e6 within 200
        # steps) and its periodic checkpoint kept only the wreck. A step whose loss is not finite or over
        # SPIKE x the recent median is skipped. Skipping alone is not enough: when one accepted step has
        # already broken the weights, every later loss is a spike and the run spins without a step (seen
        # in a fine-tuning run at lr 1.5e-4); so after ROLLBACK_AFTER skips in a row the run restores its
        # last good state and halves the lr. Checkpoints only ever hold good states.
        recent.append(loss.item())
        if not math.isfinite(recent[-1]) or (len(recent) >= 50 and recent[-1] > SPIKE * float(np.median(recent))):
            recent.pop()
            skipped += 1
            streak += 1
            if streak >= ROLLBACK_AFTER:
                restore(net, opt, good)
                it, streak, lr_factor = good["iteration"], 0, lr_factor / 2
                skipped_at_good = skipped
                print(json.dumps({"it": it, "rolled_back": True, "lr_factor": lr_factor}), flush=True)
            continue
        streak = 0
        interval.append(recent[-1])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        it += 1
        for r, b, e in zip(rate.long().tolist(), bpp.tolist(), mse.tolist()):
            s = stats[r]
            s[0] += b
            s[1] += 10 * math.log10(1 / max(e, 1e-10))
            s[2] += 1
        if it % args.log_every == 0:
            line = {"it": it, "min": round(elapsed / 60, 2), "lr": lr, "loss": round(loss.item(), 4), "skipped": skipped,
                    "bpp": [round(s[0] / max(s[2], 1), 3) for s in stats.values()],
                    "psnr": [round(s[1] / max(s[2], 1), 2) for s in stats.values()]}
            print(json.dumps(line), flush=True)
            stats = {r: [0.0, 0.0, 0] for r in range(len(LAMBDAS))}
            mean = float(np.mean(interval)) if interval else math.inf
            if skipped == skipped_at_good and (len(good_means) < 3 or mean <= GOOD_DRIFT * float(np.median(good_means))):
                good = snapshot(net, opt, it)
                good_means.append(mean)
            skipped_at_good, interval = skipped, []
        if it % args.val_every == 0:
            print(json.dumps({"it": it, "val": evaluate(net, vx)}), flush=True)
        if time.time() - last_ck > 300:
            save(good, out / "last.pt", args)
            last_ck = time.time()
    if skipped != skipped_at_good or streak:
        restore(net, opt, good)  # the run ended inside a spike: keep the last good state
        it = good["iteration"]
    else:
        good = snapshot(net, opt, it)
    save(good, out / "last.pt", args)
    print(json.dumps({"it": it, "done": True, "val": evaluate(net, vx)}), flush=True)


def evaluate(net, vx) -> dict:
    net.eval()
    res = {"bpp": [], "psnr": []}
    with torch.no_grad():
        for r in range(len(LAMBDAS)):
            torch.manual_seed(0)
            bpp, mse = rd(net, vx, torch.full((len(vx),), float(r)))
            res["bpp"].append(round(bpp.mean().item(), 4))
            res["psnr"].append(round((10 * torch.log10(1 / mse)).mean().item(), 2))
    net.train()
    return res


def snapshot(net, opt, it: int) -> dict:
    """A copy of the training state (weights, Adam's moments, iteration) to go back to or save."""
    return {"model": copy.deepcopy(net.state_dict()), "optimizer": copy.deepcopy(opt.state_dict()),
            "iteration": it, "fake_quant": net.h_s.fake_quant}


def restore(net, opt, state: dict) -> None:
    net.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    net.h_s.fake_quant = state["fake_quant"]


def save(state: dict, path: Path, args) -> None:
    torch.save({**state, "config": {"n": args.n, "m": args.m, "nz": args.nz, "klt": args.klt}, "lambdas": LAMBDAS},
               path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=60, help="wall-clock budget of the training run")
    ap.add_argument("--out", default="/work/cache/perceptual/mse")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--m", type=int, default=96)
    ap.add_argument("--nz", type=int, default=48)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--patch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--quant-frac", type=float, default=0.15)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--val-every", type=int, default=1000)
    ap.add_argument("--resume", default="")
    ap.add_argument("--lambdas", default="", help="comma-separated lambda ladder (default: LAMBDAS)")
    ap.add_argument("--klt", action="store_true", help="linear block-transform path (PCA-initialised) + nonlinear")
    ap.add_argument("--cpu-minutes", type=float, default=0,
                    help="budget in process CPU minutes instead of --minutes of wall clock (equal-compute ablations)")
    ap.add_argument("--iwae", type=int, default=1,
                    help="noise samples per latent of the multi-sample (MS-NIC, IWAE) rate bound; 1 = ELBO")
    ap.add_argument("--iwae-bound", default="element", choices=[b.value for b in MultiSample],
                    help="with --iwae: log-mean-exp per latent element, per image, or 'mix' (the bound trains the "
                         "entropy model only; the encoder gets the ELBO gradient)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared machine)")
    ap.add_argument("--flat", action="store_true", help="constant lr, no quant phase (a stage to --resume from)")
    ap.add_argument("--export", default="", help="checkpoint to export as package weights (no training)")
    args = ap.parse_args(argv)
    if args.export:
        from jpegshrink.perceptual import export
        print(export.export_checkpoint(Path(args.export)))
        return 0
    if args.lambdas:
        global LAMBDAS
        LAMBDAS = tuple(float(v) for v in args.lambdas.split(","))
    train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
