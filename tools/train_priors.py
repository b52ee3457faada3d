"""Train the starting statistics of ``learned2`` (jpegshrink/model/priors.py) on the public corpus.

Three steps, each reproducible (fixed seeds, sorted inputs):

``collect``  parse every public JPEG (our own JPEG layer) plus ``--variants`` cjpeg re-encodings of its
             pixels at a random quality in [50, 98] and a random sampling, and cache the coefficients
             and quantisation tables as .npz under ``--work``. Files of the validation packages
             (VAL_PACKAGES) are marked ``val`` (originals) and ``valvar`` (their re-encodings).
``fit``      code every training item with adaptive-1 and average, per statistics set and context, the
             probability each context ends the image with (weight: its hit count, capped at
             ``--wcap``); contexts seen in at least ``--min-items`` items start from that probability
             with hit count ``--n0``. ``--tune`` first picks n0 and wcap on a held-out fifth of the
             training items (by name hash); then fits on all of them and writes
             ``<out>/learned2-<sha256[:8]>.npz``.
``eval``     stream bytes of adaptive-1 and of a weights file on the validation items, per size class.

``fit --cross-channel`` trains the statistics of a model whose chroma contexts also see the co-located
luma (:mod:`jpegshrink.model.cross_channel`): the training items are coded with those hints, and the
file (``learned3-<sha8>.npz``) says so, with the pass-stream threshold of the format it belongs to.

    python3 tools/train_priors.py collect --corpus /work/corpus --work /work/priors
    python3 tools/train_priors.py fit --work /work/priors --tune --out jpegshrink/model/weights
    python3 tools/train_priors.py eval --work /work/priors --weights jpegshrink/model/weights/learned2-XXXX.npz
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from jpegshrink import jpeg  # noqa: E402
from jpegshrink.coding import binary_arith as ba  # noqa: E402
from jpegshrink.errors import JpegShrinkError  # noqa: E402
from jpegshrink.model import adaptive  # noqa: E402
from jpegshrink.model.base import ComponentSpec  # noqa: E402
from jpegshrink.model.cross_channel import cover, interior_counts  # noqa: E402
from jpegshrink.model.priors import PASS_STREAMS_MIN_BLOCKS, PriorsModel, dense_counters, prior_set  # noqa: E402

#: Coarseness buckets (priors.coarseness; libjpeg luma tables): ~q93+ | q83-92 | q65-82 | q35-64 | coarser.
EDGES = (18, 40, 80, 150)
SEED = 20261124
#: Source packages held out for validation (never trained on): photos, wallpapers, diagrams.
VAL_PACKAGES = ("lomiri-wallpapers-20.04", "labelme-examples", "kalzium-data", "desktop-base")
#: Code chroma with cross-channel hints (fit --cross-channel; eval: from the weights file). A module
#: global, like EDGES, so that the forked workers inherit it.
CROSS = False
#: ... and chroma signs with the co-located luma sign as context (fit --cross-sign).
CROSS_SIGN = False
#: cjpeg -sample factors of the re-encodings ("grey": -grayscale).
SAMPLINGS = ("2x2", "2x1", "1x1", "grey")


def reencode(src: str, dst: str, quality: int, sampling: str) -> None:
    """``src`` decoded by djpeg and encoded again by cjpeg at ``quality`` with ``sampling``."""
    pixels = subprocess.run(["djpeg", "-pnm", src], check=True, capture_output=True).stdout
    args = ["cjpeg", "-quality", str(quality)]
    args += ["-grayscale"] if sampling == "grey" else ["-sample", sampling]
    with open(dst, "wb") as f:
        subprocess.run(args, input=pixels, check=True, stdout=f, stderr=subprocess.DEVNULL)


# ----------------------------------------------------------------------------------------------- collect

def _public_rows(corpus: Path) -> list[dict]:
    with open(corpus / "MANIFEST.tsv", newline="") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t") if r["split"] == "public"]
    return sorted(rows, key=lambda r: r["name"])


def _save(path: Path, data: bytes) -> bool:
    try:
        parts = jpeg.parse(data)
    except JpegShrinkError:
        return False
    arrays = {}
    for i, (c, co) in enumerate(zip(parts.layout.components, parts.coefficients)):
        arrays[f"co{i}"] = co
        arrays[f"q{i}"] = np.asarray(c.quant_table, np.int64)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.rename(path)
    return True


def _collect_one(task: tuple[str, str, int, str]) -> int:
    src, stem, variants, split = task
    out = Path(stem)
    done = 0
    if _save(out.parent / f"{out.name}.{split}.orig.npz", Path(src).read_bytes()):
        done += 1
    if split == "val":
        split = "valvar"  # re-encoded validation files: a held-out check at other qualities
    rng = np.random.default_rng(zlib.crc32(out.name.encode()) ^ SEED)
    for v in range(variants):
        q = int(rng.integers(50, 99))
        s = SAMPLINGS[int(rng.integers(0, len(SAMPLINGS)))]
        with tempfile.TemporaryDirectory() as tmp:
            dst = os.path.join(tmp, "v.jpg")
            try:
                reencode(src, dst, q, s)
            except subprocess.CalledProcessError:
                continue
            data = Path(dst).read_bytes()
        if _save(out.parent / f"{out.name}.{split}.q{q}{s}.npz", data):
            done += 1
    return done


def collect(args: argparse.Namespace) -> None:
    args.work.mkdir(parents=True, exist_ok=True)
    tasks = []
    for r in _public_rows(args.corpus):
        split = "val" if r["source_package"] in VAL_PACKAGES else "train"
        tasks.append((str(args.corpus / "public" / r["name"]), str(args.work / r["name"]),
                      args.variants, split))
    with ProcessPoolExecutor(args.workers) as pool:
        n = sum(pool.map(_collect_one, tasks, chunksize=1))
    print(f"{n} items from {len(tasks)} files in {args.work}")


# ----------------------------------------------------------------------------------------------- fit

def _items(work: Path, split: str, originals_only: bool = False) -> list[Path]:
    return sorted(work.glob(f"*.{split}.{'orig.' if originals_only else ''}*npz"))


def _is_tune(path: Path) -> bool:
    """A fixed fifth of the training *source files* (all their variants together) for tuning."""
    return int(hashlib.sha256(path.name.split(".train.")[0].encode()).hexdigest(), 16) % 5 == 0


def _components(path: Path):
    """(index, coefficients, quantiser, cross-channel reference or None) per component of a cached item."""
    with np.load(path) as f:
        n = sum(1 for k in f.files if k.startswith("co"))
        cos = [np.ascontiguousarray(f[f"co{i}"]) for i in range(n)]
        qs = [f[f"q{i}"].astype(np.int64) for i in range(n)]
    for i in range(n):
        yield i, cos[i], qs[i], _reference(cos, qs, i) if CROSS else None


def _reference(cos: list[np.ndarray], qs: list[np.ndarray], i: int):
    """Component i's cross-channel reference, the sampling read off the block grids (the cache keeps no
    sampling factors; the codec's come from the frame and nest the same way)."""
    if i == 0:
        return None
    (r0, c0), (r, c) = cos[0].shape[:2], cos[i].shape[:2]
    if r0 % r or c0 % c:
        return None
    fyx = cover(ComponentSpec(r0, c0, c0 // c, r0 // r, qs[0]), ComponentSpec(r, c, 1, 1, qs[i]))
    return None if fyx is None else (cos[0], qs[0], interior_counts(cos[0]), *fyx, CROSS_SIGN)


def _final_counters(path: str) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """Per component: (set, touched context indices, final p, final hit count)."""
    out = []
    for i, co, q, ref in _components(Path(path)):
        t = ba.new_counters(adaptive.N_COUNTERS)
        adaptive.encode_component(co, q, None, t, ref)
        v = t ^ np.int32(ba.COUNTER_INIT)
        idx = np.flatnonzero(v & 1023).astype(np.uint32)
        out.append((prior_set(i, q, EDGES), idx, (v[idx] >> 10).astype(np.uint16), (v[idx] & 1023).astype(np.uint16)))
    return out


class Stats:
    """Per set: sum of w * p, sum of w (w = min(hits, wcap)) and number of items, for each context."""

    def __init__(self, wcaps: tuple[int, ...]) -> None:
        self.wcaps = wcaps
        self.sets: dict[str, dict[str, np.ndarray]] = {}

    def add(self, name: str, idx: np.ndarray, p: np.ndarray, n: np.ndarray) -> None:
        s = self.sets.get(name)
        if s is None:
            s = {"items": np.zeros(adaptive.N_COUNTERS, np.int32)}
            for w in self.wcaps:
                s[f"sw{w}"] = np.zeros(adaptive.N_COUNTERS, np.float64)
                s[f"w{w}"] = np.zeros(adaptive.N_COUNTERS, np.float64)
                s[f"sq{w}"] = np.zeros(adaptive.N_COUNTERS, np.float64)
            self.sets[name] = s
        s["items"][idx] += 1
        for w in self.wcaps:
            wt = np.minimum(n, w).astype(np.float64)
            s[f"sw{w}"][idx] += wt * p
            s[f"w{w}"][idx] += wt
            s[f"sq{w}"][idx] += wt * (p / 65536.0) ** 2

    def merge(self, other: "Stats") -> None:
        for name, arrays in other.sets.items():
            if name not in self.sets:
                self.sets[name] = arrays
            else:
                for key, a in arrays.items():
                    self.sets[name][key] += a

    def priors(self, wcap: int, n0: int, min_items: int) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Starting (p, hit count) per context. ``n0 > 0``: every context starts with hit count n0.
        ``n0 < 0``: a per-context count from how much the context's probability varies between items
        (a Beta prior's strength by the method of moments, p (1 - p) / variance - 1), capped at -n0."""
        out = {}
        for name, s in sorted(self.sets.items()):
            idx = np.flatnonzero(s["items"] >= min_items)
            w = s[f"w{wcap}"][idx]
            mean = s[f"sw{wcap}"][idx] / w
            p = np.rint(mean).clip(ba.P_MIN, 65536 - ba.P_MIN)
            if n0 > 0:
                n = np.full(len(idx), n0)
            else:
                m = mean / 65536.0
                var = np.maximum(s[f"sq{wcap}"][idx] / w - m * m, 1e-9)
                n = np.clip(np.rint(m * (1 - m) / var - 1), 1, -n0)
            out[name] = (idx.astype(np.uint32), p.astype(np.uint16), n.astype(np.uint16))
        return out


def _gather(paths: list[Path], wcaps: tuple[int, ...], workers: int) -> Stats:
    stats = Stats(wcaps)
    with ProcessPoolExecutor(workers) as pool:
        for comps in pool.map(_final_counters, [str(p) for p in paths], chunksize=1):
            for c in comps:
                stats.add(*c)
    return stats


def _stream_bytes(task: tuple[str, dict | None]) -> tuple[int, int]:
    """(JPEG-free size measure: total stream bytes, number of coefficients) of one item."""
    path, priors = task
    total = 0
    blocks = 0
    for i, co, q, ref in _components(Path(path)):
        name = prior_set(i, q, EDGES)
        if priors is not None and name in priors:
            t = dense_counters(*priors[name])
        else:
            t = ba.new_counters(adaptive.N_COUNTERS)
        total += len(adaptive.encode_component(co, q, None, t, ref))
        blocks += co.shape[0] * co.shape[1]
    return total, blocks


def _evaluate(paths: list[Path], priors: dict | None, workers: int) -> list[tuple[int, int]]:
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(_stream_bytes, [(str(p), priors) for p in paths], chunksize=1))


def _write(priors: dict, meta: dict, out: Path) -> Path:
    arrays = {"n_counters": np.int64(adaptive.N_COUNTERS), "edges": np.array(EDGES, np.int64).reshape(-1),
              "sets": np.array(sorted(priors)), "meta": np.array(repr(sorted(meta.items())))}
    if CROSS:  # the format: cross-channel hints, which come with pass streams
        arrays["cross_channel"] = np.int64(1)
        arrays["cross_sign"] = np.int64(int(CROSS_SIGN))
        arrays["pass_streams_min_blocks"] = np.int64(PASS_STREAMS_MIN_BLOCKS)
    for name, (idx, p, n) in priors.items():
        arrays[f"idx_{name}"], arrays[f"p_{name}"], arrays[f"n_{name}"] = idx, p, n.astype(np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    data = buf.getvalue()
    path = out / f"{'learned3' if CROSS else 'learned2'}-{hashlib.sha256(data).hexdigest()[:8]}.npz"
    path.write_bytes(data)
    return path


def fit(args: argparse.Namespace) -> None:
    train = _items(args.work, "train", args.originals_only)
    wcap, n0 = args.wcap, args.n0
    stats = None
    if args.tune:
        fit_paths = [p for p in train if not _is_tune(p)]
        tune_paths = [p for p in train if _is_tune(p)]
        print(f"tuning: fit on {len(fit_paths)} items, measure on {len(tune_paths)}", flush=True)
        stats = _gather(fit_paths, (16, 64), args.workers)
        base = sum(b for b, _ in _evaluate(tune_paths, None, args.workers))
        best = None
        for w in (16, 64):
            for n in (4, 8, -8, -16, -32, -64):
                size = sum(b for b, _ in _evaluate(tune_paths, stats.priors(w, n, args.min_items), args.workers))
                print(f"  wcap {w:3d} n0 {n:2d}: {size} bytes, {100 * (size / base - 1):+.3f} % vs adaptive-1",
                      flush=True)
                if best is None or size < best[0]:
                    best = (size, w, n)
        _, wcap, n0 = best
        print(f"chosen: wcap {wcap}, n0 {n0}", flush=True)
        stats.merge(_gather(tune_paths, stats.wcaps, args.workers))  # the fit items are coded only once
    else:
        stats = _gather(train, (wcap,), args.workers)
    priors = stats.priors(wcap, n0, args.min_items)
    meta = {"items": len(train), "wcap": wcap, "n0": n0, "min_items": args.min_items, "edges": EDGES,
            "originals_only": args.originals_only,
            "seed": SEED, "val_packages": ",".join(VAL_PACKAGES)}
    path = _write(priors, meta, args.out)
    print(f"wrote {path} ({path.stat().st_size} bytes, "
          f"{sum(len(v[0]) for v in priors.values())} contexts in {len(priors)} sets)")


def _use(model: PriorsModel) -> None:
    """Code as ``model``'s format does (module globals, inherited by the forked workers)."""
    global EDGES, CROSS, CROSS_SIGN
    EDGES = model.edges
    CROSS = model.cross_channel
    CROSS_SIGN = model.cross_sign


def evaluate(args: argparse.Namespace) -> None:
    """Stream bytes per size class against adaptive-1 coded the same way (``--against W0``: against
    another statistics file, with the items whose bytes changed most)."""
    model = PriorsModel(args.weights)
    val = _items(args.work, args.split)
    if args.against is not None:
        other = PriorsModel(args.against)
        _use(other)
        base = _evaluate(val, other.sets, args.workers)
        label = args.against.stem
    else:
        _use(model)
        base = _evaluate(val, None, args.workers)
        label = "adaptive-1"
    _use(model)
    ours = _evaluate(val, model.sets, args.workers)
    classes: dict[str, list[int]] = {}
    for (b, blocks), (o, _) in zip(base, ours):
        mp = blocks * 64 / 1e6
        key = "< 0.25 MP" if mp < 0.25 else "0.25-2 MP" if mp < 2 else ">= 2 MP"
        for k in (key, "all"):
            c = classes.setdefault(k, [0, 0, 0])
            c[0] += 1
            c[1] += b
            c[2] += o
    print(f"{args.split} items: {len(val)}  (stream bytes, {label} vs {args.weights.stem})")
    for k, (n, b, o) in sorted(classes.items()):
        print(f"  {k:10s} {n:4d} items  {b:12d} -> {o:12d}  {100 * (o / b - 1):+.3f} %")
    if args.against is not None and args.top:
        changes = sorted(((o - b, b, o, p.name) for (b, _), (o, _), p in zip(base, ours, val)))
        print("  largest changes (bytes):")
        for d, b, o, name in changes[:args.top] + changes[-args.top:]:
            print(f"    {d:+10d}  {b:10d} -> {o:10d}  {name}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--corpus", type=Path, default=Path("/work/corpus"))
    c.add_argument("--variants", type=int, default=2)
    f = sub.add_parser("fit")
    f.add_argument("--tune", action="store_true")
    f.add_argument("--wcap", type=int, default=64)
    f.add_argument("--n0", type=int, default=8)
    f.add_argument("--min-items", type=int, default=3)
    f.add_argument("--out", type=Path, default=ROOT / "jpegshrink/model/weights")
    f.add_argument("--originals-only", action="store_true", help="ablation: no re-encoded variants")
    f.add_argument("--edges", help="ablation: coarseness bucket edges, comma-separated ('' = one bucket)")
    f.add_argument("--cross-channel", action="store_true", help="chroma contexts see the co-located luma (learned3)")
    f.add_argument("--cross-sign", action="store_true", help="with --cross-channel: chroma signs see the luma sign")
    e = sub.add_parser("eval")
    e.add_argument("--weights", type=Path, required=True)
    e.add_argument("--split", default="val")
    e.add_argument("--against", type=Path, help="compare with this statistics file instead of adaptive-1")
    e.add_argument("--top", type=int, default=5, help="with --against: list the items that changed most")
    for s in (c, f, e):
        s.add_argument("--work", type=Path, required=True)
        s.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = p.parse_args(argv)
    global EDGES, CROSS, CROSS_SIGN
    if getattr(args, "edges", None) is not None:
        EDGES = tuple(int(e) for e in args.edges.split(",") if e)
    CROSS = bool(getattr(args, "cross_channel", False))
    CROSS_SIGN = bool(getattr(args, "cross_sign", False))
    if CROSS_SIGN and not CROSS:
        p.error("--cross-sign needs --cross-channel")
    {"collect": collect, "fit": fit, "eval": evaluate}[args.cmd](args)


if __name__ == "__main__":
    main()
