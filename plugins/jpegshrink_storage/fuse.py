"""``jpegshrink mount URL MOUNTPOINT``: the jpegshrink:: layer as a local folder (mfusepy over libfuse3).

``ls -l`` shows original sizes, ``cat``/``cp``/``sha256sum`` read the original bytes, files written
into a read-write mount are stored compressed; ``du`` shows the bytes actually stored (``st_blocks``
comes from the stored size, as on a compressing filesystem).

libfuse runs with ``foreground=True`` inside this process: libfuse's own daemonisation forks, and the
calling script then exits while an orphan keeps serving the mount (see research/ecosystem.md, FUSE).
``--background`` instead starts this same command as a child process and returns once it is mounted.
Ctrl-C, SIGTERM and ``fusermount3 -u MOUNTPOINT`` all unmount cleanly and end the serving process.
"""
from __future__ import annotations

import argparse
import errno
import functools
import io
import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jpegshrink import JpegShrinkError

log = logging.getLogger("jpegshrink.mount")

#: How long an attribute listed by readdir answers getattr without asking the target again.
ATTR_TTL = 5.0
FUSE_DEVICE = "/dev/fuse"
#: libfuse worker threads (S3 reads wait on the network; decoding holds the GIL part of the time).
MAX_THREADS = 8
_ERRNOS = [(FileNotFoundError, errno.ENOENT), (FileExistsError, errno.EEXIST), (IsADirectoryError, errno.EISDIR),
           (NotADirectoryError, errno.ENOTDIR), (PermissionError, errno.EACCES)]


class MountError(Exception):
    """A mount that cannot start; the message says what to fix."""


def _load_mfusepy():
    """mfusepy, or a MountError saying what to install (it loads libfuse when imported)."""
    try:
        import mfusepy
    except ImportError as e:
        raise MountError(f"mfusepy is not installed ({e}); pip install 'jpegshrink[fuse]'") from None
    except OSError as e:
        raise MountError(f"libfuse is not available ({e}); install it (Debian: apt-get install fuse3)") from None
    return mfusepy


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


def make_operations(fs, root: str, read_only: bool = False, on_ready=None):
    """An mfusepy ``Operations`` object serving ``root`` of the jpegshrink:: filesystem ``fs``."""
    mfusepy = _load_mfusepy()

    class JpegShrinkOperations(mfusepy.Operations):
        """Modelled on fsspec.fuse.FUSEr; adds write buffers, rename, errno mapping and an attr cache."""

        use_ns = True

        def __init__(self) -> None:
            self.fs, self.root, self.read_only = fs, root.rstrip("/"), read_only
            self._handles: dict[int, _Handle] = {}
            self._next_fh = 1
            self._attrs: dict[str, tuple[float, dict]] = {}
            self._new_dirs: set[str] = set()
            self._lock = threading.Lock()

        def init(self, path: str) -> None:
            if on_ready is not None:
                on_ready()

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
            mtime = _mtime_ns(info)
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

    return JpegShrinkOperations()


def _resize(buffer: io.BytesIO, length: int) -> None:
    size = len(buffer.getbuffer())
    if length < size:
        buffer.truncate(length)
    elif length > size:
        buffer.seek(size)
        buffer.write(b"\0" * (length - size))


def _mtime_ns(info: dict) -> int:
    for key in ("mtime", "LastModified", "last_modified", "created", "modified"):
        value = info.get(key)
        if isinstance(value, datetime):
            return int(value.timestamp() * 1e9)
        if isinstance(value, (int, float)) and value > 0:
            return int(value * 1e9)
    return time.time_ns()


# ------------------------------------------------------------------------------------------ mount

def open_layer(url: str, options: dict[str, dict[str, Any]] | None = None):
    """(jpegshrink filesystem, root path) for ``url``; ``jpegshrink::`` is added when not in the chain."""
    import fsspec

    from jpegshrink_storage.fs import JpegShrinkFileSystem

    if "jpegshrink::" not in url and not url.startswith("jpegshrink://"):
        url = "jpegshrink::" + url
    try:
        fs, root = fsspec.core.url_to_fs(url, **(options or {}))
    except Exception as e:
        raise MountError(f"cannot open {url!r}: {e}") from None
    if not isinstance(fs, JpegShrinkFileSystem):
        raise MountError(f"{url!r} must have jpegshrink:: outermost (caching layers go inside the mount)")
    try:
        if not fs.isdir(root):
            raise MountError(f"{url!r} is not a folder that exists (mount a bucket or a prefix with objects)")
    except MountError:
        raise
    except Exception as e:
        raise MountError(f"cannot reach {url!r}: {type(e).__name__}: {e}") from None
    return fs, root


def check_mountpoint(mountpoint: str) -> None:
    """Raise MountError unless ``mountpoint`` is an unmounted folder and FUSE can be used."""
    if not os.path.isdir(mountpoint):
        raise MountError(f"mount point {mountpoint!r} does not exist or is not a folder; create it first")
    if os.path.ismount(mountpoint):
        raise MountError(f"{mountpoint!r} is already a mount point; unmount it first (fusermount3 -u)")
    if not os.path.exists(FUSE_DEVICE):
        raise MountError(f"{FUSE_DEVICE} is missing: FUSE is not available here (load the fuse kernel "
                         "module, or give the container the device, e.g. docker run --device /dev/fuse)")
    if os.geteuid() != 0 and shutil.which("fusermount3") is None:
        raise MountError("fusermount3 not found (Debian: apt-get install fuse3)")


