"""Container format v2 (reads v1 too): the bytes jpegshrink stores. See docs/format.md for the layout.

A fixed 64-byte header comes first, so a reader of the first 64 bytes learns the original length and
sha256 (the storage layer lists folders that way). The body holds the model id, the fallback reason,
the layout blob and length-prefixed streams; a BLAKE2b-128 digest over everything before it closes
the container, so damage is found before any decoding starts.
"""
from __future__ import annotations

import enum
import hashlib
import json
import struct
import zlib
from dataclasses import dataclass, field

from jpegshrink.errors import CorruptContainer, UnsupportedVersion

MAGIC = b"\x8aJSK\r\n\x1a\n"
FORMAT_VERSION = 2
#: Format versions this module reads; it writes only :data:`FORMAT_VERSION`.
READABLE_VERSIONS = (1, 2)
HEADER_SIZE = 64
DIGEST_SIZE = 16
_HEADER = struct.Struct("<8sHBBQ32sQI")  # magic, version, mode, flags, orig_len, sha256, total_len, crc32
assert _HEADER.size == HEADER_SIZE
_MAX_STREAMS = 1024
_MAX_INFO = 1 << 20  # the info field is metadata, never payload


class Mode(enum.IntEnum):
    """How the payload encodes the original."""

    FALLBACK = 0  #: zstd of the original bytes (anything the coefficient path cannot reproduce)
    JPEG = 1  #: JPEG layout blob + coefficient streams from a named model
    LOSSY_JPEG = 2  #: as JPEG, but the JPEG was made by jpegshrink's lossy encoder: the source is gone
    PERCEPTUAL = 3  #: latents of a learned image codec (``model_id`` names it); decodes to pixels

    @property
    def lossy(self) -> bool:
        """True when the object cannot give back the file it was made from."""
        return self in (Mode.LOSSY_JPEG, Mode.PERCEPTUAL)


@dataclass(frozen=True)
class Header:
    """The fixed 64-byte header: enough to report an object's original size without decoding it."""

    version: int
    mode: Mode
    original_length: int
    original_sha256: bytes
    container_length: int


@dataclass
class Container:
    """A decoded container body (the header fields plus the variable part)."""

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
    """Parse the fixed header from the first :data:`HEADER_SIZE` bytes of a container."""
    if len(prefix) < len(MAGIC) or not is_container(prefix):
        raise CorruptContainer("not a jpegshrink container (wrong magic bytes)")
    if len(prefix) < HEADER_SIZE:
        raise CorruptContainer(f"container truncated inside its {HEADER_SIZE}-byte header")
    magic, version, mode, flags, orig_len, sha, total, crc = _HEADER.unpack_from(prefix)
    if zlib.crc32(prefix[: HEADER_SIZE - 4]) != crc:
        raise CorruptContainer("container header checksum mismatch: the header is damaged")
    if version > max(READABLE_VERSIONS):
        raise UnsupportedVersion(
            f"container format version {version} is newer than this jpegshrink understands "
            f"(up to {max(READABLE_VERSIONS)}); upgrade jpegshrink to read it")
    if version not in READABLE_VERSIONS or flags != 0:
        raise CorruptContainer(f"invalid container header (version {version}, flags {flags})")
    try:
        mode = Mode(mode)
    except ValueError:
        raise CorruptContainer(f"unknown container mode {mode}") from None
    if version == 1 and mode not in (Mode.FALLBACK, Mode.JPEG):
        raise CorruptContainer(f"container mode {mode.name} does not exist in format version 1")
    if total < HEADER_SIZE + DIGEST_SIZE:
        raise CorruptContainer(f"container length {total} is impossible")
    return Header(version, mode, orig_len, sha, total)


def pack(c: Container) -> bytes:
    """Serialise a container (format :data:`FORMAT_VERSION`)."""
    if len(c.streams) > _MAX_STREAMS:
        raise ValueError(f"too many streams ({len(c.streams)} > {_MAX_STREAMS})")
    model = c.model_id.encode()
    reason = c.reason.encode()[:65535]
    info = json.dumps(c.info, sort_keys=True, separators=(",", ":")).encode() if c.info else b""
    if len(info) > _MAX_INFO:
        raise ValueError(f"container info of {len(info)} bytes is over the {_MAX_INFO}-byte limit")
    body = [struct.pack("<H", len(model)), model, struct.pack("<H", len(reason)), reason,
            struct.pack("<I", len(info)), info,
            struct.pack("<Q", len(c.layout)), c.layout, struct.pack("<H", len(c.streams))]
    body += [struct.pack("<Q", len(s)) for s in c.streams]
    body += c.streams
    body_bytes = b"".join(body)
    total = HEADER_SIZE + len(body_bytes) + DIGEST_SIZE
    head = _HEADER.pack(MAGIC, FORMAT_VERSION, int(c.mode), 0, c.original_length, c.original_sha256, total, 0)
    head = head[:-4] + struct.pack("<I", zlib.crc32(head[:-4]))
    out = head + body_bytes
    return out + hashlib.blake2b(out, digest_size=DIGEST_SIZE).digest()


def unpack(blob: bytes) -> Container:
    """Parse and integrity-check a whole container; raises :class:`CorruptContainer` on any damage."""
    h = read_header(blob)
    if len(blob) != h.container_length:
        raise CorruptContainer(
            f"container is {len(blob)} bytes but its header says {h.container_length}: truncated or extended")
    end = len(blob) - DIGEST_SIZE
    if hashlib.blake2b(memoryview(blob)[:end], digest_size=DIGEST_SIZE).digest() != blob[end:]:
        raise CorruptContainer("container checksum mismatch: the stored bytes are damaged")
    reader = _Reader(blob, HEADER_SIZE, end)
    try:
        model_id = reader.take(reader.u16()).decode()
        reason = reader.take(reader.u16()).decode()
        info = _parse_info(reader.take(reader.u32())) if h.version >= 2 else {}
    except UnicodeDecodeError:
        raise CorruptContainer("container text fields are not UTF-8") from None
    layout = reader.take(reader.u64())
    n = reader.u16()
    lengths = [reader.u64() for _ in range(n)]
    streams = [reader.take(length) for length in lengths]
    if reader.pos != end:
        raise CorruptContainer("container has unexplained bytes after its last stream")
    return Container(h.mode, h.original_length, h.original_sha256, model_id, reason, layout, streams, info)


def _parse_info(raw: bytes) -> dict:
    if not raw:
        return {}
    if len(raw) > _MAX_INFO:
        raise CorruptContainer(f"container info field of {len(raw)} bytes is over the limit")
    try:
        info = json.loads(raw.decode())
    except ValueError:
        raise CorruptContainer("container info field is not valid JSON") from None
    if not isinstance(info, dict):
        raise CorruptContainer("container info field is not a JSON object")
    return info


class _Reader:
    """Bounds-checked cursor over the container body."""

    def __init__(self, data: bytes, pos: int, end: int) -> None:
        self.data, self.pos, self.end = data, pos, end

    def take(self, n: int) -> bytes:
        if n > self.end - self.pos:
            raise CorruptContainer(f"container field of {n} bytes runs past the end (at byte {self.pos})")
        out = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        return out

    def u16(self) -> int:
        return struct.unpack("<H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.take(8))[0]
