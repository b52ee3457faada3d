"""Progressive Huffman scans (DC first/refine, AC first/refine): decode and bit-exact re-encode.

The encoder follows libjpeg's jcphuff.c exactly (EOB runs capped at 0x7FFF, refinement correction
bits flushed after 937 buffered bits, runs flushed at every restart), which is what libjpeg,
libjpeg-turbo and mozjpeg write. A shorter EOB-run cap (some encoders never use runs) is recorded per
scan; other encoders' choices show up as mismatching intervals that the layout stores verbatim. Geometry ``geo`` is as in :mod:`jpegshrink.jpeg.sequential`.
"""
from __future__ import annotations

import numpy as np

from jpegshrink._jit import njit
from jpegshrink.jpeg.bitio import (BAD_CODE, BAD_INDEX, BAD_REFINEMENT, BIT_LENGTH, NO_SYMBOL, OK,
                                   ZIGZAG, cttz, decode_symbol, drain, extend, flush, nonzero_mask, peek, popcount,
                                   push, refill, reserve, unstuff)
from jpegshrink.jpeg.huffman import LOOKAHEAD
from jpegshrink.jpeg.sequential import interval_mcus

DC_FIRST, DC_REFINE, AC_FIRST, AC_REFINE = 0, 1, 2, 3
#: libjpeg's MAX_CORR_BITS - DCTSIZE2 + 1: buffered correction bits that force an EOB run out.
_MAX_BUFFERED = 1000 - 64 + 1


@njit
def scan_mode(ss, ah):
    if ss == 0:
        return DC_FIRST if ah == 0 else DC_REFINE
    return AC_FIRST if ah == 0 else AC_REFINE


