"""Progressive Huffman scans (DC first/refine, AC first/refine): decode and bit-exact re-encode.

The encoder follows libjpeg's jcphuff.c exactly (EOB runs capped at 0x7FFF, refinement correction
bits flushed after 937 buffered bits, runs flushed at every restart), which is what libjpeg,
libjpeg-turbo and mozjpeg write. Other encoders' choices show up as mismatching intervals that the
layout stores verbatim. Geometry ``geo`` is as in :mod:`jpegshrink.jpeg.sequential`.
"""
from __future__ import annotations

import numpy as np

from jpegshrink._jit import njit
from jpegshrink.jpeg.bitio import (BAD_CODE, BAD_EOBRUN, BAD_INDEX, BAD_REFINEMENT, BIT_LENGTH, NO_SYMBOL, OK,
                                   ZIGZAG, decode_symbol, extend, flush, peek, put, refill, reserve, unstuff)
from jpegshrink.jpeg.sequential import block_index, interval_mcus

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
                       coef, ss, se, ah, al, pads, padbits, truncated):
    """Decode one progressive scan into ``coef`` (same outputs as ``decode_sequential``)."""
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
        for m in range(m0, mend):
            status = OK
            for b in range(nb):
                blk = block_index(geo, b, m, mcux)
                if nbits < 32:  # guard here: an unguarded call runs 10x slower
                    p, acc, nbits = refill(buf, p, acc, nbits)
                if mode == DC_FIRST:
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
                            k += 1
                        if status != OK:
                            break
                    if eobrun > 0:
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
                            k += 1
                        eobrun -= 1
            if status != OK or (p - p0) * 8 - nbits > avail:
                if (p - p0) * 8 - nbits <= avail:
                    return status, starts[i] + (p - p0)
                truncated[i] = m  # a partly decoded progressive MCU cannot be undone; the layout keeps its bytes
                break
        if truncated[i] < 0:
            gap = (8 - ((p - p0) * 8 - nbits) % 8) % 8
            if nbits < 32:  # guard here: an unguarded call runs 10x slower
                p, acc, nbits = refill(buf, p, acc, nbits)
            padbits[i] = gap
            pads[i] = peek(acc, gap) if gap > 0 else 0
    return OK, -1


@njit
def _emit_eobrun(out, op, acc, nbits, eobrun, ehufco, ehufsi, ac, corr, n_corr):
    """Write a pending EOB run and then the correction bits buffered during it."""
    if eobrun > 0:
        nb = 0
        t = eobrun >> 1
        while t:
            nb += 1
            t >>= 1
        sym = nb << 4
        size = ehufsi[ac, sym]
        if size == 0 or nb > 14:
            return op, acc, nbits, NO_SYMBOL
        op, acc, nbits = put(out, op, acc, nbits, np.int64(ehufco[ac, sym]), size)
        if nb:
            op, acc, nbits = put(out, op, acc, nbits, eobrun & ((np.int64(1) << nb) - 1), nb)
        for j in range(n_corr):
            op, acc, nbits = put(out, op, acc, nbits, np.int64(corr[j]), 1)
    return op, acc, nbits, OK


