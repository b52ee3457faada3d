"""Container format v3 (reads v1 and v2 too): the bytes jpegshrink stores. See docs/format.md.

A short header comes first, so a reader of the first :data:`HEADER_SIZE` bytes learns the mode and the
original's length and sha256 (the storage layer lists folders that way). Its integers are varints and
its length varies (48 to 64 bytes), because on small files a fixed cost is a large part of what is
saved. A body follows: the model id, the fallback reason, the info, the layout blob and the streams,
closed by a CRC-32 so that damage is found before any decoder runs. The ``STORED`` mode's body is
only the reason and the original as it is, so an incompressible input costs the header, the reason
and the CRC: 53 bytes plus the reason, never the ~170 bytes of a zstd fallback in format v1.

Format v3 differs from v2 only in the info field: a zstd frame of the JSON with the format's info
dictionary instead of the JSON itself (an info of a lossy or perceptual container shrinks from ~250 to
~60 bytes; a low-rate perceptual object of a small photo is ~9 % smaller for it). A container without info (every
lossless one) has nothing to gain, so it is still written as v2: the oldest version that can hold a
container is the one written, and a reader one version behind still reads every lossless object.

Why CRC-32 and not a cryptographic digest: the trailing check only has to catch accidental damage
before a decoder starts (a forger can recompute any unkeyed digest, so a longer one buys nothing);
the end-to-end guarantee is the sha256 of the original, checked on every decode.
"""
from __future__ import annotations

import enum
import hashlib
import json
import struct
import zlib
from dataclasses import dataclass, field

from jpegshrink.coding import dictionary
from jpegshrink.errors import CorruptContainer, UnsupportedVersion

MAGIC = b"\x8aJSK\r\n\x1a\n"
FORMAT_VERSION = 3
#: What a container without info is written as: v3 changed only the info field, so v2 holds it exactly.
NO_INFO_VERSION = 2
#: Format versions this module reads; it writes :data:`FORMAT_VERSION` or :data:`NO_INFO_VERSION`.
READABLE_VERSIONS = (1, 2, 3)
#: The first this many bytes of any container (every version) hold its whole header.
HEADER_SIZE = 64
#: The smallest container there can be (v2, ``STORED``, empty original and reason): shorter objects are
#: not containers.
MIN_CONTAINER_SIZE = len(MAGIC) + 1 + 1 + 1 + 32 + 1 + 4 + 1 + 4
#: Largest value a header varint may hold; 9 bytes of 7 bits, so the v2 header never exceeds 64 bytes.
_MAX_HEADER_VARINT = (1 << 63) - 1
_MAX_STREAMS = 1024
_MAX_MODEL_ID = 255
_MAX_REASON = 1024  # a diagnostic, not payload: longer reasons are cut (on a character boundary)
_MAX_INFO = 1 << 20  # the info field is metadata, never payload (limit on the JSON, before and after zstd)
_INFO_ZSTD_LEVEL = 19  # infos are tiny: the highest level costs nothing
_CRC = struct.Struct("<I")

# Format version 1 (read only): a fixed 64-byte header and a BLAKE2b-128 digest at the end.
_V1_HEADER = struct.Struct("<8sHBBQ32sQI")  # magic, version, mode, flags, orig_len, sha256, total_len, crc32
_V1_DIGEST_SIZE = 16
assert _V1_HEADER.size == HEADER_SIZE


class Mode(enum.IntEnum):
    """How the payload encodes the original."""

    FALLBACK = 0  #: zstd of the original bytes (anything the coefficient path cannot reproduce)
    JPEG = 1  #: JPEG layout blob + coefficient streams from a named model
    LOSSY_JPEG = 2  #: as JPEG, but the JPEG was made by jpegshrink's lossy encoder: the source is gone
    PERCEPTUAL = 3  #: latents of a learned image codec (``model_id`` names it); decodes to pixels
    STORED = 4  #: the original bytes as they are (v2): for inputs that nothing makes smaller

    @property
    def lossy(self) -> bool:
        """True when the object cannot give back the file it was made from."""
        return self in (Mode.LOSSY_JPEG, Mode.PERCEPTUAL)


