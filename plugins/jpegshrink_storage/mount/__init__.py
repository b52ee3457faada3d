"""``jpegshrink mount``: the ``jpegshrink::`` filesystem as a local folder, over FUSE (mfusepy + libfuse3).

:mod:`.operations` answers the POSIX calls (a plain class, testable without libfuse); :mod:`.cli` starts,
serves and stops the mount. ``python -m jpegshrink_storage.mount URL MOUNTPOINT`` runs the command.
"""
from __future__ import annotations

from jpegshrink_storage.errors import MountError
from jpegshrink_storage.mount.cli import main, mount
from jpegshrink_storage.mount.operations import JpegShrinkOperations

__all__ = ["JpegShrinkOperations", "MountError", "main", "mount"]
