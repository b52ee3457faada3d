"""Ablation of the learned hints on adaptive-1: coefficient-stream bytes per variant, on given JPEGs.

Variants (all round-trip checked):
  adaptive      adaptive-1 alone (no hints)
  hintdim       the registered learned model: network hint = extra context dimension (weights' own
                thresholds and passes)
  stage<k>      hintdim with hints on pass k only (k = 1..5; needs weights whose passes include k)
  replace       EXPERIMENT (not a registered model): the network's median magnitude class (ordinal
                cut points of the trained head) *replaces* adaptive-1's neighbour prior context
                (bit length of the above/left/above-left mean) for the interior passes. It runs on a
                patched copy of adaptive-1's kernels written to a temporary folder; it is the coupling
                proposed to the model owner, measured here.

    python3 tools/ablate_hints.py --run /work/.device/3/c64l3 --data data.npz --files $(cat val_files.txt)
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from bench_model import coefficients  # noqa: E402
from jpegshrink import model as registry  # noqa: E402
from jpegshrink.model import adaptive  # noqa: E402
from jpegshrink.model.learned import LearnedModel  # noqa: E402

_PRIOR_LINE = ("                pb = _capped_bitlen(prior)\n"
               "                h = hint[by, bx, k - z0] if has_hint else 0\n")
_REPLACED = ("                pb = hint[by, bx, k - z0] if has_hint else _capped_bitlen(prior)\n"
             "                h = 0\n")


def replace_prior_kernels(folder: Path):
    """adaptive-1's kernels with the hint used as the prior bin of interior coefficients."""
    src = (ROOT / "jpegshrink/model/_adaptive_kernels.py").read_text()
    if _PRIOR_LINE not in src:
        raise SystemExit("adaptive-1's interior context line changed; update the experiment")
    path = folder / "_kernels_replace_prior.py"
    path.write_text(src.replace(_PRIOR_LINE, _REPLACED))
    spec = importlib.util.spec_from_file_location("_kernels_replace_prior", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def median_class_weights(run: Path, data: Path, out: Path) -> Path:
    """Weights from ``run`` exported with hint = the ordinal head's median class (train.py export)."""
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, str(ROOT / "tools/train.py"), "export", "--run", str(run), "--data", str(data),
                    "--thresholds", "ordinal", "--out", str(out)], check=True)
    return next(out.glob("learned-*.npz"))


def coded_size(m, arrays, specs, hints) -> int:
    streams = m.encode(arrays, specs, hints=hints)
    back = m.decode(streams, specs, hints=hints)
    if not all(np.array_equal(a, b) for a, b in zip(arrays, back)):
        raise SystemExit("round trip mismatch")
    return sum(map(len, streams))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="learned-6165e90d")
    ap.add_argument("--run", type=Path, help="training run (state.pt) for the 'replace' variant")
    ap.add_argument("--data", type=Path, default=Path("/work/main/.device/data.npz"),
                    help="training tensors (tools/train_data.py), needed by train.py export")
    ap.add_argument("--variants", default="adaptive,hintdim,replace")
    ap.add_argument("--files", nargs="+", type=Path, required=True)
    args = ap.parse_args()
    learned: LearnedModel = registry.get(args.model)
    base = adaptive.AdaptiveModel(threads=1)
    variants = args.variants.split(",")
    tmp = Path(tempfile.mkdtemp())
    if "replace" in variants:
        replace_kern = replace_prior_kernels(tmp)
        median = LearnedModel(median_class_weights(args.run, args.data, tmp / "weights"))
    totals = dict.fromkeys(variants, 0)
    seconds = dict.fromkeys(variants, 0.0)
    for path in args.files:
        try:
            arrays, specs = coefficients(path)
        except Exception as e:  # noqa: BLE001 - what the oracle cannot read
            print(f"{path.name}: skipped ({e})")
            continue
        row = {}
        for v in variants:
            t0 = time.perf_counter()
            if v == "adaptive":
                row[v] = coded_size(base, arrays, specs, None)
            elif v == "hintdim":
                row[v] = coded_size(base, arrays, specs, learned.hint_function(specs))
            elif v.startswith("stage"):
                k, fn = int(v[5:]), learned.hint_function(specs)
                row[v] = coded_size(base, arrays, specs, lambda c, p, s, n, k=k, fn=fn: fn(c, p, s, n) if p == k else None)
            elif v == "replace":
                saved, adaptive.kern = adaptive.kern, replace_kern
                try:
                    row[v] = coded_size(base, arrays, specs, median.hint_function(specs))
                finally:
                    adaptive.kern = saved
            seconds[v] += time.perf_counter() - t0
            totals[v] += row[v]
        print(path.name[:48], " ".join(f"{v}={row[v]}" for v in variants), flush=True)
    ref = totals.get("adaptive") or 1
    for v in variants:
        print(f"TOTAL {v:10s} {totals[v]:10d} B  {100 * (totals[v] / ref - 1):+.3f}% vs adaptive  "
              f"{seconds[v]:.1f} s (encode+decode, wall)")


if __name__ == "__main__":
    main()
