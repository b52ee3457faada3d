"""File objects returned by ``JpegShrinkFileSystem.open``.

Reading: an :class:`~fsspec.spec.AbstractBufferedFile` whose ``size`` is the ORIGINAL size (fsspec's
caches and FUSE truncate reads at ``size``, so the stored size would cut files short). A container
is fetched and decoded once, then served from memory; a pass-through object is read with ranged
requests on the target.

Writing: bytes are buffered, and encoded (with the codec's verify-by-decoding) when the file is
closed; the stored bytes reach the target in one atomic step on ``commit`` (right at close, or at the
end of a ``with fs.transaction:`` block). A ``with`` block that raises stores nothing.
"""
from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from fsspec.spec import AbstractBufferedFile

from jpegshrink_storage.fs.objects import decode_stored

if TYPE_CHECKING:
    from jpegshrink_storage.fs.filesystem import JpegShrinkFileSystem


class JpegShrinkReadFile(AbstractBufferedFile):
    """Read-only view of one object's original bytes, with seek and ranged reads."""

    def __init__(self, fs: JpegShrinkFileSystem, path: str, details: dict[str, Any], *,
                 data: bytes | None = None, block_size: int | None = None, cache_type: str = "readahead",
                 cache_options: dict | None = None) -> None:
        self._data = data
        self._container = bool(details.get("compressed"))
        in_memory = data is not None or self._container
        super().__init__(fs, path, mode="rb", block_size=block_size,
                         cache_type="none" if in_memory else cache_type, cache_options=cache_options,
                         size=details["size"])
        self.details = details

    def _fetch_range(self, start: int, end: int) -> bytes:
        if self._data is None and self._container:
            data = decode_stored(self.fs.fs.cat_file(self.path))
            if len(data) != self.size:
                raise OSError(f"{self.path} changed while being read ({self.size} bytes expected, "
                              f"{len(data)} decoded); open it again")
            self._data = data
        if self._data is not None:
            return self._data[start:end]
        return self.fs.fs.cat_file(self.path, start=start, end=end)  # s3fs: 2nd positional is version_id


class JpegShrinkWriteFile(io.BytesIO):
    """Buffers a whole object, encodes it on close, stores it atomically on commit."""

    def __init__(self, fs: JpegShrinkFileSystem, path: str, mode: str = "wb", autocommit: bool = True,
                 initial: bytes = b"") -> None:
        super().__init__()
        self.fs, self.path, self.autocommit = fs, path, autocommit
        #: an append rewrites an existing object: never a new upload for the lossy policy
        self.upload = mode != "ab"
        self.mode = "wb" if mode == "ab" else mode
        self._stored: bytes | None = None
        self._finished = False
        if initial:
            self.write(initial)

    def close(self) -> None:
        """Encode now (so codec errors surface here) and store unless a transaction defers it."""
        if self._finished:
            return
        self._finished = True  # never retried, not even by __del__ after a failure
        try:
            self._stored = self.fs.encode(self.getvalue(), upload=self.upload, name=self.path)
            if self.autocommit:
                self.commit()
        finally:
            super().close()

    def commit(self) -> None:
        """Put the encoded bytes on the target in one atomic step (FileExistsError for a taken ``xb``)."""
        if not self._finished:
            self.close()
            if self.autocommit:
                return
        if self._stored is None:
            return  # discarded, or encoding failed and already raised
        stored, self._stored = self._stored, None
        self.fs.store(self.path, stored, exclusive=self.mode == "xb")

    def discard(self) -> None:
        """Drop everything written; the target is left as it was."""
        self._stored = None
        self._finished = True
        super().close()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.discard()  # a half-written JPEG is worse than the old one
        else:
            self.close()

    def __repr__(self) -> str:
        return f"<JpegShrinkWriteFile {self.path!r} mode={self.mode!r}>"
