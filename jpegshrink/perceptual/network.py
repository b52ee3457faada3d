"""The learned codec's torch modules: analysis, synthesis, hyper-analysis, hyper-synthesis, z's prior.

A mean-scale hyperprior (Ballé et al. 2018, Minnen et al. 2018) with gain units (Cui et al. 2021,
"asymmetric gained VAE"): one network serves a ladder of rates. Each rate ``r`` has a per-channel gain
``g_r`` applied to the analysis output before quantisation (and ``1/g_r`` after): larger gains mean
finer quantisation, more bits. Gains between two ladder rates are interpolated geometrically, so any
rate between the ends can be asked for. One network trained over all rates at once got the whole
(2-core, shared) CPU budget, which is why this shape was chosen over separate models per rate.

The hyper-synthesis ``h_s`` is the part whose output picks the entropy-coding tables. It is trained
here in float (with fake int8 quantisation in its last phase, see :class:`QuantHyperSynthesis`) and
*run for coding* only by :mod:`jpegshrink.perceptual.intnet`, the exact integer version exported from
these weights. Everything else (analysis, synthesis) is ordinary float: its inputs and outputs are
pixels, and the stored latents do not depend on its rounding.
"""
from __future__ import annotations

import math
from enum import Enum

import numpy as np

import torch
from torch import nn
import torch.nn.functional as F

#: Scale bounds of the Gaussian conditional (in quantisation steps): the coding tables span them.
SCALE_MIN, SCALE_MAX, SCALE_LEVELS = 0.11, 128.0, 64
#: Mean resolution: integer h_s means are multiples of 1/MEAN_DENOM steps.
MEAN_DENOM = 16
#: Activation precision of the integer h_s: unsigned 8-bit after every ReLU.
ACT_MAX = 255


def scale_table() -> torch.Tensor:
    """The SCALE_LEVELS scales (log-spaced) that index the entropy-coding tables."""
    return torch.exp(torch.linspace(math.log(SCALE_MIN), math.log(SCALE_MAX), SCALE_LEVELS, dtype=torch.float64))


