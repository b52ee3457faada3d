"""zstd with the format's dictionaries: how containers compress JPEG layout blobs (v2) and info (v3).

A zstd frame names the dictionary it was compressed with (its dictionary id, 0 for none), so a reader
needs no other field: :func:`decompress` picks the dictionary the frame asks for. Each dictionary is a
file in ``dictionaries/``, pinned here by its sha256; it is part of the format and never changes or
goes away (a better one gets a new id, made by tools/train_dictionary.py). Frames without a dictionary
(every v1 container) decode as they always did. Ids are unique across kinds (layout, info), so a frame
can never be read with the other kind's dictionary by mistake of naming.
"""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import zstandard

from jpegshrink.errors import CorruptContainer

_DIR = Path(__file__).resolve().parent / "dictionaries"
#: Dictionary id -> (file in ``dictionaries/``, its sha256).
DICTIONARIES = {
    1: ("layout-1.zdict", "273f73ecb0f9259b30d6751f778c3ff38817ea195eed9396481a9e1be0ce92d1"),
    2: ("info-2.zdict", "b7167434a097edf3d620fe4825e493dfd3984cd1667863e654c373966245c1a9"),
    3: ("lossy-layout-3.zdict", "c9779d5b46e30bea2182bb58eef29eaf0356744a3d6fd7c8afba10d707c88549"),
}
#: The dictionary new layout blobs are compressed with.
LAYOUT_DICTIONARY_ID = 1
#: The dictionary a format-v3 container's info JSON is compressed with.
INFO_DICTIONARY_ID = 2
#: The dictionary the layout blobs of our own lossy encoder's JPEGs are compressed with: their
#: quantisation tables, frame and scan headers are a few shapes, repeated (the generic dictionary 1
#: knows libjpeg's and camera layouts instead).
LOSSY_LAYOUT_DICTIONARY_ID = 3


@functools.lru_cache(maxsize=None)
def format_dictionary(dict_id: int) -> zstandard.ZstdCompressionDict:
    """The dictionary ``dict_id``, checked against its pinned sha256 (a damaged install fails here)."""
    try:
        name, expected = DICTIONARIES[dict_id]
    except KeyError:
        raise CorruptContainer(f"zstd frame names dictionary {dict_id}, which does not exist") from None
    raw = (_DIR / name).read_bytes()
    if hashlib.sha256(raw).hexdigest() != expected:
        raise RuntimeError(f"jpegshrink's zstd dictionary {name} is damaged: reinstall jpegshrink")
    return zstandard.ZstdCompressionDict(raw, dict_type=zstandard.DICT_TYPE_FULLDICT)


def compress_layout(blob: bytes, level: int, dict_id: int = LAYOUT_DICTIONARY_ID) -> bytes:
    """A zstd frame of ``blob`` that uses (and names) ``dict_id``: :data:`LAYOUT_DICTIONARY_ID` for
    JPEGs from anywhere, :data:`LOSSY_LAYOUT_DICTIONARY_ID` for the JPEGs of our own lossy encoder."""
    if dict_id not in (LAYOUT_DICTIONARY_ID, LOSSY_LAYOUT_DICTIONARY_ID):
        raise ValueError(f"zstd dictionary {dict_id} is not a layout dictionary")
    return zstandard.ZstdCompressor(level=level, dict_data=format_dictionary(dict_id)).compress(blob)


def decompress(frame: bytes, max_output_size: int) -> bytes:
    """Decompress one zstd frame with the dictionary it names; :class:`CorruptContainer` if it is damaged."""
    try:
        params = zstandard.get_frame_parameters(frame)
        # zstandard sizes its output by the frame's own content size when it has one and then ignores
        # max_output_size: a frame that claims terabytes would be allocated. Refuse it before that.
        if params.content_size != zstandard.CONTENTSIZE_UNKNOWN and params.content_size > max_output_size:
            raise CorruptContainer(f"zstd payload is damaged: it claims {params.content_size} bytes, "
                                   f"over the {max_output_size} allowed here")
        dict_id = params.dict_id
        d = zstandard.ZstdDecompressor(dict_data=format_dictionary(dict_id)) if dict_id \
            else zstandard.ZstdDecompressor()
        return d.decompress(frame, max_output_size=max_output_size)
    except zstandard.ZstdError as e:
        raise CorruptContainer(f"zstd payload is damaged: {e}") from e


def compress_info(blob: bytes, level: int) -> bytes:
    """A zstd frame of a container's info JSON that uses (and names) :data:`INFO_DICTIONARY_ID`.

    Why: an info is ~250 bytes of mostly the same keys and encoder names, a visible share of a small
    photo's lossy or low-rate perceptual object (docs/format.md, "What version 3 changed"). The
    dictionary holds those keys, so only the values cost bytes (~60 bytes an info).
    """
    return zstandard.ZstdCompressor(level=level, dict_data=format_dictionary(INFO_DICTIONARY_ID),
                                    write_content_size=True, write_checksum=False).compress(blob)