@njit
def encode_progressive(n_intervals, restart, mcux, nmcu, geo, ehufco, ehufsi, coef, lastnz, ss, se, ah, al, pads, stops,
                       capacity):
    """Encode one progressive scan as libjpeg would; outputs as ``encode_sequential``."""
    zz = ZIGZAG
    bitlen = BIT_LENGTH
    nb = geo.shape[0]
    mode = scan_mode(ss, ah)
    out = np.empty(max(capacity, 1024), np.uint8)
    op = 0
    ends = np.zeros(n_intervals, np.int64)
    corr = np.zeros(1200, np.int64)  # buffered correction bits: EOB-run part, then current block's part
    absval = np.zeros(64, np.int64)
    for i in range(n_intervals):
        m0, m1 = interval_mcus(i, restart, nmcu)
        acc = np.uint64(0)
        nbits = 0
        pred = np.zeros(4, np.int64)
        eobrun = 0
        n_be = 0
        if 0 <= stops[i] < m1:
            m1 = max(stops[i], m0)
        for m in range(m0, m1):
            out = reserve(out, op, 600 * nb + 200)
            for b in range(nb):
                blk = block_index(geo, b, m, mcux)
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
                    op, acc, nbits = put(out, op, acc, nbits, (np.int64(ehufco[dc, s]) << s) | bits, size + s)
                elif mode == DC_REFINE:
                    op, acc, nbits = put(out, op, acc, nbits, (np.int64(coef[blk, 0]) >> al) & 1, 1)
                elif mode == AC_FIRST:
                    r = 0
                    kend = min(se, lastnz[blk])
                    for k in range(ss, kend + 1):
                        t = np.int64(coef[blk, zz[k]])
                        if t < 0:
                            t = (-t) >> al
                            t2 = ~t
                        else:
                            t = t >> al
                            t2 = t
                        if t == 0:
                            r += 1
                            continue
                        if eobrun > 0:
                            op, acc, nbits, st = _emit_eobrun(out, op, acc, nbits, eobrun, ehufco, ehufsi, ac, corr, 0)
                            if st != OK:
                                return out, op, ends, st
                            eobrun = 0
                        while r > 15:
                            size = ehufsi[ac, 0xF0]
                            if size == 0:
                                return out, op, ends, NO_SYMBOL
                            op, acc, nbits = put(out, op, acc, nbits, np.int64(ehufco[ac, 0xF0]), size)
                            r -= 16
                        s = bitlen[t]
                        sym = (r << 4) + s
                        size = ehufsi[ac, sym]
                        if size == 0:
                            return out, op, ends, NO_SYMBOL
                        op, acc, nbits = put(out, op, acc, nbits,
                                             (np.int64(ehufco[ac, sym]) << s) | (t2 & ((np.int64(1) << s) - 1)), size + s)
                        r = 0
                    if kend < se:  # the zero tail past the block's last non-zero coefficient
                        r += se - max(kend, ss - 1)
                    if r > 0:
                        eobrun += 1
                        if eobrun == 0x7FFF:
                            op, acc, nbits, st = _emit_eobrun(out, op, acc, nbits, eobrun, ehufco, ehufsi, ac, corr, 0)
                            if st != OK:
                                return out, op, ends, st
                            eobrun = 0
                else:  # AC_REFINE, after libjpeg's encode_mcu_AC_refine
                    eob = 0
                    kend = min(se, lastnz[blk])
                    for k in range(ss, kend + 1):
                        t = np.int64(coef[blk, zz[k]])
                        t = (-t if t < 0 else t) >> al
                        absval[k] = t
                        if t == 1:
                            eob = k
                    r = 0
                    n_br = 0
                    br0 = n_be
                    for k in range(ss, kend + 1):
                        t = absval[k]
                        if t == 0:
                            r += 1
                            continue
                        while r > 15 and k <= eob:
                            op, acc, nbits, st = _emit_eobrun(out, op, acc, nbits, eobrun, ehufco, ehufsi, ac, corr, n_be)
                            if st != OK:
                                return out, op, ends, st
                            eobrun = 0
                            n_be = 0
                            size = ehufsi[ac, 0xF0]
                            if size == 0:
                                return out, op, ends, NO_SYMBOL
                            op, acc, nbits = put(out, op, acc, nbits, np.int64(ehufco[ac, 0xF0]), size)
                            r -= 16
                            for j in range(n_br):
                                op, acc, nbits = put(out, op, acc, nbits, corr[br0 + j], 1)
                            br0 = 0
                            n_br = 0
                        if t > 1:
                            corr[br0 + n_br] = t & 1
                            n_br += 1
                            continue
                        op, acc, nbits, st = _emit_eobrun(out, op, acc, nbits, eobrun, ehufco, ehufsi, ac, corr, n_be)
                        if st != OK:
                            return out, op, ends, st
                        eobrun = 0
                        n_be = 0
                        sym = (r << 4) + 1
                        size = ehufsi[ac, sym]
                        if size == 0:
                            return out, op, ends, NO_SYMBOL
                        sign = 0 if coef[blk, zz[k]] < 0 else 1
                        op, acc, nbits = put(out, op, acc, nbits, (np.int64(ehufco[ac, sym]) << 1) | sign, size + 1)
                        for j in range(n_br):
                            op, acc, nbits = put(out, op, acc, nbits, corr[br0 + j], 1)
                        br0 = 0
                        n_br = 0
                        r = 0
                    if kend < se:
                        r += se - max(kend, ss - 1)
                    if r > 0 or n_br > 0:
                        eobrun += 1
                        n_be += n_br
                        if eobrun == 0x7FFF or n_be > _MAX_BUFFERED:
                            op, acc, nbits, st = _emit_eobrun(out, op, acc, nbits, eobrun, ehufco, ehufsi, ac, corr, n_be)
                            if st != OK:
                                return out, op, ends, st
                            eobrun = 0
                            n_be = 0
        if mode >= AC_FIRST:
            out = reserve(out, op, 600)
            op, acc, nbits, st = _emit_eobrun(out, op, acc, nbits, eobrun, ehufco, ehufsi, geo[0, 8], corr, n_be)
            if st != OK:
                return out, op, ends, st
        out = reserve(out, op, 32)
        op = flush(out, op, acc, nbits, pads[i] if pads[i] >= 0 else 0xFF)
        if i < n_intervals - 1:
            out[op] = 0xFF
            out[op + 1] = 0xD0 + (i & 7)
            op += 2
        ends[i] = op
    return out, op, ends, OK
