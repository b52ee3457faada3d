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
from dataclasses import dataclass, field

import zstandard

from jpegshrink import jpeg, model
from jpegshrink._native import image_threads
from jpegshrink.coding import container, dictionary
from jpegshrink.coding.container import Container, Mode
from jpegshrink.errors import ContainerError, CorruptContainer, CorruptJpeg, UnknownModel, UnsupportedJpeg
from jpegshrink.model.base import ComponentSpec

log = logging.getLogger(__name__)

#: zstd level for fallbacks and layout blobs: JPEG scan data barely compresses, headers do.
ZSTD_LEVEL = 9
#: Largest original a container may claim; protects decoders from decompression bombs.
MAX_ORIGINAL_LENGTH = 1 << 32
#: Fallback reason for bytes that do not even start like a JPEG (no SOI marker).
NOT_JPEG = "not-jpeg"
_SOI = b"\xff\xd8"


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
    #: True when the object cannot give back the file it was made from (lossy modes).
    lossy: bool = False
    #: The container's metadata: for lossy modes the source format and size, the settings, the score.
    info: dict = field(default_factory=dict)


def compress(data: bytes, *, model_id: str | None = None, verify: bool = True) -> bytes:
    """Return a container that :func:`decompress` turns back into exactly ``data``.

    ``model_id`` picks a registered coefficient model (default: the newest). ``verify=False`` skips
    the decode-and-compare step; only benchmarks that measure it separately should use that.

    A caller's mistake fails here, before any work: ``data`` that is not bytes-like or a ``model_id``
    that is not a string raises ``TypeError``, an unknown ``model_id`` raises :class:`UnknownModel`.
    Only what goes wrong *below* (an unsupported or corrupt JPEG, a model that raises, a stream that
    does not decode to the same bytes) becomes a fallback, with the reason recorded. The result is
    never more than ``len(data)`` plus 53 to 70 bytes and the reason (header with sha256, reason, CRC):
    when no coding pays, the original is stored as it is (mode ``stored``).
    """
    data = _as_bytes(data)
    model_id = _check_model_id(model_id)
    sha = hashlib.sha256(data).digest()
    if not data.startswith(_SOI):
        return _fallback(data, sha, NOT_JPEG)
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
    """Return the original bytes of a container, or raise a :class:`~jpegshrink.errors.ContainerError`.

    For a ``PERCEPTUAL`` container (no original bytes exist) it returns a PNG of the decode its info records.
    """
    c = container.unpack(bytes(blob))
    if c.original_length > MAX_ORIGINAL_LENGTH:
        raise CorruptContainer(f"container claims an original of {c.original_length} bytes, over the limit")
    if c.mode == Mode.STORED:
        out = c.streams[0]
    elif c.mode == Mode.FALLBACK:
        if len(c.streams) != 1:
            raise CorruptContainer("fallback container must hold exactly one stream")
        out = _unzstd(c.streams[0], c.original_length)
    elif c.mode in (Mode.JPEG, Mode.LOSSY_JPEG):
        out = _decompress_jpeg(c)
    elif c.mode == Mode.PERCEPTUAL:
        # A PNG of the recorded decoder's output. Its integer latents are checked exactly (sha256 in the
        # info); the PNG is not held to the header's sha256, which describes the PNG made at encode time:
        # float synthesis and PNG compressors may differ across machines (docs/perceptual.md).
        from jpegshrink import perceptual
        return perceptual.decompress_png(blob)
    else:
        raise CorruptContainer(f"mode {c.mode.name} has no byte-exact decoding here")
    if len(out) != c.original_length or hashlib.sha256(out).digest() != c.original_sha256:
        raise CorruptContainer("decoded bytes do not match the sha256 stored in the container")
    return out


def inspect(blob: bytes) -> ContainerInfo:
    """Describe a container (checks its integrity, does not decode coefficients)."""
    blob = bytes(blob)
    c = container.unpack(blob)
    return ContainerInfo(container.read_header(blob).version, c.mode.name.lower(), c.model_id,
                         c.original_length, c.original_sha256.hex(), len(blob), c.reason, c.mode.lossy,
                         dict(c.info))


