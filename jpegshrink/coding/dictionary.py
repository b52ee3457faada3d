"""zstd with the format's dictionaries: how container format v2 compresses JPEG layout blobs.

A zstd frame names the dictionary it was compressed with (its dictionary id, 0 for none), so a reader
needs no other field: :func:`decompress` picks the dictionary the frame asks for. Each dictionary is a
file in ``dictionaries/``, pinned here by its sha256; it is part of the format and never changes or
goes away (a better one gets a new id, made by tools/train_layout_dict.py). Frames without a dictionary
(every v1 container) decode as they always did.
"""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import zstandard

from jpegshrink.errors import CorruptContainer

_DIR = Path(__file__).resolve().parent / "dictionaries"
#: Dictionary id -> sha256 of its file ``dictionaries/layout-<id>.zdict``.
LAYOUT_DICTIONARIES = {
    1: "273f73ecb0f9259b30d6751f778c3ff38817ea195eed9396481a9e1be0ce92d1",
}
#: The dictionary new layout blobs are compressed with.
LAYOUT_DICTIONARY_ID = 1


@functools.lru_cache(maxsize=None)
def layout_dictionary(dict_id: int) -> zstandard.ZstdCompressionDict:
    """The dictionary ``dict_id``, checked against its pinned sha256 (a damaged install fails here)."""
    try:
        expected = LAYOUT_DICTIONARIES[dict_id]
    except KeyError:
        raise CorruptContainer(f"layout blob names zstd dictionary {dict_id}, which does not exist") from None
    raw = (_DIR / f"layout-{dict_id}.zdict").read_bytes()
    if hashlib.sha256(raw).hexdigest() != expected:
        raise RuntimeError(f"jpegshrink's layout dictionary {dict_id} is damaged: reinstall jpegshrink")
    return zstandard.ZstdCompressionDict(raw, dict_type=zstandard.DICT_TYPE_FULLDICT)


def compress_layout(blob: bytes, level: int) -> bytes:
    """A zstd frame of ``blob`` that uses (and names) :data:`LAYOUT_DICTIONARY_ID`."""
    return zstandard.ZstdCompressor(level=level, dict_data=layout_dictionary(LAYOUT_DICTIONARY_ID)).compress(blob)


def decompress(frame: bytes, max_output_size: int) -> bytes:
    """Decompress one zstd frame with the dictionary it names; :class:`CorruptContainer` if it is damaged."""
    try:
        dict_id = zstandard.get_frame_parameters(frame).dict_id
        d = zstandard.ZstdDecompressor(dict_data=layout_dictionary(dict_id)) if dict_id \
            else zstandard.ZstdDecompressor()
        return d.decompress(frame, max_output_size=max_output_size)
    except zstandard.ZstdError as e:
        raise CorruptContainer(f"zstd payload is damaged: {e}") from e
