"""tools/fit_perceptual_tables.py: symbol counts from the real encoder, tables that follow them."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("constriction")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))

import fit_perceptual_tables as fit  # noqa: E402
from jpegshrink.perceptual import entropy, export, model  # noqa: E402


def test_counts_cover_every_symbol_and_fitted_tables_code_them_in_fewer_bits():
    codec = model.load()
    crops = np.random.default_rng(0).integers(0, 256, (2, 128, 128, 3), dtype=np.uint8)
    counts = fit.count_symbols(codec, crops)
    assert counts.sum() == 2 * codec.rates * codec.m * (128 // 16) ** 2
    tables = fit.fitted_tables(codec.y_freq, codec.tables.y_radius, counts)
    assert np.all(tables.sum(1) == 1 << export.TABLE_BITS)
    radius = codec.tables.y_radius
    for k, r in enumerate(radius):  # every symbol (and the escape) stays codable
        assert tables[k, :2 * r + 2].min() >= 1
    levels, cols = np.nonzero(counts)
    values = cols - radius[levels]  # (escapes: any value beyond the radius)
    values = np.where(cols == 2 * radius[levels] + 1, radius[levels] + 1, values)
    n = counts[levels, cols]

    def bits(freq):
        return float((n * entropy.code_lengths(freq, radius, levels, values)).sum())
    assert bits(tables) < bits(codec.y_freq)
    # a level with no counts keeps its Gaussian table (up to requantising: +-1 per symbol)
    empty = np.nonzero(counts.sum(1) == 0)[0]
    k = empty[0]
    assert len(empty) and np.abs(tables[k] - codec.y_freq[k]).max() <= 2 * radius[k] + 2
