"""A small object-store interface over S3 (boto3) and local folders, for the migration and verify jobs.

Both jobs need the same few operations with the same guarantees, whatever the backend:

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

import errno
import io
import json
import mimetypes
import os
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

#: Reserved folder (under the root) for in-place staging copies and probes; never listed as data.
STAGING_DIR = ".jpegshrink-staging"
_TMP_MARK = ".jsk-tmp-"
_XATTR = "user.jpegshrink.meta"
#: S3's smallest part (all but the last); s3transfer rounds up to it as well.
MIN_PART_SIZE = 5 << 20
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
    return STAGING_DIR in parts[:-1] or parts[-1].startswith(_TMP_MARK) or parts[-1] == STAGING_DIR


def staging_key(key: str) -> str:
    """Where the verified copy of ``key`` waits while ``key`` itself is replaced in place."""
    return f"{STAGING_DIR}/{key}"


def open_store(config: StoreConfig) -> ObjectStore:
    """The store for ``config.url``: ``s3://bucket[/prefix]`` or a local folder (path or ``file://``)."""
    if config.url.startswith("s3://"):
        return S3Store(config)
    if "://" in config.url and not config.url.startswith("file://"):
        raise StoreError(f"unsupported location {config.url!r}: use s3://bucket/prefix or a local folder")
    return LocalStore(config)


_cache: dict[StoreConfig, ObjectStore] = {}
_cache_lock = threading.Lock()


def cached_store(config: StoreConfig) -> ObjectStore:
    """One store (and connection pool) per configuration per process; used by worker processes."""
    with _cache_lock:
        if config not in _cache:
            _cache[config] = open_store(config)
        return _cache[config]


# ------------------------------------------------------------------------------------------- local