@njit
def decode_progressive(data, starts, ends, restart, mcux, nmcu, geo, lookup, maxcode, valptr, mincode, huffval,
                       coef, lastnz, ss, se, ah, al, pads, padbits, truncated):
    """Decode one progressive scan into ``coef``; returns ``(status, error offset, longest EOB run)``.

    Other outputs as ``decode_sequential``. ``lastnz`` (per block, kept up to date across scans) bounds
    the refinement of end-of-band blocks.
    """
    longest_run = 0
    zz = ZIGZAG
    nb = geo.shape[0]
    mode = scan_mode(ss, ah)
    buf, ustarts, uends = unstuff(data, starts, ends)
    p1 = np.int64(1) << al
    m1 = -p1
    for i in range(starts.shape[0]):
        m0, mend = interval_mcus(i, restart, nmcu)
        p0 = ustarts[i]
        p = p0
        avail = 8 * (uends[i] - p0)
        acc = np.uint64(0)
        nbits = 0
        pred = np.zeros(4, np.int64)
        eobrun = 0
        my = m0 // mcux
        mx = m0 - my * mcux - 1  # advanced at the top of each MCU
        for m in range(m0, mend):
            mx += 1
            if mx == mcux:
                mx = 0
                my += 1
            status = OK
            for b in range(nb):
                blk = (geo[b, 1] + (my * geo[b, 3] + geo[b, 5]) * geo[b, 2] + mx * geo[b, 4] + geo[b, 6])
                if nbits < 32:  # guard here: an unguarded call runs 10x slower
                    p, acc, nbits = refill(buf, p, acc, nbits)
                if mode == DC_FIRST:
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
                        pred[geo[b, 0]] += extend(peek(acc, s), s)
                        acc <<= np.uint64(s)
                        nbits -= s
                    coef[blk, 0] = pred[geo[b, 0]] << al
                elif mode == DC_REFINE:
                    if peek(acc, 1):
                        coef[blk, 0] |= p1
                    acc <<= np.uint64(1)
                    nbits -= 1
                elif mode == AC_FIRST:
                    if eobrun > 0:
                        eobrun -= 1
                        continue
                    ac = geo[b, 8]
                    k = ss
                    while k <= se:
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
                            if k > se:
                                status = BAD_INDEX
                                break
                            coef[blk, zz[k]] = extend(peek(acc, s), s) * p1
                            lastnz[blk] = max(lastnz[blk], k)
                            acc <<= np.uint64(s)
                            nbits -= s
                        elif r == 15:
                            k += 15
                        else:
                            eobrun = np.int64(1) << r
                            if r:
                                eobrun += peek(acc, r)
                                acc <<= np.uint64(r)
                                nbits -= r
                            longest_run = max(longest_run, eobrun)
                            eobrun -= 1
                            break
                        k += 1
                    if status != OK:
                        break
                else:  # AC_REFINE, after libjpeg's decode_mcu_AC_refine
                    ac = geo[b, 8]
                    k = ss
                    if eobrun == 0:
                        while k <= se:
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
                            newval = np.int64(0)
                            if s:
                                if s != 1:
                                    status = BAD_REFINEMENT
                                    break
                                newval = p1 if peek(acc, 1) else m1
                                acc <<= np.uint64(1)
                                nbits -= 1
                            elif r != 15:
                                eobrun = np.int64(1) << r
                                if r:
                                    eobrun += peek(acc, r)
                                    acc <<= np.uint64(r)
                                    nbits -= r
                                longest_run = max(longest_run, eobrun)
                                break
                            while k <= se:
                                if nbits < 32:  # guard here: an unguarded call runs 10x slower
                                    p, acc, nbits = refill(buf, p, acc, nbits)
                                z = zz[k]
                                cv = np.int64(coef[blk, z])
                                if cv != 0:
                                    if peek(acc, 1):
                                        if (cv & p1) == 0:
                                            coef[blk, z] = cv + p1 if cv >= 0 else cv + m1
                                    acc <<= np.uint64(1)
                                    nbits -= 1
                                else:
                                    r -= 1
                                    if r < 0:
                                        break
                                k += 1
                            if newval != 0:
                                if k > se:
                                    status = BAD_INDEX
                                    break
                                coef[blk, zz[k]] = newval
                                lastnz[blk] = max(lastnz[blk], k)
                            k += 1
                        if status != OK:
                            break
                    if eobrun > 0:  # one correction bit for each coefficient that is already non-zero
                        kend = min(se, lastnz[blk])
                        mask = nonzero_mask(coef, blk, k, kend) if k <= kend else np.uint64(0)
                        while mask:
                            kk = cttz(mask)
                            mask &= mask - np.uint64(1)
                            if nbits < 32:  # guard here: an unguarded call runs 10x slower
                                p, acc, nbits = refill(buf, p, acc, nbits)
                            z = zz[kk]
                            cv = np.int64(coef[blk, z])
                            if peek(acc, 1):
                                if (cv & p1) == 0:
                                    coef[blk, z] = cv + p1 if cv >= 0 else cv + m1
                            acc <<= np.uint64(1)
                            nbits -= 1
                        eobrun -= 1
            if status != OK or (p - p0) * 8 - nbits > avail:
                if (p - p0) * 8 - nbits <= avail:
                    return status, starts[i] + (p - p0), longest_run
                truncated[i] = m  # a partly decoded progressive MCU cannot be undone; the layout keeps its bytes
                break
        if truncated[i] < 0:
            gap = (8 - ((p - p0) * 8 - nbits) % 8) % 8
            if nbits < 32:  # guard here: an unguarded call runs 10x slower
                p, acc, nbits = refill(buf, p, acc, nbits)
            padbits[i] = gap
            pads[i] = peek(acc, gap) if gap > 0 else 0
    return OK, -1, longest_run


@njit
def _queue_bit(queue, pos, bit):
    """Set bit ``pos`` of a packed bit queue (uint64 words, MSB first) to ``bit``, clearing what follows."""
    w = pos >> 6
    keep = ~(np.uint64(0xFFFFFFFFFFFFFFFF) >> np.uint64(pos & 63))
    queue[w] = (queue[w] & keep) | (np.uint64(bit) << np.uint64(63 - (pos & 63)))


@njit(inline="always")  # numba-level inlining: no refcount updates on the arrays per call
def _put_queued(out, op, acc, nbits, queue, start, n):
    """Write bits ``start .. start + n - 1`` of a packed bit queue, up to 32 per call to ``put``."""
    while n > 0:
        off = start & 63
        take = min(n, 32, 64 - off)
        v = (queue[start >> 6] << np.uint64(off)) >> np.uint64(64 - take)
        acc, nbits = push(acc, nbits, np.int64(v), take)
        if nbits >= 32:
            op, nbits = drain(out, op, acc, nbits)
        start += take
        n -= take
    return op, acc, nbits


