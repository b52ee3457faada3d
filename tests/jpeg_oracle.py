"""Shared checks for the JPEG-layer tests: byte-exact round trip and jpeglib as coefficient oracle."""
from __future__ import annotations

from pathlib import Path

import jpeglib
import numpy as np

from jpegshrink import jpeg


def roundtrip(data: bytes) -> jpeg.JpegParts:
    """Parse, serialise the layout, rebuild from the deserialised layout; assert identical bytes."""
    parts = jpeg.parse(data)
    assert jpeg.rebuild(parts) == data
    blob = parts.layout.to_bytes()
    layout = jpeg.JpegLayout.from_bytes(blob)
    assert layout.to_bytes() == blob
    assert jpeg.rebuild(jpeg.JpegParts(layout, parts.coefficients)) == data
    derived = parts.layout.leave_out_tables(parts.coefficients)  # version 2 when our builder's tables
    if derived is not parts.layout:
        blob2 = derived.to_bytes()
        assert blob2[:5] == b"JPLY\x02" and len(blob2) < len(blob)
        assert jpeg.rebuild(jpeg.JpegParts(jpeg.JpegLayout.from_bytes(blob2), parts.coefficients)) == data
    for a, b in zip(layout.components, parts.layout.components):
        assert (a.id, a.h_samp, a.v_samp, a.block_rows, a.block_cols) == (b.id, b.h_samp, b.v_samp, b.block_rows,
                                                                          b.block_cols)
        assert np.array_equal(a.quant_table, b.quant_table)
    return parts


def assert_matches_jpeglib(path: Path, parts: jpeg.JpegParts) -> None:
    """Coefficients and quantisation tables equal libjpeg's (over the region both have)."""
    j = jpeglib.read_dct(str(path))
    j.load()
    theirs = [j.Y, j.Cb, j.Cr, j.K if j.has_black else None]
    assert j.num_components == len(parts.coefficients)
    for i, ours in enumerate(parts.coefficients):
        assert ours.dtype == np.int16 and ours.ndim == 3 and ours.shape[2] == 64
        ref = theirs[i]
        assert ref is not None, f"jpeglib has no array for component {i}"
        ref = ref.reshape(ref.shape[0], ref.shape[1], 64)
        rows, cols = min(ref.shape[0], ours.shape[0]), min(ref.shape[1], ours.shape[1])
        assert rows >= ours.shape[0] - 4 and cols >= ours.shape[1] - 4
        np.testing.assert_array_equal(ours[:rows, :cols], ref[:rows, :cols], err_msg=f"component {i}")
        qt = j.qt[j.quant_tbl_no[i]].reshape(64)
        np.testing.assert_array_equal(parts.layout.components[i].quant_table, qt)
