"""Hostile input: mutated real JPEGs and damaged layout blobs give typed errors, never a crash or a hang.

``JPEGSHRINK_FUZZ_EXAMPLES`` raises the number of inputs per property for a longer run (default keeps
the module under a minute on CI).
"""
from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from jpegshrink import jpeg
from jpegshrink.errors import CorruptJpeg, UnsupportedJpeg

SAMPLE = Path(__file__).parent / "data" / "sample"
FILES = [p.read_bytes() for p in sorted(SAMPLE.glob("*.jpg")) if p.stat().st_size < 50_000]
EXAMPLES = int(os.environ.get("JPEGSHRINK_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("JPEGSHRINK_FUZZ_RANDOM"),
                suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module", autouse=True)
def warm_up():
    for data in FILES:
        try:
            jpeg.parse(data)
        except UnsupportedJpeg:
            pass


@st.composite
def mutated_jpeg(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(FILES)))
    kind = draw(st.sampled_from(["flip", "truncate", "marker", "sof", "overwrite", "mixed"]))
    n = len(data)
    if kind in ("flip", "mixed"):
        for _ in range(draw(st.integers(1, 12))):
            data[draw(st.integers(0, n - 1))] ^= 1 << draw(st.integers(0, 7))
    if kind in ("marker", "mixed"):
        at = draw(st.integers(0, len(data)))
        code = draw(st.sampled_from([0xC0, 0xC2, 0xC4, 0xD0, 0xD7, 0xD8, 0xD9, 0xDA, 0xDB, 0xDD, 0xE1, 0xFE, 0x01,
                                     0xC9, 0xFF, 0x00]))
        body = draw(st.binary(max_size=40))
        data[at:at] = b"\xff" + bytes([code]) + (len(body) + 2).to_bytes(2, "big") + body
    if kind == "sof":
        sof = max(data.find(b"\xff\xc0"), data.find(b"\xff\xc2"))
        if sof >= 0:
            data[sof + 5:sof + 9] = draw(st.binary(min_size=4, max_size=4))
            if draw(st.booleans()):
                data[sof + 11] = draw(st.integers(0, 255))  # sampling factors of the first component
    if kind == "overwrite":
        at = draw(st.integers(0, n - 1))
        data[at:at + 16] = draw(st.binary(min_size=1, max_size=16))
    if kind in ("truncate", "mixed"):
        del data[draw(st.integers(0, len(data))):]
    return bytes(data)


def _check(data: bytes) -> None:
    tracemalloc.start()
    try:
        parts = jpeg.parse(data)
    except UnsupportedJpeg as e:
        event(f"refused: unsupported ({e.reason})")
        return
    except CorruptJpeg:
        event("refused: corrupt")
        return
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < (64 << 20) + 1200 * len(data), f"parse of {len(data)} bytes peaked at {peak} bytes"
    event("accepted" + (" with verbatim scan bytes" if any(r.overrides for r in parts.layout.records) else ""))
    assert jpeg.rebuild(parts) == data
    layout = jpeg.JpegLayout.from_bytes(parts.layout.to_bytes())
    assert jpeg.rebuild(jpeg.JpegParts(layout, parts.coefficients)) == data


@FUZZ
@given(mutated_jpeg())
def test_mutated_jpegs_give_typed_errors_or_exact_rebuilds(data):
    _check(data)


@FUZZ
@given(st.binary(max_size=300).map(lambda b: b"\xff\xd8" + b))
def test_random_bytes_after_soi(data):
    _check(data)


LAYOUTS = []
for _data in FILES:
    try:
        _parts = jpeg.parse(_data)
    except UnsupportedJpeg:
        continue
    LAYOUTS.append((_parts.layout.to_bytes(), _parts.coefficients))


@st.composite
def damaged_layout(draw):
    blob, coefficients = draw(st.sampled_from(LAYOUTS))
    blob = bytearray(blob)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "varint"]))
        at = draw(st.integers(0, len(blob)))
        if op == "flip" and at < len(blob):
            blob[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del blob[at:at + draw(st.integers(1, 64))]
        elif op == "insert":
            blob[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            blob[at:at] = b"\xff\xff\xff\xff\xff\xff\xff\x7f"  # an absurd number
    return bytes(blob), coefficients


@FUZZ
@given(damaged_layout())
def test_damaged_layout_blobs(case):
    blob, coefficients = case
    try:
        layout = jpeg.JpegLayout.from_bytes(blob)
    except CorruptJpeg:
        event("from_bytes refused")
        return
    try:
        out = jpeg.rebuild(jpeg.JpegParts(layout, coefficients))
    except CorruptJpeg:
        event("rebuild refused")
        return
    event("rebuilt")
    assert isinstance(out, bytes)
