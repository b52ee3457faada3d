"""The ``jpegshrink::`` fsspec filesystem: JPEGs stored as containers, originals served on every read.

:mod:`.filesystem` is the filesystem, :mod:`.files` its file objects, :mod:`.objects` how bytes become
stored bytes and back, :mod:`.headers` the cache of container headers that listings need.
"""
from __future__ import annotations

from jpegshrink_storage.fs.filesystem import JpegShrinkFileSystem

__all__ = ["JpegShrinkFileSystem"]
