"""Perceptual mode: a learned image codec whose one bitstream decodes faithfully (MSE) or realistically.

For new uploads stored at low rates (about 0.05-0.5 bits per pixel). The encoder (:mod:`.model`, the
public seam for other decoders) turns pixels into integer latents of a gained mean-scale hyperprior;
their coding tables are chosen by an *integer* hyper-decoder (:mod:`.intnet`) so the latents decode
identically on every machine; constriction's ANS coder (:mod:`.entropy`) writes them. Decoders
(:mod:`.decoders`): ``faithful`` (the MSE synthesis) and ``perceptual`` (a conditional GAN generator,
:mod:`.gan`) read the same latents; the container records which one reads default to, and the seed.

What ``jpegshrink.decompress`` returns for such a container: PNG bytes of the recorded decoder's
output. The container header's length and sha256 describe the PNG made when it was encoded; the
integer latents are what is verified exactly on every decode (their sha256 is in the info), while the
PNG is not re-checked, because float synthesis and PNG compressors may differ across machines and
versions (docs/perceptual.md, docs/format.md). Public entry points: :func:`jpegshrink.encode_image`
(``mode="perceptual"``) and :func:`jpegshrink.decode_image`.
"""
from __future__ import annotations

import hashlib
import io

import numpy as np

from jpegshrink.coding import container
from jpegshrink.coding.container import Container, Mode
from jpegshrink.errors import BadImage, CorruptContainer, ImageError, MissingDependency
from jpegshrink.image_api import parse_target

MODE = "perceptual"
KIND = "lossy-perceptual"
#: Names this encoder's version in the container info (bump when the same settings give other bytes).
ENCODER_ID = "jpegshrink-perceptual-2"
DEFAULT_QUALITY = 50
TARGET_METRICS = ("bpp",)
#: Largest width x height encoded (memory: about 120 bytes per pixel at encode, float64 decode).
MAX_PIXELS = 50_000_000
_PNG_LEVEL = 6
#: Hex digits of the latents' sha256 kept in the info (64 bits: the container CRC already catches damage;
#: this catches a decoder that reads intact bytes into other latents, e.g. a changed table or coder).
LATENT_DIGEST_HEX = 16
#: Bytes the final container has beyond a bisection probe's (PNG length varint, "psnr_rgb"): about 20.
_FINAL_MARGIN = 24


