"""Write stored bytes so that readers see either the old object or the whole new one, never a part.

Local targets get a temporary file in the same folder, flushed to disk, then renamed over the name
(or hard-linked for exclusive creation, which fails if the name exists). Every other target gets one
``pipe_file`` call: a single PUT on S3 (multipart above 100 MiB, which S3 also publishes atomically),
a dict assignment in memory.
"""
from __future__ import annotations

import os
import tempfile

from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem


def store_atomically(target: AbstractFileSystem, path: str, blob: bytes, exclusive: bool = False) -> None:
    """Put ``blob`` at ``path`` on ``target`` in one step; raise FileExistsError if ``exclusive`` and taken."""
    if isinstance(target, LocalFileSystem):
        _store_local(target, path, blob, exclusive)
    else:
        target.pipe_file(path, blob, mode="create" if exclusive else "overwrite")


def _store_local(target: LocalFileSystem, path: str, blob: bytes, exclusive: bool) -> None:
    folder = os.path.dirname(path) or "."
    if target.auto_mkdir:
        os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".jpegshrink-tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give what open() would
        if exclusive:
            os.link(tmp, path)  # atomic, and fails with FileExistsError when the name is taken
        else:
            os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it; done once at import, before any writer thread runs
    os.umask(mask)
    return mask


_UMASK = _read_umask()
