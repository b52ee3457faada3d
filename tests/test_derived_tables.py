"""Lossy containers leave out the Huffman tables our writer derives from the coefficients (layout v2).

The JPEG ``decompress`` returns stays the encoder's, byte for byte; a JPEG whose tables are not the
builder's keeps them (layout v1); a damaged description of the left-out tables is CorruptContainer.
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import jpegshrink
from jpegshrink import codec, jpeg
from jpegshrink.coding import container, dictionary
from jpegshrink.coding.container import Container
from jpegshrink.errors import CorruptContainer, CorruptJpeg
from jpegshrink.jpeg import optimal
from jpegshrink.jpeg.layout import DerivedTables, JpegLayout
from jpegshrink.lossy import encoder
from jpegshrink.lossy.source import load

SAMPLE = Path(__file__).parent / "data" / "sample"


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    img = Image.open(SAMPLE / "scikit-learn__china.jpg").convert("RGB").reduce(4)
    return np.ascontiguousarray(np.asarray(img)[:101, :141])


def _layout_blob(blob: bytes) -> bytes:
    return dictionary.decompress(container.unpack(blob).layout, 1 << 20)


def _with_layout(blob: bytes, layout_blob: bytes) -> bytes:
    """``blob`` re-packed with another (raw) layout blob, everything else as it was."""
    c = container.unpack(blob)
    return container.pack(Container(c.mode, c.original_length, c.original_sha256, c.model_id, c.reason,
                                    dictionary.compress_layout(layout_blob, 9), c.streams, c.info))


def _ours(photo, image: str, **settings) -> bytes:
    a = {"photo": photo, "grey": np.ascontiguousarray(photo[:, :, 1]), "pixel": photo[:1, :1].copy(),
         "odd": np.ascontiguousarray(photo[:17, :9])}[image]
    return encoder.encode(load(a), encoder.Settings(**settings)).jpeg


@pytest.mark.parametrize("image,settings", [
    ("photo", dict(quality=35)), ("photo", dict(quality=75, subsampling="420")),
    ("photo", dict(quality=92, subsampling="444")), ("photo", dict(quality=97, subsampling="444")),
    ("grey", dict(quality=50)), ("grey", dict(quality=95)), ("pixel", dict(quality=85)),
    ("odd", dict(quality=60, subsampling="420")),
    ("photo", dict(quality=80, chroma_sharpen=0, dc_percent=100, chroma_dc_percent=100, low_ac_percent=100,
                   flatten_luma=30)),   # lossy-2's settings
])
def test_our_jpegs_are_stored_without_tables_and_come_back_identical(photo, image, settings):
    jpeg_bytes = _ours(photo, image, **settings)
    blob = codec.store_lossy_jpeg(jpeg_bytes, {"source_format": "array"})
    raw = _layout_blob(blob)
    assert raw[:5] == b"JPLY\x02" and b"\xff\xc4" not in raw
    assert jpegshrink.decompress(blob) == jpeg_bytes
    full = jpeg.parse(jpeg_bytes).layout.to_bytes()
    assert full[:5] == b"JPLY\x01" and len(raw) < len(full) - 2 * 17   # at least the counts of 2 tables


def test_encode_image_writes_the_compact_layout(photo):
    blob = jpegshrink.encode_image(photo, quality=70, measure=False)
    assert _layout_blob(blob)[:5] == b"JPLY\x02"
    assert jpegshrink.decompress(blob) == _ours(photo, "photo", quality=70)


def _pillow(photo, **kw) -> bytes:
    b = io.BytesIO()
    Image.fromarray(photo).save(b, "JPEG", **kw)
    return b.getvalue()


@pytest.mark.parametrize("kw", [dict(quality=80), dict(quality=80, optimize=True), dict(quality=90, subsampling=0),
                                dict(quality=70, progressive=True)])
def test_tables_that_are_not_our_builders_are_stored(photo, kw):
    """libjpeg's standard and optimised tables (one DHT segment per table), progressive files."""
    data = _pillow(photo, **kw)
    blob = codec.store_lossy_jpeg(data, {"source_format": "array"})
    assert _layout_blob(blob)[:5] == b"JPLY\x01"
    assert jpegshrink.decompress(blob) == data


def _dht_span(data: bytes) -> tuple[int, int]:
    start = data.index(b"\xff\xc4")
    return start, start + 2 + int.from_bytes(data[start + 2:start + 4], "big")


