"""Encode-time latent optimisation (semi-amortised inference, "Code Editing"): better latents, same decoder.

The analysis transform g_a is *amortised*: one network guesses every image's latents in one pass, and
that guess is not the latents that minimise this image's rate + lambda * distortion under the decoder
(Yang et al. 2020 "Improving inference for neural image compression"; Code Editing, arXiv 2209.09244;
the same per-pixel bit allocation by gradient descent as the video seed 2209.09422). Here the encoder
starts from g_a's latents and runs gradient steps on them for ``R + lambda * D`` of the *frozen* codec,
then quantises and codes them with the unchanged exact coder. The decoder, the container and every
integer that picks a coding table are unchanged: only which integers are stored changes.

What is optimised: y (the main latents). z, and with it the exact integer hyper-decoder's means and
scale indices, is g_a -> h_a's choice for the starting y and is kept fixed: optimising z would need a
differentiable copy of the integer h_s (z is not negligible, a tenth of the bits or more at low rates:
an opportunity left). The rate proxy is the Gaussian bin probability with the scale of each latent's
coding table (what the 16-bit tables quantise); the quantisation proxy is stochastic Gumbel annealing
(SGA, Yang et al. 2020): a soft, randomised rounding whose temperature goes to zero over the steps, with
the final rounding as the plain encoder's. ``weight`` (a per-pixel distortion weight map) gives
region-of-interest coding with the same machinery.

Determinism: the Gumbel noise comes from a seeded torch generator and the steps are float32 torch on
the caller's thread settings, so one machine with one thread count gives the same bytes every time;
another CPU or thread count may choose different integers (any of which decode exactly everywhere).
A guard keeps the amortised latents when the optimised ones do not have a lower *exact* objective
(true table code lengths + lambda * MSE of the decode), so an encode never gets worse by asking for more.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from jpegshrink.perceptual import entropy
from jpegshrink.perceptual.model import Latents, LearnedCodec

try:
    import torch
except ImportError:  # pragma: no cover - model.require_torch() reports it
    torch = None

#: Adam step on y, in quantisation steps (the gained latents quantise with step 1).
LEARNING_RATE = 0.01
#: SGA temperature: TAU_START, decaying exponentially to TAU_END at the last step.
TAU_START, TAU_END = 0.5, 0.02
#: Largest image optimised: the backward pass holds the synthesis' activations, ~0.8 kB per pixel
#: (measured: +0.62 GB at 0.79 MP), so 4 MP is ~3.2 GB; larger images are refused, not swapped.
MAX_PIXELS = 4_000_000


class Proxy(Enum):
    """How rounding is stood in for during the steps."""

    SGA = "sga"  # stochastic Gumbel annealing (soft, random rounding; temperature annealed)
    STE = "ste"  # hard rounding forward, identity backward; rate on y + uniform noise


@dataclass
class Result:
    """The latents to code and what the optimisation did (for benchmarks and tests)."""

    latents: Latents
    objective_amortised: float  # exact bits/px + lambda * 255^2 * weighted MSE, g_a's latents
    objective: float  # the same for ``latents`` (<= objective_amortised: the guard)
    bpp: float  # exact table code length of ``latents`` per pixel (ANS adds a few bytes)
    mse: float  # weighted MSE on [0, 1] pixels of the float32 decode of ``latents``
    improved: bool  # False: the optimised latents lost to the amortised ones and were dropped


def _scale_per_index() -> "torch.Tensor":
    from jpegshrink.perceptual.network import scale_table
    return scale_table().float()


def _table_bits(freq: np.ndarray, radius: np.ndarray, table: np.ndarray, values: np.ndarray) -> float:
    """Ideal code length (bits) of integer ``values`` whose tables are ``table`` (an index per value)."""
    return float(entropy.code_lengths(freq, radius, table, values).sum())


def exact_bits(codec: LearnedCodec, lat: Latents) -> float:
    """Bits of ``lat`` under the weight file's integer tables (what the ANS stream costs, within bytes)."""
    t = codec.tables
    zf, yf = codec.z_freq_at(lat.rate), codec.y_freq
    nz = lat.z.shape[0]
    z_tab = np.broadcast_to(np.arange(nz)[:, None, None], lat.z.shape)
    bits_z = _table_bits(zf, np.full(nz, t.z_range), z_tab, lat.z)
    bits_y = _table_bits(yf, t.y_radius, lat.index, lat.symbols)
    return bits_z + bits_y


def _weights(weight, shape_hw: tuple[int, int]) -> "torch.Tensor":
    h, w = shape_hw
    if weight is None:
        return torch.ones(1, 1, h, w)
    a = np.asarray(weight, np.float64)
    if a.shape != (h, w) or not np.isfinite(a).all() or a.min() < 0 or a.max() <= 0:
        raise ValueError(f"weight map must be finite, >= 0, not all zero, shaped {(h, w)}, not {a.shape}")
    return torch.from_numpy(a / a.mean()).float()[None, None]


