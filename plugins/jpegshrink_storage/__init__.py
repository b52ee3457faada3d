"""Transparent jpegshrink storage: an fsspec layer (``jpegshrink::s3://bucket/a.jpg``), a FUSE mount,
and the jobs that migrate and verify whole buckets.

Objects keep their names; JPEGs are stored as jpegshrink containers and every read gives back the
original bytes. Objects that are not containers pass through unchanged, so the layer works over a
half-migrated bucket. The rooms:

* :mod:`jpegshrink_storage.fs` -- the ``jpegshrink::`` fsspec filesystem;
* :mod:`jpegshrink_storage.mount` -- ``jpegshrink mount``, that filesystem as a FUSE folder;
* :mod:`jpegshrink_storage.jobs` -- ``jpegshrink migrate`` and ``jpegshrink verify``: journal, report,
  executors (threads or Dask), retries;
* :mod:`jpegshrink_storage.stores` -- the object stores the jobs work on (a local folder, S3 via boto3);
* :mod:`jpegshrink_storage.errors`, :mod:`jpegshrink_storage.names` (reserved names),
  :mod:`jpegshrink_storage.atomic` (the one atomic file writer) -- shared by all of them.
"""
from __future__ import annotations

from jpegshrink_storage.errors import StorageError
from jpegshrink_storage.fs import JpegShrinkFileSystem

__all__ = ["JpegShrinkFileSystem", "StorageError"]