def mount(url: str, mountpoint: str, read_only: bool = False,
          options: dict[str, dict[str, Any]] | None = None, on_ready=None) -> None:
    """Serve ``url`` at ``mountpoint`` until unmounted (blocks; run it in a thread or process).

    libfuse handles SIGINT/SIGTERM/SIGHUP while this runs in the main thread: they unmount and return.
    """
    fs, root = open_layer(url, options)
    check_mountpoint(mountpoint)
    mfusepy = _load_mfusepy()
    mounted = threading.Event()

    def ready() -> None:
        mounted.set()
        if on_ready is not None:
            on_ready()

    ops = make_operations(fs, root, read_only, ready)
    try:
        mfusepy.FUSE(ops, mountpoint, foreground=True, nothreads=False, ro=read_only, fsname="jpegshrink",
                     subtype="jpegshrink", max_threads=MAX_THREADS,
                     max_idle_threads=MAX_THREADS)  # libfuse 3.14 warns about its own default otherwise
    except RuntimeError as e:
        if not mounted.is_set():  # after a signal-triggered unmount libfuse 3 also returns nonzero
            raise MountError(f"libfuse could not mount {mountpoint!r} (status {e}); see the messages above") \
                from None


def _parse_options(pairs: list[str]) -> dict[str, dict[str, Any]]:
    """``["s3.endpoint_url=http://...", "s3.anon=true"]`` -> ``{"s3": {"endpoint_url": ..., "anon": True}}``."""
    options: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        protocol, dot, name = key.partition(".")
        if not sep or not dot or not protocol or not name:
            raise MountError(f"option {pair!r} must look like PROTOCOL.NAME=VALUE, e.g. s3.endpoint_url=http://...")
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = value
        options.setdefault(protocol, {})[name] = parsed
    return options


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jpegshrink mount",
        description="Mount a jpegshrink:: location as a local folder: originals in, originals out, "
                    "stored compressed. Unmount with Ctrl-C, SIGTERM or `fusermount3 -u MOUNTPOINT`.")
    p.add_argument("url", help="e.g. s3://bucket/photos, jpegshrink::s3://bucket, /data/photos")
    p.add_argument("mountpoint", help="an existing empty folder")
    p.add_argument("--read-only", action="store_true", help="refuse writes")
    p.add_argument("--background", action="store_true",
                   help="serve from a child process and return once mounted (prints its pid)")
    p.add_argument("-o", "--option", action="append", default=[], metavar="PROTOCOL.NAME=VALUE",
                   help="filesystem option, e.g. -o s3.endpoint_url=http://127.0.0.1:9000 (repeatable)")
    p.add_argument("--log-file", help="where --background writes the server's messages (default: a temp file)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every failed operation")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``jpegshrink mount`` (``argv`` excludes the program name; a leading "mount" is ok)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["mount"]:
        argv = argv[1:]
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="jpegshrink mount: %(levelname)s: %(message)s")
    try:
        options = _parse_options(args.option)
        if args.background:
            return _start_background(args)
        mountpoint = os.path.abspath(args.mountpoint)

        def ready() -> None:
            print(f"jpegshrink: serving {args.url} at {mountpoint}"
                  f"{' (read-only)' if args.read_only else ''}; Ctrl-C or SIGTERM unmounts", flush=True)

        mount(args.url, mountpoint, args.read_only, options, on_ready=ready)
    except MountError as e:
        print(f"jpegshrink mount: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def _start_background(args: argparse.Namespace) -> int:
    """Run this command (without --background) as a child; return once the mount is up."""
    mountpoint = os.path.abspath(args.mountpoint)
    open_layer(args.url, _parse_options(args.option))  # fail here, in the foreground, if the URL is bad
    check_mountpoint(mountpoint)
    log_path = args.log_file or os.path.join(tempfile.gettempdir(), f"jpegshrink-mount-{os.getpid()}.log")
    cmd = [sys.executable, "-m", "jpegshrink_storage.fuse", args.url, mountpoint,
           *(["--read-only"] if args.read_only else []), *(["-v"] if args.verbose else []),
           *(x for o in args.option for x in ("-o", o))]
    with open(log_path, "ab") as log_file:
        child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                                 start_new_session=True, env=_child_env())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if os.path.ismount(mountpoint):
            print(f"jpegshrink: serving {args.url} at {mountpoint} from pid {child.pid} (log: {log_path}); "
                  f"unmount with `fusermount3 -u {mountpoint}` or `kill {child.pid}`", flush=True)
            return 0
        if child.poll() is not None:
            break
        time.sleep(0.05)
    if child.poll() is None:
        child.terminate()
        child.wait(10)
    with open(log_path, errors="replace") as f:
        raise MountError(f"the mount did not come up; server log {log_path}:\n{f.read()[-2000:]}")


def _child_env() -> dict[str, str]:
    """The environment for the serving child, importing the very same jpegshrink code as this process."""
    import jpegshrink
    import jpegshrink_storage

    roots = [os.path.dirname(os.path.dirname(m.__file__)) for m in (jpegshrink_storage, jpegshrink)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*roots, *filter(None, [env.get("PYTHONPATH")])])
    return env


if __name__ == "__main__":
    sys.exit(main())
