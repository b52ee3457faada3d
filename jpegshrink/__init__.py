"""jpegshrink: store JPEGs in fewer bytes and give back the byte-identical original.

>>> blob = jpegshrink.compress(jpeg_bytes)
>>> jpegshrink.decompress(blob) == jpeg_bytes
True
"""
from __future__ import annotations

from jpegshrink.codec import ContainerInfo, compress, decompress, inspect, store_lossy_jpeg
from jpegshrink.coding.container import HEADER_SIZE, MIN_CONTAINER_SIZE, Header, is_container, read_header
from jpegshrink.errors import (ContainerError, CorruptContainer, CorruptJpeg, JpegShrinkError, UnknownModel,
                               UnsupportedJpeg, UnsupportedVersion)

__version__ = "0.1.0"

__all__ = [
    "HEADER_SIZE", "MIN_CONTAINER_SIZE", "ContainerError", "ContainerInfo", "CorruptContainer", "CorruptJpeg", "Header",
    "JpegShrinkError", "UnknownModel", "UnsupportedJpeg", "UnsupportedVersion", "compress", "decompress",
    "inspect", "is_container", "read_header", "store_lossy_jpeg",
]
