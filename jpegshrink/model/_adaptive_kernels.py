"""numba kernels of the adaptive model: one function per kind of pass, shared by encoder and decoder.

Each kernel walks all blocks of one component in raster order and codes (``enc``) or decodes the
symbols of its pass with :func:`jpegshrink.coding.binary_arith.code_bit`. Encoder and decoder run the
same code path, so their contexts cannot drift apart. All counters live in one int32 array (see
:mod:`jpegshrink.coding.binary_arith`); the ``*_OFF`` constants are the offsets of the sub-models in it,
and the ``*_HSTRIDE`` constants the distance between two hint values of a hinted sub-model.
The module docstring of :mod:`jpegshrink.model.adaptive` describes the model itself.
"""
from __future__ import annotations

import numpy as np

from jpegshrink._jit import njit
from jpegshrink.coding.binary_arith import ERR, POS, code_bit, code_bit_backoff

#: Zigzag scan order as natural (row-major) indices.
ZIGZAG = np.array([0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34,
                   27, 20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37,
                   44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63], dtype=np.int64)
#: The 49 coefficients with both frequencies >= 1, in zigzag order.
INTERIOR = np.array([n for n in ZIGZAG if n // 8 >= 1 and n % 8 >= 1], dtype=np.int64)
#: Edge coefficients: first row (vertical frequency 0) then first column (horizontal frequency 0).
EDGES = np.array([1, 2, 3, 4, 5, 6, 7, 8, 16, 24, 32, 40, 48, 56], dtype=np.int64)

#: Integer DCT basis: K[u, x] = round(2048 * sqrt(2) * C(u) * cos((2x + 1) u pi / 16)), C(0) = 1/sqrt(2).
#: With it, 8 * pixel(x, y) * 2^22 = sum over (v, u) of K[v, y] * K[u, x] * coef[v, u] * q[v, u].
#: Written out (not computed) so that every machine uses the same integers.
K = np.array([
    [2048, 2048, 2048, 2048, 2048, 2048, 2048, 2048],
    [2841, 2408, 1609, 565, -565, -1609, -2408, -2841],
    [2676, 1108, -1108, -2676, -2676, -1108, 1108, 2676],
    [2408, -565, -2841, -1609, 1609, 2841, 565, -2408],
    [2048, -2048, -2048, 2048, 2048, -2048, -2048, 2048],
    [1609, -2841, 565, 2408, -2408, -565, 2841, -1609],
    [1108, -2676, 2676, -1108, -1108, 2676, -2676, 1108],
    [565, -1609, 2408, -2841, 2841, -2408, 1609, -565]], dtype=np.int64)

N_HINTS = 8
LIMIT = 255           # counters stop slowing down after this many hits
MARGIN = 1 << 14      # free output bytes guaranteed before each block (a block never needs more)

# Remaining-nonzero bins for the 7x7 interior (0..49 -> 0..9).
NZ_BIN = np.array([0, 1, 2, 3, 4, 4, 5, 5, 6, 6, 6, 6] + [7] * 8 + [8] * 12 + [9] * 18, dtype=np.int64)
NZ_BINS = 10
NZ_CTX = 51           # count contexts: neighbours' mean count 0..49 + "no neighbour"
PRIOR_BINS = 12       # bit length of a magnitude prediction, capped
EXP_N = 17            # unary exponent branches (values up to 2^17 - 1: DC residuals)
NB_BINS = 4           # bit length (capped) of the same edge coefficient in the neighbours

# Offsets of the sub-models in the counter arrays.
CNT_OFF = 0                                                      # [hint][ctx][tree node 64]
IE_OFF = CNT_OFF + N_HINTS * NZ_CTX * 64                         # [hint][nz bin][49][prior][exp]
IS_OFF = IE_OFF + N_HINTS * NZ_BINS * 49 * PRIOR_BINS * EXP_N    # [49][sign A][sign L]
MANT_OFF = IS_OFF + 49 * 9                                       # [pos 64][exp 18][bit 17]
ECNT_OFF = MANT_OFF + 64 * 18 * 17                               # [hint][dir][eob 8][nz bin 8][node 8]
EE_OFF = ECNT_OFF + N_HINTS * 2 * 8 * 8 * 8                      # [hint][rem 7][14][prior][nb][exp]
ES_OFF = EE_OFF + N_HINTS * 7 * 14 * PRIOR_BINS * NB_BINS * EXP_N  # [14][pred sign 3][prior]
DCE_OFF = ES_OFF + 14 * 3 * PRIOR_BINS                           # [hint][u1][u2][exp]
DCS_OFF = DCE_OFF + N_HINTS * PRIOR_BINS * PRIOR_BINS * EXP_N    # [u1][u2]
ETOP_OFF = DCS_OFF + PRIOR_BINS * PRIOR_BINS                     # [14][prior][exp]: top mantissa bit
IPAR_OFF = ETOP_OFF + 14 * PRIOR_BINS * EXP_N                    # [49][prior][exp]: parents of IE
EPAR_OFF = IPAR_OFF + 49 * PRIOR_BINS * EXP_N                    # [14][prior][exp]: parents of EE
N_COUNTERS = EPAR_OFF + 14 * PRIOR_BINS * EXP_N
IE_HSTRIDE = NZ_BINS * 49 * PRIOR_BINS * EXP_N
EE_HSTRIDE = 7 * 14 * PRIOR_BINS * NB_BINS * EXP_N
ECNT_HSTRIDE = 2 * 8 * 8 * 8
DCE_HSTRIDE = PRIOR_BINS * PRIOR_BINS * EXP_N


@njit(inline="always")
def _bitlen(a: int) -> int:
    n = 0
    while a > 0:
        n += 1
        a >>= 1
    return n


@njit(inline="always")
def _cap(n: int) -> int:
    return n if n < PRIOR_BINS else PRIOR_BINS - 1


#: CAPPED_BITLEN[min(a, 2047)] = min(bit length of a, PRIOR_BINS - 1) for a >= 0, in one load.
CAPPED_BITLEN = np.array([min(int(a).bit_length(), PRIOR_BINS - 1) for a in range(2048)], dtype=np.int64)


@njit(inline="always")
def _capped_bitlen(a: int) -> int:
    return CAPPED_BITLEN[a if a < 2047 else 2047]


@njit(inline="always")
def _sgn3(v: int) -> int:
    if v > 0:
        return 1
    if v < 0:
        return 2
    return 0


@njit
def _grow(buf: np.ndarray, pos: int) -> np.ndarray:
    if pos + MARGIN <= buf.shape[0]:
        return buf
    out = np.empty(max(2 * buf.shape[0], pos + 2 * MARGIN), dtype=np.uint8)
    out[:pos] = buf[:pos]
    return out


@njit(inline="always")
def _hinted_bit(enc, st, buf, T, ctx, h, h_stride, bit):
    """A decision whose context includes a hint h > 0 starts from (and keeps teaching) the same
    context with hint 0, so an uninformative hint costs little."""
    if h > 0:
        return code_bit_backoff(enc, st, buf, T, ctx, ctx - h * h_stride, bit, LIMIT)
    return code_bit(enc, st, buf, T, ctx, bit, LIMIT)


@njit(inline="always")
def _code_value(enc, st, buf, T, exp_base, parent_base, sign_ctx, mant_pos, top_base, v, max_exp):
    """Exp-Golomb binarisation: exponent e = bit length of |v| in unary, sign, then e-1 mantissa bits.

    Mantissa bits use counters [position][exponent][bit]; when ``top_base`` >= 0 the first of them
    uses counter ``top_base + exponent`` instead (a context that knows a prediction of the value).
    Returns the (decoded) value as int64; the caller checks its range."""
    a = v if v >= 0 else -v
    e = _bitlen(a) if enc else 0
    n = 0
    while n < max_exp:
        if parent_base >= 0:
            b = code_bit_backoff(enc, st, buf, T, exp_base + n, parent_base + n, 1 if e > n else 0, LIMIT)
        else:
            b = code_bit(enc, st, buf, T, exp_base + n, 1 if e > n else 0, LIMIT)
        if b == 0:
            break
        n += 1
    if n == 0:
        return 0
    neg = code_bit(enc, st, buf, T, sign_ctx, 1 if v < 0 else 0, LIMIT)
    r = 1
    mbase = MANT_OFF + (mant_pos * 18 + n) * 17
    for i in range(n - 2, -1, -1):
        ctx = top_base + n if (top_base >= 0 and i == n - 2) else mbase + i
        r = (r << 1) | code_bit(enc, st, buf, T, ctx, (a >> i) & 1, LIMIT)
    return -r if neg else r


@njit
def count_pass(enc, co, nz7, nzrem, hint, has_hint, T, st, buf):
    """Pass 0: the number of nonzero interior (7x7) coefficients of every block."""
    R, C = co.shape[0], co.shape[1]
    for by in range(R):
        for bx in range(C):
            if enc:
                buf = _grow(buf, st[POS])
                c = 0
                for k in range(49):
                    if co[by, bx, INTERIOR[k]] != 0:
                        c += 1
            else:
                c = 0
            if by > 0 and 0 < bx < C - 1:
                ctx = (2 * nz7[by - 1, bx] + 2 * nz7[by, bx - 1] + nz7[by - 1, bx - 1]
                       + nz7[by - 1, bx + 1] + 3) // 6
            elif by > 0 and bx > 0:
                ctx = (nz7[by - 1, bx] + nz7[by, bx - 1] + 1) >> 1
            elif by > 0:
                ctx = nz7[by - 1, bx]
            elif bx > 0:
                ctx = nz7[by, bx - 1]
            else:
                ctx = NZ_CTX - 1
            h = hint[by, bx, 0] if has_hint else 0
            base = CNT_OFF + (h * NZ_CTX + ctx) * 64
            node = 1
            for i in range(5, -1, -1):
                node = (node << 1) | _hinted_bit(enc, st, buf, T, base + node, h, NZ_CTX * 64, (c >> i) & 1)
            c = node - 64
            if c > 49:
                st[ERR] = 1
                c = 49
            nz7[by, bx] = c
            nzrem[by, bx] = c
    return buf


@njit
def interior_pass(enc, co, z0, z1, nzrem, hint, has_hint, T, st, buf):
    """Interior coefficients INTERIOR[z0:z1] of every block, skipping blocks with none left."""
    R, C = co.shape[0], co.shape[1]
    for by in range(R):
        for bx in range(C):
            if enc:
                buf = _grow(buf, st[POS])
            rem = nzrem[by, bx]
            if rem == 0:
                continue
            for k in range(z0, z1):
                pos = INTERIOR[k]
                if by > 0 and bx > 0:
                    a = abs(np.int64(co[by - 1, bx, pos]))
                    l = abs(np.int64(co[by, bx - 1, pos]))
                    al = abs(np.int64(co[by - 1, bx - 1, pos]))
                    prior = (13 * (a + l) + 6 * al + 16) >> 5
                    sctx = 3 * _sgn3(co[by - 1, bx, pos]) + _sgn3(co[by, bx - 1, pos])
                elif by > 0:
                    prior = abs(np.int64(co[by - 1, bx, pos]))
                    sctx = 3 * _sgn3(co[by - 1, bx, pos])
                elif bx > 0:
                    prior = abs(np.int64(co[by, bx - 1, pos]))
                    sctx = _sgn3(co[by, bx - 1, pos])
                else:
                    prior = 0
                    sctx = 0
                pb = _capped_bitlen(prior)
                h = hint[by, bx, k - z0] if has_hint else 0
                eb = IE_OFF + (((h * NZ_BINS + NZ_BIN[rem]) * 49 + k) * PRIOR_BINS + pb) * EXP_N
                parent = (eb - h * IE_HSTRIDE) if h > 0 else IPAR_OFF + (k * PRIOR_BINS + pb) * EXP_N
                v = np.int64(co[by, bx, pos]) if enc else np.int64(0)
                v = _code_value(enc, st, buf, T, eb, parent, IS_OFF + k * 9 + sctx, pos, -1, v, 16)
                if not enc:
                    if v < -32768 or v > 32767:
                        st[ERR] = 1
                        v = 0
                    co[by, bx, pos] = v
                if v != 0:
                    rem -= 1
                    if rem == 0:
                        break
            nzrem[by, bx] = rem
    return buf


@njit(inline="always")
def _edge_prediction(co, q, by, bx, pos, horizontal):
    """Predict edge coefficient ``pos`` from the neighbour across the block boundary (Lepton's idea).

    For the first row (horizontal=True, pos = u) the column-u profile of the block above at its last
    pixel row must meet this block's profile at pixel row 0; everything in that equation is known
    except this coefficient. Likewise the first column against the block to the left."""
    if horizontal:
        u = pos
        num = 0
        for v in range(8):
            num += K[v, 7] * np.int64(co[by - 1, bx, v * 8 + u]) * np.int64(q[v * 8 + u])
        for v in range(1, 8):
            num -= K[v, 0] * np.int64(co[by, bx, v * 8 + u]) * np.int64(q[v * 8 + u])
        den = 2048 * max(np.int64(q[u]), 1)
    else:
        v = pos // 8
        num = 0
        for u in range(8):
            num += K[u, 7] * np.int64(co[by, bx - 1, v * 8 + u]) * np.int64(q[v * 8 + u])
        for u in range(1, 8):
            num -= K[u, 0] * np.int64(co[by, bx, v * 8 + u]) * np.int64(q[v * 8 + u])
        den = 2048 * max(np.int64(q[v * 8]), 1)
    return (2 * num + den) // (2 * den)


@njit
def edge_pass(enc, co, q, nz7, hint, has_hint, T, st, buf):
    """First row and first column of every block, each preceded by its nonzero count."""
    R, C = co.shape[0], co.shape[1]
    for by in range(R):
        for bx in range(C):
            if enc:
                buf = _grow(buf, st[POS])
            eob_x = 0
            eob_y = 0
            if nz7[by, bx]:
                for v in range(1, 8):
                    for u in range(1, 8):
                        if co[by, bx, v * 8 + u] != 0:
                            eob_y = v
                            if u > eob_x:
                                eob_x = u
            nzb = (nz7[by, bx] + 3) // 7
            for d in range(2):
                horizontal = d == 0
                step = 1 if horizontal else 8
                have = by > 0 if horizontal else bx > 0
                c = 0
                if enc:
                    for i in range(1, 8):
                        if co[by, bx, i * step] != 0:
                            c += 1
                h = hint[by, bx, 7 * d] if has_hint else 0
                base = ECNT_OFF + (((h * 2 + d) * 8 + (eob_x if horizontal else eob_y)) * 8 + nzb) * 8
                node = 1
                for i in range(2, -1, -1):
                    node = (node << 1) | _hinted_bit(enc, st, buf, T, base + node, h, ECNT_HSTRIDE, (c >> i) & 1)
                rem = node - 8
                for i in range(1, 8):
                    if rem == 0:
                        break
                    pos = i * step
                    idx = 7 * d + i - 1
                    pred = _edge_prediction(co, q, by, bx, pos, horizontal) if have else 0
                    pbl = _capped_bitlen(abs(pred))
                    if by > 0 and bx > 0:
                        nprior = (abs(np.int64(co[by - 1, bx, pos])) + abs(np.int64(co[by, bx - 1, pos]))
                                  + 1) >> 1
                    elif by > 0:
                        nprior = abs(np.int64(co[by - 1, bx, pos]))
                    elif bx > 0:
                        nprior = abs(np.int64(co[by, bx - 1, pos]))
                    else:
                        nprior = 0
                    nb = min(_capped_bitlen(nprior), NB_BINS - 1)
                    h = hint[by, bx, idx] if has_hint else 0
                    eb = EE_OFF + ((((h * 7 + rem - 1) * 14 + idx) * PRIOR_BINS + pbl) * NB_BINS + nb) * EXP_N
                    sc = ES_OFF + (idx * 3 + _sgn3(pred)) * PRIOR_BINS + pbl
                    parent = (eb - h * EE_HSTRIDE) if h > 0 else EPAR_OFF + (idx * PRIOR_BINS + pbl) * EXP_N
                    top = ETOP_OFF + (idx * PRIOR_BINS + pbl) * EXP_N
                    v = np.int64(co[by, bx, pos]) if enc else np.int64(0)
                    v = _code_value(enc, st, buf, T, eb, parent, sc, pos, top, v, 16)
                    if not enc:
                        if v < -32768 or v > 32767:
                            st[ERR] = 1
                            v = 0
                        co[by, bx, pos] = v
                    if v != 0:
                        rem -= 1
                if rem != 0:
                    st[ERR] = 1
    return buf


#: KG[v] = 3 K[v, 0] - K[v, 1]: twice the AC-only pixel value extrapolated half a pixel past row (column) 0.
KG = np.array([3 * K[v, 0] - K[v, 1] for v in range(8)], dtype=np.int64)


@njit(inline="always")
def _edge_gradients(co, q, by, bx, sums, g):
    """Twice the AC-only (DC left out) pixel values of one block extrapolated half a pixel beyond its
    four borders, from the two outermost pixel lines (3 p0 - p1), units 8 * pixel * 2^12:
    g[0] top (from rows 0, 1), g[1] bottom (rows 7, 6), g[2] left (columns 0, 1), g[3] right (7, 6).

    K[v, 7 - y] = (-1)^v K[v, y], so even and odd frequencies are summed apart and the far side comes
    from the same sums with the odd part negated; likewise pixel 7 - x from the sums of pixel x."""
    sums[:, :] = 0
    any_ac = False
    for pos in range(1, 64):
        f = np.int64(co[by, bx, pos])
        if f == 0:
            continue
        any_ac = True
        fq = f * np.int64(q[pos])
        v = pos >> 3
        u = pos & 7
        sums[v & 1, u] += KG[v] * fq
        sums[2 + (u & 1), v] += KG[u] * fq
    if not any_ac:
        g[:, :] = 0
        return
    for j in range(2):           # j: 0 = rows (top / bottom), 1 = columns (left / right)
        e = 2 * j
        for x in range(4):
            ev_n = 0
            od_n = 0
            ev_f = 0
            od_f = 0
            for u in range(0, 8, 2):
                ev_n += K[u, x] * ((sums[e, u] + sums[e + 1, u]) >> 4)
                ev_f += K[u, x] * ((sums[e, u] - sums[e + 1, u]) >> 4)
            for u in range(1, 8, 2):
                od_n += K[u, x] * ((sums[e, u] + sums[e + 1, u]) >> 4)
                od_f += K[u, x] * ((sums[e, u] - sums[e + 1, u]) >> 4)
            g[e, x] = (ev_n + od_n) >> 6
            g[e, 7 - x] = (ev_n - od_n) >> 6
            g[e + 1, x] = (ev_f + od_f) >> 6
            g[e + 1, 7 - x] = (ev_f - od_f) >> 6


@njit
def dc_pass(enc, co, q, hint, has_hint, T, st, buf):
    """DC of every block, predicted from its own AC and its neighbours' pixels at the shared edges.

    Each of the 8 pixels along the top (left) boundary gives an estimate: extrapolate the block above
    (left) one half pixel past its last row (column) using its last two, do the same backwards for this
    block's AC-only first two, and the DC is what makes them meet. The prediction is the mean estimate;
    the spread of the estimates and the disagreement between the two sides choose the contexts."""
    R, C = co.shape[0], co.shape[1]
    q0 = max(np.int64(q[0]), 1)
    unit = 2 * q0 * 4096                     # one DC step in doubled line units
    prev = np.zeros((C, 4, 8), dtype=np.int64)  # edge gradients of the row above
    cur = np.zeros((C, 4, 8), dtype=np.int64)
    sums = np.zeros((4, 8), dtype=np.int64)
    for by in range(R):
        for bx in range(C):
            if enc:
                buf = _grow(buf, st[POS])
            g = cur[bx]
            _edge_gradients(co, q, by, bx, sums, g)
            n = 0
            total = 0
            lo = np.int64(1) << 62
            hi = -lo
            sum_a = 0
            sum_l = 0
            if by > 0:
                dca = np.int64(co[by - 1, bx, 0]) * q0 * 8192
                for x in range(8):
                    e = prev[bx, 1, x] + dca - g[0, x]
                    sum_a += e
                    lo = min(lo, e)
                    hi = max(hi, e)
                n += 8
            if bx > 0:
                dcl = np.int64(co[by, bx - 1, 0]) * q0 * 8192
                for y in range(8):
                    e = cur[bx - 1, 3, y] + dcl - g[2, y]
                    sum_l += e
                    lo = min(lo, e)
                    hi = max(hi, e)
                n += 8
            if n > 0:
                total = sum_a + sum_l - lo - hi
                d = (n - 2) * unit
                pred = (2 * total + d) // (2 * d)
                u1 = _cap(_bitlen((hi - lo) // unit))
                if n == 16:
                    u2 = _cap(_bitlen(abs(sum_a - sum_l) // (8 * unit)) + 1)
                else:
                    u2 = 0
            else:
                pred = 0
                u1 = PRIOR_BINS - 1
                u2 = PRIOR_BINS - 1
            pred = max(-32768, min(32767, pred))
            h = hint[by, bx, 0] if has_hint else 0
            eb = DCE_OFF + ((h * PRIOR_BINS + u1) * PRIOR_BINS + u2) * EXP_N
            r = np.int64(co[by, bx, 0]) - pred if enc else np.int64(0)
            parent = (eb - h * DCE_HSTRIDE) if h > 0 else -1
            r = _code_value(enc, st, buf, T, eb, parent, DCS_OFF + u1 * PRIOR_BINS + u2, 0, -1, r, EXP_N)
            if not enc:
                dc = pred + r
                if dc < -32768 or dc > 32767:
                    st[ERR] = 1
                    dc = 0
                co[by, bx, 0] = dc
        prev, cur = cur, prev
    return buf
