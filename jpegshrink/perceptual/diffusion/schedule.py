"""The noise schedule shared by training and every diffusion decoder (continuous time t in [0, 1]).

Why continuous time: a DDIM sampler then picks any number of steps from the same trained model, and
the time budget of a decode can shorten the trajectory without retraining. The cosine schedule
(Nichol & Dhariwal 2021) keeps useful signal at the last steps, which matters with the few steps a
CPU decode can afford.
"""
from __future__ import annotations

import enum
import math

import torch


class Schedule(enum.Enum):
    """Noise schedules; the value is what a container's info records."""

    COSINE = "cosine"


class Parameterisation(enum.Enum):
    """What the denoiser predicts: the noise (DDPM/DDIM, the unconditional prior) or the clean image (CDC).

    X_RESIDUAL is X-parameterisation written relative to the conditioning image: x0 = cond + output.
    With the zero-initialised output layer a conditional model starts as the MSE decoder and only has
    to learn the detail; with the few thousand CPU iterations we can afford, plain X-prediction had
    not yet learned to copy the colours of the conditioning (visible colour drift).
    """

    EPS = "eps"
    X = "x"
    X_RESIDUAL = "x-residual"


#: Offset of the cosine schedule (Nichol & Dhariwal) and the floor of alpha-bar at t = 1, so that
#: x0 = (x_t - sigma eps) / alpha stays finite on the first step.
COSINE_S = 0.008
ALPHA_BAR_MIN = 1e-4


def alpha_bar(t: torch.Tensor, schedule: Schedule = Schedule.COSINE) -> torch.Tensor:
    """Signal fraction alpha-bar(t) of x_t = sqrt(ab) x0 + sqrt(1 - ab) eps, for t in [0, 1]."""
    if schedule is not Schedule.COSINE:
        raise ValueError(f"unknown schedule {schedule!r}")
    f = torch.cos((t + COSINE_S) / (1 + COSINE_S) * math.pi / 2) ** 2
    f0 = math.cos(COSINE_S / (1 + COSINE_S) * math.pi / 2) ** 2
    return (f / f0).clamp(ALPHA_BAR_MIN, 1.0)


def alpha_sigma(t: torch.Tensor, schedule: Schedule = Schedule.COSINE) -> tuple[torch.Tensor, torch.Tensor]:
    """(alpha, sigma) = (sqrt(ab), sqrt(1 - ab)) at t."""
    ab = alpha_bar(t, schedule)
    return ab.sqrt(), (1 - ab).sqrt()


def log_snr(t: torch.Tensor, schedule: Schedule = Schedule.COSINE) -> torch.Tensor:
    """log(alpha^2 / sigma^2): the time input the networks see (schedule-independent conditioning)."""
    ab = alpha_bar(t, schedule)
    return torch.log(ab) - torch.log1p(-ab.clamp(max=1 - 1e-7))


def sample_times(steps: int) -> list[float]:
    """The DDIM grid t_0 = 1 > t_1 > ... > t_steps = 0 (uniform in t)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return [1.0 - k / steps for k in range(steps + 1)]
