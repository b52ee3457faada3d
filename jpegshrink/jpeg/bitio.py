"""Bit-level I/O on entropy-coded JPEG data, for the numba scan coders.

State is passed in and returned as scalars (not objects) so LLVM keeps it in registers. Decoders first
un-stuff a scan's intervals into one buffer (:func:`unstuff`), then read it 32 bits at a time; past the
end of an interval they read on (into the next one or the zero guard) and compare bits consumed with
bits available to detect truncation. The writer stuffs ``FF`` with ``00``.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from jpegshrink._jit import njit
from jpegshrink.jpeg.huffman import LOOKAHEAD

# Status codes shared by the numba coders (0 = success).
OK = 0
BAD_CODE = 1         # no Huffman code matches the bits
BAD_INDEX = 2        # a run of zeros goes past coefficient 63 (or past Se)
NO_SYMBOL = 3        # the encoder needs a symbol its table does not define
BAD_REFINEMENT = 4   # a refinement scan codes a new coefficient with magnitude other than 1

#: Natural (row-major) index of each zig-zag position, plus guard entries.
ZIGZAG = np.array([
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7,
    14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39,
    46, 53, 60, 61, 54, 47, 55, 62, 63], np.int64)

#: Zig-zag position of each natural index.
ZIGZAG_RANK = np.argsort(ZIGZAG).astype(np.int64)

#: Bit length of every magnitude that fits an int16 coefficient (or a DC difference of two).
BIT_LENGTH = np.array([int(v).bit_length() for v in range(1 << 17)], np.uint8)


#: Zero bytes after the last interval: more than one MCU can over-read (10 blocks x 64 codes x 32 bits).
GUARD_BYTES = 4096


@njit
def unstuff(data, starts, ends):
    """Data bytes of each interval ``data[starts[i]:ends[i]]`` with stuffing removed, back to back.

    Returns ``(buf, ustarts, uends)``. Like libjpeg, ``FF`` followed by fill ``FF`` bytes and ``00``
    yields one ``FF``. ``buf`` ends with :data:`GUARD_BYTES` zeros so readers never check bounds.
    """
    n = starts.shape[0]
    total = 0
    for i in range(n):
        total += max(ends[i] - starts[i], 0)
    buf = np.zeros(total + GUARD_BYTES, np.uint8)
    ustarts = np.zeros(n, np.int64)
    uends = np.zeros(n, np.int64)
    q = 0
    for i in range(n):
        ustarts[i] = q
        pos = starts[i]
        end = ends[i]
        while pos < end:
            b = data[pos]
            pos += 1
            if b == 0xFF:
                while pos < end and data[pos] == 0xFF:
                    pos += 1
                if pos < end and data[pos] == 0:
                    pos += 1
            buf[q] = b
            q += 1
        uends[i] = q
    return buf, ustarts, uends


@njit
def refill(buf, p, acc, nbits):
    """Top up the left-aligned accumulator to at least 32 bits from the un-stuffed buffer."""
    if nbits < 32:
        w = (np.uint64(buf[p]) << np.uint64(24)) | (np.uint64(buf[p + 1]) << np.uint64(16)) | \
            (np.uint64(buf[p + 2]) << np.uint64(8)) | np.uint64(buf[p + 3])
        acc |= w << np.uint64(32 - nbits)
        p += 4
        nbits += 32
    return p, acc, nbits


@intrinsic
def cttz(typingctx, x):
    """Count trailing zeros of a non-zero uint64 (LLVM's cttz): jumps straight to the next set bit."""
    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(64), [ir.IntType(64), ir.IntType(1)])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.cttz.i64")
        return builder.call(fn, [args[0], ir.Constant(ir.IntType(1), 0)])
    return types.int64(types.uint64), codegen


@intrinsic
def popcount(typingctx, x):
    """Number of set bits of a uint64 (LLVM's ctpop)."""
    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(64), [ir.IntType(64)])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.ctpop.i64")
        return builder.call(fn, [args[0]])
    return types.int64(types.uint64), codegen


