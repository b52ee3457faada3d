"""A local folder as an object store: atomic writes (:func:`~jpegshrink_storage.atomic.write_atomic`),
metadata in an xattr.

The ETag is (inode, size, mtime): an atomic replace changes the inode, an in-place edit the others.
Conditional replaces re-check it right before the rename (there is no server to do it atomically).
"""
from __future__ import annotations

import errno
import json
import mimetypes
import os
from collections.abc import Iterator
from pathlib import Path

from jpegshrink_storage.atomic import write_atomic
from jpegshrink_storage.errors import NotFound, PreconditionFailed, StoreError
from jpegshrink_storage.names import STAGING_DIR, is_internal
from jpegshrink_storage.stores.base import MISSING, Blob, ObjectRef, Scope, StoreConfig, WriteGuard

_XATTR = "user.jpegshrink.meta"


class LocalStore:
    """A folder as an object store. Writes are atomic (temp file, fsync, rename); metadata in an xattr."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self.root = Path(config.url.removeprefix("file://")).expanduser().resolve()

    def describe(self) -> str:
        return str(self.root)

    def scope(self) -> Scope:
        return Scope("local disk", str(self.root).rstrip("/") + "/")

    def check_access(self, create: bool = False) -> None:
        if create and not self.root.exists():
            try:
                self.root.mkdir(parents=True)
            except OSError as e:
                raise StoreError(f"cannot create the folder {str(self.root)!r}: {e.strerror or e}") from None
        if not self.root.is_dir():
            raise StoreError(f"folder {str(self.root)!r} does not exist")
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise StoreError(f"folder {str(self.root)!r} is not readable")
        if create and not os.access(self.root, os.W_OK):
            raise StoreError(f"folder {str(self.root)!r} is not writable")

    def probe_write_guard(self) -> WriteGuard:
        return WriteGuard("head-recheck", "head-recheck")  # no server: re-check, then an atomic rename

    def remove_staging(self) -> None:
        staging = self.root / STAGING_DIR
        for folder in sorted((p for p in staging.rglob("*") if p.is_dir()), reverse=True) if staging.is_dir() else []:
            _rmdir_if_empty(folder)
        _rmdir_if_empty(staging)

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

        def prepare(tmp: Path) -> None:
            if metadata:
                _write_xattr(tmp, metadata)
            if if_match is not None:
                current = self.head(key)
                if (current.etag if current else MISSING) != if_match:
                    raise PreconditionFailed(key)

        write_atomic(path, data, make_parents=True, prepare=prepare)
        return _file_etag(path.stat())

    def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)


def _rmdir_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # not empty (something is still staged), or gone
        pass


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
