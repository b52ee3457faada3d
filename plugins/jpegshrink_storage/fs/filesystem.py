"""``jpegshrink::`` -- an fsspec filesystem that stores JPEGs compressed and serves the original bytes.

    >>> import fsspec
    >>> with fsspec.open("jpegshrink::s3://photos/a.jpg", "rb", s3={"anon": False}) as f:
    ...     original = f.read()

It chains over any fsspec filesystem (``jpegshrink::file://``, ``jpegshrink::memory://``,
``jpegshrink::s3://``, under ``simplecache::``), following fsspec's conventions for chained layers:
``fo``/``target_protocol``/``target_options``/``fs`` arguments, an instance ``_strip_protocol``
delegating to the target (as ``cached.py`` does) and explicit method-by-method delegation (as
``dirfs.py`` does).

Semantics (see DESIGN.md, "Storage semantics"):

* names are unchanged; reads give the original bytes; objects that are not containers pass through;
* ``info()['size']`` and ``ls`` sizes are ORIGINAL sizes, the stored size is under ``stored_size``
  (like ``zip``'s ``compress_size``), ``compressed`` says whether the object is a container;
* writes encode JPEG data (FF D8...) with ``jpegshrink.compress`` (verified by decoding) and store it
  atomically; everything else is stored as it is;
* opt-in (``new_uploads="high-bitrate:ssimulacra2=85"``, :mod:`.policy`): new PNG/TIFF/WebP/BMP/PNM
  uploads are stored as lossy JPEG containers and read back as those JPEGs, under the name written.
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from fsspec import AbstractFileSystem, filesystem
from fsspec.callbacks import DEFAULT_CALLBACK
from fsspec.implementations.chained import ChainedFileSystem
from fsspec.implementations.local import LocalFileSystem

import jpegshrink
from jpegshrink import HEADER_SIZE, MIN_CONTAINER_SIZE, ContainerInfo, is_container
from jpegshrink_storage.atomic import write_atomic
from jpegshrink_storage.fs.files import JpegShrinkReadFile, JpegShrinkWriteFile
from jpegshrink_storage.fs.headers import HeaderCache, object_version
from jpegshrink_storage.fs.objects import PASS_THROUGH, StoredHeader, decode_stored, describe, encode_for_storage
from jpegshrink_storage.fs.policy import UploadPolicy
from jpegshrink_storage.names import is_internal

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

#: ``open`` fetches this many bytes in one ranged GET; a smaller object is then complete (no size
#: lookup, no header read). Larger objects get their size from info + header and are read lazily.
WHOLE_READ_LIMIT = 32 << 20
#: Container modes whose decoded bytes are a JPEG file (listed with ``content_type: image/jpeg``).
JPEG_MODES = ("jpeg", "lossy_jpeg")
#: Container modes whose decoded bytes are a PNG file (the perceptual codec's recorded decode).
PNG_MODES = ("perceptual",)


class JpegShrinkFileSystem(ChainedFileSystem):
    """Transparent JPEG compression over another fsspec filesystem.

    Parameters
    ----------
    fo: the path given in a chained URL; unused (the layer has no root of its own).
    target_protocol, target_options: the filesystem to wrap, as in ``cached.py`` ...
    fs: ... or an already-built filesystem instance (give exactly one of the two).
    compress: encode JPEG data on write (False stores everything as it is; reads still decode).
    workers: concurrent header reads in ``ls``/``find``, concurrent encodes + stores in ``pipe({...})``/``put``.
    header_cache_size: how many object headers (original sizes) to keep; 0 disables the cache.
    new_uploads: what new image uploads become: ``"lossless"`` (default, ``None``), or a lossy spelling
        such as ``"high-bitrate:ssimulacra2=85"`` / ``"high-bitrate:quality=92"`` (an :class:`UploadPolicy`
        is accepted too); see :mod:`jpegshrink_storage.fs.policy` and docs/storage.md.
    lossy_jpegs: with a lossy ``new_uploads``, re-encode JPEG uploads lossily too (default: they stay lossless).
    """

    protocol = "jpegshrink"
    root_marker = ""
    _strip_tokenize_options = ("fo",)  # one instance per target, not one per path

    def __init__(self, fo: str | None = None, target_protocol: str | None = None,
                 target_options: dict[str, Any] | None = None, fs: AbstractFileSystem | None = None, *,
                 compress: bool = True, workers: int = 16, header_cache_size: int = 100_000,
                 new_uploads: str | UploadPolicy | None = None, lossy_jpegs: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if (fs is None) == (target_protocol is None):
            raise ValueError("jpegshrink:: needs exactly one of fs= (a filesystem) or target_protocol= "
                             "(e.g. 'jpegshrink::s3://bucket/key' or target_protocol='file')")
        self.fs = fs if fs is not None else filesystem(target_protocol, **(target_options or {}))
        self.target_protocol = target_protocol or (
            self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0])
        self.compress = compress
        self.new_uploads = UploadPolicy.parse(new_uploads, lossy_jpegs=bool(lossy_jpegs))
        if self.new_uploads.lossy and not compress:
            raise ValueError(f"new_uploads={str(self.new_uploads)!r} contradicts compress=False "
                             "(which stores every write as it is)")
        self.new_uploads.check_dependencies()
        self.workers = max(1, int(workers))
        self.headers = HeaderCache(header_cache_size)
        self._planning = threading.local()  # put() gathers its put_file calls here

        def _strip_protocol(path):
            # an instance attribute, as in cached.py: each instance strips like its own target
            if isinstance(path, (list, tuple)):
                return [_strip_protocol(p) for p in path]
            return self.fs._strip_protocol(type(self)._strip_protocol(path))

        self._strip_protocol: Callable = _strip_protocol

    # ------------------------------------------------------------------------------ encoding

    def encode(self, data: bytes, *, upload: bool = True, name: str = "") -> bytes:
        """The bytes this layer stores for ``data`` (see :func:`objects.encode_for_storage`).

        ``upload``: ``data`` is a whole new object (False for appends, which the lossy policy never touches).
        """
        return encode_for_storage(data, self.compress, self.new_uploads, upload=upload, name=name)

    def store(self, path: str, stored: bytes, exclusive: bool = False) -> None:
        """Write already-encoded bytes atomically; the old object stays intact if this raises."""
        path = self._strip_protocol(path)
        try:
            if isinstance(self.fs, LocalFileSystem):  # temp file + fsync + rename (link for exclusive)
                write_atomic(path, stored, exclusive=exclusive, make_parents=self.fs.auto_mkdir)
            else:  # one PUT on S3 (multipart above 100 MiB, also published atomically), a dict entry in memory
                self.fs.pipe_file(path, stored, mode="create" if exclusive else "overwrite")
        finally:
            self.headers.invalidate(path)

    # ------------------------------------------------------------------------------ metadata

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        entry = self.fs.info(self._strip_protocol(path), **kwargs)
        return self._describe_entries([entry])[0]

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list:
        path = self._strip_protocol(path)
        entries = [e for e in self.fs.ls(path, detail=True, **kwargs) if not _hidden(e["name"], path)]
        if not detail:
            return [e["name"] for e in entries]
        return self._describe_entries(entries)

    def find(self, path: str, maxdepth: int | None = None, withdirs: bool = False, detail: bool = False,
             **kwargs: Any):
        found = self._target_find(path, maxdepth, withdirs, **kwargs)
        if not detail:
            return sorted(found)
        names = sorted(found)
        return dict(zip(names, self._describe_entries([found[n] for n in names])))

    def du(self, path: str, total: bool = True, maxdepth: int | None = None, withdirs: bool = False,
           stored: bool = False, **kwargs: Any):
        """Space used under ``path``: original sizes, or the bytes actually stored when ``stored=True``."""
        if not stored:
            return super().du(path, total=total, maxdepth=maxdepth, withdirs=withdirs, **kwargs)
        sizes = {name: entry.get("size") or 0
                 for name, entry in self._target_find(path, maxdepth, withdirs, **kwargs).items()}
        return sum(sizes.values()) if total else sizes

    def _target_find(self, path: str, maxdepth: int | None, withdirs: bool, **kwargs: Any) -> dict[str, dict]:
        """The target's ``find``, less what this layer hides (folder-marker keys, staging, temp files)."""
        path = self._strip_protocol(path)
        found = self.fs.find(path, maxdepth=maxdepth, withdirs=withdirs, detail=True, **kwargs)
        return {name: entry for name, entry in found.items() if not _hidden(name, path)}

    def _describe_entries(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Target listing entries -> this layer's entries (original ``size``, ``stored_size``)."""
        headers = self._headers([e for e in entries if e.get("type") == "file"])
        out = []
        for entry in entries:
            if entry.get("type") != "file":
                out.append(entry)
                continue
            header = headers[entry["name"]]
            described = {**entry, "stored_size": entry["size"], "compressed": header.error is not None
                         or header.is_container}
            if header.is_container:
                described["size"] = header.original_size
                described["original_sha256"] = header.original_sha256
                described["lossy"] = header.lossy
                described["container_mode"] = header.mode
                if header.mode in JPEG_MODES:  # what a read returns, whatever the name says
                    described["content_type"] = "image/jpeg"
                elif header.mode in PNG_MODES:
                    described["content_type"] = "image/png"
            if header.error is not None:
                described["container_error"] = header.error
            out.append(described)
        return out

    def inspect(self, path: str) -> ContainerInfo | None:
        """The codec's description of a stored container (None for an object stored as it is).

        For a lossy upload, ``.info`` says what it was made from: ``source_format`` ("PNG"...), source
        size, encoder settings, measured scores, ``original_recoverable: False``. Reads the whole object.
        """
        blob = self.fs.cat_file(self._strip_protocol(path))
        return jpegshrink.inspect(blob) if is_container(blob) else None

    def _headers(self, files: list[dict[str, Any]]) -> dict[str, StoredHeader]:
        """Headers of file entries: from the cache, else by concurrent ranged reads of the first bytes."""
        result: dict[str, StoredHeader] = {}
        missing = []
        for entry in files:
            name, version = entry["name"], object_version(entry)
            if (entry.get("size") or 0) < MIN_CONTAINER_SIZE:
                result[name] = PASS_THROUGH  # too small to be a container (format v2 ones can be under 64 B)
            elif (cached := self.headers.get(name, version)) is not None:
                result[name] = cached
            else:
                missing.append((name, version, entry["size"]))
        if missing:
            prefixes = self._read_prefixes([name for name, _, _ in missing])
            for (name, version, size), prefix in zip(missing, prefixes):
                if isinstance(prefix, BaseException):  # e.g. removed since it was listed: show it as
                    log.debug("header of %s unreadable: %r", name, prefix)  # listed, cache nothing
                    result[name] = PASS_THROUGH
                    continue
                result[name] = describe(prefix, size)
                self.headers.put(name, version, result[name])
        return result

    def _read_prefixes(self, paths: list[str]) -> list:
        n = len(paths)
        if self.fs.async_impl:  # s3fs & co: one concurrent batch on fsspec's event loop
            return self.fs.cat_ranges(paths, [0] * n, [HEADER_SIZE] * n, on_error="return",
                                      batch_size=self.workers)

        def read(path: str):
            try:
                return self.fs.cat_file(path, start=0, end=HEADER_SIZE)
            except Exception as e:  # reported per object, like cat_ranges(on_error="return")
                return e
        return self._map(read, paths)

    def _map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        items = list(items)
        if self.workers == 1 or len(items) < 2:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(min(self.workers, len(items)), thread_name_prefix="jpegshrink") as pool:
            return list(pool.map(fn, items))

    # ------------------------------------------------------------------------------ reading

    def _open(self, path: str, mode: str = "rb", block_size: int | None = None, autocommit: bool = True,
              cache_options: dict | None = None, cache_type: str = "readahead", **kwargs: Any):
        path = self._strip_protocol(path)
        if mode == "rb":
            return self._open_read(path, block_size, cache_type, cache_options)
        if mode in ("wb", "xb", "ab"):
            if mode == "xb" and self.fs.exists(path):
                raise FileExistsError(path)
            initial = self.cat_file(path) if mode == "ab" and self.fs.exists(path) else b""
            return JpegShrinkWriteFile(self, path, mode, autocommit, initial)
        raise ValueError(f"jpegshrink:: files open as 'rb', 'wb', 'xb' or 'ab', not {mode!r}")

    def _open_read(self, path: str, block_size: int | None, cache_type: str,
                   cache_options: dict | None) -> JpegShrinkReadFile:
        try:  # one ranged GET answers most opens: JPEGs are smaller than the limit
            blob = self.fs.cat_file(path, start=0, end=WHOLE_READ_LIMIT)
        except OSError:  # a folder, a missing or an empty object (S3 refuses ranges on 0 bytes)
            blob = None
        if blob is not None and len(blob) < WHOLE_READ_LIMIT:
            data = decode_stored(blob)
            details = {"name": path, "type": "file", "size": len(data), "stored_size": len(blob),
                       "compressed": is_container(blob)}
            return JpegShrinkReadFile(self, path, details, data=data, block_size=block_size)
        entry = self.fs.info(path)  # FileNotFoundError from here when it is missing
        if entry.get("type") != "file":
            raise IsADirectoryError(path)
        details = self._describe_entries([entry])[0]  # large: size from the header, read lazily
        return JpegShrinkReadFile(self, path, details, block_size=block_size, cache_type=cache_type,
                                  cache_options=cache_options)

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        if start is None and end is None:  # whole object: one GET, no size lookup
            return decode_stored(self.fs.cat_file(self._strip_protocol(path), **kwargs))
        return super().cat_file(path, start=start, end=end, **kwargs)

    # ------------------------------------------------------------------------------ writing

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        with self.open(path, "xb" if mode == "create" else "wb", **kwargs) as f:
            f.write(value)

    def put_file(self, lpath: str, rpath: str, callback=DEFAULT_CALLBACK, mode: str = "overwrite",
                 **kwargs: Any) -> None:
        pairs = getattr(self._planning, "pairs", None)
        if pairs is not None:  # inside put(): collect, put() runs them concurrently
            pairs.append((lpath, rpath, mode))
            return
        if os.path.isdir(lpath):
            self.makedirs(rpath, exist_ok=True)
            return
        with open(lpath, "rb") as f:
            data = f.read()
        callback.set_size(len(data))
        self.mkdirs(self._parent(os.fspath(rpath)), exist_ok=True)
        with self.open(rpath, "xb" if mode == "create" else "wb", **kwargs) as f:
            f.write(data)
        callback.relative_update(len(data))

    def put(self, lpath, rpath, recursive: bool = False, callback=DEFAULT_CALLBACK, maxdepth: int | None = None,
            **kwargs: Any) -> None:
        """fsspec's ``put`` (same path rules), storing up to ``workers`` files at a time."""
        pairs: list[tuple[str, str, str]] = []
        self._planning.pairs = pairs
        try:
            super().put(lpath, rpath, recursive=recursive, maxdepth=maxdepth, **kwargs)
        finally:
            self._planning.pairs = None
        callback.set_size(len(pairs))
        folders = [p for p in pairs if os.path.isdir(p[0])]
        files = [p for p in pairs if not os.path.isdir(p[0])]

        def put_one(pair: tuple[str, str, str]) -> None:
            self.put_file(pair[0], pair[1], mode=pair[2], **kwargs)
            callback.relative_update(1)
        for pair in folders:  # parents first, then the files in parallel
            put_one(pair)
        self._map(put_one, files)

    def pipe(self, path, value=None, **kwargs: Any) -> None:
        """Write one object, or a ``{path: bytes}`` dict with ``workers`` encodes at a time."""
        if isinstance(path, str):
            self.pipe_file(self._strip_protocol(path), value, **kwargs)
        elif isinstance(path, dict):
            self._map(lambda item: self.pipe_file(self._strip_protocol(item[0]), item[1], **kwargs),
                      path.items())
        else:
            raise ValueError("path must be str or dict")

    # ------------------------------------------------------------------------------ namespace (delegated)

    def exists(self, path: str, **kwargs: Any) -> bool:
        return self.fs.exists(self._strip_protocol(path), **kwargs)

    def lexists(self, path: str, **kwargs: Any) -> bool:
        return self.fs.lexists(self._strip_protocol(path), **kwargs)

    def isdir(self, path: str) -> bool:
        return self.fs.isdir(self._strip_protocol(path))

    def isfile(self, path: str) -> bool:
        return self.fs.isfile(self._strip_protocol(path))

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        return self.fs.mkdir(self._strip_protocol(path), create_parents=create_parents, **kwargs)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        return self.fs.makedirs(self._strip_protocol(path), exist_ok=exist_ok)

    def rmdir(self, path: str) -> None:
        return self.fs.rmdir(self._strip_protocol(path))

    def rm_file(self, path: str) -> None:
        path = self._strip_protocol(path)
        self.fs.rm_file(path)
        self.headers.invalidate(path)

    def rm(self, path, recursive: bool = False, maxdepth: int | None = None) -> None:
        path = self._strip_protocol(path)
        self.fs.rm(path, recursive=recursive, maxdepth=maxdepth)
        self._forget(path)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Copy the stored bytes as they are (no decode/encode round trip)."""
        path2 = self._strip_protocol(path2)
        self.fs.cp_file(self._strip_protocol(path1), path2, **kwargs)
        self.headers.invalidate(path2)

    def copy(self, path1, path2, recursive: bool = False, maxdepth: int | None = None,
             on_error: str | None = None, **kwargs: Any) -> None:
        path1, path2 = self._unprefix(path1), self._unprefix(path2)  # a trailing "/" means "into"
        self.fs.copy(path1, path2, recursive=recursive, maxdepth=maxdepth, on_error=on_error, **kwargs)
        self._forget(self._strip_protocol(path2))

    def mv(self, path1, path2, recursive: bool = False, maxdepth: int | None = None, **kwargs: Any) -> None:
        path1, path2 = self._unprefix(path1), self._unprefix(path2)
        self.fs.mv(path1, path2, recursive=recursive, maxdepth=maxdepth, **kwargs)
        self._forget(self._strip_protocol(path1))
        self._forget(self._strip_protocol(path2))

    def touch(self, path: str, truncate: bool = True, **kwargs: Any) -> None:
        path = self._strip_protocol(path)
        self.fs.touch(path, truncate=truncate, **kwargs)
        self.headers.invalidate(path)

    def created(self, path: str):
        return self.fs.created(self._strip_protocol(path))

    def modified(self, path: str):
        return self.fs.modified(self._strip_protocol(path))

    def ukey(self, path: str) -> str:
        return self.fs.ukey(self._strip_protocol(path))

    def sign(self, path: str, expiration: int = 100, **kwargs: Any) -> str:
        """A URL to the STORED bytes (a container for compressed objects), as the target signs it."""
        return self.fs.sign(self._strip_protocol(path), expiration=expiration, **kwargs)

    def invalidate_cache(self, path: str | None = None) -> None:
        path = None if path is None else self._strip_protocol(path)
        self.fs.invalidate_cache(path)
        self.headers.invalidate_tree(path)

    def _parent(self, path: str) -> str:
        return self.fs._parent(self._strip_protocol(path))

    @classmethod
    def _unprefix(cls, path):
        """Remove only this layer's own protocol, keeping what the target reads (a trailing slash)."""
        if isinstance(path, (list, tuple)):
            return [cls._unprefix(p) for p in path]
        return path.removeprefix(cls.protocol + "://").removeprefix(cls.protocol + "::")

    def _forget(self, paths) -> None:
        for p in [paths] if isinstance(paths, str) else paths:
            self.headers.invalidate_tree(p)

    @property
    def sep(self) -> str:  # type: ignore[override]
        return self.fs.sep

    def __repr__(self) -> str:
        return (f"<JpegShrinkFileSystem over {type(self.fs).__name__} compress={self.compress} "
                f"new_uploads={str(self.new_uploads)!r}{' lossy_jpegs' if self.new_uploads.lossy_jpegs else ''}>")


def _hidden(name: str, listed: str) -> bool:
    """Entries a listing of ``listed`` leaves out.

    * folder-marker keys (``prefix/dir/``, 0 bytes, made by S3 consoles and by SeaweedFS for its
      folders): s3fs lists one as a *file* inside its own folder, so a FUSE mount showed ``dir/dir`` and
      ``stat`` called the folder an empty file. The folder itself is listed by its parent;
    * the layer's own names below ``listed`` (the migration's staging folder, temporary files of atomic
      writes): copies, not data (listing such a folder by its own name still shows what is in it).
    """
    if name.endswith("/"):
        return True
    rel = name[len(listed):] if name.startswith(listed) else name
    return is_internal(rel)