@njit(inline="always")  # numba-level inlining: no refcount updates on ``coef`` per call
def nonzero_mask(coef, blk, k0, k1):
    """Bit k set for each zig-zag position k0 <= k <= k1 whose coefficient is non-zero."""
    zz = ZIGZAG
    mask = np.uint64(0)
    for k in range(k0, k1 + 1):
        mask |= np.uint64(1 if coef[blk, zz[k]] != 0 else 0) << np.uint64(k)
    return mask


@njit
def peek(acc, n):
    """The next ``n`` (1..32) bits as an integer."""
    return np.int64(acc >> np.uint64(64 - n))


@njit
def extend(v, s):
    """JPEG's sign extension of an ``s``-bit magnitude category value."""
    if v < (np.int64(1) << (s - 1)):
        return v - (np.int64(1) << s) + 1
    return v


@njit
def decode_symbol(acc, slot, lookup, maxcode, valptr, mincode, huffval):
    """``(symbol, length)`` of the code at the top of ``acc`` (needs >= 16 bits); length 0 = bad code."""
    e = lookup[slot, np.int64(acc >> np.uint64(64 - LOOKAHEAD))]
    if e != 0:
        return np.int64(e & 0xFF), np.int64(e >> 8)
    length = LOOKAHEAD + 1
    while length <= 16:
        code = np.int64(acc >> np.uint64(64 - length))
        if code <= maxcode[slot, length]:
            return np.int64(huffval[slot, valptr[slot, length] + code - mincode[slot, length]]), np.int64(length)
        length += 1
    return np.int64(0), np.int64(0)


@njit
def push(acc, nbits, value, size):
    """Append ``size`` (<= 32) bits to the accumulator; ``value`` must be masked. Callers drain at 32."""
    return (acc << np.uint64(size)) | np.uint64(value), nbits + size


@njit(inline="always")  # numba-level inlining: no refcount updates on ``out`` per call
def drain(out, op, acc, nbits):
    """Write the accumulator's whole bytes (stuffing ``FF``); returns ``(op, nbits)``.

    Kept apart from :func:`push` and called only when 32 bits are pending: every call that passes an
    array costs two atomic reference-count updates in numba, which dominated when done per symbol.
    """
    while nbits >= 8:
        nbits -= 8
        b = (acc >> np.uint64(nbits)) & np.uint64(0xFF)
        out[op] = b
        op += 1
        if b == 0xFF:
            out[op] = 0
            op += 1
    return op, nbits


@njit
def flush(out, op, acc, nbits, pad_value):
    """Complete the last byte with pad bits (``pad_value``, masked to the gap) and write everything."""
    gap = (8 - nbits % 8) % 8
    acc = (acc << np.uint64(gap)) | np.uint64(pad_value & ((1 << gap) - 1))
    op, nbits = drain(out, op, acc, nbits + gap)
    return op


@njit
def reserve(out, op, need):
    """``out`` with room for ``need`` more bytes after ``op`` (doubles when short)."""
    if op + need <= out.shape[0]:
        return out
    grown = np.empty(max(2 * out.shape[0], op + need), np.uint8)
    grown[:op] = out[:op]
    return grown


@njit
def last_nonzero(coef):
    """Per block, the zig-zag index of its last non-zero coefficient (0 when only DC may be set)."""
    rank = ZIGZAG_RANK
    out = np.zeros(coef.shape[0], np.int64)
    for blk in range(coef.shape[0]):
        last = 0
        for j in range(64):
            if coef[blk, j] != 0 and rank[j] > last:
                last = rank[j]
        out[blk] = last
    return out


@njit
def gather_blocks(src, dst, offset, lastnz):
    """Copy blocks ``src`` [n, 64] to ``dst[offset:offset + n]`` and fill ``lastnz`` for them (one pass)."""
    rank = ZIGZAG_RANK
    for blk in range(src.shape[0]):
        last = 0
        for j in range(64):
            v = src[blk, j]
            dst[offset + blk, j] = v
            if v != 0 and rank[j] > last:
                last = rank[j]
        lastnz[offset + blk] = last
