"""CorrDiff-lite (after Ma, Yang & Liu, ICML 2024, arXiv 2404.04916): encoder-chosen corrections of CDC.

The encoder sees the original, so it can steer the decoder's deterministic DDIM trajectory. Here the
"privileged end-to-end decoder" is the codec's own MSE synthesis g_s(y_hat) (trained end to end for
distortion on the same latents; the paper trains a separate E2E head), and the correction is a mixing
coefficient per group of steps, x0 <- x0 + a_g (g_s(y_hat) - x0), with a_g one of ``LEVELS`` (3 bits).
The encoder replays the decode for each candidate (greedy, group by group) and keeps the choice of
least MSE to the original among those whose high-band energy stays at least ``keep_detail`` times the
uncorrected CDC decode's: "more PSNR at equal realism", with the bits counted in the container.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from jpegshrink.perceptual.diffusion import cdc
from jpegshrink.perceptual.diffusion.codec_view import CodecView
from jpegshrink.perceptual.model import Latents
from jpegshrink.perceptual.diffusion.sampler import Denoiser

#: Coefficient values a 3-bit code can name (index stored in the container).
LEVELS = tuple(i / 8 for i in range(8))
BITS_PER_GROUP = 3


@dataclasses.dataclass(frozen=True)
class CorrDiffSettings:
    cdc: cdc.CDCSettings = cdc.CDCSettings()
    groups: int = 2               # coefficient groups over the DDIM steps (early, late)
    keep_detail: float = 0.9      # encoder's realism constraint: high-band energy vs the plain CDC decode

    def to_info(self) -> dict:
        return {"cdc": self.cdc.to_info(), "groups": self.groups, "keep_detail": self.keep_detail}

    @classmethod
    def from_info(cls, info: dict) -> "CorrDiffSettings":
        return cls(cdc=cdc.CDCSettings.from_info(info["cdc"]), groups=int(info["groups"]),
                   keep_detail=float(info["keep_detail"]))


def _group(step: int, steps: int, groups: int) -> int:
    return min(groups - 1, step * groups // steps)


def hook(codes: tuple[int, ...], x_mse: torch.Tensor, steps: int):
    """The decoder's x0 correction for stored ``codes`` (one per group); x_mse in [-1, 1]."""
    def correct(k: int, t: float, x_t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        a = LEVELS[codes[_group(k, steps, len(codes))]]
        return x0 + a * (x_mse - x0)
    return correct


def high_band_energy(x01: torch.Tensor) -> float:
    """Mean squared Laplacian response: falls when a decode blurs."""
    k = torch.tensor([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], dtype=x01.dtype).view(1, 1, 3, 3).repeat(3, 1, 1, 1)
    return F.conv2d(x01, k, groups=3).pow(2).mean().item()


def decode(codec: CodecView, lat: Latents, model: Denoiser, shape, settings: CorrDiffSettings,
           codes: tuple[int, ...], deadline: float | None = None) -> torch.Tensor:
    """Pixels in [0, 1]: CDC-lite with the stored corrections applied."""
    if len(codes) != settings.groups or not all(0 <= c < len(LEVELS) for c in codes):
        raise ValueError(f"corrdiff needs {settings.groups} codes in [0, {len(LEVELS)}), got {codes!r}")
    x_mse = cdc.condition(codec.decode(lat))
    return cdc.decode(codec, lat, model, shape, settings.cdc, hook(codes, x_mse, settings.cdc.sampler.steps), deadline)


def choose(codec: CodecView, lat: Latents, model: Denoiser, original01: torch.Tensor,
           settings: CorrDiffSettings) -> tuple[int, ...]:
    """Encoder side: greedy choice of the group codes with the original in view (see the module doc)."""
    shape = tuple(original01.shape)
    codes = [0] * settings.groups
    base = decode(codec, lat, model, shape, settings, tuple(codes))
    floor = settings.keep_detail * high_band_energy(base)
    for g in range(settings.groups):
        best = (F.mse_loss(base, original01).item(), codes[g])
        for c in range(1, len(LEVELS)):
            trial = list(codes)
            trial[g] = c
            out = decode(codec, lat, model, shape, settings, tuple(trial))
            err = F.mse_loss(out, original01).item()
            if err < best[0] and high_band_energy(out) >= floor:
                best = (err, c)
        codes[g] = best[1]
        base = decode(codec, lat, model, shape, settings, tuple(codes))
    return tuple(codes)