class LocalStore:
    """A folder as an object store. Writes are atomic (temp file, fsync, rename); metadata in an xattr."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self.root = Path(config.url.removeprefix("file://")).expanduser().resolve()

    def describe(self) -> str:
        return str(self.root)

    def check_access(self) -> None:
        if not self.root.is_dir():
            raise StoreError(f"folder {str(self.root)!r} does not exist")
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise StoreError(f"folder {str(self.root)!r} is not readable")

    def list(self) -> Iterator[ObjectRef]:
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if d != STAGING_DIR)
            for name in sorted(filenames):
                path = Path(dirpath) / name
                key = path.relative_to(self.root).as_posix()
                if is_internal(key) or not path.is_file():
                    continue
                st = path.stat()
                yield ObjectRef(key, st.st_size, _file_etag(st))

    def get(self, key: str, first: int | None = None) -> Blob:
        path = self.root / key
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                data = f.read() if first is None else f.read(first)
        except FileNotFoundError:
            raise NotFound(key) from None
        return Blob(data, _file_etag(st), _read_xattr(path), _guess_type(key), st.st_size)

    def head(self, key: str) -> Blob | None:
        path = self.root / key
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        return Blob(b"", _file_etag(st), _read_xattr(path), _guess_type(key), st.st_size)

    def put(self, key: str, data: bytes, metadata: dict[str, str], content_type: str,
            if_match: str | None = None) -> str:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_TMP_MARK, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            if metadata:
                _write_xattr(Path(tmp), metadata)
            if if_match is not None:
                current = self.head(key)
                if (current.etag if current else MISSING) != if_match:
                    raise PreconditionFailed(key)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)
        return _file_etag(path.stat())

    def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)


def _file_etag(st: os.stat_result) -> str:
    # inode changes on every atomic replace, mtime/size on in-place edits
    return f"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"


def _guess_type(key: str) -> str:
    return mimetypes.guess_type(key)[0] or "application/octet-stream"


def _read_xattr(path: Path) -> dict[str, str]:
    try:
        return json.loads(os.getxattr(path, _XATTR))
    except (OSError, ValueError):
        return {}


def _write_xattr(path: Path, metadata: dict[str, str]) -> None:
    try:
        os.setxattr(path, _XATTR, json.dumps(metadata).encode())
    except OSError as e:  # filesystems without user xattrs: the container header still holds size + sha256
        if e.errno not in (errno.ENOTSUP, errno.EPERM):
            raise


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------- S3

class S3Store:
    """``s3://bucket/prefix`` through boto3, with botocore's retries and multipart uploads for big objects."""

    def __init__(self, config: StoreConfig) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.config = config
        bucket, _, prefix = config.url.removeprefix("s3://").partition("/")
        if not bucket:
            raise StoreError(f"no bucket in {config.url!r}: use s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
        session = boto3.session.Session(profile_name=config.profile, region_name=config.region)
        self.client = session.client("s3", endpoint_url=config.endpoint_url, config=Config(
            retries={"mode": "standard", "max_attempts": config.max_attempts},
            max_pool_connections=config.max_connections, connect_timeout=10, read_timeout=120))
        self.transfer = TransferConfig(multipart_threshold=config.multipart_threshold,
                                       multipart_chunksize=config.multipart_chunksize, use_threads=False)
        self._session = session

    def describe(self) -> str:
        where = f" at {self.config.endpoint_url}" if self.config.endpoint_url else ""
        return f"s3://{self.bucket}/{self.prefix}{where}"

    def check_access(self) -> None:
        """Fail fast with one clear message when the bucket cannot be listed (few retries, short timeouts)."""
        from botocore.config import Config

        quick = self._session.client("s3", endpoint_url=self.config.endpoint_url, config=Config(
            retries={"mode": "standard", "max_attempts": 2}, connect_timeout=5, read_timeout=20))
        with _translated(self):
            quick.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)

    def probe_conditional_writes(self) -> WriteGuard:
        """Ask the server whether it honours ``If-Match`` on PutObject and CompleteMultipartUpload.

        Some servers ignore the header silently (moto 5.2 on multipart completes), so the probe writes a
        scratch object under the staging folder and expects 412 for a wrong ETag; it deletes it after.
        """
        from botocore.exceptions import ClientError

        key = self._key(f"{STAGING_DIR}/probe-{uuid.uuid4().hex}")
        wrong = '"00000000000000000000000000000000"'
        c = self.client
        c.put_object(Bucket=self.bucket, Key=key, Body=b"probe")
        try:
            try:
                c.put_object(Bucket=self.bucket, Key=key, Body=b"changed", IfMatch=wrong)
                single = "head-recheck"
            except ClientError as e:
                single = "if-match" if _status(e) == 412 else "head-recheck"
            upload = c.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
            try:
                part = c.upload_part(Bucket=self.bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"mp")
                c.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload, IfMatch=wrong,
                                            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
                multipart = "head-recheck"
            except ClientError as e:
                multipart = "if-match" if _status(e) == 412 else "head-recheck"
                c.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload)
        finally:
            c.delete_object(Bucket=self.bucket, Key=key)
        return WriteGuard(single, multipart)

    def list(self) -> Iterator[ObjectRef]:
        paginator = self.client.get_paginator("list_objects_v2")
        with _translated(self):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for obj in page.get("Contents", []):
                    key = obj["Key"][len(self.prefix):]
                    if key and not key.endswith("/") and not is_internal(key):
                        yield ObjectRef(key, obj["Size"], obj["ETag"])

    def get(self, key: str, first: int | None = None) -> Blob:
        from botocore.exceptions import ClientError

        kwargs = {"Range": f"bytes=0-{first - 1}"} if first else {}
        try:
            r = self.client.get_object(Bucket=self.bucket, Key=self._key(key), **kwargs)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404"):
                raise NotFound(key) from None
            if code == "InvalidRange":  # an empty object has no byte 0
                head = self.head(key)
                if head is None:
                    raise NotFound(key) from None
                return head
            raise
        data = r["Body"].read()
        size = int(r["ContentRange"].rpartition("/")[2]) if "ContentRange" in r else len(data)
        return Blob(data, r["ETag"], r.get("Metadata", {}), r.get("ContentType", ""), size)

    def head(self, key: str) -> Blob | None:
        from botocore.exceptions import ClientError

        try:
            r = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as e:
            if _status(e) == 404:
                return None
            raise
        return Blob(b"", r["ETag"], r.get("Metadata", {}), r.get("ContentType", ""), r["ContentLength"])

    def put(self, key: str, data: bytes, metadata: dict[str, str], content_type: str,
            if_match: str | None = None) -> str:
        from botocore.exceptions import ClientError

        big = len(data) >= self.config.multipart_threshold
        mode = self.config.guard.multipart if big else self.config.guard.single
        if if_match is not None and mode != "if-match":
            current = self.head(key)
            if (current.etag if current else MISSING) != if_match:
                raise PreconditionFailed(key)
        extra = {"Metadata": metadata, "ContentType": content_type}
        try:
            if not big:
                cond = {"IfMatch": if_match} if if_match and mode == "if-match" else {}
                return self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data,
                                              **extra, **cond)["ETag"]
            if if_match and mode == "if-match":
                return self._multipart_if_match(key, data, extra, if_match)
            self.client.upload_fileobj(io.BytesIO(data), self.bucket, self._key(key), ExtraArgs=extra,
                                       Config=self.transfer)
        except ClientError as e:
            if _status(e) == 412:
                raise PreconditionFailed(key) from None
            raise
        return self.head(key).etag

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def _key(self, key: str) -> str:
        return self.prefix + key

    def _multipart_if_match(self, key: str, data: bytes, extra: dict, if_match: str) -> str:
        """Multipart upload whose completion is conditional (s3transfer cannot pass ``IfMatch``)."""
        c, full = self.client, self._key(key)
        upload = c.create_multipart_upload(Bucket=self.bucket, Key=full, **extra)["UploadId"]
        try:
            step = max(self.config.multipart_chunksize, MIN_PART_SIZE)
            parts = []
            for number, start in enumerate(range(0, len(data), step), 1):
                r = c.upload_part(Bucket=self.bucket, Key=full, UploadId=upload, PartNumber=number,
                                  Body=data[start:start + step])
                parts.append({"PartNumber": number, "ETag": r["ETag"]})
            return c.complete_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload, IfMatch=if_match,
                                               MultipartUpload={"Parts": parts})["ETag"]
        except BaseException:
            c.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload)
            raise


def _status(e) -> int:
    return int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


class _translated:
    """Turn the errors that make a whole job pointless into one :class:`StoreError` line."""

    def __init__(self, store: S3Store) -> None:
        self.store = store

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        from botocore.exceptions import (ClientError, ConnectTimeoutError, EndpointConnectionError,
                                         NoCredentialsError, PartialCredentialsError, ProfileNotFound)

        where = self.store.config.endpoint_url or "AWS"
        bucket = self.store.bucket
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError, ProfileNotFound)):
            raise StoreError(f"no usable AWS credentials ({exc}); set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
                             f"or --profile") from None
        if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
            raise StoreError(f"cannot reach the S3 endpoint {where}: {exc}") from None
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "NoSuchBucket" or _status(exc) == 404:
                raise StoreError(f"bucket {bucket!r} does not exist at {where}") from None
            if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken",
                        "ExpiredToken") or _status(exc) == 403:
                raise StoreError(f"access to bucket {bucket!r} at {where} denied ({code}): check the "
                                 f"credentials and their permissions") from None
        return False
