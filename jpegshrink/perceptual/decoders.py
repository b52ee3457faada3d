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
GENERATORS: tuple[str, ...] = ("gan1-1d21af5e", "gan1-0d51ec13")


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
    if name in GENERATORS:
        if _generator_codec(name) != codec_id:
            raise UnknownDecoder(f"generator {name} was trained on codec {_generator_codec(name)}, not {codec_id}")
        return name
    if name in DIFFUSION:
        return name
    raise UnknownDecoder(f"unknown decoder {name!r}; known: faithful, perceptual, {', '.join(DIFFUSION)}, "
                         f"{', '.join(GENERATORS) or '-'}")


def default_codec(name: str) -> str:
    """The codec new containers are written with when the caller names none: the newest registered one
    that has decoder ``name`` (a generator is trained on one codec's latents; a newer codec may not
    have one yet, and then "perceptual" keeps using the newest codec that does)."""
    from jpegshrink.perceptual import model
    if name == PERCEPTUAL:
        with_generator = [c for c in model.REGISTERED if any(_generator_codec(g) == c for g in GENERATORS)]
        if not with_generator:
            raise UnknownDecoder("no perceptual decoder is trained for any codec")
        return with_generator[-1]
    if name in GENERATORS:
        return _generator_codec(name)
    return model.DEFAULT_MODEL_ID


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
            x = tiled(lambda f, *_: g_s(f), lat.y_hat().double() / codec.gain(lat.rate).double())
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


#: Tiles of the latent grid decoded one at a time (bounds memory: ~0.3 GB a tile in float64), with a margin
#: wider than the synthesis' receptive field (about 2 latent positions), so tiling changes no value.
TILE, MARGIN = 32, 4


def tiled(run, feats):
    """``run(features_with_margin, y0, y1, x0, x1)`` -> pixels, over fixed tiles; the tiles' centres stitched.

    The tile grid depends only on the image size, never on the machine, so every decode does the same sums.
    """
    import torch
    _, _, h, w = feats.shape
    if h <= TILE + 2 * MARGIN and w <= TILE + 2 * MARGIN:
        return run(feats, 0, h, 0, w)
    out = torch.empty(1, 3, h * 16, w * 16, dtype=feats.dtype)
    for ty in range(0, h, TILE):
        for tx in range(0, w, TILE):
            y0, x0 = max(0, ty - MARGIN), max(0, tx - MARGIN)
            y1, x1 = min(h, ty + TILE + MARGIN), min(w, tx + TILE + MARGIN)
            px = run(feats[:, :, y0:y1, x0:x1], y0, y1, x0, x1)
            cy, cx = (ty - y0) * 16, (tx - x0) * 16
            th, tw = (min(h, ty + TILE) - ty) * 16, (min(w, tx + TILE) - tx) * 16
            out[:, :, ty * 16:ty * 16 + th, tx * 16:tx * 16 + tw] = px[:, :, cy:cy + th, cx:cx + tw]
    return out


@lru_cache(maxsize=None)
def _float64_synthesis(model_id: str):
    from jpegshrink.perceptual import model
    return copy.deepcopy(model.load(model_id).g_s).double()


def _generator_codec(generator_id: str) -> str:
    from jpegshrink.perceptual import gan
    return gan.codec_of(generator_id)
