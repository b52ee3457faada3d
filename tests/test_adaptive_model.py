"""The adaptive coefficient model: exact round trips, the hint hook, determinism, damaged streams."""
from __future__ import annotations

import time

import numpy as np
import pytest

import jpegshrink.model as registry
from jpegshrink.model.adaptive import N_HINTS, N_PASSES, PASS_COEFS, PASS_HINT_WIDTH, AdaptiveModel
from jpegshrink.model.base import ComponentSpec

jpeglib = pytest.importorskip("jpeglib")

MODEL = AdaptiveModel()


def _spec(a: np.ndarray, q: np.ndarray | None = None, h: int = 1, v: int = 1) -> ComponentSpec:
    if q is None:
        q = np.arange(1, 65, dtype=np.uint16)
    return ComponentSpec(a.shape[0], a.shape[1], h, v, q)


def _jpeg_components(path) -> tuple[list[np.ndarray], list[ComponentSpec]]:
    d = jpeglib.read_dct(str(path))
    planes = [d.Y] + ([d.Cb, d.Cr] if d.Cb is not None else [])
    arrays, specs = [], []
    for i, p in enumerate(planes):
        a = np.ascontiguousarray(p.reshape(p.shape[0], p.shape[1], 64).astype(np.int16))
        q = np.asarray(d.qt[d.quant_tbl_no[i]]).reshape(64).astype(np.uint16)
        arrays.append(a)
        specs.append(_spec(a, q))
    return arrays, specs


def _roundtrip(arrays, specs, hints=None) -> list[bytes]:
    streams = MODEL.encode(arrays, specs, hints=hints)
    assert len(streams) == len(arrays)
    out = MODEL.decode(streams, specs, hints=hints)
    for a, b in zip(arrays, out):
        assert b.dtype == np.int16 and b.shape == a.shape
        np.testing.assert_array_equal(a, b)
    return streams


def test_registered_forever():
    assert "adaptive-1" in registry.registered_ids()
    assert registry.get("adaptive-1").model_id == "adaptive-1"


def test_pass_schedule_covers_every_coefficient_once():
    coded = [n for p in PASS_COEFS for n in p]
    assert sorted(coded) == list(range(64))
    assert len(PASS_HINT_WIDTH) == N_PASSES == len(PASS_COEFS)


@pytest.mark.parametrize("name", ["scikit-learn__china.jpg", "v08_cjpeg-q95-420.jpg", "v08_cjpeg-q50-gray.jpg",
                                  "crop-flower.png.im_q85_asymmetric.jpg", "libjxl-testdata__1x1_exif_xmp.jpg"])
def test_sample_jpegs_roundtrip_and_shrink(sample_files, name):
    path = next(p for p in sample_files if p.name == name)
    arrays, specs = _jpeg_components(path)
    streams = _roundtrip(arrays, specs)
    if path.stat().st_size > 10000:
        assert sum(map(len, streams)) < 0.9 * path.stat().st_size


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (5, 1), (3, 11), (17, 2)])
def test_synthetic_extremes(shape):
    rng = np.random.default_rng(sum(shape))
    zeros = np.zeros(shape + (64,), np.int16)
    full = rng.integers(-32768, 32768, size=shape + (64,), dtype=np.int64).astype(np.int16)
    ends = np.where(rng.random(shape + (64,)) < 0.5, -32768, 32767).astype(np.int16)
    sparse = np.where(rng.random(shape + (64,)) < 0.1, full, 0).astype(np.int16)
    arrays = [zeros, full, ends, sparse]
    _roundtrip(arrays, [_spec(a) for a in arrays])


def test_extreme_quant_tables():
    rng = np.random.default_rng(1)
    a = rng.integers(-32768, 32768, size=(4, 4, 64), dtype=np.int64).astype(np.int16)
    for q in (np.zeros(64, np.uint16), np.full(64, 65535, np.uint16), np.ones(64, np.uint16)):
        _roundtrip([a], [_spec(a, q)])


def test_empty_grid_roundtrips():
    a = np.zeros((0, 3, 64), np.int16)
    _roundtrip([a], [_spec(a)])


def test_repeated_runs_give_same_bytes(sample_files):
    arrays, specs = _jpeg_components(next(p for p in sample_files if p.name == "scikit-learn__flower.jpg"))
    assert MODEL.encode(arrays, specs) == AdaptiveModel(threads=1).encode(arrays, specs)