@dataclass(frozen=True)
class Header:
    """What the header says: enough to report an object's original size without decoding it."""

    version: int
    mode: Mode
    original_length: int
    original_sha256: bytes
    container_length: int
    #: Bytes the header takes (64 in v1; 48 to 64 in v2): the body starts here.
    header_length: int = HEADER_SIZE


@dataclass
class Container:
    """A decoded container (the header fields plus the body).

    In ``STORED`` mode ``streams`` is ``[original]`` and every field but ``reason`` is empty.
    """

    mode: Mode
    original_length: int
    original_sha256: bytes
    model_id: str = ""
    reason: str = ""
    layout: bytes = b""
    streams: list[bytes] = field(default_factory=list)
    #: JSON-serialisable metadata (lossy modes: source format and size, settings, measured score).
    info: dict = field(default_factory=dict)


def is_container(prefix: bytes) -> bool:
    """True when ``prefix`` (the first bytes of an object, at least 8) starts a jpegshrink container."""
    return prefix[: len(MAGIC)] == MAGIC


def read_header(prefix: bytes) -> Header:
    """Parse the header from the first bytes of a container.

    ``prefix`` needs at most :data:`HEADER_SIZE` bytes; a whole container shorter than that is fine.
    """
    prefix = bytes(prefix[:HEADER_SIZE])
    if len(prefix) < len(MAGIC) or not is_container(prefix):
        raise CorruptContainer("not a jpegshrink container (wrong magic bytes)")
    if len(prefix) < len(MAGIC) + 2:
        raise CorruptContainer("container truncated inside its header")
    version = prefix[len(MAGIC)]
    if version > max(READABLE_VERSIONS):  # a newer header's layout is unknown: say so before parsing it
        raise UnsupportedVersion(
            f"container format version {version} is newer than this jpegshrink understands "
            f"(up to {max(READABLE_VERSIONS)}); upgrade jpegshrink to read it")
    if version == 1:
        return _read_header_v1(prefix)
    if version not in READABLE_VERSIONS:  # (version 0)
        raise CorruptContainer(f"invalid container header (version {version})")
    reader = _Reader(prefix, len(MAGIC) + 1, len(prefix), what="header")
    mode_byte = reader.take(1)[0]
    original_length = reader.varint(_MAX_HEADER_VARINT)
    sha = reader.take(32)
    total = reader.varint(_MAX_HEADER_VARINT)
    crc_at = reader.pos
    (crc,) = _CRC.unpack(reader.take(4))
    if zlib.crc32(prefix[:crc_at]) != crc:
        raise CorruptContainer("container header checksum mismatch: the header is damaged")
    try:
        mode = Mode(mode_byte)
    except ValueError:
        raise CorruptContainer(f"unknown container mode {mode_byte}") from None
    header = Header(version, mode, original_length, sha, total, reader.pos)
    least = 1 + original_length if mode == Mode.STORED else 5  # a reason and the original; five fields
    if total < header.header_length + least + _CRC.size:
        raise CorruptContainer(f"container length {total} is impossible")
    return header


