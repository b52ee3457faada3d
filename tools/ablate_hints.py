"""Ablation of the learned hints on adaptive-1: coefficient-stream bytes per variant, on given JPEGs.

Variants (all round-trip checked):
  adaptive      adaptive-1 alone (no hints)
  hintdim       the registered learned model: network hint = extra context dimension (weights' own
                thresholds and passes)
  stage<k>      hintdim with hints on pass k only (k = 1..5; needs weights whose passes include k)

(The "replace" experiment, which patched the numba kernels' source to use the hint as the prior bin, went
with the numba kernels; its result is in BENCHMARKS.md.)

    python3 tools/ablate_hints.py --files $(cat val_files.txt)
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

from bench_model import coefficients  # noqa: E402
from jpegshrink import model as registry  # noqa: E402
from jpegshrink.model import adaptive  # noqa: E402
from jpegshrink.model.learned import LearnedModel  # noqa: E402


def coded_size(m, arrays, specs, hints) -> int:
    streams = m.encode(arrays, specs, hints=hints)
    back = m.decode(streams, specs, hints=hints)
    if not all(np.array_equal(a, b) for a, b in zip(arrays, back)):
        raise SystemExit("round trip mismatch")
    return sum(map(len, streams))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="learned-6165e90d")
    ap.add_argument("--variants", default="adaptive,hintdim")
    ap.add_argument("--files", nargs="+", type=Path, required=True)
    args = ap.parse_args()
    learned: LearnedModel = registry.get(args.model)
    base = adaptive.AdaptiveModel(threads=1)
    variants = args.variants.split(",")
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
            else:
                raise SystemExit(f"unknown variant {v!r}")
            seconds[v] += time.perf_counter() - t0
            totals[v] += row[v]
        print(path.name[:48], " ".join(f"{v}={row[v]}" for v in variants), flush=True)
    ref = totals.get("adaptive") or 1
    for v in variants:
        print(f"TOTAL {v:10s} {totals[v]:10d} B  {100 * (totals[v] / ref - 1):+.3f}% vs adaptive  "
              f"{seconds[v]:.1f} s (encode+decode, wall)")


if __name__ == "__main__":
    main()
