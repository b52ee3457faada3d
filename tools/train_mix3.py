"""Train the starting state of the ``mix3`` model (jpegshrink/model/mix3.py) on the public corpus.

What is learned: the mixers' starting weights (every weight set) and the starting counters of the
directly indexed slot 0 of each decision kind (Lepton's context for AC, the neighbours' count for the
nonzero count, the DC-spread context for the DC). Inside an image everything keeps adapting.

How: code every training item (``tools/train_priors.py collect`` caches them; the validation packages
``train_data.VAL_PACKAGES`` are never used) with the kernel's built-in start, take each stripe's final
state, and average: the weights plainly; each counter's probability weighted by its hit count (capped
at ``--wcap``), kept for counters seen in at least ``--min-items`` items, with starting hit count
``--n0``. ``--rounds 2`` repeats the pass starting from the first round's result. Integer output, named
by its sha256: ``<out>/mix3-<sha8>.npz``.

    python3 tools/train_priors.py collect --corpus /work/corpus --work /work/mix3data --variants 1
    python3 tools/train_mix3.py fit --work /work/mix3data --out jpegshrink/model/weights [--profile fast]
    python3 tools/train_mix3.py eval --work /work/mix3data --weights jpegshrink/model/weights/mix3-XXXX.npz
    python3 tools/train_mix3.py reprofile --weights jpegshrink/model/weights/mix3-48305388.npz --profile dense-seeded

``reprofile`` records another profile in a trained file, for profiles that read the same parts with the
same table sizes and differ only in how an image's stripes start (``seed_fraction``): the trained start is
what the first stripe starts from either way, so it needs no new training.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jpegshrink.model.base import ComponentSpec  # noqa: E402
from jpegshrink.model.mix3 import PROFILES, Mix3Model, Profile, read_weights  # noqa: E402

FLIP = np.uint32(0x80000000)


def load_item(path: Path) -> tuple[list[np.ndarray], list[ComponentSpec]]:
    """Coefficients and specs of a cached item; sampling factors follow from the block grids (every
    component's rows and columns are whole multiples of the smallest, as in any MCU layout)."""
    with np.load(path) as f:
        n = sum(1 for k in f.files if k.startswith("co"))
        cos = [np.ascontiguousarray(f[f"co{i}"]) for i in range(n)]
        qs = [np.asarray(f[f"q{i}"]) for i in range(n)]
    rmin = min(c.shape[0] for c in cos)
    cmin = min(c.shape[1] for c in cos)
    specs = []
    for c, q in zip(cos, qs):
        v = c.shape[0] // rmin if c.shape[0] % rmin == 0 else 1
        h = c.shape[1] // cmin if c.shape[1] % cmin == 0 else 1
        specs.append(ComponentSpec(c.shape[0], c.shape[1], h, v, q.astype(np.uint16)))
    return cos, specs


def unpack(counters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = counters ^ FLIP
    return (v >> 10).astype(np.int64), (v & 1023).astype(np.int64)


def pack(p22: np.ndarray, n: np.ndarray) -> np.ndarray:
    return ((p22.astype(np.uint32) << np.uint32(10)) | n.astype(np.uint32)) ^ FLIP


def _model(weights: str | None, profile: str, seeded: bool = True) -> Mix3Model:
    """The model a task codes with: a weights file (which carries its profile) or the kernel's built-in
    start in the given profile. Training codes plain stripes even for a seeded profile (``seeded=False``):
    the start it fits is what a stripe without a seed starts from, so every stripe must have started there."""
    if weights:
        return Mix3Model(Path(weights), threads=1, seeded=seeded)
    return Mix3Model(None, threads=1, profile=Profile.from_json(profile), seeded=seeded)


def _code(task):
    path, weights, wcap, profile = task
    m = _model(weights, profile, seeded=False)
    cos, specs = load_item(Path(path))
    streams, states = m.encode(cos, specs, want_state=True)
    wsum = None
    psum = nsum = seen = None
    for w, d in states:
        p, n = unpack(d)
        c = np.minimum(n, wcap)
        if wsum is None:
            wsum = w.astype(np.float64)
            psum, nsum, seen = p * c, c.copy(), (n > 0).astype(np.int64)
        else:
            wsum += w
            psum += p * c
            nsum += c
            seen += n > 0
    return len(states), wsum, psum, nsum, seen, sum(map(len, streams))


def fit_round(items: list[Path], weights: Path | None, args) -> tuple[np.ndarray, np.ndarray, int]:
    tasks = [(str(p), str(weights) if weights else None, args.wcap, PROFILES[args.profile].to_json()) for p in items]
    total_w = total_p = total_n = total_seen = None
    stripes = 0
    nbytes = 0
    with ProcessPoolExecutor(args.workers) as pool:
        for k, w, p, n, s, b in pool.map(_code, tasks, chunksize=4):
            stripes += k
            nbytes += b
            if total_w is None:
                total_w, total_p, total_n, total_seen = w, p, n, s
            else:
                total_w += w
                total_p += p
                total_n += n
                total_seen += s
    weights_init = np.round(total_w / stripes).astype(np.int32)
    keep = (total_seen >= args.min_items) & (total_n > 0)
    p22 = np.where(keep, (total_p + total_n // 2) // np.maximum(total_n, 1), 1 << 21)
    p22 = np.clip(p22, 1 << 10, (1 << 22) - (1 << 10))
    n0 = np.where(keep, args.n0, 0)
    counters = np.where(keep, pack(p22, n0), np.uint32(0)).astype(np.uint32)
    print(f"  {len(items)} items, {stripes} stripes, {nbytes} stream bytes, {int(keep.sum())} counters kept",
          flush=True)
    return weights_init, counters, nbytes


def fit(args) -> None:
    items = sorted(args.work.glob("*.train.*npz"))
    if args.limit:
        items = items[:: max(1, len(items) // args.limit)]
    weights = None
    tmp = args.out / "mix3-round.npz.tmp"
    for r in range(args.rounds):
        print(f"round {r + 1}", flush=True)
        w, c, _ = fit_round(items, weights, args)
        buf = io.BytesIO()
        meta = dict(items=len(items), wcap=args.wcap, min_items=args.min_items, n0=args.n0, round=r + 1,
                    trained_on="public corpus minus " + ",".join(sorted(_val_packages())))
        np.savez_compressed(buf, mixer_init=w, counter_init=c, meta=np.array(json.dumps(meta, sort_keys=True)),
                            **_profile_field(args.profile))
        tmp.write_bytes(buf.getvalue())
        weights = tmp
    data = tmp.read_bytes()
    out = args.out / f"mix3-{hashlib.sha256(data).hexdigest()[:8]}.npz"
    out.write_bytes(data)
    tmp.unlink()
    print(f"wrote {out} ({len(data)} bytes)")


def _profile_field(name: str) -> dict:
    """The weights file's ``profile`` entry; the dense profile writes none, as the first mix3 file did."""
    profile = PROFILES[name]
    return {} if profile == PROFILES["dense"] else {"profile": np.array(profile.to_json())}


def _val_packages():
    sys.path.insert(0, str(ROOT / "tools"))
    from train_priors import VAL_PACKAGES
    return VAL_PACKAGES


def _size(task):
    path, weights, profile = task
    m = _model(weights, profile)
    cos, specs = load_item(Path(path))
    return sum(map(len, m.encode(cos, specs)))


def evaluate(args) -> None:
    profile = read_weights(args.weights)[2].to_json()
    for split in ("val", "valvar"):
        items = sorted(args.work.glob(f"*.{split}.*npz"))
        with ProcessPoolExecutor(args.workers) as pool:
            base = sum(pool.map(_size, [(str(p), None, profile) for p in items]))
            ours = sum(pool.map(_size, [(str(p), str(args.weights), profile) for p in items]))
        print(f"{split}: {len(items)} items, untrained {base}, {args.weights.name} {ours} "
              f"({100 * (ours / base - 1):+.2f} %)")


def reprofile(args) -> None:
    w, d, old = read_weights(args.weights)
    new = PROFILES[args.profile]
    if (old.leave_out, old.ac_table_bits) != (new.leave_out, new.ac_table_bits):
        raise SystemExit(f"{args.weights.name} was trained for other parts or table sizes than {args.profile!r}")
    with np.load(args.weights) as f:
        meta = json.loads(str(f["meta"])) if "meta" in f.files else {}
    meta["reprofiled_from"] = args.weights.name
    buf = io.BytesIO()
    np.savez_compressed(buf, mixer_init=w, counter_init=d, meta=np.array(json.dumps(meta, sort_keys=True)),
                        **_profile_field(args.profile))
    data = buf.getvalue()
    out = args.out / f"mix3-{hashlib.sha256(data).hexdigest()[:8]}.npz"
    out.write_bytes(data)
    print(f"wrote {out} ({len(data)} bytes)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fit")
    f.add_argument("--work", type=Path, required=True)
    f.add_argument("--out", type=Path, default=ROOT / "jpegshrink/model/weights")
    f.add_argument("--rounds", type=int, default=1)
    f.add_argument("--wcap", type=int, default=64)
    f.add_argument("--min-items", type=int, default=3)
    f.add_argument("--n0", type=int, default=6)
    f.add_argument("--limit", type=int, default=0, help="use about N items (quick runs)")
    f.add_argument("--profile", choices=sorted(PROFILES), default="dense",
                   help="which kernel parts and table size the model uses (mix3.PROFILES)")
    f.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    e = sub.add_parser("eval")
    e.add_argument("--work", type=Path, required=True)
    e.add_argument("--weights", type=Path, required=True)
    e.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    r = sub.add_parser("reprofile")
    r.add_argument("--weights", type=Path, required=True)
    r.add_argument("--profile", choices=sorted(PROFILES), required=True)
    r.add_argument("--out", type=Path, default=ROOT / "jpegshrink/model/weights")
    args = ap.parse_args()
    {"fit": fit, "eval": evaluate, "reprofile": reprofile}[args.cmd](args)


if __name__ == "__main__":
    main()
