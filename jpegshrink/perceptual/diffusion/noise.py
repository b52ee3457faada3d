"""Seeded Gaussian noise from a counter-based generator, so a diffusion decode is reproducible.

Why counter-based (Philox keyed by the seed, counter = (purpose, step)): the noise of step k does not
depend on how many values earlier steps drew, on the thread count or on torch's global RNG, and a
decode cut short by its time budget sees exactly the noise of the full decode's first steps. The
normal deviates come from Box-Muller on the raw 64-bit words (not numpy's ziggurat), so only IEEE
double log/sqrt/cos are involved.
"""
from __future__ import annotations

import enum

import numpy as np
import torch


class Stream(enum.IntEnum):
    """Independent noise streams of one decode (the first Philox counter word)."""

    INITIAL = 1      # x_T
    STEP = 2         # stochastic DDIM steps (eta > 0)
    TRAINING = 3     # not used by decoders; tools may use it


def gaussian(seed: int, stream: Stream, index: int, shape: tuple[int, ...]) -> torch.Tensor:
    """float32 N(0, 1) noise of ``shape`` for (seed, stream, index); identical on every machine."""
    if not 0 <= seed < 2 ** 63:
        raise ValueError(f"seed must be in [0, 2**63), got {seed}")
    n = int(np.prod(shape))
    gen = np.random.Philox(key=int(seed), counter=[int(stream), int(index), 0, 0])
    raw = gen.random_raw(2 * ((n + 1) // 2))
    u = ((raw >> np.uint64(11)).astype(np.float64) + 0.5) * (1.0 / 2 ** 53)   # in (0, 1)
    u1, u2 = u[0::2], u[1::2]
    r = np.sqrt(-2.0 * np.log(u1))
    z = np.empty(u.shape, np.float64)
    z[0::2] = r * np.cos(2 * np.pi * u2)
    z[1::2] = r * np.sin(2 * np.pi * u2)
    return torch.from_numpy(z[:n].astype(np.float32).reshape(shape))
