"""JPEG bitstream layer: byte-exact decomposition of a JPEG file into layout + coefficients, and back.

``rebuild(parse(x)) == x`` for every ``x`` that :func:`parse` accepts: parse re-encodes every scan from
the final coefficients and refuses (``UnsupportedJpeg("non-canonical")``) anything it cannot reproduce.
Modules: :mod:`.headers` (marker segments), :mod:`.huffman` (tables), :mod:`.bitio`,
:mod:`.scan` (intervals, overrides; the scan coders are in the compiled core, ``jpegshrink/csrc``),
:mod:`.layout` (serialisation), :mod:`.optimal` (Huffman tables derived from coefficients: the lossy
writer's, and those a version-2 layout leaves out), :mod:`.limits`.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from dataclasses import dataclass

import numpy as np

from jpegshrink.errors import CorruptJpeg, UnsupportedJpeg
from jpegshrink._native import core
from jpegshrink.jpeg.headers import HeaderWalker
from jpegshrink.jpeg.layout import ComponentInfo, JpegLayout
from jpegshrink.jpeg.limits import DEFAULT_LIMITS, Limits
from jpegshrink.jpeg.scan import MarkerIndex, decode_scan, encode_scan, find_intervals, record_scan

#: Most bytes of a file that may be kept verbatim inside scans before parse refuses it as non-canonical.
MAX_VERBATIM_SCAN_FRACTION = 1 / 16


@dataclass
class JpegParts:
    layout: JpegLayout
    coefficients: list[np.ndarray]


def parse(data: bytes, limits: Limits | None = None) -> JpegParts:
    """Split a JPEG into layout and coefficients; raises only UnsupportedJpeg or CorruptJpeg."""
    data = bytes(data)
    try:
        return _parse(data, limits or DEFAULT_LIMITS)
    except (UnsupportedJpeg, CorruptJpeg):
        raise
    except (ValueError, IndexError, OverflowError) as e:  # a check we missed: still a typed refusal
        raise CorruptJpeg(f"malformed JPEG: {type(e).__name__}: {e}") from e


#: A frame of at least this many blocks (about 1 MP) has its scans coded in parallel when rebuild may use
#: several threads; below it a thread pool costs more than it saves.
PARALLEL_SCANS_MIN_BLOCKS = 16384


def rebuild(parts: JpegParts, threads: int = 1) -> bytes:
    """The original file bytes from a layout and its coefficients (left-out Huffman tables derived again).

    ``threads``: how many threads a long sequential scan may be coded on (the bytes do not depend on it)."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    coef, lastnz = _flat_coefficients(parts.layout, parts.coefficients)
    layout = parts.layout.restore_tables(parts.coefficients)
    jobs = list(zip(layout.specs, layout.records))
    if threads > 1 and len(jobs) > 1 and layout.frame.total_blocks >= PARALLEL_SCANS_MIN_BLOCKS:
        # several scans (progressive, or one per component): each is coded on its own, one per thread
        with ThreadPoolExecutor(max_workers=min(threads, len(jobs))) as pool:
            scans = list(pool.map(lambda j: encode_scan(j[0], layout.frame, j[1], coef, lastnz), jobs))
    else:
        scans = [encode_scan(spec, layout.frame, record, coef, lastnz, threads) for spec, record in jobs]
    out = [layout.chunks[0]]
    for scan, chunk in zip(scans, layout.chunks[1:]):
        out.append(scan)
        out.append(chunk)
    return b"".join(out)


