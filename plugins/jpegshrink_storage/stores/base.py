"""A small object-store interface over S3 (boto3) and local folders, for the migration and verify jobs.

This module holds the interface and the configuration; local.py and s3.py implement it (the errors
are in ``jpegshrink_storage.errors``, the reserved names in ``jpegshrink_storage.names``). Both jobs
need the same few operations with the same guarantees, whatever the backend:

* ``list`` every object under the root (paginated), ``get`` whole objects or their first bytes together
  with the ETag they had *at that read*, ``head`` for metadata, ``delete`` our own staging objects;
* ``put`` that can be made conditional on the current ETag (``if_match``), so that a source that another
  client replaced meanwhile is never clobbered. S3 servers that honour ``If-Match`` on writes get a real
  conditional request; the others (and local folders) get a HEAD re-check right before the write, which
  leaves a window of one round trip. :meth:`ObjectStore.probe_write_guard` finds out which.

Keys are relative to the root (``s3://bucket/prefix/`` or a folder). Store configurations are plain
picklable dataclasses, so Dask workers rebuild their own clients (:func:`jpegshrink_storage.stores.open_store`).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

#: ETag of a missing object in :meth:`ObjectStore.put`'s ``if_match`` re-check.
MISSING = ""


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


@dataclass(frozen=True)
class Scope:
    """Where a store's keys live: ``space`` names the namespace (an S3 endpoint and bucket, or the local
    disk), ``prefix`` the root inside it, ending in "/". Two stores overlap when one prefix starts the other
    in the same space."""

    space: str
    prefix: str

    def overlaps(self, other: Scope) -> bool:
        return self.space == other.space and (self.prefix.startswith(other.prefix)
                                              or other.prefix.startswith(self.prefix))


class ObjectStore(Protocol):
    """What the migration and verify jobs need from a backend."""

    config: StoreConfig

    def describe(self) -> str:
        """The location for people (reports, messages)."""

    def scope(self) -> Scope:
        """The location for comparisons (same place? one inside the other?)."""

    def check_access(self, create: bool = False) -> None:
        """Raise StoreError unless the root can be used; ``create`` makes a missing root (a destination)."""

    def probe_write_guard(self) -> WriteGuard:
        """How conditional replaces can be enforced on this store (may write a scratch object)."""

    def remove_staging(self) -> None:
        """Remove the staging folder (and an S3 folder-marker key for it) when nothing is staged in it."""

    def list(self) -> Iterator[ObjectRef]:
        """Every data object under the root, sorted by key (never the layer's own staging or temp keys)."""

    def get(self, key: str, first: int | None = None) -> Blob:
        """The object (or its ``first`` bytes) with the ETag it had at this read; NotFound if missing."""

    def head(self, key: str) -> Blob | None:
        """Metadata without data; None if missing."""

    def put(self, key: str, data: bytes, metadata: dict[str, str], content_type: str,
            if_match: str | None = None) -> str:
        """Store atomically, only if the current ETag is ``if_match`` (when given); return the new ETag."""

    def delete(self, key: str) -> None:
        """Remove the object (no error if it is missing)."""


