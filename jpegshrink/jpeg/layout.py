"""JpegLayout: everything of a JPEG file except its coefficients, and its versioned serialisation.

The layout keeps the bytes between scans verbatim (markers, APPn/COM, tables, SOS headers, the EOI
and whatever follows it) plus one :class:`~jpegshrink.jpeg.scan.ScanRecord` per scan. Frame, scan
and component facts are derived from those bytes by the same header walker the parser uses, so a
blob cannot describe a state the bytes do not.

Blob format, integers as LEB128 varints::

    b"JPLY" version  total_length  n_chunks  {len bytes}*n_chunks
    version 2 only: chunk  offset  builder
    per scan: length  n_intervals  eob_cap  has_pads [pads as zig-zag varints]  n_overrides
              {interval  stop+1  keep  len tail}*n_overrides

Version 1 keeps every header byte. Version 2 (:meth:`JpegLayout.leave_out_tables`) leaves one DHT
segment out of chunk ``chunk`` at byte ``offset``, because the frozen Huffman table builder
``builder`` (:class:`~jpegshrink.jpeg.optimal.Builder`) yields exactly its bytes from the scan's
coefficients: :meth:`JpegLayout.restore_tables` (run by :func:`jpegshrink.jpeg.rebuild`) derives it
again from the decoded coefficients and puts it back. Which blobs are written in version 2 is the
caller's choice; both are read forever.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jpegshrink.errors import CorruptJpeg, UnsupportedJpeg
from jpegshrink.jpeg import optimal
from jpegshrink.jpeg.headers import Frame, HeaderWalker, ScanSpec
from jpegshrink.jpeg.limits import DEFAULT_LIMITS, Limits
from jpegshrink.jpeg.scan import LIBJPEG_EOB_CAP, Override, ScanRecord

MAGIC = b"JPLY"
#: Every header byte kept.
VERSION = 1
#: One DHT segment left out, derived from the coefficients by a builder of :mod:`.optimal`.
VERSION_DERIVED_TABLES = 2
#: The newest version this code writes (where a caller asks for it: :meth:`JpegLayout.leave_out_tables`).
NEWEST_VERSION = VERSION_DERIVED_TABLES


@dataclass(frozen=True)
class DerivedTables:
    """Where a layout left out a DHT segment, and the builder that derives it from the coefficients."""

    chunk: int       # index of the chunk it belongs to
    offset: int      # byte position in that chunk (the chunk as stored, without the segment)
    builder: int     # optimal.Builder


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
    """The non-coefficient part of a JPEG: verbatim inter-scan bytes plus per-scan records.

    With ``derived`` set, ``chunks`` lack that DHT segment: the layout serialises as version 2, and only
    :meth:`restore_tables` with the coefficients gives a layout that can rebuild the file (until then
    ``specs`` may lack Huffman tables; frame and components are complete).
    """

    def __init__(self, total_length: int, chunks: list[bytes], records: list[ScanRecord], frame: Frame,
                 specs: list[ScanSpec], quant_tables: list[np.ndarray], derived: DerivedTables | None = None,
                 limits: Limits | None = None) -> None:
        self.total_length = total_length
        self.chunks = chunks
        self.records = records
        self.frame = frame
        self.specs = specs
        self.derived = derived
        self.limits = limits or DEFAULT_LIMITS
        self.components = [ComponentInfo(c.id, c.h_samp, c.v_samp, q, c.block_rows, c.block_cols)
                           for c, q in zip(frame.components, quant_tables)]

    def leave_out_tables(self, coefficients: list[np.ndarray], builder: int = optimal.CURRENT) -> "JpegLayout":
        """This layout without its DHT segment when ``builder`` derives exactly its bytes from ``coefficients``.

        Checked by deriving the segment and comparing bytes, never assumed: any JPEG whose tables are
        not the builder's (another encoder's, several DHT segments, a progressive or restart-coded
        file, ...) gets ``self`` back, unchanged. ``coefficients`` are the file's own (per frame component).
        """
        if self.derived is not None:
            return self
        spec = _single_scan(self.frame, self.specs)
        if spec is None:
            return self
        walker = HeaderWalker(self.limits, self.total_length)
        walker.walk(self.chunks[0], 0)
        if len(walker.dht_segments) != 1:
            return self
        start, end = walker.dht_segments[0]
        try:
            segment = _derive(builder, self.frame, spec, coefficients)
        except CorruptJpeg:
            return self
        if segment != self.chunks[0][start:end]:
            return self
        chunks = [self.chunks[0][:start] + self.chunks[0][end:]] + self.chunks[1:]
        return JpegLayout(self.total_length, chunks, self.records, self.frame, self.specs,
                          [c.quant_table for c in self.components], DerivedTables(0, start, builder), self.limits)

    def restore_tables(self, coefficients: list[np.ndarray]) -> "JpegLayout":
        """The complete layout: the left-out DHT segment derived from ``coefficients`` and put back.

        ``self`` when nothing was left out. ``coefficients`` must already match the components' shapes.
        Raises :class:`CorruptJpeg` when the stored description does not lead back to a consistent file
        (the caller's sha256 check catches the rest).
        """
        if self.derived is None:
            return self
        try:
            return self._restore_tables(coefficients)
        except (CorruptJpeg, UnsupportedJpeg) as e:
            raise CorruptJpeg(f"left-out Huffman tables cannot be restored: {e}") from e
        except (ValueError, IndexError, OverflowError, MemoryError) as e:
            raise CorruptJpeg(f"left-out Huffman tables cannot be restored: {type(e).__name__}: {e}") from e

    def _restore_tables(self, coefficients: list[np.ndarray]) -> "JpegLayout":
        d = self.derived
        spec = _single_scan(self.frame, self.specs)
        if spec is None or d.chunk != 0:
            raise CorruptJpeg(f"Huffman table builder {d.builder} needs one sequential scan without restarts")
        segment = _derive(d.builder, self.frame, spec, coefficients)
        chunk = self.chunks[0]
        chunks = [chunk[:d.offset] + segment + chunk[d.offset:]] + self.chunks[1:]
        full = _walked(self.total_length, chunks, self.records, self.limits, deferred=False)
        if _geometry(full) != _geometry(self) or _scan_shape(full.specs) != _scan_shape(self.specs):
            raise CorruptJpeg("the restored Huffman tables change the frame or the scan: damaged layout")
        return full

    def to_bytes(self) -> bytes:
        out = bytearray(MAGIC)
        out.append(VERSION if self.derived is None else VERSION_DERIVED_TABLES)
        _put(out, self.total_length)
        _put(out, len(self.chunks))
        for chunk in self.chunks:
            _put(out, len(chunk))
            out += chunk
        if self.derived is not None:
            for v in (self.derived.chunk, self.derived.offset, self.derived.builder):
                _put(out, v)
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
    if version not in (VERSION, VERSION_DERIVED_TABLES):
        raise CorruptJpeg(f"JPEG layout version {version} is not supported by this jpegshrink")
    total = r.varint(1 << 40)
    n_chunks = r.varint(len(buf))
    if n_chunks < 2:
        raise CorruptJpeg("layout blob has no scan")
    chunks = [r.take(r.varint(len(buf))) for _ in range(n_chunks)]
    derived = None
    if version == VERSION_DERIVED_TABLES:
        chunk = r.varint(n_chunks - 2)          # a chunk that ends in a scan header
        derived = DerivedTables(chunk, r.varint(len(chunks[chunk])), r.varint(0xFF))
        if derived.builder not in optimal.BUILDERS:
            raise CorruptJpeg(f"layout names Huffman table builder {derived.builder}, which does not exist")
    walker, specs = _walk(chunks, limits, total, deferred=derived is not None)
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
    return JpegLayout(total, chunks, records, walker.frame, specs, walker.quant_tables(), derived, limits)


def _walk(chunks: list[bytes], limits: Limits, total: int, deferred: bool) -> tuple[HeaderWalker, list[ScanSpec]]:
    """Walk every chunk but the last: each must end with exactly one scan header."""
    walker = HeaderWalker(limits, total, huffman_deferred=deferred)
    specs = []
    for i, chunk in enumerate(chunks[:-1]):
        kind, end, spec = walker.walk(chunk, 0)
        if kind != "sos" or end != len(chunk):
            raise CorruptJpeg(f"layout chunk {i} does not end with a scan header")
        specs.append(spec)
    return walker, specs


def _walked(total: int, chunks: list[bytes], records: list[ScanRecord], limits: Limits, deferred: bool) -> JpegLayout:
    walker, specs = _walk(chunks, limits, total, deferred)
    if sum(map(len, chunks)) > total:
        raise CorruptJpeg("layout's chunks exceed the file length it claims")
    return JpegLayout(total, chunks, records, walker.frame, specs, walker.quant_tables(), None, limits)


def _single_scan(frame: Frame, specs: list[ScanSpec]) -> ScanSpec | None:
    """The scan of a sequential file with exactly one scan, covering every component, without restarts
    (the only case :attr:`~jpegshrink.jpeg.optimal.Builder.LIBJPEG_1` describes); else None."""
    if frame.progressive or len(specs) != 1:
        return None
    spec = specs[0]
    if spec.restart or sorted(spec.components) != list(range(len(frame.components))):
        return None
    return spec


def _derive(builder: int, frame: Frame, spec: ScanSpec, coefficients: list[np.ndarray]) -> bytes:
    """The DHT segment ``builder`` derives for ``spec`` from the coefficients (per frame component)."""
    comps = [frame.components[i] for i in spec.components]
    return optimal.derive(builder, [coefficients[i] for i in spec.components], [(c.h_samp, c.v_samp) for c in comps],
                          list(spec.dc_slots), [s - 4 for s in spec.ac_slots]).segment


def _geometry(layout: JpegLayout) -> list[tuple]:
    return [(c.id, c.h_samp, c.v_samp, c.block_rows, c.block_cols, c.quant_table.tobytes()) for c in layout.components]


def _scan_shape(specs: list[ScanSpec]) -> list[tuple]:
    return [(tuple(s.components), tuple(s.dc_slots), tuple(s.ac_slots), s.ss, s.se, s.ah, s.al, s.restart, s.nmcu)
            for s in specs]
