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
    counts, z_counts = fit.count_symbols(codec, crops, 128)
    assert counts.sum() == 2 * codec.rates * codec.m * (128 // 16) ** 2
    assert z_counts.shape[0] == codec.rates and np.all(z_counts.sum((1, 2)) == 2 * codec.nz * (128 // 64) ** 2)
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


def test_per_rate_z_table_sets_round_trip_and_follow_the_rate():
    """A weight file with one z table set per ladder rate: a container's nearest rung picks the set."""
    base = model.load()
    with np.load(model.WEIGHTS_DIR / f"{base.model_id}.npz") as f:
        arrays = {k: f[k] for k in f.files}
    z = arrays["z_freq"] if arrays["z_freq"].ndim == 2 else arrays["z_freq"][0]
    rng = np.random.default_rng(1)
    sets = np.stack([export.quantise_pmf(rng.random(z.shape[1]) + 0.1)[None].repeat(len(z), 0)
                     for _ in range(base.rates)]).astype(z.dtype)
    codec = model.LearnedCodec(base.model_id, {**arrays, "z_freq": sets})
    assert [codec.tables.z_set(r) for r in (0.0, 0.49, 0.5, 2.4, 2.6, 5.0)] == [0, 0, 1, 2, 3, 5]
    x = codec.to_tensor(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    for rate in (2.4, 2.6):
        lat = codec.encode_latents(x, rate)
        streams = codec.pack(lat)
        assert codec.unpack(streams, lat.symbols.shape[1:], rate).digest() == lat.digest()
        assert np.array_equal(codec.z_freq_at(rate), sets[codec.tables.z_set(rate)])
    with pytest.raises(ValueError):
        model.LearnedCodec(base.model_id, {**arrays, "z_freq": sets[:3]})
