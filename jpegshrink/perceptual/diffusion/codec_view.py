"""The frozen MSE codec as the diffusion decoders need it: differentiable, at one rate, stored latents fixed.

The decoders never write bits. They need (1) the MSE reconstruction of the stored latents, (2) the
codec's analysis with a straight-through quantiser, to ask "would this image re-encode to the stored
symbols?" with gradients (idempotence), and (3) the same float path on training crops (CDC-lite).
Quantisation follows the mean-scale hyperprior: symbols round(y - mu) with mu from the stored z, so the
straight-through re-encode uses the *stored* means: if z re-encodes to the stored z too (checked
separately), these are the means the real encoder would use.
"""
from __future__ import annotations

import dataclasses

import torch


@dataclasses.dataclass
class Latents:
    """Stored symbols of one image at one rate, and the means h_s derives from z (gained y space)."""

    y_sym: torch.Tensor   # int64 (1, M, H/16, W/16)
    z_sym: torch.Tensor   # int64 (1, NZ, H/64, W/64)
    means: torch.Tensor   # float (1, M, H/16, W/16)
    gain: torch.Tensor    # float (1, M, 1, 1)

    @property
    def y_hat(self) -> torch.Tensor:
        return self.y_sym.to(self.means.dtype) + self.means


class CodecView:
    """Float, differentiable views of a frozen gained hyperprior (``g_a``, ``g_s``, ``h_a``, ``h_s``, ``gain``).

    ``hyper_means(z_sym)`` may be overridden by the exact integer h_s of the container path; by default
    the float h_s of the network is used (adequate for training crops, where no bits are written).
    """

    def __init__(self, net, rate: float, hyper_means=None) -> None:
        self.net, self.rate = net, float(rate)
        self._hyper_means = hyper_means

    def gain(self) -> torch.Tensor:
        return self.net.gain(torch.tensor([self.rate]))

    def hyper_means(self, z_sym: torch.Tensor) -> torch.Tensor:
        if self._hyper_means is not None:
            return self._hyper_means(z_sym)
        return self.net.h_s(z_sym.float())[0]

    def analysis(self, x01: torch.Tensor) -> torch.Tensor:
        """Gained y of pixels in [0, 1] (differentiable)."""
        return self.net.g_a(x01) * self.gain()

    def encode(self, x01: torch.Tensor) -> Latents:
        """Symbols of ``x01`` (float path; the container's integer path gives the same ones up to h_s rounding)."""
        with torch.no_grad():
            y = self.analysis(x01)
            z_sym = self.net.h_a(y).round().long()
            means = self.hyper_means(z_sym)
            return Latents(y_sym=(y - means).round().long(), z_sym=z_sym, means=means, gain=self.gain())

    def decode(self, lat: Latents) -> torch.Tensor:
        """The MSE reconstruction in [0, 1] (clamped)."""
        return self.net.g_s(lat.y_hat / lat.gain).clamp(0, 1)

    def reencode_decode_ste(self, x01: torch.Tensor, lat: Latents) -> torch.Tensor:
        """g_s(Q(g_a(x))) with a straight-through Q around the stored means: differentiable in x."""
        y = self.analysis(x01)
        r = y - lat.means
        y_q = lat.means + r + (r.round() - r).detach()
        return self.net.g_s(y_q / lat.gain)

    def bin_violation(self, x01: torch.Tensor, lat: Latents, margin: float = 0.1) -> torch.Tensor:
        """Sum of squared distances of y(x) outside its stored quantisation bin (shrunk by ``margin``)."""
        d = (self.analysis(x01) - lat.y_hat).abs()
        return torch.relu(d - (0.5 - margin)).pow(2).sum()

    def unchanged_fraction(self, x01: torch.Tensor, lat: Latents) -> tuple[float, float]:
        """(fraction of y symbols, fraction of z symbols) that re-encoding ``x01`` leaves as stored."""
        again = self.encode(x01)
        fy = (again.y_sym == lat.y_sym).float().mean().item()
        fz = (again.z_sym == lat.z_sym).float().mean().item()
        return fy, fz


class _Frozen:
    """A loaded codec network with every parameter frozen and in eval mode."""

    def __init__(self, net) -> None:
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
        self.net = net


def load_frozen(spec: str | None):
    """Issue 14's codec, frozen: a training checkpoint path (``.pt``) or a registered codec id (None: default)."""
    if spec is not None and spec.endswith(".pt"):
        from jpegshrink.perceptual.network import HyperpriorCodec
        ck = torch.load(spec, weights_only=False)
        cfg = ck["config"]
        net = HyperpriorCodec(cfg["n"], cfg["m"], cfg["nz"], len(ck["lambdas"]))
        net.load_state_dict(ck["model"])
        net.h_s.fake_quant = ck.get("fake_quant", False)
        return _Frozen(net)
    raise NotImplementedError("registered perceptual codec ids: waiting for issue 14's loader")