def optimise(codec: LearnedCodec, x: "torch.Tensor", rate: float, size: tuple[int, int], steps: int, *,
             lam: float | None = None, weight=None, seed: int = 0, proxy: Proxy = Proxy.SGA,
             learning_rate: float = LEARNING_RATE) -> Result:
    """Latents for ``x`` (``codec.to_tensor`` output) at ``rate``'s gain after ``steps`` optimisation steps.

    ``size``: the image's (height, width) (the distortion counts those pixels, not the edge padding).
    ``lam``: lambda of the objective (loss = bits/px + lam * 255^2 * MSE); default the rate's training
    lambda (``codec.lambda_at``). ``weight``: (height, width) distortion weights >= 0 (normalised to mean 1),
    e.g. a region of interest. ``steps=0`` returns the amortised latents.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, not {steps}")
    h, w = size
    if steps and h * w > MAX_PIXELS:
        raise ValueError(f"latent optimisation is limited to {MAX_PIXELS} pixels (memory ~0.8 kB per pixel); "
                         f"this image has {h * w}: encode it with optimize_steps=0")
    lam = codec.lambda_at(rate) if lam is None else float(lam)
    if not lam > 0:
        raise ValueError(f"lambda must be > 0, not {lam}")
    wmap = _weights(weight, (h, w))
    target = x[:, :, :h, :w]
    pixels = h * w

    def distortion(y_hat: "torch.Tensor") -> "torch.Tensor":
        x_hat = codec.synthesis(y_hat, rate)[:, :, :h, :w]
        return (wmap * (x_hat - target) ** 2).mean()

    def exact(lat: Latents) -> tuple[float, float, float]:
        with torch.no_grad():
            mse = float(distortion(lat.y_hat()))
        bpp = exact_bits(codec, lat) / pixels
        return bpp + lam * 255 ** 2 * mse, bpp, mse

    amortised = codec.encode_latents(x, rate)
    obj0, bpp0, mse0 = exact(amortised)
    if steps == 0:
        return Result(amortised, obj0, obj0, bpp0, mse0, False)

    mu = torch.from_numpy(amortised.means.astype(np.float64) / codec.mean_denom).float()[None]
    sigma = _scale_per_index()[torch.from_numpy(amortised.index)][None]
    with torch.no_grad():
        y0 = codec.analysis(x, rate)
    v = (y0 - mu).detach().clone().requires_grad_(True)  # mean-removed latents: rounding is to integers
    opt = torch.optim.Adam([v], lr=learning_rate)
    gen = torch.Generator().manual_seed(seed)
    for t in range(steps):
        tau = TAU_START * (TAU_END / TAU_START) ** (t / max(steps - 1, 1))
        if proxy is Proxy.SGA:
            v_q = _sga(v, tau, gen)
            v_rate = v_q
        else:
            v_q = v + (v.round() - v).detach()
            v_rate = v + torch.rand(v.shape, generator=gen) - 0.5
        upper = torch.special.ndtr((v_rate + 0.5) / sigma)
        lower = torch.special.ndtr((v_rate - 0.5) / sigma)
        bits = -torch.log2((upper - lower).clamp_min(1e-9)).sum()
        loss = bits / pixels + lam * 255 ** 2 * distortion(v_q + mu)
        opt.zero_grad()
        loss.backward()
        opt.step()
    # the last rounding as the plain encoder's (rate-distortion optimised where the codec allows)
    symbols = codec.round_latents(v.detach()[0].double().numpy(), amortised.index, rate)
    lat = Latents(amortised.z, symbols, amortised.means, amortised.index, float(rate))
    obj, bpp, mse = exact(lat)

    if obj >= obj0:
        return Result(amortised, obj0, obj0, bpp0, mse0, False)
    return Result(lat, obj0, obj, bpp, mse, True)


def _sga(v: "torch.Tensor", tau: float, gen) -> "torch.Tensor":
    """Stochastic Gumbel annealing: a relaxed random choice between floor(v) and floor(v) + 1.

    Each side's logit is -atanh(distance)/tau, so as tau -> 0 the choice becomes hard and picks the
    nearer integer with growing probability; the relaxed one-hot sample uses the same temperature.
    """
    eps = 1e-5
    floor = v.detach().floor()
    frac = v - floor
    l_down = -torch.atanh(frac.clamp(-1 + eps, 1 - eps)) / tau
    l_up = -torch.atanh((1 - frac).clamp(-1 + eps, 1 - eps)) / tau
    u = torch.rand(v.shape, generator=gen).clamp(1e-7, 1 - 1e-7)
    logistic = torch.log(u) - torch.log1p(-u)  # difference of two Gumbels
    p_up = torch.sigmoid((l_up - l_down + logistic) / tau)
    return floor + p_up
