"""Rate-distortion optimised rounding (perceptual.rounding): fewer bits for the rate's R + lambda D."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("constriction")
from PIL import Image  # noqa: E402

from jpegshrink.perceptual import decoders, model, refine  # noqa: E402
from jpegshrink.perceptual.model import Rounding  # noqa: E402

SAMPLE = Path(__file__).resolve().parent / "data" / "sample" / "scikit-learn__china.jpg"


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    img = Image.open(SAMPLE).convert("RGB").reduce(2)
    return np.ascontiguousarray(np.asarray(img)[:192, :256])


def test_rd_rounding_lowers_the_exact_objective_and_decodes_unchanged(photo):
    """Over the ladder, R + lambda D (true stream bytes, true decode) drops; at one rate of one photo it
    may lose a hair (measured +0.09 % at the top rate here; -2 % there on 32 training crops)."""
    codec = model.load()
    x = codec.to_tensor(photo)
    ratios = []
    for rate in (0.0, 2.5, 5.0):
        j_near, j_rd = _objectives(codec, photo, x, rate)
        assert j_rd < 1.005 * j_near
        ratios.append(j_rd / j_near)
    assert np.mean(ratios) < 0.98  # measured 0.905, 0.976, 1.001


def _objectives(codec, photo, x, rate):
    h, w = photo.shape[:2]
    near = codec.encode_latents(x, rate, Rounding.NEAREST)
    rd = codec.encode_latents(x, rate, Rounding.RD)
    assert codec.encode_latents(x, rate).digest() == rd.digest()  # the default
    # same side information: only y's integers change, each by at most one step towards zero
    assert np.array_equal(rd.z, near.z) and np.array_equal(rd.index, near.index)
    diff = rd.symbols - near.symbols
    assert np.all(np.abs(diff) <= 1) and np.all(diff * near.symbols <= 0) and np.any(diff)

    def objective(lat):
        back = codec.unpack(codec.pack(lat), lat.symbols.shape[1:], rate)  # through the real coder
        assert back.digest() == lat.digest()
        out = decoders.decode(codec, back, decoders.FAITHFUL, 0, (w, h)).astype(np.float64)
        mse = np.mean((out / 255 - photo / 255) ** 2)
        bits = 8 * sum(len(s) for s in codec.pack(lat))
        return bits / (h * w) + codec.lambda_at(rate) * 255 ** 2 * mse, bits

    j_near, bits_near = objective(near)
    j_rd, bits_rd = objective(rd)
    assert bits_rd < 0.97 * bits_near  # real savings in the stream, not rounding noise
    assert refine.exact_bits(codec, rd) < refine.exact_bits(codec, near)
    return j_near, j_rd
