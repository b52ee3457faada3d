"""JpegLayout: everything of a JPEG file except its coefficients, and its versioned serialisation.

The layout keeps the bytes between scans verbatim (markers, APPn/COM, tables, SOS headers, the EOI
and whatever follows it) plus one :class:`~jpegshrink.jpeg.scan.ScanRecord` per scan. Frame, scan
and component facts are derived from those bytes by the same header walker the parser uses, so a
blob cannot describe a state the bytes do not.

Blob format (version 1), integers as LEB128 varints::

    b"JPLY" 0x01  total_length  n_chunks  {len bytes}*n_chunks
    per scan: length  n_intervals  eob_cap  has_pads [pads as zig-zag varints]  n_overrides
              {interval  stop+1  keep  len tail}*n_overrides
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jpegshrink.errors import CorruptJpeg, UnsupportedJpeg
from jpegshrink.jpeg.headers import Frame, HeaderWalker, ScanSpec
from jpegshrink.jpeg.limits import DEFAULT_LIMITS, Limits
from jpegshrink.jpeg.scan import LIBJPEG_EOB_CAP, Override, ScanRecord

MAGIC = b"JPLY"
VERSION = 1


@dataclass(frozen=True)
class ComponentInfo:
    """What the coefficient model knows about one component (frame order)."""

    id: int
    h_samp: int
    v_samp: int
    quant_table: np.ndarray   # uint16[64], natural order
    block_rows: int
    block_cols: int


class JpegLayout:
    """The non-coefficient part of a JPEG: verbatim inter-scan bytes plus per-scan records."""

    def __init__(self, total_length: int, chunks: list[bytes], records: list[ScanRecord], frame: Frame,
                 specs: list[ScanSpec], quant_tables: list[np.ndarray]) -> None:
        self.total_length = total_length
        self.chunks = chunks
        self.records = records
        self.frame = frame
        self.specs = specs
        self.components = [ComponentInfo(c.id, c.h_samp, c.v_samp, q, c.block_rows, c.block_cols)
                           for c, q in zip(frame.components, quant_tables)]

    def to_bytes(self) -> bytes:
        out = bytearray(MAGIC)
        out.append(VERSION)
        _put(out, self.total_length)
        _put(out, len(self.chunks))
        for chunk in self.chunks:
            _put(out, len(chunk))
            out += chunk
        for r in self.records:
            _put(out, r.length)
            _put(out, r.n_intervals)
            _put(out, r.eob_cap)
            explicit = bool(np.any(r.pads != -1))
            out.append(int(explicit))
            if explicit:
                for v in r.pads.tolist():
                    _put(out, 2 * v if v >= 0 else -2 * v - 1)
            _put(out, len(r.overrides))
            for o in r.overrides:
                for v in (o.interval, o.stop + 1, o.keep, len(o.tail)):
                    _put(out, v)
                out += o.tail
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes, limits: Limits | None = None) -> "JpegLayout":
        """Inverse of :meth:`to_bytes`; raises :class:`CorruptJpeg` on any damaged or inconsistent blob."""
        try:
            return _read(memoryview(bytes(data)), limits or DEFAULT_LIMITS)
        except CorruptJpeg:
            raise
        except UnsupportedJpeg as e:
            raise CorruptJpeg(f"layout describes an unsupported JPEG ({e.reason})") from e
        except (ValueError, IndexError, OverflowError, MemoryError) as e:
            raise CorruptJpeg(f"damaged layout blob: {type(e).__name__}: {e}") from e


def _put(out: bytearray, v: int) -> None:
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return


class _Reader:
    def __init__(self, buf: memoryview) -> None:
        self.buf = buf
        self.pos = 0

    def varint(self, limit: int) -> int:
        v = shift = 0
        while True:
            if self.pos >= len(self.buf) or shift > 63:
                raise CorruptJpeg("layout blob ends inside a number", self.pos)
            b = self.buf[self.pos]
            self.pos += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        if v > limit:
            raise CorruptJpeg(f"layout blob holds {v} where at most {limit} fits", self.pos)
        return v

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise CorruptJpeg("layout blob is truncated", self.pos)
        self.pos += n
        return bytes(self.buf[self.pos - n:self.pos])


def _read(buf: memoryview, limits: Limits) -> JpegLayout:
    r = _Reader(buf)
    if r.take(4) != MAGIC:
        raise CorruptJpeg("not a JPEG layout blob")
    version = r.take(1)[0]
    if version != VERSION:
        raise CorruptJpeg(f"JPEG layout version {version} is not supported by this jpegshrink")
    total = r.varint(1 << 40)
    n_chunks = r.varint(len(buf))
    if n_chunks < 2:
        raise CorruptJpeg("layout blob has no scan")
    chunks = [r.take(r.varint(len(buf))) for _ in range(n_chunks)]
    walker = HeaderWalker(limits, total)
    specs = []
    for i, chunk in enumerate(chunks[:-1]):
        kind, end, spec = walker.walk(chunk, 0)
        if kind != "sos" or end != len(chunk):
            raise CorruptJpeg(f"layout chunk {i} does not end with a scan header")
        specs.append(spec)
    records = []
    for spec in specs:
        length = r.varint(total)
        n = r.varint(spec.expected_intervals)
        if n < 1:
            raise CorruptJpeg("layout scan has no interval")
        eob_cap = r.varint(LIBJPEG_EOB_CAP)
        if eob_cap < 1:
            raise CorruptJpeg("layout scan has an EOB-run cap of 0")
        pads = np.full(n, -1, np.int64)
        if r.take(1)[0]:
            for i in range(n):
                z = r.varint(1 << 16)
                pads[i] = z >> 1 if z % 2 == 0 else -((z + 1) >> 1)
        overrides = []
        for _ in range(r.varint(n)):
            interval = r.varint(n - 1)
            stop = r.varint(spec.nmcu + 1) - 1
            keep = r.varint(total)
            overrides.append(Override(interval, stop, keep, r.take(r.varint(total))))
        records.append(ScanRecord(length, n, pads, overrides, eob_cap))
    if r.pos != len(buf):
        raise CorruptJpeg("layout blob has trailing bytes", r.pos)
    if sum(map(len, chunks)) > total:
        raise CorruptJpeg("layout blob's chunks exceed the file length it claims")
    return JpegLayout(total, chunks, records, walker.frame, specs, walker.quant_tables())
