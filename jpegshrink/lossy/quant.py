"""Quantisation: tables per image, masking-aware block weights, and rate-distortion optimised rounding.

Each AC coefficient may take its nearest quantised value ``v0``, ``v0 - 1`` (towards zero) or, when
``v0 <= 2``, zero; the choice minimises

    D + lambda * R,    D = (error / step)^2 * block_weight,    R = bits the coefficient costs

block by block in raster order (the order in which our coder's neighbour contexts become known), in
the spirit of mozjpeg's trellis. The rate term is priced with the *shape* of our coefficient model's
contexts, not with Huffman code lengths: a coefficient's cost depends on its zigzag position and on
the magnitude of the same coefficient in the blocks above and to the left (adaptive-1 / learned2 use
exactly these neighbours for their exponent contexts), plus sign and mantissa bits. The table of
costs is *static per image*: estimated from the image's own quantised coefficients (two passes), i.e.
an approximation of what learned2 will pay, not its exact arithmetic-coded length (pricing every
decision with the real adaptive coder would need a coder state per candidate, far too slow).

``block_weight`` is the masking term (jpegli's adaptive quantisation, in spirit): errors in busy
blocks are less visible, so their weight falls with the block's AC activity (smoothed over its
neighbours). JPEG has one quantisation table per component, so masking acts through these rounding
decisions (a wider dead zone in textured areas), as jpegli's does.

Everything is integer arithmetic, including the cost table's logarithms: the same coefficients on
every CPU, whatever the thread count. The per-coefficient loops (context counts, cost table, the RDO
itself) are C++ in the compiled core (``jpegshrink/csrc/lossy_rdo.cpp``, ``jpegshrink._core.lossy``);
they replaced numba kernels and give the same coefficients (sha256 of the output pinned in
tests/test_lossy.py).
"""
from __future__ import annotations

import numpy as np

from jpegshrink._native import core
from jpegshrink.lossy.transform import COEF_FRAC_BITS

if not hasattr(core, "lossy"):  # a checkout whose extension predates these kernels
    raise ImportError("jpegshrink._core has no lossy kernels: rebuild it with `python setup.py build_ext --inplace`")
_kernels = core.lossy
#: Neighbour-magnitude contexts of the cost table (bit length of |above| + |left|, capped).
N_CTX = _kernels.N_CTX
#: Magnitude classes (bit length of |v|: 0 for zero .. 11 for 8-bit JPEG's largest AC).
N_MAG = _kernels.N_MAG
#: Fixed point of the block weights (256 = 1.0) and of the cost table (1/256 bit).
ONE = _kernels.ONE
if _kernels.COEF_FRAC_BITS != COEF_FRAC_BITS:
    raise ImportError("jpegshrink._core's lossy kernels disagree with transform.COEF_FRAC_BITS: rebuild it")

# Annex K (ITU T.81) example tables, natural order; IJG scales them with quality.
ANNEX_K_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], np.int64)
ANNEX_K_CHROMA = np.array([
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99], np.int64)


# jpegli's (BSD-3, github.com/google/jpegli) YCbCr tables at its quality 50, read from its output
# (natural order); its chroma table's odd last entry (255) is replaced by its neighbours' value. They are
# much flatter than Annex K, and chroma is *finer* than luma (jpegli spends on chroma; 4:2:0 saves it).
JPEGLI_LUMA = np.array([
    12, 10, 20, 21, 33, 34, 37, 38, 10, 14, 20, 23, 34, 31, 39, 39, 20, 20, 24, 27, 34, 38, 37, 41,
    21, 23, 27, 33, 41, 42, 42, 45, 33, 34, 34, 41, 45, 48, 54, 54, 34, 31, 38, 42, 48, 53, 50, 59,
    37, 39, 37, 42, 54, 50, 53, 53, 38, 39, 41, 45, 54, 59, 53, 43], np.int64)
JPEGLI_CHROMA = np.array([
    12, 8, 17, 16, 26, 24, 29, 31, 8, 13, 17, 17, 24, 21, 27, 28, 17, 17, 20, 18, 22, 25, 26, 30,
    16, 17, 18, 21, 27, 24, 26, 31, 26, 24, 22, 27, 21, 31, 24, 30, 24, 21, 25, 24, 31, 27, 31, 46,
    29, 27, 26, 26, 24, 31, 49, 45, 31, 28, 30, 31, 30, 46, 45, 46], np.int64)
