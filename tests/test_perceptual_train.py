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



def test_widening_keeps_what_the_trained_channels_code_and_adds_orthogonal_ones():
    """network.widen: the trained channels' analysis, hyper-latents, entropy parameters and synthesis are
    unchanged; the new channels are linear directions outside the trained span; Adam's moments follow."""
    import numpy as np
    from jpegshrink.perceptual.network import widen, widen_tensor
    torch.manual_seed(1)
    net = HyperpriorCodec(n=8, m=8, nz=4, rates=2, klt=True)
    with torch.no_grad():  # a "trained" codec: nonzero nonlinear paths, so zero-starts are tested
        net.g_a.alpha.fill_(0.3)
        net.g_s.beta.fill_(0.2)
    patches = np.random.default_rng(0).integers(0, 256, (500, 16, 16, 3), dtype=np.uint8)
    wide = widen(net, 12, patches)
    assert wide.m == 12 and wide.log_gain.shape == (2, 12)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        y0, y1 = net.g_a(x), wide.g_a(x)
        assert torch.allclose(y1[:, :8], y0, atol=1e-6)
        assert torch.allclose(wide.h_a(y1), net.h_a(y0), atol=1e-5)  # the new channels do not move z
        z = net.h_a(y0).round()
        m0, l0 = net.h_s(z)
        m1, l1 = wide.h_s(z)
        assert torch.allclose(m1[:, :8], m0, atol=1e-6) and torch.allclose(l1[:, :8], l0, atol=1e-6)
        assert torch.all(m1[:, 8:] == 0)  # new channels' predicted means start at 0
        y_new_off = torch.cat([y0, torch.zeros_like(y1[:, 8:])], 1)
        assert torch.allclose(wide.g_s(y_new_off), net.g_s(y0), atol=1e-5)
    a = net.g_a.linear.weight.reshape(8, -1)
    v = wide.g_a.linear.weight.reshape(12, -1)[8:]
    q, _ = torch.linalg.qr(a.T.double())
    assert (v.double() @ q).abs().max() < 1e-4  # outside the trained span
    assert torch.allclose(v @ v.T, torch.eye(4), atol=1e-4)
    moment = widen_tensor("h_s.c3.weight", torch.ones(16, 8, 3, 3), wide.h_s.c3.weight.shape, 8, 12, 0.5)
    assert moment.shape == (24, 8, 3, 3)
    assert torch.all(moment[:8] == 1) and torch.all(moment[12:20] == 1)
    assert torch.all(moment[8:12] == 0.5) and torch.all(moment[20:] == 0.5)
    with pytest.raises(ValueError):
        widen(net, 8, patches)