def encode_image(image, *, quality: int | None = None, target: dict | None = None, decoder: str = "faithful",
                 seed: int = 0, alpha: str = "refuse", model_id: str | None = None, optimize_steps: int = 0,
                 roi_weight=None) -> bytes:
    """A ``PERCEPTUAL`` container from pixels or image-file bytes (see :func:`jpegshrink.encode_image`).

    ``quality`` 0..100 picks a point on the codec's rate ladder (0 ~ 0.05 bpp, 100 ~ 0.6 bpp on photos);
    ``target={"bpp": b}`` picks the highest rate whose whole container fits ``b`` bits per pixel.
    ``decoder`` ("faithful", "perceptual" or a generator id) and ``seed`` are recorded as what reads
    (``decompress``, ``decode_image()`` without arguments) use; any decoder can still be asked for.

    ``optimize_steps`` > 0: encode-time latent optimisation (:mod:`.refine`, "Code Editing"): that many
    gradient steps on the latents for rate + lambda * distortion before coding. Same decoder, same
    container; fewer bytes at about the same quality (BENCHMARKS.md: 100 steps, ~6 % BD-rate),
    at about 0.1 CPU-seconds per step per 100k pixels. The bytes are deterministic on one machine and
    thread count. ``roi_weight``: a (height, width) array of distortion weights >= 0 (needs
    ``optimize_steps``): bits move towards the heavily weighted pixels. With ``target``, the rate is
    chosen without optimisation and the optimised container then fits the budget with room to spare.
    """
    from jpegshrink.perceptual import decoders, model
    if quality is not None and target is not None:
        raise ValueError("give quality or target, not both")
    if not isinstance(optimize_steps, int) or optimize_steps < 0:
        raise ValueError(f"optimize_steps must be a non-negative int, not {optimize_steps!r}")
    if roi_weight is not None and not optimize_steps:
        raise ValueError("roi_weight acts through the latent optimisation: give optimize_steps > 0 too")
    if quality is not None and not 0 <= quality <= 100:
        raise ValueError(f"quality must be 0..100, not {quality}")
    if not isinstance(seed, int) or not 0 <= seed < 2 ** 63:
        raise ValueError(f"seed must be a non-negative int, not {seed!r}")
    model.require_torch()
    codec = model.load(model_id or decoders.default_codec(decoder))
    decoder_id = decoders.resolve(decoder, codec.model_id)
    pixels, source_format, conversions = _load(image, alpha)
    height, width = pixels.shape[:2]
    x = codec.to_tensor(pixels)

    def build(rate: float, with_png: bool, steps: int = 0) -> tuple[bytes, object]:
        # The info records the rate to 6 decimals and decoders read that, so the latents and the PNG
        # whose length and sha256 the header holds are made at exactly that rate (made at the unrounded
        # rate, a target-bpp object's PNG could differ from every later decode of it by a pixel: its
        # listed size then disagreed with the bytes a read returns).
        rate = round(rate, 6)
        if steps:
            from jpegshrink.perceptual import refine
            lat = refine.optimise(codec, x, rate, (height, width), steps, weight=roi_weight).latents
        else:
            lat = codec.encode_latents(x, rate)
        streams = codec.pack(lat)
        check = codec.unpack(streams, lat.symbols.shape[1:], rate)  # verify-on-write: the exact part
        if check.digest() != lat.digest():
            raise ImageError("verify-on-write failed: the latents did not decode to themselves")
        # Kept short: at 0.05 bpp a 0.25 MP photo is ~1.6 kB, and every byte here counts in it.
        info = {"kind": KIND, "lossy": True, "encoder": ENCODER_ID, "source_format": source_format,
                "source_conversions": conversions or None, "width": width, "height": height,
                "rate": rate, "latent_shape": list(lat.symbols.shape[1:]), "decoder": decoder_id,
                "seed": seed, "latents_sha256": lat.digest()[:LATENT_DIGEST_HEX], "target": target}
        png = b"\0" * 32
        if with_png:
            decoded = decoders.decode(codec, lat, decoder_id, seed, (width, height), info)
            png = _png(decoded)
            if decoder_id == decoders.FAITHFUL:
                info["psnr_rgb"] = _psnr(pixels, decoded)
        c = Container(Mode.PERCEPTUAL, len(png), hashlib.sha256(png).digest(), codec.model_id,
                      info={k: v for k, v in info.items() if v is not None}, streams=streams)
        return container.pack(c), lat

    if target is None:
        q = DEFAULT_QUALITY if quality is None else quality
        return build(q / 100 * (codec.rates - 1), True, optimize_steps)[0]
    budget = _parse_target(target) * width * height / 8
    # Bisect without decoding (the PNG's length and the PSNR, which the final container records, are left
    # out: _FINAL_MARGIN bytes stand in for them), then step down until the real container fits.
    lo, hi = 0.0, float(codec.rates - 1)
    if len(build(hi, False)[0]) + _FINAL_MARGIN <= budget:
        lo = hi
    else:
        for _ in range(14):  # container size grows with rate; 14 halvings: rate to 3e-4
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if len(build(mid, False)[0]) + _FINAL_MARGIN <= budget else (lo, mid)
    blob = build(lo, True, optimize_steps)[0]
    while len(blob) > budget and lo > 0:
        lo = max(0.0, lo - 0.01 * (codec.rates - 1))
        blob = build(lo, True, optimize_steps)[0]
    return blob


def decode_image(blob: bytes, *, decoder: str | None = None, seed: int | None = None,
                 time_budget_s: float | None = None) -> np.ndarray:
    """uint8 (H, W, 3) pixels of a ``PERCEPTUAL`` container by the recorded (or the given) decoder and seed.

    ``time_budget_s`` bounds the diffusion decoders (issue 15): they stop early and return their current
    estimate, which is then not reproducible across machines; the other decoders ignore it.
    """
    c, codec, lat = _open(blob)
    from jpegshrink.perceptual import decoders
    decoder_id = c.info["decoder"] if decoder is None else decoders.resolve(decoder, codec.model_id)
    seed = c.info.get("seed", 0) if seed is None else seed
    return decoders.decode(codec, lat, decoder_id, int(seed), (c.info["width"], c.info["height"]), c.info,
                           time_budget_s)


def decompress_png(blob: bytes) -> bytes:
    """What ``jpegshrink.decompress`` returns for a ``PERCEPTUAL`` container: a PNG of the recorded decode."""
    return _png(decode_image(blob))


