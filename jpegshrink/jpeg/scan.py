"""One scan's entropy-coded data: find its restart intervals, decode it, and re-encode it bit-exactly.

A scan is a run of intervals separated by RST markers. Each interval re-encodes from the coefficients
plus its pad bits. What our encoder cannot reproduce (a file cut off mid-scan, garbage before a marker,
another encoder's choices) is kept per interval as an *override*: encode only up to MCU ``stop``, keep
the first ``keep`` bytes of that, then append the original ``tail`` bytes verbatim.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from jpegshrink._native import core
from jpegshrink.errors import CorruptJpeg, UnsupportedJpeg
from jpegshrink.jpeg.headers import Frame, ScanSpec

OK = core.scan.OK

#: libjpeg flushes an end-of-band run when it reaches this length.
LIBJPEG_EOB_CAP = 0x7FFF

_ERRORS = {core.scan.BAD_CODE: "invalid Huffman code", core.scan.BAD_INDEX: "coefficient run past the end of the block",
           core.scan.NO_SYMBOL: "symbol missing from the Huffman table",
           core.scan.BAD_REFINEMENT: "refinement coefficient larger than 1"}


@dataclass
class Override:
    interval: int
    stop: int          # first MCU not encoded (-1: all of the interval)
    keep: int          # bytes of the re-encoded interval to keep
    tail: bytes        # original bytes that follow them


@dataclass
class ScanRecord:
    """What a scan needs beyond its header and coefficients to come back byte for byte."""

    length: int                    # bytes of entropy-coded data, RST markers included
    n_intervals: int
    pads: np.ndarray               # int64 per interval: pad bits' value, -1 = all ones (libjpeg)
    overrides: list[Override] = field(default_factory=list)
    eob_cap: int = LIBJPEG_EOB_CAP  # longest EOB run the encoder writes (progressive AC scans)


class MarkerIndex:
    """Every ``FF xx`` with xx not 00/FF in the file: where scans and restart intervals end."""

    def __init__(self, arr: np.ndarray) -> None:
        ff = np.flatnonzero(arr[:-1] == 0xFF)
        nxt = arr[ff + 1]
        keep = (nxt != 0) & (nxt != 0xFF)
        self.pos = ff[keep]
        self.code = nxt[keep]
        self.size = len(arr)

    def next_at(self, starts: np.ndarray) -> np.ndarray:
        """Position of the first marker at or after each start (file size if none)."""
        idx = np.searchsorted(self.pos, starts)
        return np.where(idx < len(self.pos), self.pos[np.minimum(idx, len(self.pos) - 1)], self.size) \
            if len(self.pos) else np.full(len(starts), self.size)


@dataclass
class Intervals:
    starts: np.ndarray      # first byte of each interval
    data_ends: np.ndarray   # end of its coded data (before fill bytes and the marker)
    span_ends: np.ndarray   # end of everything the interval owns (fill bytes, its RST marker)

    @property
    def scan_end(self) -> int:
        return int(self.span_ends[-1])


def find_intervals(arr: np.ndarray, markers: MarkerIndex, start: int, spec: ScanSpec) -> Intervals:
    """Split the scan starting at ``start`` at its RST markers (never more than the scan can have)."""
    i0 = int(np.searchsorted(markers.pos, start))
    codes = markers.code[i0:]
    non_rst = np.flatnonzero((codes < 0xD0) | (codes > 0xD7))
    j = i0 + int(non_rst[0]) if len(non_rst) else len(markers.pos)
    scan_end = int(markers.pos[j]) if j < len(markers.pos) else len(arr)
    rst = markers.pos[i0:j][:spec.expected_intervals - 1] if spec.restart > 0 else markers.pos[i0:i0]
    starts = np.concatenate(([start], rst + 2)).astype(np.int64)
    span_ends = np.concatenate((rst + 2, [scan_end])).astype(np.int64)
    data_ends = markers.next_at(starts).astype(np.int64)
    for i in np.flatnonzero((data_ends > starts) & (arr[np.maximum(data_ends - 1, 0)] == 0xFF)):
        p = int(data_ends[i])
        while p > starts[i] and arr[p - 1] == 0xFF:
            p -= 1
        data_ends[i] = p
    return Intervals(starts, data_ends, span_ends)


def decode_scan(arr: np.ndarray, spec: ScanSpec, frame: Frame, iv: Intervals, coef: np.ndarray,
                lastnz: np.ndarray):
    """Decode into ``coef``; returns ``(pads, pad_bits, truncated_at)`` per interval and the longest EOB run.

    ``lastnz`` is per-block state that progressive decoding keeps across scans (zeros to start).
    """
    n = len(iv.starts)
    pads = np.zeros(n, np.int64)
    padbits = np.zeros(n, np.int64)
    truncated = np.full(n, -1, np.int64)
    t = spec.tables
    args = (arr, iv.starts, iv.data_ends, spec.restart, spec.mcux, spec.nmcu, spec.geo, t.lookup, t.maxcode,
            t.valptr, t.mincode, t.huffval, coef)
    if frame.progressive:
        status, where, longest_run = core.scan.decode_progressive(*args, lastnz, spec.ss, spec.se, spec.ah, spec.al, pads,
                                                        padbits, truncated)
    else:
        status, where = core.scan.decode_sequential(*args, pads, padbits, truncated)
        longest_run = 0
    if status != OK:
        raise CorruptJpeg(f"scan data: {_ERRORS.get(status, 'error')}", int(where))
    return pads, padbits, truncated, int(longest_run)


def encode_scan(spec: ScanSpec, frame: Frame, record: ScanRecord, coef: np.ndarray,
                lastnz: np.ndarray | None, threads: int = 1) -> bytes:
    """The scan's entropy-coded bytes (RST markers included), as :func:`record_scan` described them.

    ``lastnz`` is ``last_nonzero(coef)``, computed once for all scans; only progressive scans read it
    (None will do for a sequential frame: its coder finds each block's last non-zero as it goes). A
    sequential scan's long intervals are coded on up to ``threads`` threads (the same bytes).
    """
    stops = np.full(record.n_intervals, -1, np.int64)
    for o in record.overrides:
        stops[o.interval] = o.stop
    out, length, ends, status = _encode(spec, frame, record.n_intervals, record.pads, stops, coef, lastnz,
                                        record.eob_cap, min(record.length, 1 << 26) + 1024, threads)
    if status != OK:
        raise CorruptJpeg(f"cannot re-encode scan: {_ERRORS.get(status, 'error')}")
    if not record.overrides:
        return out[:length].tobytes()
    by_interval = {o.interval: o for o in record.overrides}
    pieces = []
    prev = 0
    for i in range(record.n_intervals):
        o = by_interval.get(i)
        if o is None:
            pieces.append(out[prev:ends[i]].tobytes())
        else:
            pieces.append(out[prev:min(prev + o.keep, ends[i])].tobytes() + o.tail)
        prev = ends[i]
    return b"".join(pieces)


def record_scan(arr: np.ndarray, spec: ScanSpec, frame: Frame, iv: Intervals, coef: np.ndarray, lastnz: np.ndarray,
                pads: np.ndarray, padbits: np.ndarray, truncated: np.ndarray, longest_run: int) -> ScanRecord:
    """Describe how the scan re-encodes from the final coefficients, and check that it does."""
    n = len(iv.starts)
    ones = (np.int64(1) << padbits) - 1
    pads = np.where((pads == ones) | (truncated >= 0), -1, pads)
    if np.all(pads == -1):
        pads = np.full(n, -1, np.int64)
    start, end = int(iv.starts[0]), iv.scan_end
    original = arr[start:end]
    record = _differences(arr, spec, frame, iv, coef, lastnz, pads, truncated, LIBJPEG_EOB_CAP)
    if record.overrides and frame.progressive and spec.ss > 0 and 0 < longest_run < LIBJPEG_EOB_CAP:
        # another encoder's EOB-run limit? (the longest run it wrote is the best guess of its cap)
        other = _differences(arr, spec, frame, iv, coef, lastnz, pads, truncated, longest_run)
        if sum(len(o.tail) for o in other.overrides) < sum(len(o.tail) for o in record.overrides):
            record = other
    if record.overrides and encode_scan(spec, frame, record, coef, lastnz) != original.tobytes():
        raise UnsupportedJpeg("non-canonical", f"scan at byte {start} does not re-encode exactly")
    return record


def _differences(arr, spec, frame, iv, coef, lastnz, pads, truncated, eob_cap) -> ScanRecord:
    """The record that makes our encoding (with ``eob_cap``) reproduce the scan: overrides where it differs."""
    n = len(iv.starts)
    start, end = int(iv.starts[0]), iv.scan_end
    original = arr[start:end]
    record = ScanRecord(end - start, n, pads, eob_cap=eob_cap)
    out, length, ends, status = _encode(spec, frame, n, pads, truncated.copy(), coef, lastnz, eob_cap,
                                        end - start + 1024)
    if status != OK:
        raise UnsupportedJpeg("non-canonical", f"scan at byte {start} cannot be re-encoded: {_ERRORS.get(status)}")
    if length == len(original) and np.array_equal(out[:length], original) and not np.any(truncated >= 0):
        return record
    prev = 0
    for i in range(n):
        mine = out[prev:ends[i]]
        theirs = arr[iv.starts[i]:iv.span_ends[i]]
        prev = ends[i]
        if truncated[i] < 0 and len(mine) == len(theirs) and np.array_equal(mine, theirs):
            continue
        m = min(len(mine), len(theirs))
        differ = np.flatnonzero(mine[:m] != theirs[:m])
        keep = int(differ[0]) if len(differ) else m
        record.overrides.append(Override(i, int(truncated[i]), keep, theirs[keep:].tobytes()))
    return record


def _encode(spec, frame, n, pads, stops, coef, lastnz, eob_cap, capacity, threads=1):
    t = spec.tables
    if frame.progressive:
        return core.scan.encode_progressive(n, spec.restart, spec.mcux, spec.nmcu, spec.geo, t.ehufco, t.ehufsi, coef, lastnz,
                                  spec.ss, spec.se, spec.ah, spec.al, eob_cap, pads, stops, capacity)
    return core.scan.encode_sequential(n, spec.restart, spec.mcux, spec.nmcu, spec.geo, t.ehufco, t.ehufsi, coef,
                                       pads, stops, capacity, threads)
