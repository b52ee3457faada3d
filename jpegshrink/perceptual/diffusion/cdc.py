"""CDC-lite (after Yang & Mandt, NeurIPS 2023, arXiv 2209.06950) on our frozen MSE codec's latents.

An X-parameterised denoiser conditioned on the stored latents, sampled by DDIM in a handful of steps
from x_T = init_scale * eps (CDC's gamma = 0.8). The x0 prediction is written as the conditioning
image plus the network's output (``Parameterisation.X_RESIDUAL``), so the untrained model is the MSE
decoder and training only has to add detail. Differences from the paper, on purpose and stated in
BENCHMARKS.md: the content encoder is our frozen MSE codec (the denoiser is trained on top of it, the
codec is not retrained jointly), the conditioning is the codec's own synthesis g_s(y_hat) fed as input
channels rather than a learned multi-scale context network on y_hat (the synthesis already maps the
latents to the image grid and costs nothing to train), and the loss has no LPIPS term (rho = 0: no
pretrained VGG can be had here).
"""
from __future__ import annotations

import dataclasses

import torch

from jpegshrink.perceptual.diffusion import sampler
from jpegshrink.perceptual.diffusion.codec_view import CodecView
from jpegshrink.perceptual.model import Latents
from jpegshrink.perceptual.diffusion.sampler import Denoiser, SamplerSettings

#: Input channels the conditional denoiser gets besides x_t: the MSE reconstruction (RGB in [-1, 1]).
COND_CHANNELS = 3


@dataclasses.dataclass(frozen=True)
class CDCSettings:
    sampler: SamplerSettings = SamplerSettings(steps=8, init_scale=0.8)

    def to_info(self) -> dict:
        return {"sampler": self.sampler.to_info()}

    @classmethod
    def from_info(cls, info: dict) -> "CDCSettings":
        return cls(sampler=SamplerSettings.from_info(info["sampler"]))


def condition(x_mse01: torch.Tensor) -> torch.Tensor:
    """The conditioning input from the MSE reconstruction in [0, 1]."""
    return x_mse01 * 2 - 1


def decode(codec: CodecView, lat: Latents, model: Denoiser, shape: tuple[int, ...], settings: CDCSettings,
           x0_hook: sampler.X0Hook | None = None, deadline: float | None = None) -> torch.Tensor:
    """Pixels in [0, 1] (1, 3, H, W); ``x0_hook`` is CorrDiff-lite's correction (None for plain CDC)."""
    cond = condition(codec.decode(lat))
    x = sampler.sample(model, shape, settings.sampler, cond=cond, x0_hook=x0_hook, deadline=deadline)
    return (x + 1) / 2
