"""The 8x8 DCT block: zig-zag order and the coefficient groups that the JPEG layer and the models share.

One definition for the whole package, in the compiled core (``jpegshrink/csrc/common.h``); these are
read-only views of it.
"""
from __future__ import annotations

from jpegshrink._native import core

#: ZIGZAG[k]: natural (row-major) index of the k-th coefficient in zig-zag order (int64[64]).
ZIGZAG = core.ZIGZAG
#: ZIGZAG_RANK[n]: zig-zag position of natural index n (int64[64]).
ZIGZAG_RANK = core.ZIGZAG_RANK
#: The 49 "interior" coefficients (both frequencies >= 1), natural indices in zig-zag order (int64[49]).
INTERIOR = core.INTERIOR
#: Edge coefficients: the first row (vertical frequency 0), then the first column (int64[14]).
EDGES = core.EDGES

__all__ = ["EDGES", "INTERIOR", "ZIGZAG", "ZIGZAG_RANK"]
