"""Diffusion decoders (issue 15) on the perceptual codec's stored latents: idempotence, CDC-lite, CorrDiff-lite.

They read the same latents as the faithful decoder and never change them. What fixes a diffusion
decode's pixels besides the latents and the seed is a *preset* (it fixes the denoiser ids, weights by
hash in :mod:`.weights`, and every sampler setting, forever) and, for CorrDiff-lite, the
encoder-chosen correction codes (added by :func:`add_corrdiff`). They live in the container info
(``"diffusion": {"preset": ...}``, ``"corrdiff": "<one digit per step group>"``); an absent preset
means ``d1``, so containers of the default preset spend no byte on it (issue 14 keeps the info short:
at 0.05 bpp every byte counts).

Scale, stated honestly: sub-million-parameter U-Nets trained for CPU minutes on about 35 photos; the
decodes are slow on CPU (seconds to minutes per image) and for demonstration and measurement.
"""
from __future__ import annotations

import dataclasses
import enum
import time

from jpegshrink.errors import ImageError


class Decoder(enum.Enum):
    """Diffusion decoder names accepted by ``decode_image(blob, decoder=...)``."""

    IDEMPOTENCE = "idempotence"
    CDC = "cdc"
    CORRDIFF = "corrdiff"


NAMES = tuple(d.value for d in Decoder)


class DiffusionError(ImageError):
    """A diffusion decode cannot run on this container (e.g. CorrDiff asked for, no correction stored)."""


@dataclasses.dataclass(frozen=True)
class Preset:
    """Model ids and settings of one released configuration. Never edit an entry of PRESETS: add one."""

    prior_id: str
    cdc_id: str
    idempotence: "object"
    cdc: "object"
    corrdiff: "object"


def _presets() -> dict[str, Preset]:
    from jpegshrink.perceptual.diffusion.cdc import CDCSettings
    from jpegshrink.perceptual.diffusion.corrdiff import CorrDiffSettings
    from jpegshrink.perceptual.diffusion.idempotence import IdempotenceSettings
    from jpegshrink.perceptual.diffusion.sampler import SamplerSettings
    return {
        "d1": Preset(prior_id=PRIOR_ID, cdc_id=CDC_ID,
                     idempotence=IdempotenceSettings(sampler=SamplerSettings(steps=50)),
                     cdc=CDCSettings(sampler=SamplerSettings(steps=8, init_scale=0.8)),
                     corrdiff=CorrDiffSettings(cdc=CDCSettings(sampler=SamplerSettings(steps=8, init_scale=0.8)))),
    }


#: The denoisers of preset d1 (files in weights/, trained by tools/train_diffusion.py).
PRIOR_ID = "prior-abf22c0b"
CDC_ID = "cdc-e6c5c0a9"
DEFAULT_PRESET = "d1"


def container_info(preset: str = DEFAULT_PRESET) -> dict:
    """The ``info["diffusion"]`` entry for ``preset``: empty for the default ``d1`` (absence means d1),
    else the preset name. Settings are fixed forever by the preset; :func:`preset_info` spells them out."""
    if preset not in _presets():
        raise ValueError(f"unknown diffusion preset {preset!r}")
    return {} if preset == DEFAULT_PRESET else {"preset": preset}


def preset_info(preset: str = DEFAULT_PRESET) -> dict:
    """Every setting of a preset, spelled out (what BENCHMARKS.md and ``jpegshrink inspect`` readers want)."""
    p = _presets()[preset]
    return {"prior": p.prior_id, "cdc": p.cdc_id, "idempotence": p.idempotence.to_info(),
            "cdc_settings": p.cdc.to_info(), "corrdiff_settings": p.corrdiff.to_info()}


def _settings(info: dict) -> dict:
    d = info.get("diffusion") or {}
    presets = _presets()
    if d.get("preset", DEFAULT_PRESET) not in presets:
        raise DiffusionError(f"container names diffusion preset {d.get('preset')!r}, which this jpegshrink does not "
                             f"have (known: {', '.join(presets)}); upgrade jpegshrink")
    p = presets[d.get("preset", DEFAULT_PRESET)]
    return {"prior": p.prior_id, "cdc": p.cdc_id, "corrdiff_codes": info.get("corrdiff"),
            Decoder.IDEMPOTENCE: p.idempotence, Decoder.CDC: p.cdc, Decoder.CORRDIFF: p.corrdiff}