def _parse(data: bytes, limits: Limits) -> JpegParts:
    if data[:2] != b"\xff\xd8":
        raise CorruptJpeg("not a JPEG file (no SOI marker)", 0)
    arr = np.frombuffer(data, np.uint8)
    markers = MarkerIndex(arr)
    walker = HeaderWalker(limits, len(data))
    coef = None
    chunks, scans = [], []
    pos = chunk_start = 0
    while True:
        kind, pos, spec = walker.walk(data, pos)
        if kind != "sos":
            break
        if coef is None:
            coef = np.zeros((walker.frame.total_blocks, 64), np.int16)
            lastnz = np.zeros(walker.frame.total_blocks, np.int64)
        chunks.append(data[chunk_start:pos])
        iv = find_intervals(arr, markers, pos, spec)
        scans.append((spec, iv, decode_scan(arr, spec, walker.frame, iv, coef, lastnz)))
        pos = chunk_start = iv.scan_end
    if not scans:
        raise CorruptJpeg("no image data: the file has no complete scan header")
    chunks.append(data[chunk_start:])
    if not walker.frame.progressive:  # progressive decoding kept lastnz up to date
        lastnz = core.scan.last_nonzero(coef)
    records = [record_scan(arr, spec, walker.frame, iv, coef, lastnz, *decoded) for spec, iv, decoded in scans]
    verbatim = sum(len(o.tail) for r in records for o in r.overrides)
    if verbatim > 64 + len(data) * MAX_VERBATIM_SCAN_FRACTION:
        raise UnsupportedJpeg("non-canonical", f"{verbatim} bytes of scan data differ from a libjpeg-style "
                                               "re-encoding")
    layout = JpegLayout(len(data), chunks, records, walker.frame, [s for s, _, _ in scans], walker.quant_tables())
    return JpegParts(layout, _component_views(layout, coef))


def coefficient_buffers(layout: JpegLayout) -> list[np.ndarray]:
    """Zero-filled coefficient arrays for ``layout``'s components (int16 [block_rows, block_cols, 64]),
    views of one buffer in the order :func:`rebuild` reads: a model that decodes into them spares the
    rebuild a copy of every block (and the fresh memory that copy would fault in)."""
    return _component_views(layout, np.zeros((layout.frame.total_blocks, 64), np.int16))


def _component_views(layout: JpegLayout, coef: np.ndarray) -> list[np.ndarray]:
    return [coef[c.offset:c.offset + c.block_rows * c.block_cols].reshape(c.block_rows, c.block_cols, 64)
            for c in layout.frame.components]


def _flat_coefficients(layout: JpegLayout, coefficients: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
    """All components' blocks in one [blocks, 64] buffer (the coders' layout), and each block's last non-zero."""
    comps = layout.frame.components
    if len(coefficients) != len(comps):
        raise CorruptJpeg(f"{len(coefficients)} coefficient arrays for {len(comps)} components")
    for c, a in zip(comps, coefficients):
        if not isinstance(a, np.ndarray) or a.shape != (c.block_rows, c.block_cols, 64) or a.dtype != np.int16:
            raise CorruptJpeg(f"component {c.id}: coefficients {getattr(a, 'dtype', type(a).__name__)}"
                              f"{getattr(a, 'shape', '')} do not match the layout "
                              f"(int16{(c.block_rows, c.block_cols, 64)})")
    shared = _shared_buffer(layout, coefficients)
    if shared is not None:  # views of one buffer in this order (coefficient_buffers, parse): no copy
        # only progressive scans read lastnz; sequential ones find each block's last non-zero as they go
        return shared, (core.scan.last_nonzero(shared) if layout.frame.progressive else None)
    coef = np.empty((layout.frame.total_blocks, 64), np.int16)
    lastnz = np.empty(layout.frame.total_blocks, np.int64)
    for c, a in zip(comps, coefficients):
        core.scan.gather_blocks(a.reshape(-1, 64), coef, c.offset, lastnz)
    return coef, lastnz


def _shared_buffer(layout: JpegLayout, coefficients: list[np.ndarray]) -> np.ndarray | None:
    """The [blocks, 64] buffer the arrays are consecutive views of, at the layout's offsets, if they are."""
    base = coefficients[0].base
    if not (isinstance(base, np.ndarray) and base.shape == (layout.frame.total_blocks, 64)
            and base.dtype == np.int16 and base.flags.c_contiguous):
        return None
    start = base.__array_interface__["data"][0]
    for c, a in zip(layout.frame.components, coefficients):
        if a.base is not base or not a.flags.c_contiguous or a.__array_interface__["data"][0] != start + c.offset * 128:
            return None
    return base


__all__ = ["PARALLEL_SCANS_MIN_BLOCKS", "ComponentInfo", "CorruptJpeg", "JpegLayout", "JpegParts", "Limits", "UnsupportedJpeg",
           "coefficient_buffers", "parse", "rebuild"]
