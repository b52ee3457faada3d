"""The storage layer's exceptions: one base, :class:`StorageError`, so a caller can catch the layer as a whole.

The codec's own errors (``jpegshrink.JpegShrinkError``: a damaged container, an unknown model) are not
repeated here: they pass through the layer unchanged, because they say what is wrong with the data.
Errors of the Python runtime that fsspec callers expect (``FileNotFoundError``, ``FileExistsError``...)
also pass through unchanged: the ``jpegshrink::`` filesystem must behave like any other fsspec one.
"""
from __future__ import annotations


class StorageError(Exception):
    """Base of every error the storage layer raises itself."""


class MissingDependency(StorageError):
    """An optional extra is not installed; the message names the ``pip install`` that fixes it."""

    def __init__(self, what: str, extra: str, cause: BaseException | None = None) -> None:
        detail = f" ({cause})" if cause is not None else ""
        super().__init__(f"{what} needs the {extra!r} extra{detail}; pip install 'jpegshrink[{extra}]'")
        self.extra = extra


class StoreError(StorageError):
    """The store cannot be used at all (credentials, missing bucket, unreachable endpoint): stop the job."""


class PreconditionFailed(StorageError):
    """A conditional write found another ETag than expected: someone changed the object meanwhile."""


class NotFound(StorageError):
    """The object does not exist (any more)."""


class JournalError(StorageError):
    """The journal cannot be used for this job (locked by another run, or written by another job)."""


class ClusterError(StorageError):
    """The Dask scheduler cannot be reached or has no workers."""


class VerifyError(StorageError):
    """What was read back is not what was written, or does not decode to the original."""


class MountError(StorageError):
    """A mount that cannot start; the message says what to fix."""
