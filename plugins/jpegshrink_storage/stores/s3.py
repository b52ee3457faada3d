"""``s3://bucket/prefix`` as an object store, through boto3.

botocore retries each request; objects from the multipart threshold up go up in parts; conditional
replaces use ``If-Match`` where the server honours it (probed), else a HEAD re-check. Errors that make a
whole job pointless (credentials, missing bucket, unreachable endpoint) become one :class:`StoreError`.
"""
from __future__ import annotations

import io
import uuid
from collections.abc import Iterator

import boto3  # an ImportError here is the missing s3 extra (stores.open_store says so)
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (BotoCoreError, ClientError, ConnectTimeoutError, EndpointConnectionError,
                                 NoCredentialsError, PartialCredentialsError, ProfileNotFound)

from jpegshrink_storage.errors import NotFound, PreconditionFailed, StoreError
from jpegshrink_storage.names import STAGING_DIR, is_internal
from jpegshrink_storage.stores.base import MISSING, Blob, ObjectRef, Scope, StoreConfig, WriteGuard

#: S3's smallest part (all but the last); s3transfer rounds up to it as well.
MIN_PART_SIZE = 5 << 20


class S3Store:
    """``s3://bucket/prefix`` through boto3, with botocore's retries and multipart uploads for big objects."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        bucket, _, prefix = config.url.removeprefix("s3://").partition("/")
        if not bucket:
            raise StoreError(f"no bucket in {config.url!r}: use s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
        with _translated(self):  # a profile that does not exist, a malformed endpoint URL
            session = boto3.session.Session(profile_name=config.profile, region_name=config.region)
            try:
                self.client = session.client("s3", endpoint_url=config.endpoint_url, config=Config(
                    retries={"mode": "standard", "max_attempts": config.max_attempts},
                    max_pool_connections=config.max_connections, connect_timeout=10, read_timeout=120))
            except ValueError as e:  # botocore: "Invalid endpoint: ..."
                raise StoreError(f"cannot use the S3 endpoint {config.endpoint_url!r}: {e}") from None
        self.transfer = TransferConfig(multipart_threshold=config.multipart_threshold,
                                       multipart_chunksize=config.multipart_chunksize, use_threads=False)
        self._session = session

    def describe(self) -> str:
        where = f" at {self.config.endpoint_url}" if self.config.endpoint_url else ""
        return f"s3://{self.bucket}/{self.prefix}{where}"

    def scope(self) -> Scope:
        return Scope(f"s3 {self.config.endpoint_url or 'AWS'} {self.bucket}", self.prefix)

    def check_access(self, create: bool = False) -> None:
        """Fail fast with one clear message when the bucket cannot be listed (few retries, short timeouts).

        ``create`` needs nothing here: a prefix exists as soon as an object is under it."""
        quick = self._session.client("s3", endpoint_url=self.config.endpoint_url, config=Config(
            retries={"mode": "standard", "max_attempts": 2}, connect_timeout=5, read_timeout=20))
        with _translated(self):
            quick.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)

    def probe_write_guard(self) -> WriteGuard:
        """Ask the server whether it honours ``If-Match`` on PutObject and CompleteMultipartUpload.

        Some servers ignore the header silently (moto 5.2 on multipart completes), so the probe writes a
        scratch object under the staging folder and expects 412 for a wrong ETag; it deletes it after.
        """
        key = self._key(f"{STAGING_DIR}/probe-{uuid.uuid4().hex}")
        wrong = '"00000000000000000000000000000000"'
        c = self.client
        with _translated(self):  # read-only credentials stop the job here, before anything else
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

    def remove_staging(self) -> None:
        """Delete the staging folder once nothing is staged in it any more.

        Plain S3 has no folders, but folder-marker keys (``prefix/dir/``, 0 bytes) exist, and SeaweedFS
        keeps every folder an object was ever written to as such a key (``prefix/.jpegshrink-staging/``
        and ``.../sub/``), shown by listings, by s3fs and by a FUSE mount. They go deepest first."""
        root = self._key(STAGING_DIR + "/")
        folders = {root}
        pending = [root]
        with _translated(self):
            while pending:
                pages = self.client.get_paginator("list_objects_v2").paginate(
                    Bucket=self.bucket, Prefix=pending.pop(), Delimiter="/")
                for page in pages:
                    for obj in page.get("Contents", []):
                        if not obj["Key"].endswith("/"):
                            return  # a staging copy waits for the next run: keep it
                        folders.add(obj["Key"])
                    for sub in page.get("CommonPrefixes", []):
                        folders.add(sub["Prefix"])
                        pending.append(sub["Prefix"])
            for folder in sorted(folders, key=lambda f: (-f.count("/"), f)):
                self.client.delete_object(Bucket=self.bucket, Key=folder)

    def list(self) -> Iterator[ObjectRef]:
        paginator = self.client.get_paginator("list_objects_v2")
        with _translated(self):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for obj in page.get("Contents", []):
                    key = obj["Key"][len(self.prefix):]
                    if key and not key.endswith("/") and not is_internal(key):
                        yield ObjectRef(key, obj["Size"], obj["ETag"])

    def get(self, key: str, first: int | None = None) -> Blob:
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
        try:
            r = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as e:
            if _status(e) == 404:
                return None
            raise
        return Blob(b"", r["ETag"], r.get("Metadata", {}), r.get("ContentType", ""), r["ContentLength"])

    def put(self, key: str, data: bytes, metadata: dict[str, str], content_type: str,
            if_match: str | None = None) -> str:
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
        if isinstance(exc, BotoCoreError):  # e.g. a malformed endpoint URL
            raise StoreError(f"cannot use the S3 endpoint {where}: {exc}") from None
        return False