def test_random_hints_roundtrip_and_see_only_earlier_passes(sample_files):
    arrays, specs = _jpeg_components(next(p for p in sample_files if p.name == "v08_cjpeg-q75-420.jpg"))
    seen: dict[tuple[str, int, int], np.ndarray] = {}

    def hints(component, pass_index, so_far, counts):
        assert not so_far.flags.writeable and not counts.flags.writeable
        interior = [n for n in range(64) if n // 8 and n % 8]
        expected = (arrays[component][:, :, interior] != 0).sum(axis=2) if pass_index else 0
        np.testing.assert_array_equal(counts, expected)
        earlier = [n for p in PASS_COEFS[:pass_index] for n in p]
        later = [n for n in range(64) if n not in earlier]
        assert not so_far[:, :, later].any()
        np.testing.assert_array_equal(so_far[:, :, earlier], arrays[component][:, :, earlier])
        rng = np.random.default_rng(component * 100 + pass_index)
        h = rng.integers(0, N_HINTS, size=so_far.shape[:2] + (PASS_HINT_WIDTH[pass_index],)).astype(np.uint8)
        return h

    with_hints = _roundtrip(arrays, specs, hints)
    assert with_hints != MODEL.encode(arrays, specs)


def test_all_zero_hint_is_the_plain_model(sample_files):
    arrays, specs = _jpeg_components(next(p for p in sample_files if p.name == "v08_cjpeg-q75-444.jpg"))

    def zero_hints(component, pass_index, so_far, counts):
        return np.zeros(so_far.shape[:2] + (PASS_HINT_WIDTH[pass_index],), np.uint8)

    assert MODEL.encode(arrays, specs, hints=zero_hints) == MODEL.encode(arrays, specs)


def test_bad_hints_are_refused():
    a = np.zeros((2, 2, 64), np.int16)
    with pytest.raises(ValueError, match="hint"):
        MODEL.encode([a], [_spec(a)], hints=lambda c, p, s, n: np.full((2, 2, PASS_HINT_WIDTH[p]), N_HINTS, np.uint8))
    with pytest.raises(ValueError, match="hint"):
        MODEL.encode([a], [_spec(a)], hints=lambda c, p, s, n: np.zeros((2, 2, 99), np.uint8))


def test_shape_mismatches_are_refused():
    a = np.zeros((2, 2, 64), np.int16)
    with pytest.raises(ValueError):
        MODEL.encode([a], [ComponentSpec(3, 2, 1, 1, np.ones(64, np.uint16))])
    with pytest.raises(ValueError):
        MODEL.encode([a.astype(np.int32)], [_spec(a)])
    with pytest.raises(ValueError):
        MODEL.decode([b"", b""], [_spec(a)])


def _decode_or_value_error(streams, specs) -> None:
    try:
        out = MODEL.decode(streams, specs)
    except ValueError:
        return
    for o, s in zip(out, specs):
        assert o.shape == (s.block_rows, s.block_cols, 64) and o.dtype == np.int16


def test_damaged_streams_fail_cleanly(sample_files):
    arrays, specs = _jpeg_components(next(p for p in sample_files if p.name == "v08_cjpeg-q75-420.jpg"))
    streams = MODEL.encode(arrays, specs)
    rng = np.random.default_rng(7)
    start = time.monotonic()
    refused = 0
    for trial in range(60):
        damaged = list(streams)
        i = trial % len(streams)
        b = bytearray(damaged[i])
        kind = trial % 3
        if kind == 0:
            b = b[: rng.integers(0, len(b))]
        elif kind == 1:
            for _ in range(rng.integers(1, 4)):
                b[rng.integers(0, len(b))] ^= 1 << rng.integers(0, 8)
        else:
            b = bytearray(rng.integers(0, 256, size=rng.integers(0, 64), dtype=np.uint8).tobytes())
        damaged[i] = bytes(b)
        try:
            out = MODEL.decode(damaged, specs)
        except ValueError:
            refused += 1
            continue
        for o, s in zip(out, specs):
            assert o.shape == (s.block_rows, s.block_cols, 64) and o.dtype == np.int16
    assert refused > 30  # most damage is detected by the model itself
    assert time.monotonic() - start < 60


def test_truncated_stream_is_refused(sample_files):
    arrays, specs = _jpeg_components(next(p for p in sample_files if p.name == "scikit-learn__china.jpg"))
    streams = MODEL.encode(arrays, specs)
    with pytest.raises(ValueError):
        MODEL.decode([streams[0][: len(streams[0]) // 2]] + streams[1:], specs)


@pytest.mark.parametrize("name", ["scikit-learn__china.jpg", "v08_jpegtran-progressive.jpg", "x01_cmyk-pillow-q90.jpg",
                                  "crop-flower.png.im_q85_rgb_subsample_blue.jpg", "x01_truncated-70pct.jpg"])
def test_codec_end_to_end(sample_files, name):
    import jpegshrink
    data = next(p for p in sample_files if p.name == name).read_bytes()
    blob = jpegshrink.compress(data, model_id="adaptive-1")
    info = jpegshrink.inspect(blob)
    assert (info.mode, info.model_id) == ("jpeg", "adaptive-1"), info.reason
    assert jpegshrink.decompress(blob) == data
    assert len(blob) < 0.92 * len(data)
