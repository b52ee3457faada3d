"""Object stores for the migration and verify jobs: the :class:`ObjectStore` protocol, a local folder
(:mod:`.local`) and S3 through boto3 (:mod:`.s3`, imported only for ``s3://`` URLs, so local jobs need no
boto3)."""
from __future__ import annotations

import threading

from jpegshrink_storage.errors import MissingDependency, StoreError
from jpegshrink_storage.stores.base import (MISSING, Blob, ObjectRef, ObjectStore, Scope, StoreConfig,
                                            WriteGuard)

__all__ = ["MISSING", "Blob", "ObjectRef", "ObjectStore", "Scope", "StoreConfig", "WriteGuard", "cached_store",
           "open_store"]


def open_store(config: StoreConfig) -> ObjectStore:
    """The store for ``config.url``: ``s3://bucket[/prefix]`` or a local folder (path or ``file://``)."""
    if config.url.startswith("s3://"):
        try:
            from jpegshrink_storage.stores.s3 import S3Store
        except ImportError as e:  # boto3/botocore: the s3 extra
            raise MissingDependency("s3:// locations", "s3", e) from None
        return S3Store(config)
    if "://" in config.url and not config.url.startswith("file://"):
        raise StoreError(f"unsupported location {config.url!r}: use s3://bucket/prefix or a local folder")
    from jpegshrink_storage.stores.local import LocalStore

    return LocalStore(config)


_cache: dict[StoreConfig, ObjectStore] = {}
_cache_lock = threading.Lock()


def cached_store(config: StoreConfig) -> ObjectStore:
    """One store (and connection pool) per configuration per process; used by worker processes."""
    with _cache_lock:
        if config not in _cache:
            _cache[config] = open_store(config)
        return _cache[config]
