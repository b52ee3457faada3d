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


#: Valid values of each encode_image target metric.
_TARGET_RANGES = {"ssimulacra2": (lambda v: 0 < v <= 100, "(0, 100]"), "bpp": (lambda v: v > 0, "> 0")}


def parse_target(target: dict, metrics: tuple[str, ...]) -> tuple[str, float]:
    """``{"metric": value}`` -> ``(metric, value)``, checked against the metrics a mode supports.

    One parser for every image mode, so a target is spelled and refused the same way everywhere.
    """
    if not isinstance(target, dict) or len(target) != 1:
        spelled = " or ".join(f"{{{m!r}: value}}" for m in metrics)
        raise ValueError(f"target must be {spelled}, not {target!r}")
    (metric, goal), = target.items()
    if metric not in metrics:
        raise ValueError(f"target metric must be one of {metrics}, not {metric!r}")
    goal = float(goal)
    valid, spelled = _TARGET_RANGES[metric]
    if not valid(goal):
        raise ValueError(f"target {metric}={goal} is out of range (must be {spelled})")
    return metric, goal


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
