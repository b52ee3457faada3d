"""Pixel decoders on the same latents: ``faithful`` (the MSE synthesis) and generative ones, by id.

A container records the decoder its reads default to (``info["decoder"]``, an id) and the seed; any
decoder can be asked for at read time. ``"perceptual"`` is an alias, resolved *at encode time* to the
newest generator id and recorded as that id, so an old container keeps decoding with the generator it
was written for even after a newer one ships.

Faithful pixels: the synthesis runs in float64. Its inputs (the integer latents) are identical
everywhere; float64 rounding differs across CPUs/threads only around 1e-13, and a pixel changes only
if its value lands that close to a .5 rounding boundary, so the uint8 output is reproducible in
practice (the determinism test checks it across ISA caps and thread counts), though not *proved*
bit-exact the way the latents are.
"""
from __future__ import annotations

import copy
from functools import lru_cache

import numpy as np

from jpegshrink.errors import ImageError
from jpegshrink.perceptual.model import Latents, LearnedCodec, require_torch

FAITHFUL = "faithful"
PERCEPTUAL = "perceptual"
#: Diffusion decoders (issue 15, jpegshrink.perceptual.diffusion): ids are their names; models are in the info.
DIFFUSION = ("idempotence", "cdc", "corrdiff")
#: Generator weight files (weights/<id>.npz), newest last; each names the codec it was trained on. Never remove.
GENERATORS: tuple[str, ...] = ()


class UnknownDecoder(ImageError):
    """decode_image was asked for a decoder this version does not have."""


def resolve(name: str, codec_id: str) -> str:
    """The decoder id recorded for ``name`` ("faithful", "perceptual" or an id) on the codec ``codec_id``."""
    if name == FAITHFUL:
        return FAITHFUL
    if name == PERCEPTUAL:
        ids = [g for g in GENERATORS if _generator_codec(g) == codec_id]
        if not ids:
            raise UnknownDecoder(f"no perceptual decoder is trained for codec {codec_id}")
        return ids[-1]
    if name in GENERATORS or name in DIFFUSION:
        return name
    raise UnknownDecoder(f"unknown decoder {name!r}; known: faithful, perceptual, {', '.join(DIFFUSION)}, "
                         f"{', '.join(GENERATORS) or '-'}")


def decode(codec: LearnedCodec, lat: Latents, decoder_id: str, seed: int, size: tuple[int, int],
           info: dict | None = None, time_budget_s: float | None = None) -> np.ndarray:
    """uint8 (H, W, 3) pixels of ``lat`` by ``decoder_id``, cropped to ``size`` = (width, height).

    ``info`` (the container info) and ``time_budget_s`` are read by the diffusion decoders only.
    """
    require_torch()
    import torch
    if decoder_id == FAITHFUL:
        g_s = _float64_synthesis(codec.model_id)
        with torch.no_grad():
            x = g_s(lat.y_hat().double() / codec.gain(lat.rate).double())
    elif decoder_id in GENERATORS:
        from jpegshrink.perceptual import gan
        gen = gan.load_generator(decoder_id)
        with torch.no_grad():
            x = gen.decode(codec, lat, seed)
    elif decoder_id in DIFFUSION:
        from jpegshrink.perceptual import diffusion
        x = diffusion.decode(codec, lat, decoder_id, seed, info or {}, time_budget_s).detach()
    else:
        raise UnknownDecoder(f"unknown decoder {decoder_id!r}")
    w, h = size
    a = (x[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return np.ascontiguousarray(a[:h, :w])


@lru_cache(maxsize=None)
def _float64_synthesis(model_id: str):
    from jpegshrink.perceptual import model
    return copy.deepcopy(model.load(model_id).g_s).double()


def _generator_codec(generator_id: str) -> str:
    from jpegshrink.perceptual import gan
    return gan.codec_of(generator_id)
