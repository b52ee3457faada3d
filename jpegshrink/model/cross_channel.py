"""Cross-channel hints: a chroma component's adaptive contexts conditioned on the co-located luma.

Edges and textures are where all three channels are busy, so how large a luma coefficient is says much
about the same frequency of the chroma block that covers it. The adaptive model takes that as a *hint*
(an extra context dimension that starts from, and keeps teaching, the hint-0 context; see
:mod:`jpegshrink.model.adaptive`): for every interior and edge coefficient of a chroma block, the bit
length (0-7) of the co-located luma coefficient -- the mean (floored) over the luma blocks the chroma block
covers, rescaled to the chroma quantiser's steps (floored) -- and for its nonzero count, a bucket of
the mean interior nonzero count of those luma blocks. The DC pass gets none.

The hints are computed inside the compiled passes (``adaptive_model.cpp: cross_mean, cross_bucket``), from luma
coefficients of the same pass: pass p of a chroma row needs pass p of the luma rows it covers, so the
pipelined decoder runs chroma a little behind luma instead of after it. Integer arithmetic only, so
every machine computes the same hints. Components whose sampling is not an integer fraction of luma's
(at most 4 x 4 luma blocks per block) get none.
"""
from __future__ import annotations

import numpy as np

from jpegshrink.blocks import INTERIOR
from jpegshrink.model.base import ComponentSpec

#: At most this many luma blocks per chroma block in each direction (the kernel's limit).
MAX_COVER = 4


def cover(luma_spec: ComponentSpec, spec: ComponentSpec) -> tuple[int, int] | None:
    """(fy, fx): how many luma block rows and columns one block of ``spec`` covers, or None where its
    grid does not nest in luma's (then it gets no cross-channel hints)."""
    if luma_spec.v_samp % spec.v_samp or luma_spec.h_samp % spec.h_samp:
        return None
    fy, fx = luma_spec.v_samp // spec.v_samp, luma_spec.h_samp // spec.h_samp
    if fy > MAX_COVER or fx > MAX_COVER:
        return None
    if (luma_spec.block_rows, luma_spec.block_cols) != (spec.block_rows * fy, spec.block_cols * fx):
        return None
    return fy, fx


def interior_counts(co: np.ndarray) -> np.ndarray:
    """int64 [rows, cols]: nonzero interior coefficients per block (what the count pass codes)."""
    return np.count_nonzero(co[:, :, list(INTERIOR)], axis=-1).astype(np.int64)
