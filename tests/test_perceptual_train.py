"""Training objectives of the perceptual codec (network.HyperpriorCodec): ELBO and the multi-sample bounds."""
from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from jpegshrink.perceptual.network import HyperpriorCodec, MultiSample  # noqa: E402


def _bits(out) -> torch.Tensor:
    if "log_lik" in out:
        return -out["log_lik"] / math.log(2)
    return -(out["lik_y"].log2().sum((1, 2, 3)) + out["lik_z"].log2().sum((1, 2, 3)))


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    net = HyperpriorCodec(n=8, m=8, nz=4, rates=2)
    x = torch.rand(2, 3, 64, 64)
    return net, x, torch.tensor([0.0, 1.0])


@pytest.mark.parametrize("bound", list(MultiSample))
def test_multi_sample_bounds_are_tighter_than_the_elbo_and_train(tiny, bound):
    net, x, rate = tiny
    elbo, multi = [], []
    for seed in range(4):
        torch.manual_seed(seed)
        elbo.append(_bits(net(x, rate)).sum().item())
        torch.manual_seed(seed)
        multi.append(_bits(net(x, rate, 8, bound)).sum().item())
    # an importance-weighted bound over 8 draws costs fewer bits than the one-draw ELBO (on average;
    # for one draw set, log-mean-exp >= mean-log, so this is far from the noise)
    assert sum(multi) < sum(elbo)
    net.zero_grad()
    out = net(x, rate, 8, bound)
    _bits(out).sum().backward()
    assert net.g_a.net[0].weight.grad.abs().sum() > 0  # the encoder is trained by every bound
    assert net.h_s.c3.weight.grad.abs().sum() > 0  # and so is the entropy model

