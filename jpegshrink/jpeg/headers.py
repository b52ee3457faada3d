"""Marker segments outside the entropy-coded data: SOF, SOS, DHT, DQT, DRI and everything skipped verbatim.

:class:`HeaderWalker` reads segments in file order and keeps the decoder state they define (tables,
restart interval, frame). The parser runs it over the file; :meth:`JpegLayout.from_bytes` runs it
over the stored header bytes, so both derive scans and components the same way.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from jpegshrink.errors import CorruptJpeg, UnsupportedJpeg
from jpegshrink.blocks import ZIGZAG
from jpegshrink.jpeg.huffman import STANDARD_TABLES, CoderTables, HuffmanTable, build_coder_tables, parse_dht
from jpegshrink.jpeg.limits import Limits

_UNSUPPORTED_SOF = {0xC3: "lossless", 0xC5: "hierarchical", 0xC6: "hierarchical", 0xC7: "hierarchical",
                    0xC9: "arithmetic", 0xCA: "arithmetic", 0xCB: "arithmetic", 0xCD: "arithmetic",
                    0xCE: "arithmetic", 0xCF: "arithmetic", 0xCC: "arithmetic", 0xDE: "hierarchical",
                    0xDF: "hierarchical", 0xDC: "dnl"}


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass
class FrameComponent:
    id: int
    h_samp: int
    v_samp: int
    quant_index: int
    block_rows: int = 0
    block_cols: int = 0
    offset: int = 0            # first block in the flat coefficient buffer
    width_in_blocks: int = 0   # blocks a non-interleaved scan covers
    height_in_blocks: int = 0


@dataclass
class Frame:
    marker: int
    width: int
    height: int
    components: list[FrameComponent]
    mcux: int = 0
    mcuy: int = 0
    total_blocks: int = 0

    @property
    def progressive(self) -> bool:
        return self.marker == 0xC2


@dataclass
class ScanSpec:
    """One SOS as the coders need it."""

    components: list[int]      # frame indices, in scan order
    dc_slots: list[int]
    ac_slots: list[int]
    ss: int
    se: int
    ah: int
    al: int
    restart: int
    tables: CoderTables
    geo: np.ndarray = field(repr=False, default=None)   # int64 [blocks per MCU, 9], see csrc/bitio.h ScanGeometry
    mcux: int = 0
    nmcu: int = 0

    @property
    def expected_intervals(self) -> int:
        return _ceil_div(self.nmcu, self.restart) if self.restart > 0 else 1


class HeaderWalker:
    """Reads marker segments and keeps the state they define."""

    def __init__(self, limits: Limits, data_length: int, *, huffman_deferred: bool = False) -> None:
        self.limits = limits
        #: Tables come later (a layout blob that left its DHT out, :mod:`.optimal`): a scan whose tables are
        #: undefined gets none instead of an error or libjpeg's standard ones; its spec cannot code until
        #: the layout is walked again with the tables in place.
        self.huffman_deferred = huffman_deferred
        #: (start, end) of every DHT segment read, from its FF to the end of its payload.
        self.dht_segments: list[tuple[int, int]] = []
        self.data_length = data_length
        self.quant: list[np.ndarray | None] = [None] * 4
        self.huffman: list[HuffmanTable | None] = [None] * 8
        self.restart = 0
        self.frame: Frame | None = None
        self.latched: dict[int, np.ndarray] = {}
        self.quant_at_last_scan: list[np.ndarray | None] = [None] * 4
        self.scans = 0
        self.block_visits = 0
        self._coder_cache: dict[tuple, CoderTables] = {}

    def walk(self, data: bytes, pos: int) -> tuple[str, int, ScanSpec | None]:
        """Read segments from ``pos``: ``("sos", end of SOS header, spec)``, ``("eoi", after EOI, None)``
        or ``("end", len(data), None)`` when the data ends (possibly inside a segment)."""
        n = len(data)
        while True:
            if pos >= n:
                return "end", n, None
            if data[pos] != 0xFF:  # extraneous bytes between segments (libjpeg skips them too)
                pos = data.find(b"\xff", pos)
                if pos < 0:
                    return "end", n, None
            q = pos + 1
            while q < n and data[q] == 0xFF:
                q += 1
            if q >= n:
                return "end", n, None
            code = data[q]
            if code == 0x00 or code == 0x01 or code == 0xD8 or 0xD0 <= code <= 0xD7:
                pos = q + 1
                continue
            if code == 0xD9:
                return "eoi", q + 1, None
            if q + 3 > n:
                return "end", n, None
            length = (data[q + 1] << 8) | data[q + 2]
            if length < 2:
                raise CorruptJpeg(f"marker FF{code:02X} has segment length {length}", q + 1)
            seg_end = q + 1 + length
            if seg_end > n:
                return "end", n, None
            payload = data[q + 3:seg_end]
            if code in _UNSUPPORTED_SOF:
                raise UnsupportedJpeg(_UNSUPPORTED_SOF[code], f"marker FF{code:02X} at byte {q - 1}")
            if code in (0xC0, 0xC1, 0xC2):
                self._frame(code, payload, q + 3)
            elif code == 0xC4:
                self.dht_segments.append((q - 1, seg_end))
                for tc, th, table in parse_dht(payload, q + 3):
                    self.huffman[tc * 4 + th] = table
            elif code == 0xDB:
                self._quant(payload, q + 3)
            elif code == 0xDD:
                if length != 4:
                    raise CorruptJpeg("DRI segment must be 4 bytes long", q + 1)
                self.restart = (payload[0] << 8) | payload[1]
            elif code == 0xDA:
                return "sos", seg_end, self._scan(payload, q + 3)
            pos = seg_end

    def _frame(self, code: int, p: bytes, offset: int) -> None:
        if self.frame is not None:
            raise UnsupportedJpeg("multiple-frames", f"second SOF at byte {offset - 4}")
        if len(p) < 6:
            raise CorruptJpeg("SOF segment too short", offset)
        precision, height, width, nf = p[0], (p[1] << 8) | p[2], (p[3] << 8) | p[4], p[5]
        if precision != 8:
            raise UnsupportedJpeg("12-bit" if precision == 12 else "precision", f"{precision}-bit samples")
        if height == 0:
            raise UnsupportedJpeg("dnl", "height defined by a DNL marker")
        if width == 0:
            raise CorruptJpeg("SOF gives width 0", offset)
        if not 1 <= nf <= 4:
            raise UnsupportedJpeg("components", f"{nf} components")
        if len(p) != 6 + 3 * nf:
            raise CorruptJpeg("SOF length does not match its component count", offset)
        self.limits.check_frame(width, height)
        comps = []
        for i in range(nf):
            cid, hv, tq = p[6 + 3 * i], p[7 + 3 * i], p[8 + 3 * i]
            h, v = hv >> 4, hv & 15
            if not (1 <= h <= 4 and 1 <= v <= 4) or tq > 3:
                raise CorruptJpeg(f"SOF component {cid} has sampling {h}x{v}, table {tq}", offset + 6 + 3 * i)
            if any(c.id == cid for c in comps):
                raise CorruptJpeg(f"SOF repeats component id {cid}", offset + 6 + 3 * i)
            comps.append(FrameComponent(cid, h, v, tq))
        hmax, vmax = max(c.h_samp for c in comps), max(c.v_samp for c in comps)
        frame = Frame(code, width, height, comps, _ceil_div(width, 8 * hmax), _ceil_div(height, 8 * vmax))
        total = 0
        for c in comps:
            c.width_in_blocks = _ceil_div(width * c.h_samp, 8 * hmax)
            c.height_in_blocks = _ceil_div(height * c.v_samp, 8 * vmax)
            if nf == 1:
                c.block_rows, c.block_cols = c.height_in_blocks, c.width_in_blocks
            else:
                c.block_rows, c.block_cols = frame.mcuy * c.v_samp, frame.mcux * c.h_samp
            c.offset = total
            total += c.block_rows * c.block_cols
        frame.total_blocks = total
        self.limits.check_blocks(total, self.data_length)
        self.frame = frame

    def _quant(self, p: bytes, offset: int) -> None:
        i = 0
        while i < len(p):
            pq, tq = p[i] >> 4, p[i] & 15
            size = 64 * (pq + 1)
            if pq > 1 or tq > 3 or i + 1 + size > len(p):
                raise CorruptJpeg("malformed DQT segment", offset + i)
            raw = np.frombuffer(p, np.uint8 if pq == 0 else ">u2", 64, i + 1).astype(np.uint16)
            table = np.zeros(64, np.uint16)
            table[ZIGZAG] = raw
            self.quant[tq] = table
            i += 1 + size

    def _scan(self, p: bytes, offset: int) -> ScanSpec:
        frame = self.frame
        if frame is None:
            raise CorruptJpeg("SOS before any SOF", offset)
        ns = p[0] if p else 0
        if not 1 <= ns <= 4 or len(p) != 4 + 2 * ns:
            raise CorruptJpeg("malformed SOS segment", offset)
        comps, dc, ac = [], [], []
        for i in range(ns):
            cid, t = p[1 + 2 * i], p[2 + 2 * i]
            idx = next((j for j, c in enumerate(frame.components) if c.id == cid), -1)
            if idx < 0 or idx in comps:
                raise CorruptJpeg(f"SOS names component {cid} that the frame lacks or repeats", offset + 1 + 2 * i)
            if t >> 4 > 3 or t & 15 > 3:
                raise CorruptJpeg("SOS names a Huffman table id over 3", offset + 2 + 2 * i)
            comps.append(idx)
            dc.append(t >> 4)
            ac.append(4 + (t & 15))
        ss, se, ah, al = p[1 + 2 * ns], p[2 + 2 * ns], p[3 + 2 * ns] >> 4, p[3 + 2 * ns] & 15
        if frame.progressive:
            bad = ss > se or se > 63 or al > 13 or (ah != 0 and al != ah - 1)
            bad = bad or (ss == 0 and se != 0) or (ss > 0 and ns != 1)
            if bad:
                raise CorruptJpeg(f"invalid progressive scan Ss={ss} Se={se} Ah={ah} Al={al}", offset)
        else:
            ss, se, ah, al = 0, 63, 0, 0  # libjpeg ignores these fields in sequential frames
        needed = set()
        if not frame.progressive or (ss == 0 and ah == 0):
            needed.update(dc)
        if not frame.progressive or ss > 0:
            needed.update(ac)
        slots: list[HuffmanTable | None] = [None] * 8
        for s in needed:
            table = self.huffman[s] or (None if self.huffman_deferred else STANDARD_TABLES.get(s))
            if table is None and not self.huffman_deferred:
                raise CorruptJpeg(f"scan uses Huffman table {'AC' if s >= 4 else 'DC'}{s & 3}, never defined", offset)
            slots[s] = table
        key = tuple(slots)
        tables = self._coder_cache.get(key)
        if tables is None:
            tables = self._coder_cache[key] = build_coder_tables(slots)
        for idx in comps:
            if idx not in self.latched:
                q = self.quant[frame.components[idx].quant_index]
                if q is None:
                    raise CorruptJpeg(f"quantisation table {frame.components[idx].quant_index} is not defined", offset)
                self.latched[idx] = q
        self.quant_at_last_scan = list(self.quant)
        spec = ScanSpec(comps, dc, ac, ss, se, ah, al, self.restart, tables)
        _scan_geometry(frame, spec)
        self.scans += 1
        self.block_visits += spec.nmcu * len(spec.geo)
        self.limits.check_scans(self.scans, self.block_visits, self.data_length)
        return spec

    def quant_tables(self) -> list[np.ndarray]:
        """Per frame component: the table latched at its first scan (else the last known, else ones)."""
        out = []
        for idx, c in enumerate(self.frame.components):
            q = self.latched.get(idx)
            if q is None:
                q = self.quant_at_last_scan[c.quant_index]
            out.append(q.copy() if q is not None else np.ones(64, np.uint16))
        return out


def _scan_geometry(frame: Frame, spec: ScanSpec) -> None:
    rows = []
    if len(spec.components) == 1:
        c = frame.components[spec.components[0]]
        spec.mcux = c.width_in_blocks
        spec.nmcu = c.width_in_blocks * c.height_in_blocks
        rows.append((0, c.offset, c.block_cols, 1, 1, 0, 0, spec.dc_slots[0], spec.ac_slots[0]))
    else:
        spec.mcux = frame.mcux
        spec.nmcu = frame.mcux * frame.mcuy
        for si, idx in enumerate(spec.components):
            c = frame.components[idx]
            for dy in range(c.v_samp):
                for dx in range(c.h_samp):
                    rows.append((si, c.offset, c.block_cols, c.v_samp, c.h_samp, dy, dx,
                                 spec.dc_slots[si], spec.ac_slots[si]))
        if len(rows) > 10:
            raise CorruptJpeg(f"interleaved scan has {len(rows)} blocks per MCU (at most 10 allowed)")
    spec.geo = np.array(rows, np.int64)
