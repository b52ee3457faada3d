"""Exact integer network: stripes change nothing, unsafe weights are refused, features are exact."""
from __future__ import annotations

import numpy as np
import pytest

from jpegshrink.model import features, network
from jpegshrink.model.network import ExactNetwork


def _random_net(rng: np.random.Generator, channels: int = 8, layers: int = 3) -> dict[str, np.ndarray]:
    a: dict[str, np.ndarray] = {"n.n_layers": np.array(layers)}
    for i in range(layers):
        cin = 65 if i == 0 else channels
        a[f"n.w{i}"] = rng.integers(-20, 21, (3, 3, cin, channels)).astype(np.int8)
        a[f"n.b{i}"] = rng.integers(-500, 500, channels)
        a[f"n.m{i}"] = rng.integers(1 << 14, 1 << 18, channels)
    a["n.emb"] = rng.integers(-300, 300, (8, channels))
    a["n.wq"] = rng.integers(-30, 30, (64, channels))
    a["n.wh"] = rng.integers(-127, 128, (channels, 64)).astype(np.int8)
    a["n.bh"] = rng.integers(-1000, 1000, 64)
    a["n.thr"] = np.sort(rng.integers(-3000, 3000, (64, 3)), axis=1)
    return a


def _reference_mu(a: dict, inputs: np.ndarray, qcls: np.ndarray, stage: int, known: np.ndarray, targets) -> np.ndarray:
    """Straightforward whole-image int64 evaluation with explicit zero padding."""
    x = np.zeros(inputs.shape[:2] + (inputs.shape[2],), np.int64)
    x[:, :, known] = inputs[:, :, known]
    for i in range(int(a["n.n_layers"])):
        w = a[f"n.w{i}"].astype(np.int64)
        p = np.pad(x, ((1, 1), (1, 1), (0, 0)))
        acc = sum(p[dy:dy + x.shape[0], dx:dx + x.shape[1]] @ w[dy, dx] for dy in range(3) for dx in range(3))
        acc = acc + a[f"n.b{i}"] + (a["n.emb"][stage] + qcls @ a["n.wq"] if i == 0 else 0)
        x = np.clip((acc * a[f"n.m{i}"] + (1 << (network.SHIFT - 1))) >> network.SHIFT, 0, 127)
    return x @ a["n.wh"].astype(np.int64)[:, targets] + a["n.bh"][targets]


def test_striped_inference_equals_whole_image(monkeypatch) -> None:
    rng = np.random.default_rng(3)
    a = _random_net(rng)
    net = ExactNetwork.from_arrays(a, "n")
    coefs = (rng.laplace(0, 3, (37, 23, 64)) * (rng.random((37, 23, 64)) < 0.4)).astype(np.int16)
    counts = (coefs[:, :, features.INTERIOR] != 0).sum(-1)
    inputs = features.network_inputs(coefs, np.full(64, 7), counts)
    qcls = features.quant_classes(np.full(64, 7))
    known, targets = np.array([9, 10, 17, 64]), np.array([11, 18, 24])
    ref = _reference_mu(a, inputs.astype(np.int64), qcls, 2, known, targets)
    monkeypatch.setattr(network, "STRIPE_BLOCKS", 23 * 4)  # stripes of 4 rows
    assert np.array_equal(net.predict(inputs, qcls, 2, known, targets), ref)
    monkeypatch.setattr(network, "STRIPE_BLOCKS", 1 << 20)
    assert np.array_equal(net.predict(inputs, qcls, 2, known, targets), ref)
    hints = net.hints(ref, targets)
    assert hints.dtype == np.uint8 and hints.max() <= 3 and len(np.unique(hints)) > 1


def test_weights_that_could_round_are_refused() -> None:
    a = _random_net(np.random.default_rng(4), channels=128)
    a["n.w1"] = np.full_like(a["n.w1"], 127)  # 127 * 127 * 9 * 128 >= 2^24: float32 sums could round
    with pytest.raises(ValueError, match="not exact"):
        ExactNetwork.from_arrays(a, "n")


def test_features_are_integer_functions_of_coefficients() -> None:
    c = np.zeros((1, 2, 64), np.int16)
    c[0, 0, 0], c[0, 0, 1], c[0, 0, 9] = -100, 5, -32768
    c[0, 1, 0] = 3
    q = np.arange(1, 65)
    f = features.block_features(c, q)
    assert f[0, 0, 1] == 3 and f[0, 0, 9] == -16 and f[0, 0, 0] == -6 and f[0, 1, 0] == 0  # round(-100/16)
    assert list(features.quant_classes(np.array([1, 2, 3, 16, 255] + [1] * 59))[:5]) == [0, 4, 6, 16, 31]
