"""The FUSE operations of ``jpegshrink mount``: POSIX calls answered from the ``jpegshrink::`` filesystem.

A plain class (mfusepy looks its methods up by name, so it needs no mfusepy base class): it can be built,
typed and tested without libfuse. Modelled on ``fsspec.fuse.FUSEr``; adds whole-file write buffers,
rename, errno mapping and a short attribute cache filled by ``readdir``.
"""
from __future__ import annotations

import errno
import functools
import io
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jpegshrink import JpegShrinkError

if TYPE_CHECKING:
    from jpegshrink_storage.fs import JpegShrinkFileSystem

log = logging.getLogger("jpegshrink.mount")

#: How long an attribute listed by readdir answers getattr without asking the target again.
ATTR_TTL = 5.0
_ERRNOS = [(FileNotFoundError, errno.ENOENT), (FileExistsError, errno.EEXIST), (IsADirectoryError, errno.EISDIR),
           (NotADirectoryError, errno.ENOTDIR), (PermissionError, errno.EACCES)]


def _fuse_errors(method):
    """Turn exceptions into the errno the kernel expects (mfusepy maps everything else to EINVAL)."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except OSError as e:
            if isinstance(e.errno, int) and e.errno > 0:
                raise
            code = next((c for cls, c in _ERRNOS if isinstance(e, cls)), errno.EIO)
            if code == errno.EIO:
                log.warning("%s%s failed: %r", method.__name__, args[:1], e)
            raise OSError(code, os.strerror(code)) from e
        except JpegShrinkError as e:  # damaged container: refuse to serve it, say why in the log
            log.error("%s%s: %s", method.__name__, args[:1], e)
            raise OSError(errno.EIO, os.strerror(errno.EIO)) from e
        except Exception as e:
            log.exception("%s%s failed", method.__name__, args[:1])
            raise OSError(errno.EIO, os.strerror(errno.EIO)) from e
    return wrapper


@dataclass
class _Handle:
    """One open file: a reader over the original bytes, or a whole-file write buffer."""

    path: str
    reader: Any = None
    buffer: io.BytesIO | None = None
    dirty: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class JpegShrinkOperations:
    """Modelled on fsspec.fuse.FUSEr; adds write buffers, rename, errno mapping and an attr cache."""

    use_ns = True

    def __init__(self, fs: JpegShrinkFileSystem, root: str, read_only: bool = False,
                 on_ready: Callable[[], None] | None = None) -> None:
        self.fs, self.root, self.read_only = fs, root.rstrip("/"), read_only
        self.on_ready = on_ready
        #: the time of entries the target gives none (S3 "folders"): fixed, or tar sees them change as it reads
        self.started_ns = time.time_ns()
        self._handles: dict[int, _Handle] = {}
        self._next_fh = 1
        self._attrs: dict[str, tuple[float, dict]] = {}
        self._new_dirs: set[str] = set()
        self._lock = threading.Lock()

    def init(self, path: str) -> None:
        if self.on_ready is not None:
            self.on_ready()

    # -------------------------------------------------------------- helpers
    def _full(self, path: str) -> str:
        return f"{self.root}/{path.lstrip('/')}" if path.strip("/") else (self.root or "/")

    def _writable(self) -> None:
        if self.read_only:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    def _forget(self, full: str) -> None:
        with self._lock:
            self._attrs.pop(full, None)
            self._attrs.pop(self.fs._parent(full), None)

    def _open_writer(self, full: str) -> _Handle | None:
        with self._lock:
            return next((h for h in reversed(self._handles.values())
                         if h.buffer is not None and h.path == full), None)

    def _add(self, handle: _Handle) -> int:
        with self._lock:
            fh, self._next_fh = self._next_fh, self._next_fh + 1
            self._handles[fh] = handle
            return fh

    def _stat(self, info: dict) -> dict[str, Any]:
        mtime = _mtime_ns(info, self.started_ns)
        out = {"st_uid": os.getuid(), "st_gid": os.getgid(), "st_atime": mtime, "st_mtime": mtime,
               "st_ctime": mtime}
        if info.get("type") == "file":
            size = info.get("size") or 0
            stored = info.get("stored_size") or size  # du shows what is stored, ls -l the original
            out.update(st_mode=stat.S_IFREG | (0o444 if self.read_only else 0o644), st_nlink=1,
                       st_size=size, st_blocks=(stored + 511) // 512)
        else:
            out.update(st_mode=stat.S_IFDIR | (0o555 if self.read_only else 0o755), st_nlink=2, st_size=0)
        return out

    def _store(self, handle: _Handle) -> None:
        with handle.lock:
            if not handle.dirty:
                return
            self.fs.pipe_file(handle.path, handle.buffer.getvalue())
            handle.dirty = False
        self._forget(handle.path)

    # -------------------------------------------------------------- metadata
    @_fuse_errors
    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        full = self._full(path)
        writer = self._open_writer(full)
        if writer is not None:  # created or being rewritten: not (yet) on the target
            size = len(writer.buffer.getbuffer())
            return self._stat({"type": "file", "size": size, "stored_size": size})
        with self._lock:
            cached = self._attrs.get(full)
            if full in self._new_dirs:
                return self._stat({"type": "directory"})
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        return self._stat(self.fs.info(full))

    @_fuse_errors
    def readdir(self, path: str, fh: int) -> list[str]:
        full = self._full(path)
        try:
            entries = self.fs.ls(full, detail=True)
        except FileNotFoundError:
            if full not in self._new_dirs:
                raise
            entries = []
        expires = time.monotonic() + ATTR_TTL
        names = []
        with self._lock:
            for e in entries:
                name = e["name"].rstrip("/")
                self._attrs[name] = (expires, self._stat(e))
                names.append(name.rsplit("/", 1)[-1])
            names += [d.rsplit("/", 1)[-1] for d in self._new_dirs
                      if self.fs._parent(d) == full and d.rsplit("/", 1)[-1] not in names]
        return [".", "..", *names]

    # -------------------------------------------------------------- files
    @_fuse_errors
    def open(self, path: str, flags: int) -> int:
        full = self._full(path)
        if flags & os.O_ACCMODE == os.O_RDONLY:
            return self._add(_Handle(full, reader=self.fs.open(full, "rb")))
        self._writable()
        initial = b"" if flags & os.O_TRUNC else self.fs.cat_file(full)
        return self._add(_Handle(full, buffer=io.BytesIO(initial), dirty=bool(flags & os.O_TRUNC)))

    @_fuse_errors
    def create(self, path: str, mode: int, flags: int = 0) -> int:
        self._writable()
        full = self._full(path)
        self._forget(full)
        return self._add(_Handle(full, buffer=io.BytesIO(), dirty=True))  # stored on flush, even if empty

    @_fuse_errors
    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        handle = self._handles[fh]
        with handle.lock:
            if handle.buffer is not None:
                return bytes(handle.buffer.getbuffer()[offset:offset + size])
            handle.reader.seek(offset)
            return handle.reader.read(size)

    @_fuse_errors
    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        handle = self._handles[fh]
        with handle.lock:
            handle.buffer.seek(offset)
            handle.buffer.write(data)
            handle.dirty = True
        return len(data)

    @_fuse_errors
    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        self._writable()
        full = self._full(path)
        writer = self._handles.get(fh) if fh is not None else self._open_writer(full)
        if writer is not None and writer.buffer is not None:
            with writer.lock:
                _resize(writer.buffer, length)
                writer.dirty = True
            return 0
        buffer = io.BytesIO(self.fs.cat_file(full))
        _resize(buffer, length)
        self.fs.pipe_file(full, buffer.getvalue())
        self._forget(full)
        return 0

    @_fuse_errors
    def flush(self, path: str, fh: int) -> int:
        handle = self._handles.get(fh)
        if handle is not None and handle.buffer is not None:
            self._store(handle)  # errors reach close(2) here, so `cp` reports a failed write
        return 0

    @_fuse_errors
    def release(self, path: str, fh: int) -> int:
        with self._lock:
            handle = self._handles.pop(fh, None)
        if handle is None:
            return 0
        if handle.reader is not None:
            handle.reader.close()
        else:
            self._store(handle)
        return 0

    # -------------------------------------------------------------- namespace
    @_fuse_errors
    def unlink(self, path: str) -> int:
        self._writable()
        full = self._full(path)
        self.fs.rm_file(full)
        self._forget(full)
        return 0

    @_fuse_errors
    def mkdir(self, path: str, mode: int) -> int:
        self._writable()
        full = self._full(path)
        self.fs.mkdir(full)
        with self._lock:  # object stores have no empty folders: remember it until files land in it
            self._new_dirs.add(full)
        return 0

    @_fuse_errors
    def rmdir(self, path: str) -> int:
        self._writable()
        full = self._full(path)
        with self._lock:
            pending = full in self._new_dirs
            self._new_dirs.discard(full)
        try:
            self.fs.rmdir(full)
        except FileNotFoundError:
            if not pending:
                raise
        self._forget(full)
        return 0

    @_fuse_errors
    def rename(self, old: str, new: str) -> int:
        self._writable()
        old_full, new_full = self._full(old), self._full(new)
        self.fs.mv(old_full, new_full, recursive=self.fs.isdir(old_full))
        self._forget(old_full)
        self._forget(new_full)
        return 0

    def utimens(self, path: str, times=None) -> int:
        return 0  # object stores keep their own times; accepting keeps `cp -p` and `touch` working

    def chmod(self, path: str, mode: int) -> int:
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        return 0


def _resize(buffer: io.BytesIO, length: int) -> None:
    size = len(buffer.getbuffer())
    if length < size:
        buffer.truncate(length)
    elif length > size:
        buffer.seek(size)
        buffer.write(b"\0" * (length - size))


def _mtime_ns(info: dict, default: int) -> int:
    for key in ("mtime", "LastModified", "last_modified", "created", "modified"):
        value = info.get(key)
        if isinstance(value, datetime):
            return int(value.timestamp() * 1e9)
        if isinstance(value, (int, float)) and value > 0:
            return int(value * 1e9)
    return default


