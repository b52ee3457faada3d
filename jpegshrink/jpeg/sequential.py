"""Sequential (baseline / extended) Huffman scans: decode to coefficients and re-encode bit-exactly.

Both coders walk the scan interval by interval (an interval is the data between restart markers).
Geometry comes as ``geo`` int64 [blocks_per_mcu, 9] rows of
``(predictor, offset, cols, V, H, dy, dx, dc_slot, ac_slot)``: block ``b`` of MCU ``(my, mx)`` is
``coef[offset + (my * V + dy) * cols + mx * H + dx]``.
"""
from __future__ import annotations

import numpy as np

from jpegshrink._jit import njit
from jpegshrink.jpeg.bitio import (BAD_CODE, BAD_INDEX, BIT_LENGTH, NO_SYMBOL, OK, ZIGZAG, cttz, decode_symbol,
                                   drain, extend, flush, nonzero_mask, peek, push, refill, reserve, unstuff)
from jpegshrink.jpeg.huffman import LOOKAHEAD


@njit
def interval_mcus(i, restart, nmcu):
    if restart <= 0:
        return 0, nmcu
    m0 = i * restart
    return m0, min(m0 + restart, nmcu)


@njit
def decode_sequential(data, starts, ends, restart, mcux, nmcu, geo, lookup, maxcode, valptr, mincode, huffval,
                      coef, pads, padbits, truncated):
    """Decode every interval into ``coef``; returns ``(status, byte offset of an error)``.

    Per interval it records the pad bits after the last MCU (``pads``/``padbits``) or, when the data
    runs out first, ``truncated[i]`` = the MCU it ran out in (else -1); MCUs from the cut on stay zero.
    """
    zz = ZIGZAG
    nb = geo.shape[0]
    buf, ustarts, uends = unstuff(data, starts, ends)
    for i in range(starts.shape[0]):
        m0, m1 = interval_mcus(i, restart, nmcu)
        p0 = ustarts[i]
        p = p0
        avail = 8 * (uends[i] - p0)
        acc = np.uint64(0)
        nbits = 0
        pred = np.zeros(4, np.int64)
        my = m0 // mcux
        mx = m0 - my * mcux - 1  # advanced at the top of each MCU
        for m in range(m0, m1):
            mx += 1
            if mx == mcux:
                mx = 0
                my += 1
            status = OK
            for b in range(nb):
                blk = (geo[b, 1] + (my * geo[b, 3] + geo[b, 5]) * geo[b, 2] + mx * geo[b, 4] + geo[b, 6])
                c = geo[b, 0]
                if nbits < 32:  # guard here: an unguarded call runs 10x slower
                    p, acc, nbits = refill(buf, p, acc, nbits)
                e = lookup[geo[b, 7], np.int64(acc >> np.uint64(64 - LOOKAHEAD))]  # short codes: one lookup, inline
                if e != 0:
                    s = np.int64(e & 0xFF)
                    length = np.int64(e >> 8)
                else:
                    s, length = decode_symbol(acc, geo[b, 7], lookup, maxcode, valptr, mincode, huffval)
                if length == 0 or s > 15:
                    status = BAD_CODE
                    break
                acc <<= np.uint64(length)
                nbits -= length
                if s:
                    v = extend(peek(acc, s), s)
                    acc <<= np.uint64(s)
                    nbits -= s
                    pred[c] += v
                coef[blk, 0] = pred[c]
                k = 1
                ac = geo[b, 8]
                while k < 64:
                    if nbits < 32:  # guard here: an unguarded call runs 10x slower
                        p, acc, nbits = refill(buf, p, acc, nbits)
                    e = lookup[ac, np.int64(acc >> np.uint64(64 - LOOKAHEAD))]  # short codes: one lookup, inline
                    if e != 0:
                        rs = np.int64(e & 0xFF)
                        length = np.int64(e >> 8)
                    else:
                        rs, length = decode_symbol(acc, ac, lookup, maxcode, valptr, mincode, huffval)
                    if length == 0:
                        status = BAD_CODE
                        break
                    acc <<= np.uint64(length)
                    nbits -= length
                    r = rs >> 4
                    s = rs & 15
                    if s:
                        k += r
                        if k > 63:
                            status = BAD_INDEX
                            break
                        coef[blk, zz[k]] = extend(peek(acc, s), s)
                        acc <<= np.uint64(s)
                        nbits -= s
                        k += 1
                    elif r == 15:
                        k += 16
                    else:
                        break
                if status != OK:
                    break
            if status != OK or (p - p0) * 8 - nbits > avail:
                if (p - p0) * 8 - nbits <= avail:
                    return status, starts[i] + (p - p0)
                truncated[i] = m  # the data ended inside MCU m: forget its partial blocks
                for b in range(nb):
                    coef[(geo[b, 1] + (my * geo[b, 3] + geo[b, 5]) * geo[b, 2] + mx * geo[b, 4] + geo[b, 6]), :] = 0
                break
        if truncated[i] < 0:
            gap = (8 - ((p - p0) * 8 - nbits) % 8) % 8
            if nbits < 32:  # guard here: an unguarded call runs 10x slower
                p, acc, nbits = refill(buf, p, acc, nbits)
            padbits[i] = gap
            pads[i] = peek(acc, gap) if gap > 0 else 0
    return OK, -1