def pack(c: Container) -> bytes:
    """Serialise a container: format :data:`FORMAT_VERSION` when it has info, v2 (the same without
    compressed info) when it has none."""
    if len(c.streams) > _MAX_STREAMS:
        raise ValueError(f"too many streams ({len(c.streams)} > {_MAX_STREAMS})")
    if c.mode == Mode.STORED:
        if len(c.streams) != 1 or c.model_id or c.layout or c.info:
            raise ValueError("a STORED container holds a reason and the original, nothing else")
        if len(c.streams[0]) != c.original_length:
            raise ValueError("a STORED container's stream must be the original")
    model = c.model_id.encode()
    if len(model) > _MAX_MODEL_ID:
        raise ValueError(f"model id of {len(model)} bytes is over the {_MAX_MODEL_ID}-byte limit")
    reason = c.reason.encode()[:_MAX_REASON].decode("utf-8", "ignore").encode()
    info = info_json(c.info) if c.info else b""
    if len(info) > _MAX_INFO:
        raise ValueError(f"container info of {len(info)} bytes is over the {_MAX_INFO}-byte limit")
    version = FORMAT_VERSION if info else NO_INFO_VERSION
    if info:
        info = dictionary.compress_info(info, _INFO_ZSTD_LEVEL)
    if c.mode == Mode.STORED:
        body = [_varint(len(reason)), reason, c.streams[0]]
    else:
        body = [_varint(len(model)), model, _varint(len(reason)), reason, _varint(len(info)), info,
                _varint(len(c.layout)), c.layout, _varint(len(c.streams))]
        body += [_varint(len(s)) for s in c.streams]
        body += c.streams
    body_bytes = b"".join(body)
    body_bytes += _CRC.pack(zlib.crc32(body_bytes))
    return _pack_header(c, version, len(body_bytes)) + body_bytes


def unpack(blob: bytes) -> Container:
    """Parse and integrity-check a whole container; raises :class:`CorruptContainer` on any damage."""
    h = read_header(blob)
    if len(blob) != h.container_length:
        raise CorruptContainer(
            f"container is {len(blob)} bytes but its header says {h.container_length}: truncated or extended")
    if h.version == 1:
        return _unpack_v1(blob, h)
    end = len(blob) - _CRC.size
    if zlib.crc32(memoryview(blob)[h.header_length:end]) != _CRC.unpack_from(blob, end)[0]:
        raise CorruptContainer("container checksum mismatch: the stored bytes are damaged")
    reader = _Reader(blob, h.header_length, end)
    if h.mode == Mode.STORED:
        reason = reader.text(_MAX_REASON)
        if end - reader.pos != h.original_length:
            raise CorruptContainer("stored container does not hold exactly its original")
        return Container(h.mode, h.original_length, h.original_sha256, reason=reason,
                         streams=[reader.take(h.original_length)])
    model_id = reader.text(_MAX_MODEL_ID)
    reason = reader.text(_MAX_REASON)
    info = _parse_info(reader.take(reader.varint(_MAX_INFO)), compressed=h.version > NO_INFO_VERSION)
    layout = reader.take(reader.varint(end))
    n = reader.varint(_MAX_STREAMS)
    lengths = [reader.varint(end) for _ in range(n)]
    streams = [reader.take(length) for length in lengths]
    if reader.pos != end:
        raise CorruptContainer("container has unexplained bytes after its last stream")
    return Container(h.mode, h.original_length, h.original_sha256, model_id, reason, layout, streams, info)


def _pack_header(c: Container, version: int, body_length: int) -> bytes:
    if len(c.original_sha256) != 32:
        raise ValueError("original_sha256 must be 32 bytes")
    if not 0 <= c.original_length <= _MAX_HEADER_VARINT:
        raise ValueError(f"original length {c.original_length} does not fit the header")
    fields = (MAGIC + bytes([version, int(c.mode)]) + _varint(c.original_length)
              + bytes(c.original_sha256))
    # The total counts the header itself, whose length depends on the total's own varint: settle it.
    total = len(fields) + 1 + _CRC.size + body_length
    while len(fields) + len(_varint(total)) + _CRC.size + body_length != total:
        total = len(fields) + len(_varint(total)) + _CRC.size + body_length
    head = fields + _varint(total)
    return head + _CRC.pack(zlib.crc32(head))


