"""Pixels -> unquantised DCT coefficients, in integer arithmetic only (same numbers on every CPU).

* Colour: JFIF's full-range BT.601 RGB -> YCbCr with libjpeg's 16-bit fixed-point constants, but
  kept with 4 fractional bits instead of rounded to 8-bit samples (the DCT sees the exact colour).
* Chroma 4:2:0: the mean of each 2x2 (integer, rounded), as libjpeg's simple downsampler does, then
  (encoder lossy-3) one round of error feedback so that libjpeg's upsampler gives the source back
  (:func:`downsample_sharp`).
* Padding: edge replication to whole MCUs, as libjpeg does.
* Forward DCT: the orthonormal 8x8 DCT-II (which is JPEG's FDCT) as two products with a matrix
  rounded to 13 fractional bits, in int64; the result is kept with 8 fractional bits
  (:data:`COEF_FRAC_BITS`) so the quantiser can make rate-distortion decisions below one step.

The colour conversion and the DCT are C++ in the compiled core (``jpegshrink/csrc/lossy_transform.cpp``;
they were numpy, and give the same integers: all 2^24 colours and random planes were compared).
"""
from __future__ import annotations

import numpy as np

from jpegshrink._native import core

if not hasattr(core, "lossy"):  # a checkout whose extension predates the lossy kernels
    raise ImportError("jpegshrink._core has no lossy kernels: rebuild it with `python setup.py build_ext --inplace`")
_kernels = core.lossy

#: Fractional bits of the sample values the DCT sees.
SAMPLE_FRAC_BITS = _kernels.SAMPLE_FRAC_BITS
#: Fractional bits of the unquantised coefficients :func:`forward_dct` returns.
COEF_FRAC_BITS = _kernels.COEF_FRAC_BITS
#: round(8192 * orthonormal DCT-II basis), written out in the C++ source so no libm is involved
#: (row = frequency).
DCT_MATRIX = _kernels.DCT_MATRIX.reshape(8, 8)


def rgb_to_ycbcr(rgb: np.ndarray) -> list[np.ndarray]:
    """Y, Cb, Cr planes (int64, level-shifted by -128, with :data:`SAMPLE_FRAC_BITS` fractional bits).

    libjpeg's FIX(x) = round(x * 65536) constants (jccolor.c), rounded with half = 2^11 and an
    arithmetic shift by 12, as ``(a + half) >> 12`` in Python.
    """
    return list(_kernels.rgb_to_ycbcr(np.ascontiguousarray(rgb, np.uint8)))


def grey_plane(grey: np.ndarray) -> np.ndarray:
    return (grey.astype(np.int64) - 128) << SAMPLE_FRAC_BITS


def pad_to(plane: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Edge-replicate ``plane`` to ``rows`` x ``cols``."""
    h, w = plane.shape
    return np.pad(plane, ((0, rows - h), (0, cols - w)), mode="edge")


def downsample_2x2(plane: np.ndarray) -> np.ndarray:
    """Rounded mean of each 2x2 (both sides of ``plane`` even)."""
    s = plane[0::2, 0::2] + plane[1::2, 0::2] + plane[0::2, 1::2] + plane[1::2, 1::2]
    return (s + 2) >> 2


def _fancy_up_16(d: np.ndarray) -> np.ndarray:
    """16 x libjpeg's h2v2 "fancy" (triangle) upsampling of ``d``, before its rounding: what a decoder shows.

    The full-resolution reference of what :func:`downsample_sharp` computes at half resolution (tests).
    """
    def up(x, axis):
        n = x.shape[axis]
        prev = np.take(x, np.r_[0, np.arange(n - 1)], axis=axis)
        nxt = np.take(x, np.r_[np.arange(1, n), n - 1], axis=axis)
        out = np.stack([3 * x + prev, 3 * x + nxt], axis=axis + 1)
        shape = list(x.shape)
        shape[axis] *= 2
        return out.reshape(shape)
    return up(up(d, 0), 1)


def downsample_sharp(plane: np.ndarray, percent: int) -> np.ndarray:
    """2x2 downsampling whose *upsampled* image matches ``plane`` (both sides even), integer only.

    The 2x2 mean ``d``, then one round of error feedback through the upsampler decoders use (libjpeg's
    h2v2 "fancy" triangle filter): ``d += percent/100 * mean2x2(plane - fancy_up(d))``. The plain mean
    is what a decoder blurs once more when it upsamples; the corrected samples overshoot at chroma
    edges just enough for the upsampled chroma to meet the source (libwebp's "sharp YUV", in spirit, for
    libjpeg's filter). One round at 100 % was best on the tuning photos (60 / 140 %, 2 or 4 rounds: worse).
    ``percent = 0`` is :func:`downsample_2x2`.
    """
    s = plane[0::2, 0::2] + plane[1::2, 0::2] + plane[0::2, 1::2] + plane[1::2, 1::2]
    d = (s + 2) >> 2
    if percent:
        # mean2x2(16 * plane - fancy_up_16(d)) without the full-resolution upsampling: over each 2x2,
        # the triangle filter's weights add up to [1, 6, 1] x [1, 6, 1] of d (edges replicated)
        p = np.pad(d, 1, mode="edge")
        h = p[:, :-2] + 6 * p[:, 1:-1] + p[:, 2:]
        up_sum = h[:-2] + 6 * h[1:-1] + h[2:]
        err = ((s << 4) - up_sum + 2) >> 2
        d = d + ((err * percent + 800) // 1600)
    return d


def chroma_detail(cb: np.ndarray, cr: np.ndarray) -> float:
    """Mean squared chroma error (in 8-bit units) that 4:2:0 subsampling alone causes (even-sized crop).

    Used only to *choose* the subsampling; it never feeds a coefficient.
    """
    h, w = (cb.shape[0] // 2) * 2, (cb.shape[1] // 2) * 2
    if h == 0 or w == 0:
        return 0.0
    err = 0
    for p in (cb[:h, :w], cr[:h, :w]):
        m = downsample_2x2(p)
        up = np.repeat(np.repeat(m, 2, 0), 2, 1)
        err += int(np.sum((p - up) ** 2))
    return err / (2 * h * w) / float(1 << (2 * SAMPLE_FRAC_BITS))


def forward_dct(plane: np.ndarray) -> np.ndarray:
    """int64 [rows/8, cols/8, 64] coefficients (natural order) with :data:`COEF_FRAC_BITS` fractional bits.

    ``round(M X M^T)`` per block with :data:`DCT_MATRIX`, exact in int64, shifted down by
    2 * 13 + SAMPLE_FRAC_BITS - COEF_FRAC_BITS bits (compiled core: ``_core.lossy.forward_dct``).
    """
    return _kernels.forward_dct(np.ascontiguousarray(plane, np.int64))
