"""Deterministic DDIM sampling: the settings a container records, the denoiser wrapper, one shared loop.

A decode is reproducible because every input of the loop is named: the model id (weights by hash),
:class:`SamplerSettings` (steps, schedule, seed, eta) and the counter-based noise of :mod:`.noise`.
With eta = 0 the only randomness is x_T. A time budget stops the loop early and returns the current
x0 estimate (diffusion decodes are "anytime"); such a decode is not reproducible across machines,
which is why the budget is off by default.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable

import torch

from jpegshrink.perceptual.diffusion import noise, schedule
from jpegshrink.perceptual.diffusion.schedule import Parameterisation, Schedule
from jpegshrink.perceptual.diffusion.unet import TinyUNet


@dataclasses.dataclass(frozen=True)
class SamplerSettings:
    """Everything besides the model and the stored bits that fixes a diffusion decode's pixels."""

    steps: int = 20
    schedule: Schedule = Schedule.COSINE
    seed: int = 0
    eta: float = 0.0          # 0: deterministic DDIM; 1: DDPM-like ancestral noise (from the seeded stream)
    init_scale: float = 1.0   # x_T = init_scale * eps (CDC uses < 1 for its few-step decode)

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if not 0.0 <= self.eta <= 1.0:
            raise ValueError(f"eta must be in [0, 1], got {self.eta}")
        if not 0 <= self.seed < 2 ** 63:
            raise ValueError(f"seed must be in [0, 2**63), got {self.seed}")

    def to_info(self) -> dict:
        return {"steps": self.steps, "schedule": self.schedule.value, "seed": self.seed, "eta": self.eta,
                "init_scale": self.init_scale}

    @classmethod
    def from_info(cls, info: dict) -> "SamplerSettings":
        return cls(steps=int(info["steps"]), schedule=Schedule(info["schedule"]), seed=int(info["seed"]),
                   eta=float(info["eta"]), init_scale=float(info["init_scale"]))


class Denoiser:
    """A network plus its parameterisation: x_t, t -> (x0 estimate clipped to [-1, 1], matching eps)."""

    def __init__(self, net: TinyUNet, parameterisation: Parameterisation, sched: Schedule = Schedule.COSINE) -> None:
        self.net, self.parameterisation, self.schedule = net, parameterisation, sched

    def predict(self, x_t: torch.Tensor, t: float, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        tt = torch.tensor(t, dtype=torch.float32)
        a, s = schedule.alpha_sigma(tt, self.schedule)
        out = self.net(x_t, schedule.log_snr(tt, self.schedule), cond)
        if self.parameterisation is Parameterisation.EPS:
            x0 = ((x_t - s * out) / a).clamp(-1, 1)
        elif self.parameterisation is Parameterisation.X_RESIDUAL:
            x0 = (cond[:, :3] + out).clamp(-1, 1)
        else:
            x0 = out.clamp(-1, 1)
        return x0, (x_t - a * x0) / s


def ddim_update(x0: torch.Tensor, eps: torch.Tensor, t: float, s: float, eta: float,
                step_noise: Callable[[], torch.Tensor], sched: Schedule = Schedule.COSINE) -> torch.Tensor:
    """x_s from the x0/eps estimates at t > s (Song et al. 2021, eq. 12)."""
    a_t, sig_t = schedule.alpha_sigma(torch.tensor(t), sched)
    a_s, sig_s = schedule.alpha_sigma(torch.tensor(s), sched)
    if s <= 0.0:
        return x0
    c = eta * (sig_s ** 2 / sig_t ** 2 * (1 - a_t ** 2 / a_s ** 2)).clamp(min=0).sqrt()
    out = a_s * x0 + (sig_s ** 2 - c ** 2).clamp(min=0).sqrt() * eps
    return out + c * step_noise() if eta > 0 else out


X0Hook = Callable[[int, float, torch.Tensor, torch.Tensor], torch.Tensor]


def sample(denoiser: Denoiser, shape: tuple[int, ...], settings: SamplerSettings, cond: torch.Tensor | None = None,
           x0_hook: X0Hook | None = None, deadline: float | None = None) -> torch.Tensor:
    """Run DDIM from seeded x_T; ``x0_hook(step, t, x_t, x0) -> x0`` may correct each x0 estimate (CorrDiff).

    Returns the final x0 in [-1, 1]; with ``deadline`` (time.monotonic()) passed, the x0 estimate of the
    last completed step.
    """
    times = schedule.sample_times(settings.steps)
    x = settings.init_scale * noise.gaussian(settings.seed, noise.Stream.INITIAL, 0, shape)
    x0 = torch.zeros(shape)
    with torch.no_grad():
        for k in range(settings.steps):
            t, s = times[k], times[k + 1]
            x0, eps = denoiser.predict(x, t, cond)
            if x0_hook is not None:
                x0 = x0_hook(k, t, x, x0)
                a_t, sig_t = schedule.alpha_sigma(torch.tensor(t), settings.schedule)
                eps = (x - a_t * x0) / sig_t
            x = ddim_update(x0, eps, t, s, settings.eta,
                            lambda: noise.gaussian(settings.seed, noise.Stream.STEP, k, shape), settings.schedule)
            if deadline is not None and time.monotonic() > deadline:
                return x0
    return x