def _varint(value: int) -> bytes:
    """Unsigned LEB128: 7 bits a byte, low bits first, high bit set on every byte but the last."""
    if value < 0:
        raise ValueError("varints are unsigned")
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_header_v1(prefix: bytes) -> Header:
    if len(prefix) < HEADER_SIZE:
        raise CorruptContainer(f"container truncated inside its {HEADER_SIZE}-byte header")
    _magic, version, mode, flags, orig_len, sha, total, crc = _V1_HEADER.unpack_from(prefix)
    if zlib.crc32(prefix[: HEADER_SIZE - 4]) != crc:
        raise CorruptContainer("container header checksum mismatch: the header is damaged")
    if version != 1 or flags != 0:
        raise CorruptContainer(f"invalid container header (version {version}, flags {flags})")
    if mode not in (Mode.FALLBACK, Mode.JPEG):
        if mode in {m.value for m in Mode}:
            raise CorruptContainer(f"container mode {Mode(mode).name} does not exist in format version 1")
        raise CorruptContainer(f"unknown container mode {mode}")
    if total < HEADER_SIZE + _V1_DIGEST_SIZE:
        raise CorruptContainer(f"container length {total} is impossible")
    return Header(1, Mode(mode), orig_len, sha, total, HEADER_SIZE)


def _unpack_v1(blob: bytes, h: Header) -> Container:
    end = len(blob) - _V1_DIGEST_SIZE
    if hashlib.blake2b(memoryview(blob)[:end], digest_size=_V1_DIGEST_SIZE).digest() != blob[end:]:
        raise CorruptContainer("container checksum mismatch: the stored bytes are damaged")
    reader = _Reader(blob, HEADER_SIZE, end)
    model_id = reader.text(0xFFFF, width=2)
    reason = reader.text(0xFFFF, width=2)
    layout = reader.take(reader.fixed(8))
    n = reader.fixed(2)
    lengths = [reader.fixed(8) for _ in range(n)]
    streams = [reader.take(length) for length in lengths]
    if reader.pos != end:
        raise CorruptContainer("container has unexplained bytes after its last stream")
    return Container(h.mode, h.original_length, h.original_sha256, model_id, reason, layout, streams)


def info_json(info: dict) -> bytes:
    """The canonical JSON of an info (sorted keys, no spaces): what v2 stores and v3 compresses."""
    return json.dumps(info, sort_keys=True, separators=(",", ":")).encode()


def _parse_info(raw: bytes, compressed: bool) -> dict:
    if not raw:
        return {}
    if compressed:  # dictionary.decompress raises CorruptContainer on a damaged frame
        raw = dictionary.decompress(raw, _MAX_INFO)
    try:
        info = json.loads(raw.decode())
    except ValueError:
        raise CorruptContainer("container info field is not valid JSON") from None
    if not isinstance(info, dict):
        raise CorruptContainer("container info field is not a JSON object")
    return info


class _Reader:
    """Bounds-checked cursor over a container's bytes; every limit is checked before anything is read."""

    def __init__(self, data: bytes, pos: int, end: int, what: str = "container") -> None:
        self.data, self.pos, self.end, self.what = data, pos, end, what

    def take(self, n: int) -> bytes:
        if n > self.end - self.pos:
            if self.what == "header":
                raise CorruptContainer("container truncated inside its header")
            raise CorruptContainer(f"container field of {n} bytes runs past the end (at byte {self.pos})")
        out = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        return out

    def fixed(self, width: int) -> int:
        return int.from_bytes(self.take(width), "little")

    def varint(self, limit: int) -> int:
        """A minimal LEB128 varint of at most 9 bytes and at most ``limit``: one value, one encoding."""
        value = 0
        for i in range(9):
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                if byte == 0 and i > 0:
                    raise CorruptContainer(f"non-minimal varint in the {self.what} (at byte {self.pos - 1})")
                if value > limit:
                    raise CorruptContainer(f"{self.what} field value {value} is over its limit {limit}")
                return value
        raise CorruptContainer(f"varint longer than 9 bytes in the {self.what} (at byte {self.pos})")

    def text(self, limit: int, width: int = 0) -> str:
        n = self.fixed(width) if width else self.varint(limit)
        try:
            return self.take(n).decode()
        except UnicodeDecodeError:
            raise CorruptContainer("container text fields are not UTF-8") from None