@njit
def encode_sequential(n_intervals, restart, mcux, nmcu, geo, ehufco, ehufsi, coef, lastnz, pads, stops, capacity):
    """Encode intervals ``0..n_intervals-1``; returns ``(out, length, interval_ends, status)``.

    Each interval is padded with its recorded pad bits and followed by its restart marker
    (except the last); ``interval_ends[i]`` is the output offset after interval ``i`` and its marker.
    ``lastnz`` (from :func:`~jpegshrink.jpeg.bitio.last_nonzero`) lets blocks skip their zero tail.
    """
    zz = ZIGZAG
    bitlen = BIT_LENGTH
    nb = geo.shape[0]
    out = np.empty(max(capacity, 1024), np.uint8)
    op = 0
    ends = np.zeros(n_intervals, np.int64)
    for i in range(n_intervals):
        m0, m1 = interval_mcus(i, restart, nmcu)
        if 0 <= stops[i] < m1:
            m1 = max(stops[i], m0)
        acc = np.uint64(0)
        nbits = 0
        pred = np.zeros(4, np.int64)
        my = m0 // mcux
        mx = m0 - my * mcux - 1  # advanced at the top of each MCU
        for m in range(m0, m1):
            mx += 1
            if mx == mcux:
                mx = 0
                my += 1
            if op + 600 * nb > out.shape[0]:
                out = reserve(out, op, 600 * nb)
            for b in range(nb):
                blk = (geo[b, 1] + (my * geo[b, 3] + geo[b, 5]) * geo[b, 2] + mx * geo[b, 4] + geo[b, 6])
                c = geo[b, 0]
                dc = geo[b, 7]
                ac = geo[b, 8]
                v = np.int64(coef[blk, 0])
                diff = v - pred[c]
                pred[c] = v
                a = -diff if diff < 0 else diff
                s = bitlen[a]
                size = ehufsi[dc, s]
                if size == 0:
                    return out, op, ends, NO_SYMBOL
                bits = (diff - 1 if diff < 0 else diff) & ((np.int64(1) << s) - 1)
                acc, nbits = push(acc, nbits, (np.int64(ehufco[dc, s]) << s) | bits, size + s)
                if nbits >= 32:
                    op, nbits = drain(out, op, acc, nbits)
                last = lastnz[blk]
                mask = nonzero_mask(coef, blk, 1, last)
                prev = 0
                while mask:
                    k = cttz(mask)
                    mask &= mask - np.uint64(1)
                    r = k - prev - 1
                    prev = k
                    v = np.int64(coef[blk, zz[k]])
                    while r > 15:
                        size = ehufsi[ac, 0xF0]
                        if size == 0:
                            return out, op, ends, NO_SYMBOL
                        acc, nbits = push(acc, nbits, np.int64(ehufco[ac, 0xF0]), size)
                        if nbits >= 32:
                            op, nbits = drain(out, op, acc, nbits)
                        r -= 16
                    a = -v if v < 0 else v
                    s = bitlen[a]
                    sym = (r << 4) | s
                    size = ehufsi[ac, sym]
                    if size == 0:
                        return out, op, ends, NO_SYMBOL
                    bits = (v - 1 if v < 0 else v) & ((np.int64(1) << s) - 1)
                    acc, nbits = push(acc, nbits, (np.int64(ehufco[ac, sym]) << s) | bits, size + s)
                    if nbits >= 32:
                        op, nbits = drain(out, op, acc, nbits)
                if last < 63:
                    size = ehufsi[ac, 0]
                    if size == 0:
                        return out, op, ends, NO_SYMBOL
                    acc, nbits = push(acc, nbits, np.int64(ehufco[ac, 0]), size)
                    if nbits >= 32:
                        op, nbits = drain(out, op, acc, nbits)
        if op + 32 > out.shape[0]:
            out = reserve(out, op, 32)
        op = flush(out, op, acc, nbits, pads[i] if pads[i] >= 0 else 0xFF)
        if i < n_intervals - 1:
            out[op] = 0xFF
            out[op + 1] = 0xD0 + (i & 7)
            op += 2
        ends[i] = op
    return out, op, ends, OK