#: Base table families, (luma, chroma), scaled with IJG's quality formula.
TABLE_FAMILIES = {"annexk": (ANNEX_K_LUMA, ANNEX_K_CHROMA), "jpegli": (JPEGLI_LUMA, JPEGLI_CHROMA)}


def ijg_scale(quality: int) -> int:
    """IJG's percentage scale factor for a 1..100 quality."""
    q = min(max(int(quality), 1), 100)
    return 5000 // q if q < 50 else 200 - 2 * q


def table(base: np.ndarray, quality: int, flatten: int) -> np.ndarray:
    """A baseline table (1..255) from a ``base`` (TABLE_FAMILIES), ``quality`` and a flattening in percent.

    ``flatten`` pulls every step towards the table's DC step (0 = the base's own shape): a flatter
    luma table keeps texture that SSIMULACRA2 and butteraugli notice (tuned on the tuning photos).
    """
    b = base * (100 - flatten) + base[0] * flatten      # percent units, integer
    t = (b * ijg_scale(quality) + 5000) // 10000
    return np.clip(t, 1, 255).astype(np.int64)


def cost_table(quantised: list[np.ndarray]) -> np.ndarray:
    """int64 [64, N_CTX, N_MAG] bits (1/256) of each magnitude class, from these components' statistics."""
    hist = np.zeros((64, N_CTX, N_MAG), np.int64)
    for q in quantised:
        _kernels.count_contexts(np.ascontiguousarray(q, np.int64), hist)
    return _kernels.costs_from_counts(hist)


def block_weights(luma_coef: np.ndarray, strength: int, threshold: int) -> np.ndarray:
    """Masking weights (256 = 1.0) per luma block from its AC activity, smoothed over the 4 neighbours.

    activity = sum of |AC| in coefficient units; weight = 256 * T / (T + strength% * activity).
    """
    act = np.abs(luma_coef[:, :, 1:]).sum(axis=2) >> COEF_FRAC_BITS
    p = np.pad(act, 1, mode="edge")
    act = (2 * act + p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:]) // 6
    w = (ONE * threshold * 100) // (threshold * 100 + strength * act)
    return np.maximum(w, ONE // 8).astype(np.int64)


def weights_for(luma_weights: np.ndarray, rows: int, cols: int, sub: int) -> np.ndarray:
    """Block weights of a component ``sub`` times smaller than luma (mean of the covered luma blocks)."""
    w = luma_weights
    if sub == 2:
        h, wd = (w.shape[0] // 2) * 2, (w.shape[1] // 2) * 2
        w = (w[0:h:2, 0:wd:2] + w[1:h:2, 0:wd:2] + w[0:h:2, 1:wd:2] + w[1:h:2, 1:wd:2]) // 4
    return np.ascontiguousarray(w[:rows, :cols])


def quantise(coef: np.ndarray, qt: np.ndarray, weight: np.ndarray, lam: int, costs: np.ndarray | None,
             deadzone: int = 128, truncate: bool = False) -> np.ndarray:
    """int16 [rows, cols, 64] quantised coefficients; ``costs=None``: rounding with a dead zone (1/256 step).

    ``truncate`` (with ``costs``): after the per-coefficient decisions, cut each block's interior (7x7),
    first-row and first-column runs after the last nonzero that minimises D + lambda R when the run's
    trailing zeros are free, as they are for our coder, which codes each run's nonzero count first and
    stops at its last nonzero (mozjpeg's end-of-block trellis, with our coder's runs instead of EOB).
    """
    return _kernels.quantise(np.ascontiguousarray(coef, np.int64), np.ascontiguousarray(qt, np.int64),
                             np.ascontiguousarray(weight, np.int64), int(lam), costs, int(deadzone),
                             int(bool(truncate)))


def to_int16(q: np.ndarray) -> np.ndarray:
    """Baseline 8-bit JPEG limits: DC differences and AC magnitudes fit 11 and 10 bits."""
    q = q.copy()
    q[:, :, 1:] = np.clip(q[:, :, 1:], -1023, 1023)
    q[:, :, 0] = np.clip(q[:, :, 0], -1024, 1023)   # |DC| <= 1024 keeps every difference within 2047
    return q.astype(np.int16)