class GDN(nn.Module):
    """Simplified GDN (Johnston et al. 2019): x / (beta + gamma * |x|); inverse multiplies instead."""

    def __init__(self, ch: int, inverse: bool = False) -> None:
        super().__init__()
        self.inverse = inverse
        self.beta = nn.Parameter(torch.ones(ch))
        self.gamma = nn.Parameter(0.1 * torch.eye(ch).view(ch, ch, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = F.conv2d(x.abs(), self.gamma.abs(), self.beta.abs() + 1e-6)
        return x * norm if self.inverse else x / norm


def _conv(i: int, o: int, k: int = 5, s: int = 2) -> nn.Conv2d:
    return nn.Conv2d(i, o, k, s, k // 2)


def _deconv(i: int, o: int, k: int = 5, s: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(i, o, k, s, k // 2, output_padding=s - 1)


class Analysis(nn.Module):
    """g_a: RGB in [0, 1] -> y (M channels at 1/16 resolution).

    ``klt``: y = linear 16x16 block transform (initialised by PCA of training patches, a KLT) + alpha *
    the nonlinear GDN stack (alpha starts at 0). The linear path gives a working transform codec from the
    first iteration, which matters when the whole training budget is an hour of one CPU core; the
    nonlinear path then learns what the block transform misses.
    """

    def __init__(self, n: int, m: int, klt: bool = False) -> None:
        super().__init__()
        self.net = nn.Sequential(_conv(3, n), GDN(n), _conv(n, n), GDN(n), _conv(n, n), GDN(n), _conv(n, m))
        self.klt = klt
        if klt:
            self.linear = nn.Conv2d(3, m, 16, 16)
            self.alpha = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.klt:
            return self.net(x)
        return self.linear(x) + self.alpha * self.net(x)


class Synthesis(nn.Module):
    """g_s: y_hat -> RGB (not clamped: callers clamp to [0, 1] for pixels). ``klt``: as :class:`Analysis`."""

    def __init__(self, n: int, m: int, klt: bool = False) -> None:
        super().__init__()
        self.net = nn.Sequential(_deconv(m, n), GDN(n, True), _deconv(n, n), GDN(n, True), _deconv(n, n),
                                 GDN(n, True), _deconv(n, 3))
        self.klt = klt
        if klt:
            self.linear = nn.ConvTranspose2d(m, 3, 16, 16)
            self.beta = nn.Parameter(torch.zeros(1))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if not self.klt:
            return self.net(y)
        return self.linear(y) + self.beta * self.net(y)


def init_klt(g_a: Analysis, g_s: Synthesis, patches: np.ndarray) -> None:
    """Set the linear paths to the PCA (KLT) of 16x16 RGB patches: y = W (x - mean), x = W^T y + mean."""
    x = torch.from_numpy(patches).float().permute(0, 3, 1, 2) / 255  # (n, 3, 16, 16)
    flat = x.reshape(len(x), -1).double()
    mean = flat.mean(0)
    cov = torch.cov((flat - mean).T)
    evals, evecs = torch.linalg.eigh(cov)
    w = evecs[:, torch.argsort(evals, descending=True)[:g_a.linear.out_channels]].T  # (m, 768), orthonormal rows
    with torch.no_grad():
        g_a.linear.weight.copy_(w.reshape(-1, 3, 16, 16).float())
        g_a.linear.bias.copy_(-(w @ mean).float())
        g_s.linear.weight.copy_(w.reshape(-1, 3, 16, 16).float())
        # ConvTranspose2d's bias is per output channel, not per pixel of the block: the mean goes back as
        # its per-channel average (the per-pixel remainder is small for natural patches)
        g_s.linear.bias.copy_(mean.reshape(3, -1).mean(1).float())


class HyperAnalysis(nn.Module):
    """h_a: y -> z (NZ channels at 1/64 resolution). Encoder only, float."""

    def __init__(self, n: int, m: int, nz: int) -> None:
        super().__init__()
        self.net = nn.Sequential(_conv(m, n, 3, 1), nn.ReLU(), _conv(n, n), nn.ReLU(), _conv(n, nz))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(y)


def _fake_quant_weight(w: torch.Tensor) -> torch.Tensor:
    """Per-output-channel symmetric int8 (straight-through): what intnet will use."""
    scale = w.detach().abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8) / 127
    return w + ((w / scale).round().clamp(-127, 127) * scale - w).detach()


class QuantHyperSynthesis(nn.Module):
    """h_s: z_hat (integers) -> (means, scale logits) of y, 2M channels at 1/16 resolution.

    Three 3x3 convolutions; the first two upsample 2x by pixel shuffle (a reshape, exact in integers,
    unlike a transposed convolution's overlapping sums, which are exact too but costlier to mirror).
    With ``fake_quant`` on, weights are rounded to int8 per output channel and activations to uint8 with
    the fixed scales in ``act_scale`` (straight-through gradients), exactly the arithmetic of
    :mod:`jpegshrink.perceptual.intnet` up to the final rounding of the outputs.
    """

    def __init__(self, n: int, m: int, nz: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(nz, 4 * n, 3, 1, 1)
        self.c2 = nn.Conv2d(n, 4 * n, 3, 1, 1)
        self.c3 = nn.Conv2d(n, 2 * m, 3, 1, 1)
        self.register_buffer("act_scale", torch.ones(2))
        self.fake_quant = False

    def _layer(self, conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        w = _fake_quant_weight(conv.weight) if self.fake_quant else conv.weight
        return F.conv2d(x, w, conv.bias, 1, 1)

    def _act(self, x: torch.Tensor, i: int) -> torch.Tensor:
        x = F.relu(x)
        if self.fake_quant:
            s = self.act_scale[i]
            x = x + ((x / s).round().clamp(0, ACT_MAX) * s - x).detach()
        return x

    def forward(self, z_hat: torch.Tensor, calibrate: list | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self._act(F.pixel_shuffle(self._layer(self.c1, z_hat), 2), 0)
        if calibrate is not None:
            calibrate[0].append(h.detach())
        h = self._act(F.pixel_shuffle(self._layer(self.c2, h), 2), 1)
        if calibrate is not None:
            calibrate[1].append(h.detach())
        out = self._layer(self.c3, h)
        means, logits = out.chunk(2, dim=1)
        return means, logits


def scales_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Scale of the Gaussian in quantisation steps: exp of the logit, clamped to the table's range."""
    return logits.clamp(math.log(SCALE_MIN), math.log(SCALE_MAX)).exp()


class FactorizedPrior(nn.Module):
    """z's learned per-channel density (Ballé 2018 appendix 6.1, filters (3, 3, 3)): a CDF network."""

    def __init__(self, ch: int, filters: tuple[int, ...] = (3, 3, 3)) -> None:
        super().__init__()
        dims = (1, *filters, 1)
        init = math.log(math.expm1(1 / 10 ** (1 / (len(filters) + 1))))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(filters) + 1):
            self.matrices.append(nn.Parameter(torch.full((ch, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(ch, dims[i + 1], 1) - 0.5))
            if i < len(filters):
                self.factors.append(nn.Parameter(torch.zeros(ch, dims[i + 1], 1)))

    def logits_cdf(self, v: torch.Tensor) -> torch.Tensor:
        """v: (C, 1, K) -> cdf logits (C, 1, K)."""
        for i in range(len(self.matrices)):
            v = torch.matmul(F.softplus(self.matrices[i]), v) + self.biases[i]
            if i < len(self.factors):
                v = v + torch.tanh(self.factors[i]) * torch.tanh(v)
        return v

    def likelihood(self, z: torch.Tensor) -> torch.Tensor:
        c = z.shape[1]
        v = z.transpose(0, 1).reshape(c, 1, -1)
        lower, upper = self.logits_cdf(v - 0.5), self.logits_cdf(v + 0.5)
        return self._bin(lower, upper, z)

    def likelihood_frozen(self, z: torch.Tensor) -> torch.Tensor:
        """:meth:`likelihood` with the prior's parameters detached: gradients reach z only."""
        c = z.shape[1]
        v = z.transpose(0, 1).reshape(c, 1, -1)

        def cdf(t):
            for i in range(len(self.matrices)):
                t = torch.matmul(F.softplus(self.matrices[i].detach()), t) + self.biases[i].detach()
                if i < len(self.factors):
                    t = t + torch.tanh(self.factors[i].detach()) * torch.tanh(t)
            return t
        return self._bin(cdf(v - 0.5), cdf(v + 0.5), z)

    @staticmethod
    def _bin(lower: torch.Tensor, upper: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        c = z.shape[1]
        sign = -torch.sign(lower + upper).detach()
        p = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()
        return p.reshape(c, z.shape[0], *z.shape[2:]).transpose(0, 1).clamp_min(1e-9)


def gaussian_likelihood(y: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """P(round(y) = y) under N(0, scale^2) integrated over the quantisation bin; y already mean-removed."""
    half = 0.5
    y = y.abs()
    upper = torch.special.ndtr((half - y) / scales)
    lower = torch.special.ndtr((-half - y) / scales)
    return (upper - lower).clamp_min(1e-9)


class MultiSample(Enum):
    """How :meth:`HyperpriorCodec.forward` combines several noise samples into one rate bound."""

    ELEMENT = "element"  # log-mean-exp per latent element
    IMAGE = "image"  # log-mean-exp per image of the whole rate (IWAE over images)
    MIX = "mix"  # per-element bound for the entropy model, one-sample ELBO gradient for the encoder


class HyperpriorCodec(nn.Module):
    """The whole codec for training and float inference. ``rates`` gain vectors, one per ladder step."""

    def __init__(self, n: int = 64, m: int = 96, nz: int = 48, rates: int = 6, klt: bool = False) -> None:
        super().__init__()
        self.n, self.m, self.nz, self.rates, self.klt = n, m, nz, rates, klt
        self.g_a, self.g_s = Analysis(n, m, klt), Synthesis(n, m, klt)
        self.h_a, self.h_s = HyperAnalysis(n, m, nz), QuantHyperSynthesis(n, m, nz)
        self.prior_z = FactorizedPrior(nz)
        # log gains: rate r's gain starts at 2^(r - rates + 1) ... 1 (the top rate quantises y as is)
        init = torch.tensor([float(r - rates + 1) for r in range(rates)]) * math.log(2) * 0.5
        if klt:  # the KLT path has orthonormal rows on [0, 1] pixels: steps of ~0.1 (top) .. 0.6 (bottom)
            init = init + math.log(10.0)
        self.log_gain = nn.Parameter(init[:, None].repeat(1, m))

    def gain(self, rate: torch.Tensor) -> torch.Tensor:
        """Gain per sample: ``rate`` (B,) floats in [0, rates-1]; fractional rates interpolate log-linearly."""
        lo = rate.floor().long().clamp(0, self.rates - 1)
        hi = (lo + 1).clamp(max=self.rates - 1)
        t = (rate - lo.float())[:, None]
        return torch.exp((1 - t) * self.log_gain[lo] + t * self.log_gain[hi])[:, :, None, None]

    def forward(self, x: torch.Tensor, rate: torch.Tensor, samples: int = 1,
                bound: "MultiSample | None" = None) -> dict:
        """Training pass: noisy latents for the rate, straight-through rounding for the synthesis.

        ``samples`` > 1: the multi-sample (importance-weighted, MS-NIC 2209.13834) rate term. The
        synthesis sees the straight-through latents ("direct-y"), and h_s sees round(z), so only the
        likelihood terms depend on the uniform noise; the posterior and the priors given z factorise over
        latent elements, so each element's likelihood is the log-mean-exp over ``samples`` noise draws:
        an IWAE bound on the same model that tends to log E_u p(y + u) instead of E_u log p(y + u) (ELBO).

        ``bound`` (:class:`MultiSample`, default ELEMENT) says how the samples are combined. ELEMENT: as
        above. IMAGE: one log-mean-exp per image of the whole rate (the paper's IWAE form; returned as
        ``log_lik``, nats per image). MIX: the IWAE bound trains the entropy model (h_s, z's prior) only,
        on detached latents, and the encoder (g_a, h_a) gets the single-sample ELBO's pathwise gradient
        through the frozen entropy model (our reading of MS-NIC's point that the pathwise IWAE gradient of
        the encoder is biased under a uniform posterior whose support moves with y); the returned
        likelihoods have the IWAE values. Measured (BENCHMARKS.md, issue 14 ablations): none beat ELBO;
        ELEMENT cost ~24 % BD-rate and MIX diverged (likely: the bound rewards collapsing the scales).
        """
        g = self.gain(rate)
        y = self.g_a(x) * g
        z = self.h_a(y)
        z_ste = z + (z.round() - z).detach()
        means, logits = self.h_s(z_ste)
        scales = scales_from_logits(logits)
        y_ste = y + ((y - means).round() + means - y).detach()
        x_hat = self.g_s(y_ste / g)
        if samples == 1:
            z_noisy = z + torch.empty_like(z).uniform_(-0.5, 0.5)
            y_noisy = y - means + torch.empty_like(y).uniform_(-0.5, 0.5)
            lik_y, lik_z = gaussian_likelihood(y_noisy, scales), self.prior_z.likelihood(z_noisy)
        elif bound is MultiSample.IMAGE:
            log_k = math.log(samples)
            tot = torch.stack([gaussian_likelihood(y - means + torch.empty_like(y).uniform_(-0.5, 0.5), scales).log()
                               .sum((1, 2, 3)) + self.prior_z.likelihood(z + torch.empty_like(z).uniform_(-0.5, 0.5))
                               .log().sum((1, 2, 3)) for _ in range(samples)])  # (samples, B) nats
            return {"x_hat": x_hat, "log_lik": torch.logsumexp(tot, 0) - log_k, "y": y, "y_ste": y_ste, "g": g}
        elif bound is MultiSample.MIX:
            log_k = math.log(samples)
            y_d, z_d = y.detach(), z.detach()
            m_d, l_d = self.h_s(z_ste.detach())  # entropy model on detached latents: IWAE gradients
            s_d = scales_from_logits(l_d)
            ly = torch.stack([gaussian_likelihood(y_d - m_d + torch.empty_like(y).uniform_(-0.5, 0.5), s_d).log()
                              for _ in range(samples)])
            lz = torch.stack([self.prior_z.likelihood(z_d + torch.empty_like(z).uniform_(-0.5, 0.5)).log()
                              for _ in range(samples)])
            iw_y, iw_z = torch.logsumexp(ly, 0) - log_k, torch.logsumexp(lz, 0) - log_k
            # encoder: one-sample ELBO through the entropy model with its parameters frozen (h_a still
            # gets the gradient through h_s, as in ELBO training)
            frozen = {k: v.detach() for k, v in self.h_s.named_parameters()}
            m_f, l_f = torch.func.functional_call(self.h_s, frozen, (z_ste,))
            el_y = gaussian_likelihood(y - m_f + torch.empty_like(y).uniform_(-0.5, 0.5), scales_from_logits(l_f)).log()
            el_z = self.prior_z.likelihood_frozen(z + torch.empty_like(z).uniform_(-0.5, 0.5)).log()
            lik_y = (iw_y + el_y - el_y.detach()).exp()  # value: IWAE; gradient: IWAE (model) + ELBO (encoder)
            lik_z = (iw_z + el_z - el_z.detach()).exp()
        else:
            log_k = math.log(samples)
            ly = torch.stack([gaussian_likelihood(y - means + torch.empty_like(y).uniform_(-0.5, 0.5), scales).log()
                              for _ in range(samples)])
            lz = torch.stack([self.prior_z.likelihood(z + torch.empty_like(z).uniform_(-0.5, 0.5)).log()
                              for _ in range(samples)])
            lik_y = (torch.logsumexp(ly, 0) - log_k).exp()
            lik_z = (torch.logsumexp(lz, 0) - log_k).exp()
        return {"x_hat": x_hat, "lik_y": lik_y, "lik_z": lik_z, "y": y, "y_ste": y_ste, "g": g}