def _open(blob: bytes):
    from jpegshrink.perceptual import model
    c = container.unpack(bytes(blob))
    if c.mode != Mode.PERCEPTUAL:
        raise ImageError(f"not a perceptual container (mode {c.mode.name.lower()})")
    try:
        width, height, rate = int(c.info["width"]), int(c.info["height"]), float(c.info["rate"])
        lh, lw = (int(v) for v in c.info["latent_shape"])
        digest = c.info["latents_sha256"]
    except (KeyError, TypeError, ValueError):
        raise CorruptContainer("perceptual container info lacks its image/latent fields") from None
    if not (0 < width and 0 < height and width * height <= MAX_PIXELS and lh == -(-height // 64) * 4
            and lw == -(-width // 64) * 4) or len(c.streams) != 2:
        raise CorruptContainer("perceptual container's sizes or streams are inconsistent")
    codec = model.load(c.model_id)
    if not 0 <= rate <= codec.rates - 1:
        raise CorruptContainer(f"perceptual container rate {rate} is outside the model's ladder")
    try:
        lat = codec.unpack(c.streams, (lh, lw), rate)
    except (ValueError, RuntimeError) as err:  # constriction reports a damaged stream as ValueError
        raise CorruptContainer(f"perceptual latent stream is damaged: {err}") from None
    if not isinstance(digest, str) or lat.digest()[:len(digest)] != digest or len(digest) != LATENT_DIGEST_HEX:
        raise CorruptContainer("perceptual latents do not match the sha256 recorded at encode time")
    return c, codec, lat


def _load(image, alpha: str) -> tuple[np.ndarray, str, list[str]]:
    """uint8 (H, W, 3) RGB from an array or image-file bytes; sizes checked before pixels are decoded.

    (The lossy mode's loader also keeps metadata for its JPEG; this mode writes no file to keep it in.)
    """
    if alpha not in ("refuse", "flatten"):
        raise ValueError(f"alpha must be 'refuse' or 'flatten', not {alpha!r}")
    conversions: list[str] = []
    if isinstance(image, np.ndarray):
        a, fmt = image, "array"
        if a.dtype != np.uint8 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3):
            raise BadImage(f"pixels must be uint8 H x W x 3 or H x W, not {a.dtype} {a.shape}")
        _check_size(a.shape[1], a.shape[0])
    elif isinstance(image, (bytes, bytearray, memoryview)):
        try:
            from PIL import Image
        except ImportError:
            raise MissingDependency("decoding image files needs Pillow: pip install 'jpegshrink[perceptual]'") from None
        try:
            img = Image.open(io.BytesIO(bytes(image)))
            fmt = img.format or "unknown"
            _check_size(*img.size)
            img.load()
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
            raise BadImage(f"cannot decode the image file: {err}") from None
        if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
            rgba = np.asarray(img.convert("RGBA"))
            if rgba[..., 3].min() < 255:
                if alpha == "refuse":
                    raise BadImage("image has transparency; pass alpha='flatten' to composite it over white")
                f = rgba[..., 3:4].astype(np.float64) / 255
                a = np.round(rgba[..., :3] * f + 255 * (1 - f)).astype(np.uint8)
                conversions.append("alpha flattened over white")
            else:
                a = rgba[..., :3]
        elif img.mode in ("I;16", "I;16B", "I"):
            a = np.round(np.asarray(img, np.float64) * 255 / 65535).clip(0, 255).astype(np.uint8)
            conversions.append("16-bit -> 8-bit")
        else:
            a = np.asarray(img.convert("RGB"))
            if img.mode != "RGB":
                conversions.append(f"{img.mode} -> RGB")
    else:
        raise TypeError(f"image must be a uint8 array or image-file bytes, not {type(image).__name__}")
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
        conversions.append("grey -> RGB (the codec is RGB; decodes are RGB)")
    return np.ascontiguousarray(a), fmt, conversions


def _check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise BadImage(f"image is {width}x{height}: nothing to encode")
    if width * height > MAX_PIXELS:
        raise BadImage(f"image is {width}x{height}; the perceptual mode encodes at most {MAX_PIXELS} pixels")


def _png(a: np.ndarray) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG", compress_level=_PNG_LEVEL)
    return buf.getvalue()


def _psnr(a: np.ndarray, b: np.ndarray) -> float | None:
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return round(float(10 * np.log10(255 ** 2 / mse)), 3) if mse > 0 else None


def _parse_target(target: dict) -> float:
    return parse_target(target, TARGET_METRICS)[1]


__all__ = ["DEFAULT_QUALITY", "ENCODER_ID", "KIND", "MODE", "decode_image", "decompress_png", "encode_image"]
