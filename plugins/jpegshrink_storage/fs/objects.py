"""What a stored object is (container or pass-through) and how bytes become stored bytes and back.

Only the public codec API is used, so the layer works with any container the codec writes.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import jpegshrink
from jpegshrink import HEADER_SIZE, BadImage, JpegShrinkError
from jpegshrink_storage.fs.policy import LOSSLESS, UploadPolicy, classify

log = logging.getLogger(__name__)

#: First bytes of every JPEG (SOI marker); only such data is worth running through the codec.
JPEG_SOI = b"\xff\xd8"


@dataclass(frozen=True)
class StoredHeader:
    """What the first :data:`HEADER_SIZE` bytes of an object say about it.

    ``original_size`` is None for pass-through objects (not containers). ``error`` is set when the
    object starts like a container but its header is damaged: listings then show the stored size and
    reads raise the codec's error.
    """

    original_size: int | None = None
    original_sha256: str | None = None
    error: str | None = None
    lossy: bool = False  #: made by jpegshrink's lossy encoder: the source image is gone (product rule 1)
    mode: str | None = None  #: the container's mode (``jpegshrink.inspect(...).mode``: "jpeg", "lossy_jpeg"...)

    @property
    def is_container(self) -> bool:
        return self.original_size is not None


PASS_THROUGH = StoredHeader()


def describe(prefix: bytes, stored_size: int) -> StoredHeader:
    """Classify an object from its first bytes and its stored size (a cheap, ranged read)."""
    if not jpegshrink.is_container(prefix):
        return PASS_THROUGH
    try:
        header = jpegshrink.read_header(bytes(prefix[:HEADER_SIZE]))
    except JpegShrinkError as e:
        return StoredHeader(error=str(e))
    if header.container_length != stored_size:
        return StoredHeader(error=f"container header says {header.container_length} bytes, "
                                  f"the object has {stored_size}: truncated or extended")
    return StoredHeader(header.original_length, header.original_sha256.hex(), lossy=header.mode.lossy,
                        mode=header.mode.name.lower())


def encode_for_storage(data: bytes, compress: bool = True, policy: UploadPolicy = LOSSLESS, *,
                       upload: bool = True, name: str = "") -> bytes:
    """The bytes to store for ``data``; :func:`decode_stored` of them is ``data``, or its lossy JPEG.

    With a lossy ``policy`` and ``upload`` (a new object, not an append), data the policy encodes
    (:meth:`UploadPolicy.encodes_lossily`) becomes a lossy JPEG container made by
    ``jpegshrink.encode_image``, unless the encoder refuses it (transparency, several frames, a damaged
    file: ``BadImage``) or the container would not be smaller than what a lossless store of the data
    takes: then the data is stored as every other write (never lose quality for nothing). Otherwise JPEG-looking data (FF D8) is
    compressed losslessly (``jpegshrink.compress`` verifies by decoding) unless ``compress`` is False or
    the container would not be smaller. Data that itself starts like a container is always wrapped,
    otherwise reading it back would decode it instead of returning it.
    """
    data = bytes(data)
    if jpegshrink.is_container(data):
        return jpegshrink.compress(data)
    lossless = _lossless(data, compress)
    if upload and policy.encodes_lossily(classify(data)):
        try:
            blob = jpegshrink.encode_image(data, **policy.encode_options())
        except BadImage as e:
            log.info("%s: stored without the lossy mode: %s", name or "upload", e)
        else:
            if len(blob) < len(lossless):
                return blob
            log.info("%s: lossy container (%d B) not smaller than the lossless store (%d B): stored losslessly",
                     name or "upload", len(blob), len(lossless))
    return lossless


def _lossless(data: bytes, compress: bool) -> bytes:
    if not compress or not data.startswith(JPEG_SOI):
        return data
    blob = jpegshrink.compress(data)
    return blob if len(blob) < len(data) else data


def decode_stored(blob: bytes) -> bytes:
    """The original bytes of a stored object (containers are decoded and sha256-checked)."""
    return jpegshrink.decompress(blob) if jpegshrink.is_container(blob) else bytes(blob)
