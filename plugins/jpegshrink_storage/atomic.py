"""The storage layer's one atomic file writer: readers see the old file or the whole new one, never a part.

The data goes to a temporary file in the same folder (named with :data:`~jpegshrink_storage.names.TMP_MARK`,
so listings skip it), is flushed and fsynced, gets its final mode and mtime, and is then renamed over the
name (or hard-linked, for exclusive creation: that fails if the name exists); the folder is fsynced so the
rename survives a power cut. A failure at any step removes the temporary file and leaves the old file.

The mode is what ``open()`` would give (``0o666`` less the umask, e.g. 0644), not mkstemp's 0600: a
restored photo must be readable by the web server that serves the folder.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from jpegshrink_storage.names import TMP_MARK


def write_atomic(path: str | os.PathLike, data: bytes, *, mode: int | None = None, mtime: float | None = None,
                 exclusive: bool = False, make_parents: bool = False,
                 prepare: Callable[[Path], None] | None = None) -> None:
    """Put ``data`` at ``path`` in one step.

    mode: permission bits of the new file (default ``0o666 & ~umask``, as ``open()`` gives).
    mtime: modification time in seconds since the epoch, as ``os.stat().st_mtime`` (default: now).
    exclusive: raise FileExistsError, and change nothing, when ``path`` exists.
    make_parents: create missing parent folders first.
    prepare: called with the temporary file's path once its data is durable, right before it takes the
        name; it may add extended attributes or raise to cancel the write (the old file stays).
    """
    path = Path(path)
    folder = path.parent
    if make_parents:
        folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f"{TMP_MARK}{path.name[:100]}.")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, (0o666 & ~_UMASK) if mode is None else mode)
        if mtime is not None:
            os.utime(tmp, (mtime, mtime))
        if prepare is not None:
            prepare(tmp)
        if exclusive:
            os.link(tmp, path)  # atomic, and fails with FileExistsError when the name is taken
        else:
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_folder(folder)


def fsync_folder(folder: str | os.PathLike) -> None:
    """Make a rename in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it; done once at import, before any writer thread runs
    os.umask(mask)
    return mask


_UMASK = _read_umask()
