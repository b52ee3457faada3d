"""Huffman tables: DHT payloads -> canonical codes -> array tables for the compiled scan coders.

Tables are addressed by slot: 0..3 are DC tables 0..3, 4..7 are AC tables 0..3 (``Tc * 4 + Th``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jpegshrink._native import core
from jpegshrink.errors import CorruptJpeg

#: Bits of look-ahead resolved by one table lookup; longer codes take the slow path.
LOOKAHEAD = core.scan.LOOKAHEAD
N_SLOTS = core.scan.N_SLOTS


@dataclass(frozen=True)
class HuffmanTable:
    """One DHT table as written: code counts per length 1..16 and the symbols in code order."""

    counts: tuple[int, ...]
    symbols: bytes

    def codes(self) -> list[tuple[int, int, int]]:
        """``(symbol, code, length)`` in canonical order (JPEG Annex C)."""
        out = []
        code = 0
        i = 0
        for length in range(1, 17):
            for _ in range(self.counts[length - 1]):
                out.append((self.symbols[i], code, length))
                code += 1
                i += 1
            code <<= 1
        return out


def parse_dht(payload: bytes, offset: int) -> list[tuple[int, int, HuffmanTable]]:
    """Tables of one DHT segment as ``(class, id, table)``; ``offset`` is for error messages."""
    tables = []
    p = 0
    while p < len(payload):
        if p + 17 > len(payload):
            raise CorruptJpeg("DHT segment ends inside a table header", offset + p)
        tc, th = payload[p] >> 4, payload[p] & 15
        if tc > 1 or th > 3:
            raise CorruptJpeg(f"DHT names table class {tc} id {th}", offset + p)
        counts = tuple(payload[p + 1:p + 17])
        total = sum(counts)
        if total > 256 or p + 17 + total > len(payload):
            raise CorruptJpeg("DHT table is longer than its segment", offset + p)
        code = 0
        for length, count in enumerate(counts, 1):
            code += count
            if code > (1 << length) - 1 and count:  # libjpeg rejects the all-ones code and overfull lengths
                raise CorruptJpeg("DHT table is not a valid prefix code", offset + p)
            code <<= 1
        tables.append((tc, th, HuffmanTable(counts, bytes(payload[p + 17:p + 17 + total]))))
        p += 17 + total
    return tables


def _std(counts: list[int], symbols: list[int]) -> HuffmanTable:
    return HuffmanTable(tuple(counts), bytes(symbols))


_AC_LUMA_SYMBOLS = bytes.fromhex(
    "01020300041105122131410613516107227114328191a1082342b1c11552d1f02433627282090a161718191a25262728292a"
    "3435363738393a434445464748494a535455565758595a636465666768696a737475767778797a838485868788898a9293"
    "9495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6"
    "e7e8e9eaf1f2f3f4f5f6f7f8f9fa")
_AC_CHROMA_SYMBOLS = bytes.fromhex(
    "000102031104052131061241510761711322328108144291a1b1c109233352f0156272d10a162434e125f11718191a262728"
    "292a35363738393a434445464748494a535455565758595a636465666768696a737475767778797a82838485868788898a92"
    "939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9fa")

#: Annex K tables that libjpeg installs when a scan uses slot 0/1 without a DHT (e.g. Motion-JPEG frames).
STANDARD_TABLES: dict[int, HuffmanTable] = {
    0: _std([0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0], list(range(12))),
    1: _std([0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0], list(range(12))),
    4: HuffmanTable((0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d), _AC_LUMA_SYMBOLS),
    5: HuffmanTable((0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77), _AC_CHROMA_SYMBOLS),
}


@dataclass
class CoderTables:
    """Array form of up to eight tables, as the compiled decoder and encoder take them."""

    lookup: np.ndarray    # int32 [8, 2**LOOKAHEAD]: (length << 8 | symbol) for short codes, 0 = slow path
    maxcode: np.ndarray   # int64 [8, 18]: largest code of each length, -1 if none
    valptr: np.ndarray    # int64 [8, 17]: index of the first symbol of each length
    mincode: np.ndarray   # int64 [8, 17]: smallest code of each length
    huffval: np.ndarray   # int32 [8, 256]: symbols in code order
    ehufco: np.ndarray    # uint32 [8, 256]: code of each symbol
    ehufsi: np.ndarray    # int32 [8, 256]: code length of each symbol, 0 = symbol not in table


def build_coder_tables(slots: list[HuffmanTable | None]) -> CoderTables:
    """Array tables for the given slots (missing slots decode nothing and encode nothing)."""
    t = CoderTables(np.zeros((N_SLOTS, 1 << LOOKAHEAD), np.int32), np.full((N_SLOTS, 18), -1, np.int64),
                    np.zeros((N_SLOTS, 17), np.int64), np.zeros((N_SLOTS, 17), np.int64),
                    np.zeros((N_SLOTS, 256), np.int32), np.zeros((N_SLOTS, 256), np.uint32),
                    np.zeros((N_SLOTS, 256), np.int32))
    for slot, table in enumerate(slots):
        if table is None:
            continue
        index = 0
        for sym, code, length in table.codes():
            if length <= LOOKAHEAD:
                shift = LOOKAHEAD - length
                t.lookup[slot, code << shift:(code + 1) << shift] = (length << 8) | sym
            if t.maxcode[slot, length] < 0:
                t.valptr[slot, length] = index
                t.mincode[slot, length] = code
            t.maxcode[slot, length] = code
            t.huffval[slot, index] = sym
            if t.ehufsi[slot, sym] == 0:  # a duplicated symbol encodes with its first code
                t.ehufco[slot, sym] = code
                t.ehufsi[slot, sym] = length
            index += 1
    return t