def test_our_tables_in_another_order_or_with_swapped_codes_are_stored(photo):
    """The check compares bytes: the same tables in another order, or one valid code swap, keep the DHT."""
    data = _ours(photo, "photo", quality=75, subsampling="420")
    start, end = _dht_span(data)
    payload = data[start + 4:end]
    tables, p = [], 0
    while p < len(payload):
        n = sum(payload[p + 1:p + 17])
        tables.append(payload[p:p + 17 + n])
        p += 17 + n
    assert [t[0] for t in tables] == [0x00, 0x10, 0x01, 0x11]
    reordered = data[:start + 4] + b"".join(tables[::-1]) + data[end:]
    ac = bytearray(tables[1])           # swap two symbols of the luma AC table: same lengths, other codes
    ac[17], ac[18] = ac[18], ac[17]
    original = jpeg.parse(data)
    chunks = list(original.layout.chunks)
    chunks[0] = chunks[0].replace(payload, tables[0] + bytes(ac) + tables[2] + tables[3])
    swapped_layout = JpegLayout(original.layout.total_length, chunks, original.layout.records,
                                original.layout.frame, [], [c.quant_table for c in original.layout.components])
    blob = swapped_layout.to_bytes()    # walked again from the bytes: the scan re-encoded with the swapped codes
    swapped = jpeg.rebuild(jpeg.JpegParts(JpegLayout.from_bytes(blob), original.coefficients))
    assert swapped != data
    for variant in (reordered, swapped):
        parts = jpeg.parse(variant)        # still valid JPEGs with the same coefficients
        assert all(np.array_equal(a, b) for a, b in zip(parts.coefficients, original.coefficients))
        assert parts.layout.leave_out_tables(parts.coefficients) is parts.layout
    parts = jpeg.parse(reordered)
    assert jpeg.rebuild(parts) == reordered
    blob = codec.store_lossy_jpeg(reordered, {"source_format": "array"})
    assert _layout_blob(blob)[:5] == b"JPLY\x01" and jpegshrink.decompress(blob) == reordered


def _compact(photo) -> tuple[bytes, bytes, bytes]:
    data = _ours(photo, "photo", quality=60, subsampling="420")
    blob = codec.store_lossy_jpeg(data, {"source_format": "array"})
    return data, blob, _layout_blob(blob)


def _derived_field_offset(raw: bytes) -> int:
    """Byte position of the (chunk, offset, builder) varints in a version 2 layout blob."""
    layout = JpegLayout.from_bytes(raw)
    pos = 5
    for v in (layout.total_length, len(layout.chunks)):
        pos += len(_varint(v))
    for chunk in layout.chunks:
        pos += len(_varint(len(chunk))) + len(chunk)
    return pos


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b, v = v & 0x7F, v >> 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def test_a_damaged_marker_is_corrupt_container(photo):
    data, blob, raw = _compact(photo)
    layout = JpegLayout.from_bytes(raw)
    assert layout.derived == DerivedTables(0, layout.derived.offset, optimal.Builder.LIBJPEG_1)
    pos = _derived_field_offset(raw)
    fields = _varint(0) + _varint(layout.derived.offset) + _varint(1)
    assert raw[pos:pos + len(fields)] == fields
    tail = raw[pos + len(fields):]
    bad = {
        "unknown builder": raw[:pos] + _varint(0) + _varint(layout.derived.offset) + _varint(9) + tail,
        "builder 0": raw[:pos] + _varint(0) + _varint(layout.derived.offset) + _varint(0) + tail,
        "chunk 1 (after the scan)": raw[:pos] + _varint(1) + _varint(layout.derived.offset) + _varint(1) + tail,
        "offset past the chunk": raw[:pos] + _varint(0) + _varint(len(layout.chunks[0]) + 1) + _varint(1) + tail,
        "truncated": raw[:pos + 1],
        "version 3": raw[:4] + b"\x03" + raw[5:],
    }
    for name, damaged in bad.items():
        with pytest.raises(CorruptJpeg):
            JpegLayout.from_bytes(damaged)
        with pytest.raises(CorruptContainer):
            jpegshrink.decompress(_with_layout(blob, damaged))
    # Every offset that parses (inside another segment, between SOF and SOS, ...) never yields other bytes.
    for off in range(len(layout.chunks[0]) + 1):
        if off == layout.derived.offset:
            continue
        moved = raw[:pos] + _varint(0) + _varint(off) + _varint(1) + tail
        with pytest.raises(CorruptContainer):
            jpegshrink.decompress(_with_layout(blob, moved))
    assert jpegshrink.decompress(_with_layout(blob, raw)) == data


def test_a_version_2_layout_of_a_file_the_builder_cannot_describe_is_refused():
    """Progressive or restart-coded files, and a v1 blob relabelled v2, never crash the decoder."""
    for name in ("v08_jpegtran-progressive.jpg", "v08_jpegtran-restart1.jpg"):
        data = (SAMPLE / name).read_bytes()
        parts = jpeg.parse(data)
        assert parts.layout.leave_out_tables(parts.coefficients) is parts.layout
        raw = parts.layout.to_bytes()
        pos = _derived_field_offset(raw)
        forged = raw[:4] + b"\x02" + raw[5:pos] + _varint(0) + _varint(0) + _varint(1) + raw[pos:]
        layout = JpegLayout.from_bytes(forged)
        with pytest.raises(CorruptJpeg):
            jpeg.rebuild(jpeg.JpegParts(layout, parts.coefficients))


