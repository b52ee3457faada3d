"""Optimal Huffman tables of a sequential scan, by frozen, versioned builders.

One implementation serves both sides, so they cannot drift: the lossy encoder's writer
(:mod:`jpegshrink.lossy.writer`) writes its DHT segment with :func:`derive`, and a layout blob of
version 2 (:mod:`.layout`) leaves such a segment out and has the decoder run the same builder on the
decoded coefficients. A builder is therefore part of the container format: :data:`BUILDERS` never loses
or changes an entry. Another table algorithm (other code-length limiting, other symbol counting, other
table order) is a new :class:`Builder` value; the old one stays for the containers that name it.

Everything is integer arithmetic (symbol counts in numpy int64 and the compiled core's
``scan.ac_symbol_counts``, table building in Python ints), so the tables are the same on every machine.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from jpegshrink._native import core
from jpegshrink.errors import CorruptJpeg


class Builder(IntEnum):
    """How a DHT segment is derived from a scan's coefficients (the value is stored in layout blobs)."""

    #: One DHT segment holding, for every table id the scan uses in increasing id order, its DC table
    #: then its AC table, each optimal for the scan's symbol counts by libjpeg's jpeg_gen_optimal_table
    #: (Annex K.2 with libjpeg's code-length limiting to 16 bits and the reserved all-ones code). Counts:
    #: one sequential scan without restart intervals; DC differences in the order the scan visits each
    #: component's blocks; AC run/size symbols with a ZRL per 16 zeros before a nonzero, and an EOB for
    #: every block whose last nonzero is before position 63. Written by encoders jpegshrink-lossy-1..3.
    LIBJPEG_1 = 1


#: Every builder a layout blob may name; entries are never removed or changed.
BUILDERS = frozenset(Builder)
#: The builder the lossy writer uses today.
CURRENT = Builder.LIBJPEG_1


@dataclass(frozen=True)
class Derived:
    """A builder's DHT segment for one scan."""

    segment: bytes     # the whole segment: FF C4, length, payload
    scan_bits: int     # bits the scan spends on Huffman codes and appended bits (the writer sizes its buffer by it)


def derive(builder: int, blocks: list[np.ndarray], sampling: list[tuple[int, int]], dc_ids: list[int],
           ac_ids: list[int]) -> Derived:
    """The DHT segment ``builder`` derives for one sequential scan without restart intervals.

    ``blocks``: per scan component, int16 [block_rows, block_cols, 64] in natural order, every block the
    scan codes (whole MCUs when the scan interleaves); ``sampling``: (h, v) per scan component;
    ``dc_ids`` / ``ac_ids``: the Huffman table id (0..3) each scan component uses. Raises
    :class:`CorruptJpeg` for an unknown builder or coefficients no baseline Huffman code can carry.
    """
    if builder not in BUILDERS:
        raise CorruptJpeg(f"layout names Huffman table builder {builder}, which does not exist")
    freq = np.zeros((2, 4, 256), np.int64)          # [class DC/AC, table id, symbol]
    interleaved = len(blocks) > 1
    for comp, (h, v), dc_id, ac_id in zip(blocks, sampling, dc_ids, ac_ids):
        dc = _dc_order(comp, v, h) if interleaved else comp[:, :, 0].reshape(-1)
        freq[0, dc_id] += _counts(_categories(np.diff(dc.astype(np.int64), prepend=0)), 16)
        freq[1, ac_id] += _ac_symbols(comp)
    payload = bytearray()
    bits = 0
    for tid in sorted(set(dc_ids) | set(ac_ids)):
        for tc, used in ((0, dc_ids), (1, ac_ids)):
            if tid not in used:
                continue
            counts, symbols = optimal_table(freq[tc, tid])
            i = 0
            for length, n in enumerate(counts, 1):
                for s in symbols[i:i + n]:
                    bits += int(freq[tc, tid, s]) * (length + (s & 15))
                i += n
            payload += bytes([(tc << 4) | tid]) + bytes(counts) + bytes(symbols)
    if len(payload) + 2 > 0xFFFF:
        raise CorruptJpeg("derived Huffman tables do not fit one DHT segment")
    return Derived(b"\xff\xc4" + (len(payload) + 2).to_bytes(2, "big") + bytes(payload), bits)


def _dc_order(comp: np.ndarray, v: int, h: int) -> np.ndarray:
    """DC values of one component in the order an interleaved scan visits its blocks."""
    rows, cols = comp.shape[:2]
    dc = comp[:, :, 0].reshape(rows // v, v, cols // h, h).transpose(0, 2, 1, 3)
    return dc.reshape(-1)


def _categories(v: np.ndarray) -> np.ndarray:
    """Bits of each value's magnitude (JPEG's SSSS), 0 for 0: the number of powers of two <= |v|."""
    return np.searchsorted(_POWERS, np.abs(v.astype(np.int64)), side="right")


_POWERS = np.array([1 << k for k in range(24)], np.int64)


def _counts(symbols: np.ndarray, limit: int) -> np.ndarray:
    """Histogram of 256 symbols; a category over ``limit`` has no baseline Huffman symbol."""
    if symbols.size and int(symbols.max()) > limit:
        raise CorruptJpeg(f"a coefficient needs {int(symbols.max())} magnitude bits, more than a Huffman code carries")
    return np.bincount(symbols, minlength=256)


def _ac_symbols(comp: np.ndarray) -> np.ndarray:
    """Frequencies of the 256 AC symbols (run/size, EOB, ZRL) of one component's blocks (compiled core)."""
    freq = np.zeros(256, np.int64)
    try:
        core.scan.ac_symbol_counts(np.ascontiguousarray(comp, np.int16).reshape(-1, 64), freq)
    except ValueError as e:
        raise CorruptJpeg(f"an AC coefficient needs more magnitude bits than a Huffman code carries ({e})") from None
    return freq


def optimal_table(freq: np.ndarray) -> tuple[list[int], list[int]]:
    """(counts per code length 1..16, symbols) for ``freq``, as libjpeg's jpeg_gen_optimal_table.

    Frozen with :attr:`Builder.LIBJPEG_1`: the tie-breaking (the last of equal frequencies is taken
    first) decides the tables, so this loop must not be "simplified".
    """
    f = [int(x) for x in freq] + [1]          # symbol 256 reserves the all-ones code
    codesize = [0] * 257
    others = [-1] * 257
    while True:
        c1 = c2 = -1
        v1 = v2 = None
        for i in range(257):
            if f[i]:
                if v1 is None or f[i] <= v1:
                    c2, v2, c1, v1 = c1, v1, i, f[i]
                elif v2 is None or f[i] <= v2:
                    c2, v2 = i, f[i]
        if c2 < 0:
            break
        f[c1] += f[c2]
        f[c2] = 0
        codesize[c1] += 1
        while others[c1] >= 0:
            c1 = others[c1]
            codesize[c1] += 1
        others[c1] = c2
        codesize[c2] += 1
        while others[c2] >= 0:
            c2 = others[c2]
            codesize[c2] += 1
    bits = [0] * 33
    for i in range(257):
        if codesize[i]:
            bits[codesize[i]] += 1
    for i in range(32, 16, -1):
        while bits[i] > 0:
            j = i - 2
            while bits[j] == 0:
                j -= 1
            bits[i] -= 2
            bits[i - 1] += 1
            bits[j + 1] += 2
            bits[j] -= 1
    i = 16
    while bits[i] == 0:
        i -= 1
    bits[i] -= 1                               # remove the reserved code
    symbols = [s for size in range(1, 33) for s in range(256) if codesize[s] == size]
    return bits[1:17], symbols
