"""Transparent jpegshrink storage: an fsspec layer (``jpegshrink::s3://bucket/a.jpg``) and a FUSE mount.

Objects keep their names; JPEGs are stored as jpegshrink containers and every read gives back the
original bytes. Objects that are not containers pass through unchanged, so the layer works over a
half-migrated bucket.
"""
from __future__ import annotations

from jpegshrink_storage.fs import JpegShrinkFileSystem

__all__ = ["JpegShrinkFileSystem"]
