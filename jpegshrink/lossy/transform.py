"""Pixels -> unquantised DCT coefficients, in integer arithmetic only (same numbers on every CPU).

* Colour: JFIF's full-range BT.601 RGB -> YCbCr with libjpeg's 16-bit fixed-point constants, but
  kept with 4 fractional bits instead of rounded to 8-bit samples (the DCT sees the exact colour).
* Chroma 4:2:0: the mean of each 2x2 (integer, rounded), as libjpeg's simple downsampler does.
* Padding: edge replication to whole MCUs, as libjpeg does.
* Forward DCT: the orthonormal 8x8 DCT-II (which is JPEG's FDCT) as two products with a matrix
  rounded to 13 fractional bits, in int64; the result is kept with 8 fractional bits
  (:data:`COEF_FRAC_BITS`) so the quantiser can make rate-distortion decisions below one step.
"""
from __future__ import annotations

import numpy as np

#: Fractional bits of the sample values the DCT sees.
SAMPLE_FRAC_BITS = 4
#: Fractional bits of the unquantised coefficients :func:`forward_dct` returns.
COEF_FRAC_BITS = 8
_MATRIX_FRAC_BITS = 13

# libjpeg jccolor.c: FIX(x) = round(x * 65536)
_FIX = {"0.29900": 19595, "0.58700": 38470, "0.11400": 7471, "0.16874": 11059, "0.33126": 21709,
        "0.50000": 32768, "0.41869": 27439, "0.08131": 5329}


#: round(8192 * orthonormal DCT-II basis), written out so no libm is involved (row = frequency).
DCT_MATRIX = np.array([
    [2896, 2896, 2896, 2896, 2896, 2896, 2896, 2896],
    [4017, 3406, 2276, 799, -799, -2276, -3406, -4017],
    [3784, 1567, -1567, -3784, -3784, -1567, 1567, 3784],
    [3406, -799, -4017, -2276, 2276, 4017, 799, -3406],
    [2896, -2896, -2896, 2896, 2896, -2896, -2896, 2896],
    [2276, -4017, 799, 3406, -3406, -799, 4017, -2276],
    [1567, -3784, 3784, -1567, -1567, 3784, -3784, 1567],
    [799, -2276, 3406, -4017, 4017, -3406, 2276, -799]], np.int64)


def rgb_to_ycbcr(rgb: np.ndarray) -> list[np.ndarray]:
    """Y, Cb, Cr planes (int64, level-shifted by -128, with :data:`SAMPLE_FRAC_BITS` fractional bits)."""
    r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
    shift = 16 - SAMPLE_FRAC_BITS
    half = 1 << (shift - 1)
    f = _FIX
    y = (f["0.29900"] * r + f["0.58700"] * g + f["0.11400"] * b + half) >> shift
    cb = (-f["0.16874"] * r - f["0.33126"] * g + f["0.50000"] * b + half) >> shift
    cr = (f["0.50000"] * r - f["0.41869"] * g - f["0.08131"] * b + half) >> shift
    return [y - (128 << SAMPLE_FRAC_BITS), cb, cr]


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
    """int64 [rows/8, cols/8, 64] coefficients (natural order) with :data:`COEF_FRAC_BITS` fractional bits."""
    h, w = plane.shape
    blocks = plane.reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 8)
    m = DCT_MATRIX
    # rows of each block: X @ M^T, then columns: M @ (.)
    t = blocks @ m.T                                            # [n*8, 8]
    t = t.reshape(-1, 8, 8).transpose(0, 2, 1).reshape(-1, 8)  # transpose each block
    t = t @ m.T
    t = t.reshape(-1, 8, 8).transpose(0, 2, 1)                  # back: [n, u, v]
    shift = 2 * _MATRIX_FRAC_BITS + SAMPLE_FRAC_BITS - COEF_FRAC_BITS
    t = (t + (1 << (shift - 1))) >> shift
    return t.reshape(h // 8, w // 8, 64)
