"""The compiled core (jpegshrink._core): frozen coder output, one definition of the block tables, and
checked arguments (a caller's mistake or a hostile value is a Python error, never a stray memory access).

The byte-exactness of the scan coders and the model passes is proven by tests/test_golden.py and the
round-trip tests; these tests pin what those do not reach directly.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from jpegshrink import blocks
from jpegshrink._native import core
from jpegshrink.coding import binary_arith as ba
from jpegshrink.model import adaptive


def _coder_inputs():
    rng = np.random.default_rng(12)
    ctxs = rng.integers(0, 64, 20000)
    bits = (rng.random(20000) < (rng.random(64) * 0.4)[ctxs]).astype(np.uint8)
    return ctxs, bits


def test_binary_coder_output_is_frozen_and_round_trips():
    """The stream and final counters equal what the numba coder wrote for the same decisions (sha256
    taken from it before it was removed): containers of every model depend on these bytes."""
    ctxs, bits = _coder_inputs()
    enc, counters = ba.BinaryEncoder(), ba.new_counters(64)
    enc.code_bits(counters, ctxs, bits, 255)
    stream = enc.finish()
    assert hashlib.sha256(stream).hexdigest() == "07b33ab575ff2311377464295decd9a3169ca31d0d14ced7d9a9459c3aafd098"
    assert hashlib.sha256(counters.tobytes()).hexdigest()[:16] == "89edd86a75362256"
    assert enc.finish() == stream  # idempotent
    dec = ba.BinaryDecoder(stream)
    assert np.array_equal(dec.code_bits(ba.new_counters(64), ctxs, 255), bits)
    assert dec.overrun <= 0 and not dec.damaged


def test_truncated_stream_reads_past_its_end():
    ctxs, bits = _coder_inputs()
    enc = ba.BinaryEncoder()
    enc.code_bits(ba.new_counters(64), ctxs, bits, 255)
    dec = ba.BinaryDecoder(enc.finish()[:-200])
    dec.code_bits(ba.new_counters(64), ctxs, 255)
    assert dec.overrun > 0


def test_block_tables_have_one_consistent_definition():
    zz = blocks.ZIGZAG
    assert sorted(zz.tolist()) == list(range(64)) and zz[:6].tolist() == [0, 1, 8, 16, 9, 2]
    assert np.array_equal(blocks.ZIGZAG_RANK[zz], np.arange(64))
    assert blocks.INTERIOR.tolist() == [n for n in zz.tolist() if n // 8 and n % 8]
    assert blocks.EDGES.tolist() == list(range(1, 8)) + list(range(8, 64, 8))
    assert not blocks.ZIGZAG.flags.writeable  # shared by every module: nobody may edit it
    assert adaptive.PASS_COEFS[1:5] == tuple(tuple(blocks.INTERIOR[a:b].tolist()) for a, b in adaptive.INTERIOR_GROUPS)


def _component(rows=3, cols=4):
    rng = np.random.default_rng(1)
    co = np.zeros((rows, cols, 64), np.int16)
    co[:, :, :10] = rng.integers(-3, 4, (rows, cols, 10))
    q = np.full(64, 8, np.int64)
    return co, q, np.zeros((rows, cols), np.int64), np.zeros((rows, cols), np.int64)


def test_model_pass_arguments_are_checked():
    co, q, nz7, nzrem = _component()
    T = ba.new_counters(adaptive.N_COUNTERS)
    enc = ba.BinaryEncoder()
    with pytest.raises(TypeError):
        core.adaptive.run_pass(enc, 0, co.astype(np.int32), q, nz7, nzrem, None, T)
    with pytest.raises(ValueError, match="hint values"):
        core.adaptive.run_pass(enc, 0, co, q, nz7, nzrem, np.full((3, 4, 1), 8, np.uint8), T)
    with pytest.raises(ValueError, match="hint"):
        core.adaptive.run_pass(enc, 1, co, q, nz7, nzrem, np.zeros((3, 4, 1), np.uint8), T)  # pass 1 has 3 per block
    with pytest.raises(ValueError, match="nzrem"):
        core.adaptive.run_pass(enc, 1, co, q, nz7, np.full((3, 4), 50, np.int64), None, T)
    with pytest.raises(ValueError, match="counters"):
        core.adaptive.run_pass(enc, 0, co, q, nz7, nzrem, None, ba.new_counters(10))
    with pytest.raises(ValueError, match="pass"):
        core.adaptive.run_pass(enc, 7, co, q, nz7, nzrem, None, T)
    dec = ba.BinaryDecoder(b"\x00" * 8)
    with pytest.raises(ValueError, match="writable"):
        ro = co.copy()
        ro.flags.writeable = False
        core.adaptive.run_pass(dec, 0, ro, q, nz7, nzrem, None, T)


def test_random_streams_decode_to_a_damaged_flag_not_a_crash():
    """Garbage streams decode through every pass; the decoder says they are damaged or overrun."""
    from jpegshrink.model.base import ComponentSpec
    spec = ComponentSpec(5, 7, 1, 1, np.full(64, 3, np.uint16))
    rng = np.random.default_rng(3)
    m = adaptive.AdaptiveModel(threads=1)
    refused = 0
    for size in (0, 1, 5, 64, 700):
        for _ in range(4):
            try:
                m.decode([rng.integers(0, 256, size, dtype=np.uint8).tobytes()], [spec])
            except ValueError:
                refused += 1
    assert refused >= 15  # a random stream that happens to be valid is possible, but rare


def test_scan_coder_geometry_is_checked_before_it_is_used():
    coef = np.zeros((4, 64), np.int16)
    ehufco, ehufsi = np.zeros((8, 256), np.uint32), np.zeros((8, 256), np.int32)
    pads, stops = np.full(1, -1, np.int64), np.full(1, -1, np.int64)
    geo = np.array([[0, 0, 2, 1, 1, 0, 0, 0, 4]], np.int64)  # one block per MCU, 2 columns
    enc = core.scan.encode_sequential
    # 4 MCUs fit 4 blocks; 5 would write past the array
    assert enc(1, 0, 2, 4, geo, ehufco, ehufsi, coef, pads, stops, 100)[3] == core.scan.NO_SYMBOL
    with pytest.raises(ValueError, match="outside the coefficient array"):
        enc(1, 0, 2, 5, geo, ehufco, ehufsi, coef, pads, stops, 100)
    bad = geo.copy()
    bad[0, 8] = 9
    with pytest.raises(ValueError, match="slot"):
        enc(1, 0, 2, 4, bad, ehufco, ehufsi, coef, pads, stops, 100)
    with pytest.raises(TypeError):
        enc(1, 0, 2, 4, geo, ehufco, ehufsi, coef.astype(np.int32), pads, stops, 100)


def test_progressive_decoder_on_garbage_returns_a_status():
    """A progressive AC refinement scan over random bytes: a status code or a clean truncation, no crash."""
    from jpegshrink.jpeg.huffman import STANDARD_TABLES, build_coder_tables
    t = build_coder_tables([STANDARD_TABLES[0], None, None, None, STANDARD_TABLES[4], None, None, None])
    rng = np.random.default_rng(5)
    geo = np.array([[0, 0, 8, 1, 1, 0, 0, 0, 4]], np.int64)
    for ss, se, ah, al in ((0, 0, 0, 1), (0, 0, 1, 0), (1, 5, 0, 2), (1, 63, 2, 1), (6, 63, 1, 0)):
        coef = np.zeros((64, 64), np.int16)
        lastnz = np.zeros(64, np.int64)
        data = rng.integers(0, 256, 300, dtype=np.uint8)
        pads, padbits, trunc = np.zeros(1, np.int64), np.zeros(1, np.int64), np.full(1, -1, np.int64)
        status, where, _ = core.scan.decode_progressive(
            data, np.array([0]), np.array([300]), 0, 8, 64, geo, t.lookup, t.maxcode, t.valptr, t.mincode, t.huffval,
            coef, lastnz, ss, se, ah, al, pads, padbits, trunc)
        assert status in (core.scan.OK, core.scan.BAD_CODE, core.scan.BAD_INDEX, core.scan.BAD_REFINEMENT)
        assert lastnz.max() <= 63
