"""``encode_image`` / ``decode_image``: pick the image mode's implementation (imported lazily).

Each mode lives in its own package with the same two functions; this module only dispatches, so a
lossless-only install never imports an image encoder.
"""
from __future__ import annotations

import importlib

import numpy as np

from jpegshrink import codec

#: encode_image mode -> the package that implements it.
MODES = {"high-bitrate": "jpegshrink.lossy", "perceptual": "jpegshrink.perceptual"}
#: Container modes (ContainerInfo.mode) decoded to pixels by a mode's own package; the rest are JPEG/image bytes.
_PIXEL_DECODERS = {"perceptual": "jpegshrink.perceptual"}


def encode_image(image, mode: str = "high-bitrate", quality: int | None = None, target: dict | None = None,
                 **options) -> bytes:
    """A lossy container from a uint8 array (H x W x 3 RGB, H x W grey) or image-file bytes.

    ``quality`` 0..100 or ``target`` (``{"ssimulacra2": 85}``, ``{"bpp": 1.2}``); ``options`` are the mode's.
    """
    if mode not in MODES:
        raise ValueError(f"unknown image mode {mode!r}; known: {', '.join(MODES)}")
    return importlib.import_module(MODES[mode]).encode_image(image, quality=quality, target=target, **options)


def decode_image(blob: bytes, **options) -> np.ndarray:
    """uint8 pixels of any container (lossless ones too: their JPEG decoded with Pillow)."""
    mode = codec.inspect(blob).mode
    return importlib.import_module(_PIXEL_DECODERS.get(mode, "jpegshrink.lossy")).decode_image(blob, **options)
