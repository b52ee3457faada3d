"""Baseline JPEG writer: quantised coefficients -> a JFIF file with optimised Huffman tables.

Headers are written here; the entropy-coded scan is written by the project's own JPEG layer
(:func:`jpegshrink.jpeg.scan.encode_scan`, the kernel that also rebuilds archived JPEGs), driven by
the scan spec that :class:`~jpegshrink.jpeg.headers.HeaderWalker` reads back from those headers, so
the writer and the parser cannot disagree about geometry or tables. Huffman tables are optimal for
the image (JPEG Annex K.2, the code-length limiting libjpeg uses), as ``cjpeg -optimize`` does.
"""
from __future__ import annotations

import struct

import numpy as np

from jpegshrink._native import core
from jpegshrink.blocks import ZIGZAG
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


def _dc_order(comp: np.ndarray, v: int, h: int) -> np.ndarray:
    """DC values of one component in the order an interleaved scan visits its blocks."""
    rows, cols = comp.shape[:2]
    dc = comp[:, :, 0].reshape(rows // v, v, cols // h, h).transpose(0, 2, 1, 3)
    return dc.reshape(-1)


def _categories(v: np.ndarray) -> np.ndarray:
    a = np.abs(v.astype(np.int64))
    n = np.zeros(a.shape, np.int64)
    while np.any(a):
        n += a > 0
        a >>= 1
    return n


def _ac_symbols(comp: np.ndarray) -> np.ndarray:
    """Frequencies of the 256 AC symbols (run/size, EOB, ZRL) of one component's blocks."""
    zz = comp.reshape(-1, 64)[:, ZIGZAG[1:]].astype(np.int64)
    freq = np.zeros(256, np.int64)
    blk, pos = np.nonzero(zz)
    pos = pos + 1
    prev = np.zeros(len(pos), np.int64)
    if len(pos):
        same = np.concatenate(([False], blk[1:] == blk[:-1]))
        prev[same] = pos[:-1][same[1:]]
    run = pos - prev - 1
    freq[0xF0] += int(np.sum(run // 16))
    sym = ((run % 16) << 4) | _categories(zz[blk, pos - 1])
    freq += np.bincount(sym, minlength=256)
    last = np.zeros(zz.shape[0], np.int64)
    if len(pos):
        last[blk] = pos                       # nonzero() is in (block, position) order: last write wins
    freq[0] += int(np.sum(last < 63))         # EOB
    return freq


def optimal_table(freq: np.ndarray) -> tuple[list[int], list[int]]:
    """(counts per code length 1..16, symbols) for ``freq``, as libjpeg's jpeg_gen_optimal_table."""
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


def _dht(tc: int, th: int, freq: np.ndarray) -> tuple[bytes, int]:
    """The DHT table and the bits the scan spends on these symbols (codes plus appended bits)."""
    counts, symbols = optimal_table(freq)
    bits = 0
    i = 0
    for length, n in enumerate(counts, 1):
        for s in symbols[i:i + n]:
            bits += int(freq[s]) * (length + (s & 15))
        i += n
    return bytes([(tc << 4) | th]) + bytes(counts) + bytes(symbols), bits


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
    dc_freq = [np.zeros(256, np.int64) for _ in tables]
    ac_freq = [np.zeros(256, np.int64) for _ in tables]
    for comp, (h, v), t in zip(components, sampling, table_of):
        dc = _dc_order(comp, v, h) if len(components) > 1 else comp[:, :, 0].reshape(-1)
        diff = np.diff(dc.astype(np.int64), prepend=0)
        dc_freq[t] += np.bincount(_categories(diff), minlength=256)
        ac_freq[t] += _ac_symbols(comp)
    dht, scan_bits = b"", 0
    for i in range(len(tables)):
        for tc, freq in ((0, dc_freq[i]), (1, ac_freq[i])):
            table_bytes, bits = _dht(tc, i, freq)
            dht += table_bytes
            scan_bits += bits
    head.append(_segment(0xC4, dht))
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
    capacity = scan_bits // 4 + 1024      # byte stuffing at most doubles the scan
    record = ScanRecord(capacity, 1, np.full(1, -1, np.int64))
    scan = encode_scan(spec, frame, record, coef, lastnz)
    return header + scan + b"\xff\xd9"
