"""Idempotence decoder (Xu et al., ICLR 2024, arXiv 2401.08920) on our frozen MSE codec.

No decoder is trained for the codec: an unconditional patch prior is sampled under the constraint that
re-encoding the sample gives the stored code. As in the authors' code, the constraint is applied by
DPS guidance in pixel space: at each DDIM step the Tweedie estimate x0 is re-encoded through the codec
with a straight-through quantiser, decoded, compared with the MSE reconstruction of the stored latents,
and the gradient of that residual's norm (through the prior and the codec) pulls x_t. Our addition,
reported separately in BENCHMARKS.md: a short final *projection*, because with the few steps a CPU
affords DPS alone leaves a few per cent of the symbols changed. It first adds back, a few times, the
pixel residual between the stored MSE reconstruction and the sample's own re-encoded decode
(iterative back-projection: it corrects what the codec sees and leaves what it cannot see, the
prior's detail, alone; the residual is a difference of two decodes, so it adds no noise), then moves
the pixels into the stored quantisation bins of y and z with a few small Adam steps on the distance
outside the bins. Settings tuned on three validation crops (zeta in {0.3, 1, 3, 10}, Adam step in
{0.001, 0.003}) against an intermediate codec checkpoint.
"""
from __future__ import annotations

import dataclasses
import time

import torch

from jpegshrink.perceptual.diffusion import noise, schedule
from jpegshrink.perceptual.diffusion.codec_view import CodecView
from jpegshrink.perceptual.model import Latents
from jpegshrink.perceptual.diffusion.sampler import Denoiser, SamplerSettings, ddim_update


@dataclasses.dataclass(frozen=True)
class IdempotenceSettings:
    """Sampler plus guidance; all recorded with the decode so it can be replayed."""

    sampler: SamplerSettings = SamplerSettings(steps=50)
    zeta: float = 1.0            # DPS step on grad ||y_n - g_s(Q(g_a(x0)))||, pixels in [-1, 1]
    backproject_steps: int = 3   # final iterative back-projection steps (0 and project_steps 0: pure DPS, as in the paper)
    project_steps: int = 60      # then Adam steps into the stored bins
    project_lr: float = 0.001
    margin: float = 0.15         # bins shrunk by this (in quantisation steps) so uint8 rounding stays inside

    def to_info(self) -> dict:
        return {"sampler": self.sampler.to_info(), "zeta": self.zeta, "backproject_steps": self.backproject_steps,
                "project_steps": self.project_steps,
                "project_lr": self.project_lr, "margin": self.margin}

    @classmethod
    def from_info(cls, info: dict) -> "IdempotenceSettings":
        return cls(sampler=SamplerSettings.from_info(info["sampler"]), zeta=float(info["zeta"]),
                   backproject_steps=int(info["backproject_steps"]), project_steps=int(info["project_steps"]),
                   project_lr=float(info["project_lr"]),
                   margin=float(info["margin"]))


def _to01(x: torch.Tensor) -> torch.Tensor:
    return (x + 1) / 2


def guided_sample(codec: CodecView, lat: Latents, prior: Denoiser, shape: tuple[int, ...],
                  settings: IdempotenceSettings, deadline: float | None = None) -> torch.Tensor:
    """DPS-guided DDIM sample in [-1, 1] whose re-encoding should reproduce ``lat``."""
    s = settings.sampler
    times = schedule.sample_times(s.steps)
    y_n = codec.decode(lat)
    means = codec.stored_means(lat)
    x = s.init_scale * noise.gaussian(s.seed, noise.Stream.INITIAL, 0, shape)
    for k in range(s.steps):
        t, t_next = times[k], times[k + 1]
        x = x.detach().requires_grad_(True)
        x0, eps = prior.predict(x, t)
        residual = torch.linalg.vector_norm(y_n - codec.reencode_decode_ste(_to01(x0), lat, means))
        (grad,) = torch.autograd.grad(residual, x)
        with torch.no_grad():
            x = ddim_update(x0, eps, t, t_next, s.eta,
                            lambda: noise.gaussian(s.seed, noise.Stream.STEP, k, shape), s.schedule)
            x = x - settings.zeta * grad
        if deadline is not None and time.monotonic() > deadline:
            return x0.detach().clamp(-1, 1)
    return x.detach().clamp(-1, 1)


def project(codec: CodecView, lat: Latents, x01: torch.Tensor, settings: IdempotenceSettings,
            deadline: float | None = None) -> torch.Tensor:
    """Back-project, then move pixels (in [0, 1]) into the stored y and z bins; stops early when inside."""
    y_hat, z = lat.y_hat(), torch.from_numpy(lat.z).float()[None]
    x = x01.detach().clone()
    if settings.backproject_steps:
        target, means = codec.decode(lat), codec.stored_means(lat)
        with torch.no_grad():
            for _ in range(settings.backproject_steps):
                x = (x + target - codec.reencode_decode_ste(x, lat, means)).clamp(0, 1)
    x.requires_grad_(True)
    opt = torch.optim.Adam([x], lr=settings.project_lr)
    for _ in range(settings.project_steps):
        y = codec.analysis(x)
        vy = torch.relu((y - y_hat).abs() - (0.5 - settings.margin)).pow(2).sum()
        vz = torch.relu((codec.hyper_analysis(y) - z).abs() - (0.5 - settings.margin)).pow(2).sum()
        loss = vy + vz
        if loss.item() == 0.0 or (deadline is not None and time.monotonic() > deadline):
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(0, 1)
    return x.detach()


def decode(codec: CodecView, lat: Latents, prior: Denoiser, shape: tuple[int, ...], settings: IdempotenceSettings,
           deadline: float | None = None) -> torch.Tensor:
    """Pixels in [0, 1] (1, 3, H, W): guided sample, then the projection (unless both its step counts are 0)."""
    x01 = _to01(guided_sample(codec, lat, prior, shape, settings, deadline))
    if settings.backproject_steps or settings.project_steps:
        x01 = project(codec, lat, x01, settings, deadline)
    return x01
