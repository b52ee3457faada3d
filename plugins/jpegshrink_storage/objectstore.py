"""A small object-store interface over S3 (boto3) and local folders, for the migration and verify jobs.

This module holds the interface, the errors and the configuration; localstore.py and s3store.py
implement it. Both jobs need the same few operations with the same guarantees, whatever the backend:

* ``list`` every object under the root (paginated), ``get`` whole objects or their first bytes together
  with the ETag they had *at that read*, ``head`` for metadata, ``delete`` our own staging objects;
* ``put`` that can be made conditional on the current ETag (``if_match``), so that a source that another
  client replaced meanwhile is never clobbered. S3 servers that honour ``If-Match`` on writes get a real
  conditional request; the others (and local folders) get a HEAD re-check right before the write, which
  leaves a window of one round trip. :meth:`S3Store.probe_conditional_writes` finds out which.

Keys are relative to the root (``s3://bucket/prefix/`` or a folder). Store configurations are plain
picklable dataclasses, so Dask workers rebuild their own clients (:func:`open_store`).
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

#: Reserved folder (under the root) for in-place staging copies and probes; never listed as data.
STAGING_DIR = ".jpegshrink-staging"
#: Prefix of temporary files (local folders) that atomic writes rename into place.
TMP_MARK = ".jsk-tmp-"
#: ETag of a missing object in :meth:`ObjectStore.put`'s ``if_match`` re-check.
MISSING = ""


class StoreError(Exception):
    """The store cannot be used at all (credentials, missing bucket, unreachable endpoint): stop the job."""


class PreconditionFailed(Exception):
    """A conditional write found another ETag than expected: someone changed the object meanwhile."""


class NotFound(Exception):
    """The object does not exist (any more)."""


@dataclass(frozen=True)
class ObjectRef:
    """One listed object: key relative to the store root, size in bytes, ETag (opaque change token)."""

    key: str
    size: int
    etag: str


@dataclass(frozen=True)
class Blob:
    """Bytes read from the store with the ETag, user metadata and content type they had at that read."""

    data: bytes
    etag: str
    metadata: dict[str, str]
    content_type: str
    size: int  #: size of the whole object (``data`` may be only its first bytes)


@dataclass(frozen=True)
class WriteGuard:
    """How conditional replaces are enforced: ``"if-match"`` (server-side) or ``"head-recheck"``."""

    single: str = "head-recheck"
    multipart: str = "head-recheck"


@dataclass(frozen=True)
class StoreConfig:
    """Everything needed to open a store in any process (picklable for Dask)."""

    url: str
    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    max_connections: int = 16
    multipart_threshold: int = 16 << 20
    multipart_chunksize: int = 16 << 20
    max_attempts: int = 4  #: botocore per request; the job steps retry longer (retry.py)
    guard: WriteGuard = field(default_factory=WriteGuard)


class ObjectStore(Protocol):
    """What the migration and verify jobs need from a backend."""

    config: StoreConfig

    def describe(self) -> str: ...
    def check_access(self) -> None: ...
    def list(self) -> Iterator[ObjectRef]: ...
    def get(self, key: str, first: int | None = None) -> Blob: ...
    def head(self, key: str) -> Blob | None: ...
    def put(self, key: str, data: bytes, metadata: dict[str, str], content_type: str,
            if_match: str | None = None) -> str: ...
    def delete(self, key: str) -> None: ...


def is_internal(key: str) -> bool:
    """True for keys the jobs own (staging copies, temp files): never data, never listed."""
    parts = key.split("/")
    return STAGING_DIR in parts[:-1] or parts[-1].startswith(TMP_MARK) or parts[-1] == STAGING_DIR


def staging_key(key: str) -> str:
    """Where the verified copy of ``key`` waits while ``key`` itself is replaced in place."""
    return f"{STAGING_DIR}/{key}"


def open_store(config: StoreConfig) -> ObjectStore:
    """The store for ``config.url``: ``s3://bucket[/prefix]`` or a local folder (path or ``file://``)."""
    if config.url.startswith("s3://"):
        from jpegshrink_storage.s3store import S3Store  # here: the backends import this module

        return S3Store(config)
    if "://" in config.url and not config.url.startswith("file://"):
        raise StoreError(f"unsupported location {config.url!r}: use s3://bucket/prefix or a local folder")
    from jpegshrink_storage.localstore import LocalStore

    return LocalStore(config)


_cache: dict[StoreConfig, ObjectStore] = {}
_cache_lock = threading.Lock()


def cached_store(config: StoreConfig) -> ObjectStore:
    """One store (and connection pool) per configuration per process; used by worker processes."""
    with _cache_lock:
        if config not in _cache:
            _cache[config] = open_store(config)
        return _cache[config]