def store_lossy_jpeg(jpeg_bytes: bytes, info: dict, *, model_id: str | None = None) -> bytes:
    """Store a JPEG that jpegshrink's own lossy encoder made, as a container marked lossy.

    The coefficients are coded losslessly, so the container gives back exactly ``jpeg_bytes``; it is
    marked :attr:`Mode.LOSSY_JPEG` because the *source* image is gone. ``info`` (JSON) records what the
    source was and how it was encoded. Verified like every encode; there is no fallback, because a JPEG
    our encoder wrote that our coder cannot store is a bug to report, not a case to hide.
    """
    jpeg_bytes = _as_bytes(jpeg_bytes)
    model_id = _check_model_id(model_id)
    blob = _compress_jpeg(jpeg_bytes, hashlib.sha256(jpeg_bytes).digest(), model_id,
                          mode=Mode.LOSSY_JPEG, info={"lossy": True, **info})
    if decompress(blob) != jpeg_bytes:
        raise ContainerError("verify-on-write failed for a lossy JPEG container")
    return blob


def component_specs(layout: jpeg.JpegLayout) -> list[ComponentSpec]:
    """What a coefficient model is told about each component of a parsed JPEG (the decoder knows it too)."""
    return [ComponentSpec(c.block_rows, c.block_cols, c.h_samp, c.v_samp, c.quant_table)
            for c in layout.components]


def _compress_jpeg(data: bytes, sha: bytes, model_id: str | None, *, mode: Mode = Mode.JPEG,
                   info: dict | None = None) -> bytes:
    if model_id is None:
        raise UnsupportedJpeg("no-model", "no coefficient model is registered")
    m = model.get(model_id)
    parts = jpeg.parse(data)
    streams = m.encode(parts.coefficients, component_specs(parts.layout))
    layout = parts.layout
    if mode == Mode.LOSSY_JPEG:  # our writer's Huffman tables follow from the coefficients: store none
        layout = layout.leave_out_tables(parts.coefficients)
    raw = layout.to_bytes()
    layout = dictionary.compress_layout(raw, ZSTD_LEVEL)
    if mode == Mode.LOSSY_JPEG:  # (always a v3 container: a v2 reader never meets the newer dictionary)
        # Our encoder's layouts are what the lossy dictionary knows; a JPEG from elsewhere stored as lossy
        # may be better served by the generic one. The frame names its dictionary: keep the smaller.
        lossy = dictionary.compress_layout(raw, ZSTD_LEVEL, dictionary.LOSSY_LAYOUT_DICTIONARY_ID)
        layout = min(layout, lossy, key=len)
    return container.pack(Container(mode, len(data), sha, m.model_id, "", layout, streams, info or {}))


def _decompress_jpeg(c: Container) -> bytes:
    m = model.get(c.model_id)  # UnknownModel propagates as it is
    try:
        layout = jpeg.JpegLayout.from_bytes(_unzstd(c.layout, None))
        if layout.total_length != c.original_length:  # refuse before the model allocates anything
            raise CorruptContainer(f"layout describes {layout.total_length} bytes, header {c.original_length}")
        coefficients = m.decode(c.streams, component_specs(layout), out=jpeg.coefficient_buffers(layout))
        return jpeg.rebuild(jpeg.JpegParts(layout, coefficients), threads=image_threads())
    except (UnknownModel, CorruptContainer):
        raise
    except Exception as e:  # any failure below means the stored bytes cannot be trusted
        raise CorruptContainer(f"container payload cannot be decoded: {type(e).__name__}: {e}") from e


def _fallback(data: bytes, sha: bytes, reason: str) -> bytes:
    """zstd of ``data`` with the reason, or ``data`` as it is when zstd does not pay for its own cost."""
    payload = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data)
    packed = container.pack(Container(Mode.FALLBACK, len(data), sha, "", reason, b"", [payload]))
    stored = container.pack(Container(Mode.STORED, len(data), sha, reason=reason, streams=[data]))
    return packed if len(packed) < len(stored) else stored


def _as_bytes(data) -> bytes:
    """``data`` as bytes; anything that is not bytes-like is a caller's mistake, not a fallback."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"compress() takes bytes, bytearray or memoryview, not {type(data).__name__}")
    return bytes(data)


def _check_model_id(model_id: str | None) -> str | None:
    """The model id to write with (default: the newest); a typo is an error now, not a fallback later."""
    if model_id is None:
        return model.DEFAULT_MODEL_ID
    if not isinstance(model_id, str):
        raise TypeError(f"model_id must be a str, not {type(model_id).__name__}")
    if model_id not in model.registered_ids():
        raise UnknownModel(f"unknown model id {model_id!r}; known models: {', '.join(model.registered_ids())}")
    return model_id


def _unzstd(payload: bytes, expected_length: int | None) -> bytes:
    """One zstd frame (with the dictionary it names, if any), at most ``expected_length`` (or 64 MiB)."""
    return dictionary.decompress(payload, 64 << 20 if expected_length is None else max(expected_length, 1))