def _with_seed(settings, seed: int):
    """The same settings with the sampler's seed replaced (decode_image's ``seed``)."""
    if hasattr(settings, "sampler"):
        return dataclasses.replace(settings, sampler=dataclasses.replace(settings.sampler, seed=seed))
    return dataclasses.replace(settings, cdc=_with_seed(settings.cdc, seed))


def denoiser(model_id: str):
    from jpegshrink.perceptual.diffusion import sampler, weights
    net, param, _ = weights.load(model_id)
    return sampler.Denoiser(net, param)


def decode(codec, lat, decoder: str | Decoder, seed: int, info: dict, time_budget_s: float | None = None):
    """(1, 3, H, W) float pixels in [0, 1] of the latents ``lat`` by a diffusion decoder.

    ``info`` is the container info (its ``"diffusion"`` entry, or preset d1 when absent). With
    ``time_budget_s`` the sampler stops at the deadline and returns its current estimate (not
    reproducible across machines; None, the default, runs the recorded settings in full).
    """
    from jpegshrink.perceptual.diffusion import cdc, corrdiff, idempotence
    from jpegshrink.perceptual.diffusion.codec_view import CodecView
    try:
        which = Decoder(decoder)
    except ValueError:
        raise ValueError(f"unknown diffusion decoder {decoder!r}; known: {', '.join(NAMES)}") from None
    if time_budget_s is not None and not time_budget_s > 0:
        raise ValueError(f"time_budget_s must be positive or None, not {time_budget_s!r}")
    deadline = None if time_budget_s is None else time.monotonic() + time_budget_s
    s = _settings(info)
    view = CodecView(codec, lat.rate)
    shape = (1, 3, 16 * lat.symbols.shape[1], 16 * lat.symbols.shape[2])
    settings = _with_seed(s[which], seed)
    if which is Decoder.IDEMPOTENCE:
        return idempotence.decode(view, lat, denoiser(s["prior"]), shape, settings, deadline)
    if which is Decoder.CDC:
        return cdc.decode(view, lat, denoiser(s["cdc"]), shape, settings, deadline=deadline)
    codes = s["corrdiff_codes"]
    chosen_for = int(info.get("corrdiff_seed", info.get("seed", 0)))
    if codes is not None and seed != chosen_for:
        raise DiffusionError(f"this container's CorrDiff correction was chosen for seed {chosen_for}, not {seed}")
    if codes is None:
        raise DiffusionError("this container carries no CorrDiff correction (add one with "
                             "jpegshrink.perceptual.diffusion.add_corrdiff, or decode with decoder='cdc')")
    return corrdiff.decode(view, lat, denoiser(s["cdc"]), shape, settings, tuple(int(c) for c in codes), deadline)


def add_corrdiff(blob: bytes, image, seed: int | None = None) -> bytes:
    """The same container with CorrDiff-lite correction codes for decodes with ``seed`` added to its info.

    Encoder side (needs the original ``image``, uint8 H x W x 3): the latent streams are untouched; only
    the codes (info ``"corrdiff"``, one digit = 3 bits per step group) and, when it is not the
    container's seed, the seed they were chosen for (``"corrdiff_seed"``) are added.
    """
    import numpy as np

    from jpegshrink.coding import container
    from jpegshrink.perceptual import _open
    from jpegshrink.perceptual.diffusion import corrdiff
    from jpegshrink.perceptual.diffusion.codec_view import CodecView
    c, codec, lat = _open(blob)
    pixels = np.asarray(image)
    if pixels.shape != (c.info["height"], c.info["width"], 3) or pixels.dtype != np.uint8:
        raise ValueError(f"image must be the uint8 {c.info['height']}x{c.info['width']}x3 original of this container")
    seed = int(c.info.get("seed", 0) if seed is None else seed)
    info = dict(c.info)
    s = _settings(info)
    settings = _with_seed(s[Decoder.CORRDIFF], seed)
    x = codec.to_tensor(pixels)
    codes = corrdiff.choose(CodecView(codec, lat.rate), lat, denoiser(s["cdc"]), x, settings)
    info["corrdiff"] = "".join(str(c) for c in codes)   # one digit (3 bits) per step group
    if seed != int(c.info.get("seed", 0)):
        info["corrdiff_seed"] = seed
    return container.pack(dataclasses.replace(c, info=info))