@njit
def _eobrun_symbol(eobrun):
    """``(symbol, extra bits)`` of an end-of-band run: EOBn with n = floor(log2(run)).

    Callers write the symbol inline: a helper that takes the output arrays is not inlined by LLVM and
    costs about ten atomic reference-count updates per call (measured: a fifth of progressive time).
    """
    nb = 0
    t = eobrun >> 1
    while t:
        nb += 1
        t >>= 1
    return nb << 4, nb


@njit
def encode_progressive(n_intervals, restart, mcux, nmcu, geo, ehufco, ehufsi, coef, lastnz, ss, se, ah, al, eob_cap,
                       pads, stops, capacity):
    """Encode one progressive scan as libjpeg would; outputs as ``encode_sequential``.

    ``eob_cap`` is the longest EOB run written (libjpeg: 0x7FFF; an encoder that never merges
    end-of-band blocks into runs is reproduced with 1).
    """
    zz = ZIGZAG
    bitlen = BIT_LENGTH
    nb = geo.shape[0]
    mode = scan_mode(ss, ah)
    out = np.empty(max(capacity, 1024), np.uint8)
    op = 0
    ends = np.zeros(n_intervals, np.int64)
    corr = np.zeros(32, np.uint64)  # queued correction bits (packed): EOB-run part, then current block's part
    for i in range(n_intervals):
        m0, m1 = interval_mcus(i, restart, nmcu)
        acc = np.uint64(0)
        nbits = 0
        pred = np.zeros(4, np.int64)
        eobrun = 0
        n_be = 0
        if 0 <= stops[i] < m1:
            m1 = max(stops[i], m0)
        my = m0 // mcux
        mx = m0 - my * mcux - 1  # advanced at the top of each MCU
        for m in range(m0, m1):
            mx += 1
            if mx == mcux:
                mx = 0
                my += 1
            if op + 600 * nb + 200 > out.shape[0]:
                out = reserve(out, op, 600 * nb + 200)
            for b in range(nb):
                blk = (geo[b, 1] + (my * geo[b, 3] + geo[b, 5]) * geo[b, 2] + mx * geo[b, 4] + geo[b, 6])
                ac = geo[b, 8]
                if mode == DC_FIRST:
                    dc = geo[b, 7]
                    v = np.int64(coef[blk, 0]) >> al
                    diff = v - pred[geo[b, 0]]
                    pred[geo[b, 0]] = v
                    a = -diff if diff < 0 else diff
                    s = bitlen[a]
                    size = ehufsi[dc, s]
                    if size == 0:
                        return out, op, ends, NO_SYMBOL
                    bits = (diff - 1 if diff < 0 else diff) & ((np.int64(1) << s) - 1)
                    acc, nbits = push(acc, nbits, (np.int64(ehufco[dc, s]) << s) | bits, size + s)
                    if nbits >= 32:
                        op, nbits = drain(out, op, acc, nbits)
                elif mode == DC_REFINE:
                    acc, nbits = push(acc, nbits, (np.int64(coef[blk, 0]) >> al) & 1, 1)
                    if nbits >= 32:
                        op, nbits = drain(out, op, acc, nbits)
                elif mode == AC_FIRST:
                    kend = min(se, lastnz[blk])
                    thr = np.int64(1) << al
                    mask = np.uint64(0)  # coefficients that stay non-zero after the point transform
                    for k in range(ss, kend + 1):
                        t = np.int64(coef[blk, zz[k]])
                        t = max(t, -t)  # branch-free |t| (an `or` of two tests compiles to branches)
                        mask |= np.uint64(1 if t >= thr else 0) << np.uint64(k)
                    prev = ss - 1
                    while mask:
                        k = cttz(mask)
                        mask &= mask - np.uint64(1)
                        r = k - prev - 1
                        prev = k
                        t = np.int64(coef[blk, zz[k]])
                        if t < 0:
                            t = (-t) >> al
                            t2 = ~t
                        else:
                            t = t >> al
                            t2 = t
                        if eobrun > 0:
                            sym, extra = _eobrun_symbol(eobrun)
                            size = ehufsi[ac, sym]
                            if size == 0 or extra > 14:
                                return out, op, ends, NO_SYMBOL
                            acc, nbits = push(acc, nbits, (np.int64(ehufco[ac, sym]) << extra) | (eobrun & ((np.int64(1) << extra) - 1)),
                                              size + extra)
                            if nbits >= 32:
                                op, nbits = drain(out, op, acc, nbits)
                            eobrun = 0
                        while r > 15:
                            size = ehufsi[ac, 0xF0]
                            if size == 0:
                                return out, op, ends, NO_SYMBOL
                            acc, nbits = push(acc, nbits, np.int64(ehufco[ac, 0xF0]), size)
                            if nbits >= 32:
                                op, nbits = drain(out, op, acc, nbits)
                            r -= 16
                        s = bitlen[t]
                        sym = (r << 4) + s
                        size = ehufsi[ac, sym]
                        if size == 0:
                            return out, op, ends, NO_SYMBOL
                        acc, nbits = push(acc, nbits, (np.int64(ehufco[ac, sym]) << s) | (t2 & ((np.int64(1) << s) - 1)), size + s)
                        if nbits >= 32:
                            op, nbits = drain(out, op, acc, nbits)
                    r = se - prev  # zeros after the last coefficient sent
                    if r > 0:
                        eobrun += 1
                        if eobrun >= eob_cap:
                            if eobrun > 0:
                                sym, extra = _eobrun_symbol(eobrun)
                                size = ehufsi[ac, sym]
                                if size == 0 or extra > 14:
                                    return out, op, ends, NO_SYMBOL
                                acc, nbits = push(acc, nbits, (np.int64(ehufco[ac, sym]) << extra) | (eobrun & ((np.int64(1) << extra) - 1)),
                                                  size + extra)
                                if nbits >= 32:
                                    op, nbits = drain(out, op, acc, nbits)
                            eobrun = 0
                else:  # AC_REFINE: libjpeg's encode_mcu_AC_refine, one step per newly non-zero coefficient
                    kend = min(se, lastnz[blk])
                    newm = np.uint64(0)  # |coef| >> al == 1: coded with a symbol in this scan
                    oldm = np.uint64(0)  # |coef| >> al > 1: already non-zero, gets a correction bit
                    bitm = np.uint64(0)  # the correction bits
                    for k in range(ss, kend + 1):
                        t = np.int64(coef[blk, zz[k]])
                        t = max(t, -t) >> al
                        bit = np.uint64(1) << np.uint64(k)
                        newm |= bit if t == 1 else np.uint64(0)
                        oldm |= bit if t > 1 else np.uint64(0)
                        bitm |= bit if (t & 1) else np.uint64(0)
                    n_br = 0
                    br0 = n_be
                    prev = ss - 1
                    while newm:
                        k = cttz(newm)
                        newm &= newm - np.uint64(1)
                        between = ((np.uint64(1) << np.uint64(k)) - np.uint64(1)) & \
                            ~((np.uint64(1) << np.uint64(prev + 1)) - np.uint64(1))
                        old = oldm & between
                        zeros = k - prev - 1 - popcount(old)
                        if zeros <= 15:  # common case: no ZRL, so the correction bits just queue up
                            while old:
                                j = cttz(old)
                                old &= old - np.uint64(1)
                                _queue_bit(corr, br0 + n_br, (bitm >> np.uint64(j)) & np.uint64(1))
                                n_br += 1
                            r = zeros
                        else:  # a run of 16+ zeros: walk the coefficients exactly as libjpeg does
                            r = 0
                            jp = prev
                            old |= np.uint64(1) << np.uint64(k)
                            while True:
                                j = cttz(old)
                                old &= old - np.uint64(1)
                                r += j - jp - 1
                                jp = j
                                while r > 15:
                                    if eobrun > 0:
                                        sym, extra = _eobrun_symbol(eobrun)
                                        size = ehufsi[ac, sym]
                                        if size == 0 or extra > 14:
                                            return out, op, ends, NO_SYMBOL
                                        acc, nbits = push(acc, nbits, (np.int64(ehufco[ac, sym]) << extra) | (eobrun & ((np.int64(1) << extra) - 1)),
                                                          size + extra)
                                        if nbits >= 32:
                                            op, nbits = drain(out, op, acc, nbits)
                                        if n_be:  # the correction bits buffered during the run
                                            op, acc, nbits = _put_queued(out, op, acc, nbits, corr, 0, n_be)
                                    eobrun = 0
                                    n_be = 0
                                    size = ehufsi[ac, 0xF0]
                                    if size == 0:
                                        return out, op, ends, NO_SYMBOL
                                    acc, nbits = push(acc, nbits, np.int64(ehufco[ac, 0xF0]), size)
                                    if nbits >= 32:
                                        op, nbits = drain(out, op, acc, nbits)
                                    r -= 16
                                    if n_br:
                                        op, acc, nbits = _put_queued(out, op, acc, nbits, corr, br0, n_br)
                                    br0 = 0
                                    n_br = 0
                                if j == k:
                                    break
                                _queue_bit(corr, br0 + n_br, (bitm >> np.uint64(j)) & np.uint64(1))
                                n_br += 1
                        if eobrun > 0:
                            sym, extra = _eobrun_symbol(eobrun)
                            size = ehufsi[ac, sym]
                            if size == 0 or extra > 14:
                                return out, op, ends, NO_SYMBOL
                            acc, nbits = push(acc, nbits, (np.int64(ehufco[ac, sym]) << extra) | (eobrun & ((np.int64(1) << extra) - 1)),
                                              size + extra)
                            if nbits >= 32:
                                op, nbits = drain(out, op, acc, nbits)
                            if n_be:  # the correction bits buffered during the run
                                op, acc, nbits = _put_queued(out, op, acc, nbits, corr, 0, n_be)
                        eobrun = 0
                        n_be = 0
                        sym = (r << 4) + 1
                        size = ehufsi[ac, sym]
                        if size == 0:
                            return out, op, ends, NO_SYMBOL
                        sign = 0 if coef[blk, zz[k]] < 0 else 1
                        acc, nbits = push(acc, nbits, (np.int64(ehufco[ac, sym]) << 1) | sign, size + 1)
                        if nbits >= 32:
                            op, nbits = drain(out, op, acc, nbits)
                        if n_br:
                            op, acc, nbits = _put_queued(out, op, acc, nbits, corr, br0, n_br)
                        br0 = 0
                        n_br = 0
                        prev = k
                    # after the last new coefficient: correction bits wait in the EOB run
                    old = oldm & ~((np.uint64(1) << np.uint64(prev + 1)) - np.uint64(1)) if prev < 63 else np.uint64(0)
                    r = se - prev - popcount(old)
                    while old:
                        j = cttz(old)
                        old &= old - np.uint64(1)
                        _queue_bit(corr, br0 + n_br, (bitm >> np.uint64(j)) & np.uint64(1))
                        n_br += 1
                    if r > 0 or n_br > 0:
                        eobrun += 1
                        n_be += n_br
                        if eobrun >= eob_cap or n_be > _MAX_BUFFERED:
                            sym, extra = _eobrun_symbol(eobrun)
                            size = ehufsi[ac, sym]
                            if size == 0 or extra > 14:
                                return out, op, ends, NO_SYMBOL
                            acc, nbits = push(acc, nbits, (np.int64(ehufco[ac, sym]) << extra) | (eobrun & ((np.int64(1) << extra) - 1)),
                                              size + extra)
                            if nbits >= 32:
                                op, nbits = drain(out, op, acc, nbits)
                            if n_be:  # the correction bits buffered during the run
                                op, acc, nbits = _put_queued(out, op, acc, nbits, corr, 0, n_be)
                            eobrun = 0
                            n_be = 0
        if mode >= AC_FIRST:
            if op + 600 > out.shape[0]:
                out = reserve(out, op, 600)
            if eobrun > 0:
                sym, extra = _eobrun_symbol(eobrun)
                size = ehufsi[geo[0, 8], sym]
                if size == 0 or extra > 14:
                    return out, op, ends, NO_SYMBOL
                acc, nbits = push(acc, nbits, (np.int64(ehufco[geo[0, 8], sym]) << extra) | (eobrun & ((np.int64(1) << extra) - 1)),
                                  size + extra)
                if nbits >= 32:
                    op, nbits = drain(out, op, acc, nbits)
                if n_be:  # the correction bits buffered during the run
                    op, acc, nbits = _put_queued(out, op, acc, nbits, corr, 0, n_be)
        if op + 32 > out.shape[0]:
            out = reserve(out, op, 32)
        op = flush(out, op, acc, nbits, pads[i] if pads[i] >= 0 else 0xFF)
        if i < n_intervals - 1:
            out[op] = 0xFF
            out[op + 1] = 0xD0 + (i & 7)
            op += 2
        ends[i] = op
    return out, op, ends, OK
