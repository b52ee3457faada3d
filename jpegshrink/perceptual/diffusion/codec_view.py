"""Issue 14's frozen codec as the diffusion decoders use it: one rate, the stored latents fixed.

The decoders never write bits. They need (1) the MSE reconstruction of the stored latents, (2) the
codec's analysis with a straight-through quantiser, to ask "would this image re-encode to the stored
symbols?" with gradients (idempotence), and (3) the exact integer re-encode to *measure* that.
The straight-through quantiser rounds around the *stored* means (the integer h_s of the stored z):
if z re-encodes to the stored z too (the projection checks both), these are the means the real
encoder would use, and no integer hyper-decoder runs inside the guidance loop.
"""
from __future__ import annotations

import torch

from jpegshrink.perceptual.model import Latents, LearnedCodec


class CodecView:
    """Differentiable views of ``codec`` at the rate of the latents being decoded."""

    def __init__(self, codec: LearnedCodec, rate: float) -> None:
        self.codec, self.rate = codec, float(rate)

    def analysis(self, x01: torch.Tensor) -> torch.Tensor:
        """Gained y of pixels in [0, 1] (differentiable)."""
        return self.codec.analysis(x01, self.rate)

    def hyper_analysis(self, y: torch.Tensor) -> torch.Tensor:
        return self.codec.h_a(y)

    def encode(self, x01: torch.Tensor) -> Latents:
        """The exact integer latents the container encoder would store for ``x01``."""
        return self.codec.encode_latents(x01, self.rate)

    def decode(self, lat: Latents) -> torch.Tensor:
        """The MSE (faithful) reconstruction in [0, 1], float32, clamped."""
        with torch.no_grad():
            return self.codec.synthesis(lat.y_hat(), lat.rate).clamp(0, 1)

    def stored_means(self, lat: Latents) -> torch.Tensor:
        return torch.from_numpy(lat.means / self.codec.mean_denom).float()[None]

    def reencode_decode_ste(self, x01: torch.Tensor, lat: Latents, means: torch.Tensor) -> torch.Tensor:
        """g_s(Q(g_a(x))) with a straight-through Q around the stored ``means``: differentiable in x."""
        r = self.analysis(x01) - means
        return self.codec.synthesis(means + r + (r.round() - r).detach(), self.rate)

    def unchanged_fraction(self, x01: torch.Tensor, lat: Latents) -> tuple[float, float]:
        """(fraction of y symbols, fraction of z values) that re-encoding ``x01`` leaves as stored."""
        again = self.encode(x01)
        return float((again.symbols == lat.symbols).mean()), float((again.z == lat.z).mean())
