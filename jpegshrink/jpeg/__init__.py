"""JPEG bitstream layer: byte-exact decomposition of a JPEG file into layout + coefficients, and back.

(Placeholder until the bitstream layer lands: every input is refused, so the codec stores fallbacks.)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jpegshrink.errors import CorruptJpeg, UnsupportedJpeg


@dataclass
class JpegParts:
    layout: "JpegLayout"
    coefficients: list[np.ndarray]


class JpegLayout:
    components: list

    def to_bytes(self) -> bytes:
        raise NotImplementedError

    @classmethod
    def from_bytes(cls, data: bytes) -> "JpegLayout":
        raise CorruptJpeg("JPEG layout blobs are not supported yet")


def parse(data: bytes) -> JpegParts:
    raise UnsupportedJpeg("not-implemented", "the JPEG bitstream layer is not built yet")


def rebuild(parts: JpegParts) -> bytes:
    raise NotImplementedError


__all__ = ["CorruptJpeg", "JpegLayout", "JpegParts", "UnsupportedJpeg", "parse", "rebuild"]
