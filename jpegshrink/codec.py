"""The lossless codec: JPEG bytes -> JPEG parts -> coefficient streams -> container, and back.

Two promises are kept here, whatever the layers below do:

* ``decompress(compress(x)) == x`` for every ``x``. Each encode is decoded and compared before it is
  returned; anything the coefficient path cannot reproduce exactly (unsupported or corrupt JPEGs,
  non-JPEG bytes, an encoder error, a verify mismatch) is stored as zstd of the original, with the
  reason recorded in the container.
* ``decompress`` returns the original bytes or raises :class:`~jpegshrink.errors.ContainerError`; the
  output is checked against the sha256 stored in the header before it is returned.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import zstandard

from jpegshrink import jpeg, model
from jpegshrink.coding import container
from jpegshrink.coding.container import Container, Mode
from jpegshrink.errors import ContainerError, CorruptContainer, CorruptJpeg, UnknownModel, UnsupportedJpeg
from jpegshrink.model.base import ComponentSpec

log = logging.getLogger(__name__)

#: zstd level for fallbacks and layout blobs: JPEG scan data barely compresses, headers do.
ZSTD_LEVEL = 9
#: Largest original a container may claim; protects decoders from decompression bombs.
MAX_ORIGINAL_LENGTH = 1 << 32


@dataclass(frozen=True)
class ContainerInfo:
    """What :func:`inspect` tells about a stored object without decoding its coefficients."""

    format_version: int
    mode: str
    model_id: str
    original_length: int
    original_sha256: str
    stored_length: int
    reason: str


def compress(data: bytes, *, model_id: str | None = None, verify: bool = True) -> bytes:
    """Return a container that :func:`decompress` turns back into exactly ``data``.

    ``model_id`` picks a registered coefficient model (default: the newest). ``verify=False`` skips
    the decode-and-compare step; only benchmarks that measure it separately should use that.
    """
    data = bytes(data)
    sha = hashlib.sha256(data).digest()
    try:
        blob = _compress_jpeg(data, sha, model_id)
    except UnsupportedJpeg as e:
        return _fallback(data, sha, f"unsupported:{e.reason}")
    except CorruptJpeg as e:
        return _fallback(data, sha, f"corrupt-jpeg:{e}")
    except Exception as e:  # a model or layer bug must never lose data: store the fallback, loudly
        log.warning("coefficient path failed, storing fallback: %r", e, exc_info=True)
        return _fallback(data, sha, f"encoder-error:{type(e).__name__}:{e}")
    if verify:
        try:
            ok = decompress(blob) == data
        except ContainerError as e:
            ok = False
            log.warning("verify-on-write failed to decode: %s", e)
        if not ok:
            log.warning("verify-on-write mismatch, storing fallback")
            return _fallback(data, sha, "verify-mismatch")
    if len(blob) >= len(data):
        fallback = _fallback(data, sha, "no-gain")
        if len(fallback) < len(blob):
            return fallback
    return blob


def decompress(blob: bytes) -> bytes:
    """Return the original bytes of a container, or raise a :class:`~jpegshrink.errors.ContainerError`."""
    c = container.unpack(bytes(blob))
    if c.original_length > MAX_ORIGINAL_LENGTH:
        raise CorruptContainer(f"container claims an original of {c.original_length} bytes, over the limit")
    if c.mode == Mode.FALLBACK:
        if len(c.streams) != 1:
            raise CorruptContainer("fallback container must hold exactly one stream")
        out = _unzstd(c.streams[0], c.original_length)
    else:
        out = _decompress_jpeg(c)
    if len(out) != c.original_length or hashlib.sha256(out).digest() != c.original_sha256:
        raise CorruptContainer("decoded bytes do not match the sha256 stored in the container")
    return out


def inspect(blob: bytes) -> ContainerInfo:
    """Describe a container (checks its integrity, does not decode coefficients)."""
    c = container.unpack(bytes(blob))
    return ContainerInfo(container.FORMAT_VERSION, c.mode.name.lower(), c.model_id, c.original_length,
                         c.original_sha256.hex(), len(blob), c.reason)


def component_specs(layout: jpeg.JpegLayout) -> list[ComponentSpec]:
    """What a coefficient model is told about each component of a parsed JPEG (the decoder knows it too)."""
    return [ComponentSpec(c.block_rows, c.block_cols, c.h_samp, c.v_samp, c.quant_table)
            for c in layout.components]


def _compress_jpeg(data: bytes, sha: bytes, model_id: str | None) -> bytes:
    model_id = model_id or model.DEFAULT_MODEL_ID
    if model_id is None:
        raise UnsupportedJpeg("no-model", "no coefficient model is registered")
    m = model.get(model_id)
    parts = jpeg.parse(data)
    streams = m.encode(parts.coefficients, component_specs(parts.layout))
    layout = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(parts.layout.to_bytes())
    return container.pack(Container(Mode.JPEG, len(data), sha, m.model_id, "", layout, streams))


def _decompress_jpeg(c: Container) -> bytes:
    m = model.get(c.model_id)  # UnknownModel propagates as it is
    try:
        layout = jpeg.JpegLayout.from_bytes(_unzstd(c.layout, None))
        if layout.total_length != c.original_length:  # refuse before the model allocates anything
            raise CorruptContainer(f"layout describes {layout.total_length} bytes, header {c.original_length}")
        coefficients = m.decode(c.streams, component_specs(layout))
        return jpeg.rebuild(jpeg.JpegParts(layout, coefficients))
    except (UnknownModel, CorruptContainer):
        raise
    except Exception as e:  # any failure below means the stored bytes cannot be trusted
        raise CorruptContainer(f"container payload cannot be decoded: {type(e).__name__}: {e}") from e


def _fallback(data: bytes, sha: bytes, reason: str) -> bytes:
    payload = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data)
    return container.pack(Container(Mode.FALLBACK, len(data), sha, "", reason, b"", [payload]))


def _unzstd(payload: bytes, expected_length: int | None) -> bytes:
    try:
        d = zstandard.ZstdDecompressor()
        if expected_length is None:
            return d.decompress(payload, max_output_size=64 << 20)
        return d.decompress(payload, max_output_size=max(expected_length, 1))
    except zstandard.ZstdError as e:
        raise CorruptContainer(f"zstd payload is damaged: {e}") from e
