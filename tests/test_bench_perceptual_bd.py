"""tools/bench_perceptual.py's BD-rate: over the curves' common range, and over perceptual mode's rates."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
bench_perceptual = pytest.importorskip("bench_perceptual")


def _curve(scale_at):
    """PSNR = 30 + 6 log2(bpp); the rate needed at each point multiplied by scale_at(bpp)."""
    out = []
    for b in np.geomspace(0.04, 1.2, 12):
        out.append({"bpp": float(b * scale_at(b)), "psnr": float(30 + 6 * np.log2(b))})
    return out


def test_bd_rate_over_the_mode_range_sees_only_those_rates():
    anchor = {"p": _curve(lambda b: 1.0)}
    # 20 % fewer bits at the mode's rates, 30 % more above them
    test = {"p": _curve(lambda b: 0.8 if b <= 0.5 else 1.3)}
    full, n = bench_perceptual.bd_rate(test, anchor, "psnr", 0.5)
    mode, n2 = bench_perceptual.bd_rate(test, anchor, "psnr", 0.5, bench_perceptual.MODE_RANGE)
    assert n == n2 == 1
    assert mode == pytest.approx(-20.0, abs=1.5)
    assert full > mode + 5  # the rates above 0.5 bpp weigh on the whole-range figure
