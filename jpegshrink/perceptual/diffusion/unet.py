"""A tiny U-Net denoiser: the network of the unconditional patch prior and of CDC-lite.

Sized for CPU training in tens of minutes (a few hundred thousand parameters, no attention), fully
convolutional so a model trained on 32x32 crops runs on any image whose sides are multiples of
``UNetConfig.multiple``. Conditioning (CDC-lite) is by concatenating channels to the input: the
decoded MSE image of the frozen codec, a function of the stored latents only.
"""
from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn
from torch.nn import functional as F


@dataclasses.dataclass(frozen=True)
class UNetConfig:
    """Architecture of one denoiser; stored with its weights so a registered model rebuilds exactly."""

    channels: int = 32                  # width of the first level
    mults: tuple[int, ...] = (1, 2, 2)  # width multiplier per level (one 2x downsampling between levels)
    blocks: int = 1                     # residual blocks per level and direction
    cond_channels: int = 0              # extra input channels (0: unconditional)
    image_channels: int = 3

    @property
    def multiple(self) -> int:
        """Image sides must be multiples of this."""
        return 2 ** (len(self.mults) - 1)

    def to_info(self) -> dict:
        return {**dataclasses.asdict(self), "mults": list(self.mults)}

    @classmethod
    def from_info(cls, info: dict) -> "UNetConfig":
        return cls(**{**info, "mults": tuple(info["mults"])})


def _groups(ch: int) -> int:
    return 8 if ch % 8 == 0 else 1


class _ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.film = nn.Linear(emb, 2 * cout)
        self.norm2 = nn.GroupNorm(_groups(cout), cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(e)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(F.silu(h))
        return self.skip(x) + h


class TinyUNet(nn.Module):
    """Denoiser f(x_t, log-SNR, cond) -> prediction (eps or x0, per the model's parameterisation)."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        c0 = config.channels
        emb = 4 * c0
        self.emb = nn.Sequential(nn.Linear(c0, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.inp = nn.Conv2d(config.image_channels + config.cond_channels, c0, 3, padding=1)
        widths = [c0 * m for m in config.mults]
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skips, ch = [], c0
        for i, w in enumerate(widths):
            level = nn.ModuleList()
            for _ in range(config.blocks):
                level.append(_ResBlock(ch, w, emb))
                ch = w
                skips.append(ch)
            self.down.append(level)
            self.downsample.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1) if i < len(widths) - 1 else nn.Identity())
        self.mid = _ResBlock(ch, ch, emb)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i, w in reversed(list(enumerate(widths))):
            level = nn.ModuleList()
            for _ in range(config.blocks):
                level.append(_ResBlock(ch + skips.pop(), w, emb))
                ch = w
            self.up.append(level)
            self.upsample.append(nn.Conv2d(ch, ch, 3, padding=1) if i > 0 else nn.Identity())
        self.out_norm = nn.GroupNorm(_groups(ch), ch)
        self.out = nn.Conv2d(ch, config.image_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def _time_embedding(self, logsnr: torch.Tensor) -> torch.Tensor:
        half = self.config.channels // 2
        freqs = torch.exp(-math.log(1000.0) * torch.arange(half, dtype=torch.float32) / half)
        arg = (logsnr.float()[:, None] * 8.0) * freqs[None]   # log-SNR spans about [-10, 10]
        return self.emb(torch.cat([arg.sin(), arg.cos()], dim=1))

    def forward(self, x: torch.Tensor, logsnr: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        m = self.config.multiple
        if x.shape[-1] % m or x.shape[-2] % m:
            raise ValueError(f"image sides must be multiples of {m}, got {tuple(x.shape[-2:])}")
        if (cond is None) != (self.config.cond_channels == 0):
            raise ValueError("conditioning given to an unconditional model or missing for a conditional one")
        if logsnr.dim() == 0:
            logsnr = logsnr.expand(x.shape[0])
        e = self._time_embedding(logsnr)
        h = self.inp(x if cond is None else torch.cat([x, cond], dim=1))
        hs = []
        for level, down in zip(self.down, self.downsample):
            for block in level:
                h = block(h, e)
                hs.append(h)
            h = down(h)
        h = self.mid(h, e)
        for level, up in zip(self.up, self.upsample):
            for block in level:
                h = block(torch.cat([h, hs.pop()], dim=1), e)
            if not isinstance(up, nn.Identity):
                h = up(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.out(F.silu(self.out_norm(h)))
