"""What a stored object says about itself: the user metadata the migration writes and verify checks.

The container header already holds the original size and sha256; the same facts in S3 user metadata let
audit tools (and ``verify``) cross-check without trusting one copy, and record what produced the object.
"""
from __future__ import annotations

from enum import Enum

import jpegshrink

PREFIX = "jpegshrink-"
ORIGINAL_SIZE = PREFIX + "original-size"
ORIGINAL_SHA256 = PREFIX + "original-sha256"
CODEC = PREFIX + "codec"
MODEL = PREFIX + "model"
CONTENT_TYPE = PREFIX + "content-type"
SOURCE_ETAG = PREFIX + "source-etag"
FALLBACK_REASON = PREFIX + "fallback-reason"
#: Content type of stored containers (the original's is kept in :data:`CONTENT_TYPE`).
CONTAINER_CONTENT_TYPE = "application/x-jpegshrink"


class Kind(str, Enum):
    """What an object is, from its first bytes."""

    CONTAINER = "container"
    JPEG = "jpeg"  #: starts with SOI and a marker
    OTHER = "other"


def classify(prefix: bytes) -> Kind:
    """What an object is, from its first bytes (at least :data:`jpegshrink.HEADER_SIZE` of them)."""
    if jpegshrink.is_container(prefix):
        return Kind.CONTAINER
    if prefix[:3] == b"\xff\xd8\xff":
        return Kind.JPEG
    return Kind.OTHER


def container_metadata(info: jpegshrink.ContainerInfo, content_type: str, source_etag: str) -> dict[str, str]:
    """User metadata for a stored container (S3 metadata must be ASCII, 2 KB in all)."""
    meta = {
        ORIGINAL_SIZE: str(info.original_length),
        ORIGINAL_SHA256: info.original_sha256,
        CODEC: f"jpegshrink/{jpegshrink.__version__} container-v{info.format_version} mode={info.mode}",
        MODEL: info.model_id or "-",
        CONTENT_TYPE: _ascii(content_type or "image/jpeg"),
        SOURCE_ETAG: _ascii(source_etag),
    }
    if info.reason:
        meta[FALLBACK_REASON] = _ascii(info.reason)[:256]
    return meta


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode().replace("\n", " ")
