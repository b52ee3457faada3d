"""Every exception jpegshrink raises on purpose.

Callers catch :class:`JpegShrinkError` for "this input cannot be handled"; anything else escaping
the library is a bug. Each class carries what a program needs to act on it (a machine-readable
``reason``, an ``offset``), and its message says what a person should do.
"""
from __future__ import annotations


class JpegShrinkError(Exception):
    """Base class of all deliberate jpegshrink errors."""


class UnsupportedJpeg(JpegShrinkError):
    """A well-formed JPEG that the coefficient path does not handle (arithmetic, 12-bit, lossless, too big...).

    ``reason`` is a short, stable, machine-readable token (``"arithmetic"``, ``"12-bit"``,
    ``"lossless"``, ``"hierarchical"``, ``"too-large"``, ...) that is recorded in fallback containers.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"unsupported JPEG ({reason}){': ' + detail if detail else ''}")


class CorruptJpeg(JpegShrinkError):
    """The bytes are not a valid JPEG; ``offset`` is where the problem was found (or -1)."""

    def __init__(self, message: str, offset: int = -1) -> None:
        self.offset = offset
        super().__init__(f"{message} (at byte {offset})" if offset >= 0 else message)


class ContainerError(JpegShrinkError):
    """A jpegshrink container cannot be decoded. No bytes are ever returned in this case."""


class CorruptContainer(ContainerError):
    """The container is damaged, truncated or not a container at all."""


class UnknownModel(ContainerError):
    """The container was written with a coefficient model this version of jpegshrink does not have."""


class UnsupportedVersion(ContainerError):
    """The container uses a format version newer than this jpegshrink understands: upgrade jpegshrink."""


class ImageError(JpegShrinkError):
    """Base of the image (lossy) layer's errors: encode_image / decode_image."""


class BadImage(ImageError):
    """The image given to encode_image cannot be encoded (empty, too large, undecodable, transparent...)."""


class MissingDependency(ImageError):
    """An optional dependency is not installed; the message names the ``pip install`` to run."""
