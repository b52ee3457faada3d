"""Lossy high-bitrate mode: an image becomes a standard baseline JPEG, stored losslessly by our coder.

The encoder (:mod:`.encoder`) decides every coefficient itself (integer colour conversion, DCT,
per-image tables, masking-aware rate-distortion optimised rounding priced with our coder's context
shape), writes a baseline JPEG, and :func:`jpegshrink.codec.store_lossy_jpeg` codes it losslessly in
a container marked ``LOSSY_JPEG``. So ``decompress`` gives back the same JPEG bytes on every machine
(no floating point in decoding), any viewer opens them, and the source pixels are gone: the
container's info says so. Public entry points are :func:`jpegshrink.encode_image` and
:func:`jpegshrink.decode_image` (dispatched by :mod:`jpegshrink.image_api`).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from jpegshrink import codec
from jpegshrink.errors import BadImage, MissingDependency
from jpegshrink.image_api import parse_target
from jpegshrink.lossy import metrics
from jpegshrink.lossy.encoder import Settings, encode
from jpegshrink.lossy.source import decode_file, load

MODE = "high-bitrate"
#: Names the encoder version in the container info (bump when the same settings give other bytes).
ENCODER_ID = "jpegshrink-lossy-3"
#: The :class:`Settings` defaults of each encoder id that stores only the settings that differ from them
#: (lossy-1 and lossy-2 containers list every field). Frozen here, never edited: a container's info is
#: read with the defaults of the encoder that wrote it (:func:`settings_of`), and a change of defaults
#: changes the bytes, so it needs a new id (tests/test_lossy.py checks this entry against Settings()).
COMPACT_INFO_DEFAULTS = {
    "jpegshrink-lossy-3": {
        "quality": 90, "subsampling": "auto", "lam_milli": 20, "aq_strength": 25, "aq_threshold": 200,
        "tables": "jpegli", "flatten_luma": 60, "flatten_chroma": 0, "chroma_noise_percent": 100,
        "chroma_444_percent": 200, "rdo_rounds": 2, "run_trellis": 1, "chroma_sharpen": 100,
        "dc_percent": 45, "chroma_dc_percent": 30, "low_ac_percent": 75},
}
TARGET_METRICS = ("ssimulacra2", "bpp")
DEFAULT_QUALITY = 90
_TUNING = {f.name for f in dataclasses.fields(Settings)} - {"quality"}


def encode_image(image, *, quality: int | None = None, target: dict | None = None, strip_metadata: bool = False,
                 alpha: str = "refuse", model_id: str | None = None, measure: bool = True, **tuning) -> bytes:
    """A ``LOSSY_JPEG`` container from pixels or image-file bytes (see :func:`jpegshrink.encode_image`).

    ``quality`` (1..100) or ``target`` (``{"ssimulacra2": 85}`` or ``{"bpp": 1.2}``, reached by bisection
    over quality) but not both; ``strip_metadata`` drops EXIF/ICC/XMP; ``alpha="flatten"`` composites
    transparent images over white (refused otherwise); ``measure`` records the SSIMULACRA2 score
    when the package is installed; ``tuning`` are :class:`Settings` fields (``subsampling``...).
    """
    unknown = set(tuning) - _TUNING
    if unknown:
        raise TypeError(f"unknown encode_image option(s) for mode {MODE!r}: {', '.join(sorted(unknown))}")
    if quality is not None and target is not None:
        raise ValueError("give quality or target, not both")
    src = load(image, alpha=alpha, keep_metadata=not strip_metadata)

    def container(settings: Settings, score: float | None = None) -> bytes:
        jpeg, sub = _encode(src, settings)
        pixels = decode_file(jpeg)
        if score is None and measure and metrics.available("ssimulacra2"):
            score = metrics.ssimulacra2(src.pixels, pixels)
        info = _info(src, settings, sub, target, strip_metadata, score, metrics.psnr_y(src.pixels, pixels))
        return codec.store_lossy_jpeg(jpeg, info, model_id=model_id)

    if target is None:
        return container(Settings(quality=DEFAULT_QUALITY if quality is None else int(quality), **tuning))
    metric, goal = _parse_target(target)
    if metric == "bpp":   # the highest quality whose whole container (info included) fits the budget
        budget = goal * src.size[0] * src.size[1] / 8
        return _bisect(lambda q: container(Settings(quality=q, **tuning)), lambda blob: len(blob) <= budget,
                       want_highest=True)

    def scored(q: int) -> tuple[float, Settings]:
        settings = Settings(quality=q, **tuning)
        return metrics.ssimulacra2(src.pixels, decode_file(_encode(src, settings)[0])), settings

    score, settings = _bisect(scored, lambda r: r[0] >= goal, want_highest=False)
    return container(settings, score)


def _bisect(attempt, ok, *, want_highest: bool):
    """Over quality 1..100 (``ok`` assumed monotone): the highest ok one, or the lowest; the end if none is."""
    tried = {}

    def run(q):
        if q not in tried:
            tried[q] = attempt(q)
        return tried[q]
    lo, hi = 1, 100
    while lo < hi:
        if want_highest:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if ok(run(mid)) else (lo, mid - 1)
        else:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if ok(run(mid)) else (mid + 1, hi)
    return run(lo)


def decode_image(blob: bytes, *, restore: bool | str = False) -> np.ndarray:
    """Pixels of any non-perceptual container: its (lossy or original) JPEG/image bytes decoded by Pillow.

    ``restore=True`` (or a model name of :data:`restore.MODELS`) runs the decoded pixels of a JPEG
    through the learned deblocking filter (:mod:`.restore`, needs torch); the container and the JPEG
    bytes ``decompress`` returns are untouched. Content that is not a JPEG has no block artefacts and
    is returned as decoded.
    """
    if not isinstance(restore, (bool, str)):
        raise TypeError(f"restore must be True/False or a restoration model name, not {restore!r}")
    data = codec.decompress(blob)
    pixels = decode_file(data)
    if restore and data.startswith(b"\xff\xd8"):
        from jpegshrink.lossy import restore as restoration
        pixels = restoration.restore(pixels, restoration.jpeg_luma_steps(data), None if restore is True else restore)
    return pixels


def _info(src, settings: Settings, sub: str, target: dict | None, stripped: bool, ssimulacra2: float | None,
          psnr_y: float) -> dict:
    """The container's info: what the source was, how it was encoded, what it scored.

    Compact, because every byte of this JSON is stored in every container (at 0.25 MP and 1 bpp the
    full settings made ~1.7 % of the container): ``settings`` holds the quality, the subsampling chosen
    and only the fields that differ from this encoder's defaults (:data:`COMPACT_INFO_DEFAULTS`;
    :func:`settings_of` gives them all back); ``target``, ``source_conversions``, ``metadata``
    (``"stripped"``) and scores appear only when there is something to say. The JPEG's length is the
    container's ``original_length``. No free-text note: ``original_recoverable: false`` says it.
    """
    defaults = COMPACT_INFO_DEFAULTS[ENCODER_ID]
    full = settings.to_info()
    compact = {"quality": full["quality"], **{k: v for k, v in full.items() if k != "quality" and v != defaults[k]},
               "subsampling_chosen": sub}
    scores = {k: v for k, v in (("ssimulacra2", None if ssimulacra2 is None else round(ssimulacra2, 3)),
                                ("psnr_y", _finite(psnr_y))) if v is not None}
    info = {"mode": MODE, "encoder": ENCODER_ID, "original_recoverable": False,
            "source_format": src.source_format, "source_width": src.size[0], "source_height": src.size[1],
            "settings": compact}
    if src.conversions:
        info["source_conversions"] = src.conversions
    if stripped:
        info["metadata"] = "stripped"
    if target is not None:
        info["target"] = target
    if scores:
        info["scores"] = scores
    return info


def settings_of(info: dict) -> dict:
    """Every encoder setting of a lossy container's info (compact infos name only the non-default ones)."""
    settings = dict(info.get("settings", {}))
    defaults = COMPACT_INFO_DEFAULTS.get(info.get("encoder"))
    return {**defaults, **settings} if defaults is not None else settings


def _finite(x: float) -> float | None:
    return round(x, 3) if np.isfinite(x) else None  # JSON has no infinity (identical pixels)


def _parse_target(target: dict) -> tuple[str, float]:
    metric, goal = parse_target(target, TARGET_METRICS)
    if metric == "ssimulacra2" and not metrics.available("ssimulacra2"):
        raise MissingDependency("SSIMULACRA2 targets need the ssimulacra2 package: pip install ssimulacra2")
    return metric, goal


def _encode(src, settings: Settings) -> tuple[bytes, str]:
    try:
        e = encode(src, settings)
    except ValueError as err:  # metadata that cannot fit a JPEG segment
        raise BadImage(f"{err}; pass strip_metadata=True to encode without it") from None
    return e.jpeg, e.subsampling


__all__ = ["DEFAULT_QUALITY", "ENCODER_ID", "MODE", "Settings", "decode_image", "encode_image", "settings_of"]
