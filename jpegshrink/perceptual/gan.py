"""The ``perceptual`` decoder: a generator on the frozen latents of one codec (conditional GAN decoder).

Shape: the codec's own synthesis g_s (same layers, initialised from its weights), plus seeded Gaussian
noise injected after each upsampling stage with learned per-channel strengths (zero at the start, so
training begins at the faithful decoder) -- the "common randomness" of conditional perceptual quality
(Xu et al. 2023) reduced to a seed stored in the container. It reads only ``y_hat / gain`` (the
rate-independent latents), so one generator serves every rate of the codec. Trained by
tools/train_perceptual_gan.py with PO-ELIC's loss mix (hinge adversarial against a latent-conditioned
discriminator, Charbonnier, a Gram/style loss on random multi-scale features).

Weight files ``weights/gan1-<sha8>.npz`` name the codec they were trained on (``meta.codec``).
"""
from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from jpegshrink.perceptual import network
from jpegshrink.perceptual.model import WEIGHTS_DIR, Latents, LearnedCodec


class Generator(nn.Module):
    """g_s with noise injection: (latent features, seed) -> RGB."""

    def __init__(self, n: int, m: int, klt: bool = False) -> None:
        super().__init__()
        synthesis = network.Synthesis(n, m, klt)
        self.klt = klt
        if klt:
            self.linear, self.beta = synthesis.linear, synthesis.beta
        base = synthesis.net
        self.stages = nn.ModuleList([nn.Sequential(base[0], base[1]), nn.Sequential(base[2], base[3]),
                                     nn.Sequential(base[4], base[5])])
        self.out = base[6]
        self.noise_strength = nn.Parameter(torch.zeros(3, n))

    def forward(self, feats: torch.Tensor, seed: int) -> torch.Tensor:
        return self.apply_noise(feats, noise_maps(seed, feats.shape[0], feats.shape[2:], feats.dtype))

    def apply_noise(self, feats: torch.Tensor, noises: list[torch.Tensor]) -> torch.Tensor:
        """The generator with given noise maps (one per stage, at that stage's resolution)."""
        h = feats
        for i, stage in enumerate(self.stages):
            h = stage(h) + self.noise_strength[i].to(feats.dtype)[None, :, None, None] * noises[i]
        return self.linear(feats) + self.beta * self.out(h) if self.klt else self.out(h)

    def load_synthesis(self, g_s: network.Synthesis) -> None:
        """Start from the faithful decoder's weights (the noise strengths stay zero)."""
        src = g_s.net
        for dst_i, src_i in ((0, 0), (0, 1), (1, 2), (1, 3), (2, 4), (2, 5)):
            self.stages[dst_i][src_i % 2].load_state_dict(src[src_i].state_dict())
        self.out.load_state_dict(src[6].state_dict())
        if self.klt:
            self.linear.load_state_dict(g_s.linear.state_dict())
            self.beta.data.copy_(g_s.beta.data)


def noise_maps(seed: int, batch: int, latent_hw, dtype=torch.float32) -> list[torch.Tensor]:
    """The seeded noise of every stage, for the whole image at once (so tiled decoding sees the same noise).

    Drawn in float32 from torch's CPU Mersenne Twister in a fixed order, then cast: the same on every machine.
    """
    gen = torch.Generator().manual_seed(int(seed))
    h, w = (int(v) for v in latent_hw)
    return [torch.randn(batch, 1, h << (i + 1), w << (i + 1), generator=gen, dtype=torch.float32).to(dtype)
            for i in range(3)]


class LoadedGenerator:
    def __init__(self, generator_id: str, arrays: dict) -> None:
        self.generator_id = generator_id
        self.meta = json.loads(bytes(arrays["meta"]).decode())
        gen = Generator(self.meta["n"], self.meta["m"], self.meta.get("klt", False))
        gen.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in arrays.items() if k != "meta"})
        self.net = gen.double().eval()

    def decode(self, codec: LearnedCodec, lat: Latents, seed: int) -> torch.Tensor:
        """float64, tiled, like the faithful decoder (see decoders.py)."""
        from jpegshrink.perceptual.decoders import tiled
        feats = lat.y_hat().double() / codec.gain(lat.rate).double()
        noises = noise_maps(seed, 1, feats.shape[2:], torch.float64)

        def run(f, y0, y1, x0, x1):
            return self.net.apply_noise(f, [n[:, :, y0 << (i + 1):y1 << (i + 1), x0 << (i + 1):x1 << (i + 1)]
                                           for i, n in enumerate(noises)])
        return tiled(run, feats)


@lru_cache(maxsize=None)
def _arrays(generator_id: str) -> dict:
    with np.load(WEIGHTS_DIR / f"{generator_id}.npz") as f:
        return {k: f[k] for k in f.files}


def codec_of(generator_id: str) -> str:
    return json.loads(bytes(_arrays(generator_id)["meta"]).decode())["codec"]


@lru_cache(maxsize=None)
def load_generator(generator_id: str) -> LoadedGenerator:
    return LoadedGenerator(generator_id, _arrays(generator_id))
