"""Baseline JPEG writer: quantised coefficients -> a JFIF file with optimised Huffman tables.

Headers are written here; the entropy-coded scan is written by the project's own JPEG layer
(:func:`jpegshrink.jpeg.scan.encode_scan`, the kernel that also rebuilds archived JPEGs), driven by
the scan spec that :class:`~jpegshrink.jpeg.headers.HeaderWalker` reads back from those headers, so
the writer and the parser cannot disagree about geometry or tables. Huffman tables are optimal for
the image (JPEG Annex K.2, the code-length limiting libjpeg uses), as ``cjpeg -optimize`` does, made by
the JPEG layer's frozen builder (:mod:`jpegshrink.jpeg.optimal`): the same code recomputes them when a
container left them out, so a change of the table algorithm must be a new builder version there.
"""
from __future__ import annotations

import struct

import numpy as np

from jpegshrink._native import core
from jpegshrink.blocks import ZIGZAG
from jpegshrink.jpeg import optimal
from jpegshrink.jpeg.headers import HeaderWalker
from jpegshrink.jpeg.limits import Limits
from jpegshrink.jpeg.scan import ScanRecord, encode_scan

ICC_CHUNK = 65519           # 65535 - 2 (length) - 12 ("ICC_PROFILE\0") - 2 (seq, count)
XMP_PREFIX = b"http://ns.adobe.com/xap/1.0/\x00"


def _segment(marker: int, payload: bytes) -> bytes:
    if len(payload) + 2 > 0xFFFF:
        raise ValueError(f"marker segment FF{marker:02X} payload of {len(payload)} bytes is too long")
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def metadata_segments(exif: bytes, icc: bytes, xmp: bytes) -> bytes:
    """APP1 Exif, APP1 XMP and APP2 ICC segments (ICC split into chunks); too-long EXIF/XMP raise."""
    out = [_segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")]
    if exif:
        out.append(_segment(0xE1, b"Exif\x00\x00" + exif))
    if xmp:
        out.append(_segment(0xE1, XMP_PREFIX + xmp))
    if icc:
        chunks = [icc[i:i + ICC_CHUNK] for i in range(0, len(icc), ICC_CHUNK)]
        if len(chunks) > 255:
            raise ValueError("ICC profile too large for a JPEG")
        for i, c in enumerate(chunks):
            out.append(_segment(0xE2, b"ICC_PROFILE\x00" + bytes([i + 1, len(chunks)]) + c))
    return b"".join(out)


def write_jpeg(components: list[np.ndarray], sampling: list[tuple[int, int]], tables: list[np.ndarray],
               table_of: list[int], width: int, height: int, app_segments: bytes) -> bytes:
    """A baseline sequential JPEG with one interleaved scan (one component: grey).

    ``components``: int16 [block_rows, block_cols, 64] natural order, padded to whole MCUs;
    ``sampling``: (h, v) per component; ``tables``: natural-order steps 1..255; ``table_of``: table
    index per component (0 = luma tables, 1 = chroma tables, also for Huffman).
    """
    head = [b"\xff\xd8", app_segments]
    dqt = b"".join(bytes([i]) + bytes(int(x) for x in t[ZIGZAG]) for i, t in enumerate(tables))
    head.append(_segment(0xDB, dqt))
    sof = struct.pack(">BHHB", 8, height, width, len(components))
    for i, ((h, v), t) in enumerate(zip(sampling, table_of)):
        sof += bytes([i + 1, (h << 4) | v, t])
    head.append(_segment(0xC0, sof))
    dht = optimal.derive(optimal.CURRENT, components, sampling, table_of, table_of)
    head.append(dht.segment)
    sos = bytes([len(components)])
    for i, t in enumerate(table_of):
        sos += bytes([i + 1, (t << 4) | t])
    sos += bytes([0, 63, 0])
    head.append(_segment(0xDA, sos))
    header = b"".join(head)
    blocks = sum(c.shape[0] * c.shape[1] for c in components)
    walker = HeaderWalker(Limits(), len(header) + 16 * blocks)
    kind, end, spec = walker.walk(header, 0)
    if kind != "sos" or end != len(header):
        raise AssertionError("the JPEG writer produced headers its own parser does not read back")
    frame = walker.frame
    coef = np.concatenate([c.reshape(-1, 64) for c in components]).astype(np.int16)
    lastnz = core.scan.last_nonzero(coef)
    capacity = dht.scan_bits // 4 + 1024      # byte stuffing at most doubles the scan
    record = ScanRecord(capacity, 1, np.full(1, -1, np.int64))
    scan = encode_scan(spec, frame, record, coef, lastnz)
    return header + scan + b"\xff\xd9"