def test_restoring_with_coefficients_no_baseline_code_carries_is_corrupt(photo):
    data, _, raw = _compact(photo)
    parts = jpeg.parse(data)
    layout = JpegLayout.from_bytes(raw)
    coefs = [c.copy() for c in parts.coefficients]
    coefs[0][0, 0, 1] = -32768              # an AC coefficient of 16 magnitude bits
    with pytest.raises(CorruptJpeg):
        jpeg.rebuild(jpeg.JpegParts(layout, coefs))
    assert jpeg.rebuild(jpeg.JpegParts(layout, parts.coefficients)) == data


def test_builder_1_is_frozen():
    """Builder.LIBJPEG_1's output for fixed coefficients, pinned (the digests are those of the writer's
    code before it moved to jpeg/optimal.py): any change of the tables must be a new builder."""
    rng = np.random.default_rng(7)
    luma = (rng.laplace(0, 3, (4, 6, 64)) * (rng.random((4, 6, 64)) < 0.3)).astype(np.int16)
    luma[:, :, 0] = rng.integers(-300, 300, (4, 6))
    chroma = [(rng.laplace(0, 1.5, (2, 3, 64)) * (rng.random((2, 3, 64)) < 0.15)).astype(np.int16) for _ in range(2)]
    d = optimal.derive(optimal.Builder.LIBJPEG_1, [luma] + chroma, [(2, 2), (1, 1), (1, 1)], [0, 1, 1], [0, 1, 1])
    assert d.segment[:2] == b"\xff\xc4" and len(d.segment) == 2 + int.from_bytes(d.segment[2:4], "big")
    assert (hashlib.sha256(d.segment).hexdigest(), d.scan_bits) == (
        "98e0a06ccb90d22d0fa74453e5d98ef9160298ab69f10c64a1f58a21a10aef85", 3203)
    grey = optimal.derive(optimal.Builder.LIBJPEG_1, [luma], [(1, 1)], [0], [0])
    assert hashlib.sha256(grey.segment).hexdigest() == "0899b2b541888db1406ca6b53c1cdc106efc545cda2f2d658b68268c68658425"


def test_optimal_table_ties_are_broken_as_libjpeg_does():
    """Equal frequencies: libjpeg merges the later symbols first, so they get the longer codes."""
    counts, symbols = optimal.optimal_table(np.array([5, 5, 5, 5] + [0] * 252))
    assert (counts[:3], symbols) == ([0, 3, 1], [0, 1, 2, 3])
    with pytest.raises(CorruptJpeg):
        optimal.derive(99, [np.zeros((1, 1, 64), np.int16)], [(1, 1)], [0], [0])


def _ac_symbols_reference(comp: np.ndarray) -> np.ndarray:
    """The writer's numpy count (before the compiled kernel): run/size, a ZRL per 16 zeros, EOB."""
    from jpegshrink.blocks import ZIGZAG
    freq = np.zeros(256, np.int64)
    for block in comp.reshape(-1, 64)[:, ZIGZAG[1:]].astype(np.int64):
        run = 0
        for v in block:
            if v == 0:
                run += 1
                continue
            freq[0xF0] += run // 16
            freq[((run % 16) << 4) | int(abs(v)).bit_length()] += 1
            run = 0
        freq[0] += run > 0
    return freq


def test_the_compiled_symbol_count_is_the_reference_count():
    rng = np.random.default_rng(3)
    blocks = (rng.laplace(0, 40, (300, 64)) * (rng.random((300, 64)) < rng.random((300, 1)) ** 3)).astype(np.int16)
    blocks[0] = 0
    blocks[1, 1:] = 0
    blocks[1, 63] = -1                        # 62 zeros then a nonzero: three ZRLs, no EOB
    blocks[2, 1:] = 32767
    np.testing.assert_array_equal(optimal._ac_symbols(blocks), _ac_symbols_reference(blocks))


def test_damaged_compact_layouts_give_corrupt_container_only(photo):
    """Seeded byte flips and truncations of a version 2 layout blob: CorruptContainer, or the same JPEG."""
    data, blob, raw = _compact(photo)
    rng = np.random.default_rng(11)
    for i in range(150):
        damaged = bytearray(raw)
        if i % 10 == 0:
            damaged = damaged[:int(rng.integers(0, len(raw)))]
        else:
            pos = int(rng.integers(0, len(raw)))
            damaged[pos] ^= int(rng.integers(1, 256))
        try:
            out = jpegshrink.decompress(_with_layout(blob, bytes(damaged)))
        except CorruptContainer:
            continue
        assert out == data
