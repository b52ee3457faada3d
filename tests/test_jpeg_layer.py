"""JPEG bitstream layer: byte-exact parse/rebuild over real files, with jpeglib as coefficient oracle."""
from __future__ import annotations

import collections
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import read_manifest
from jpeg_oracle import assert_matches_jpeglib, roundtrip
from jpegshrink import jpeg
from jpegshrink.errors import CorruptJpeg, UnsupportedJpeg
from jpegshrink.jpeg import Limits

SAMPLE = Path(__file__).parent / "data" / "sample"
MANIFEST = {row["name"]: row for row in read_manifest(SAMPLE)}


def _is_arithmetic(row: dict) -> bool:
    return row.get("coding", "").startswith("arith")


def _is_truncated(row: dict) -> bool:
    return row.get("trailing_bytes_after_eoi") == "-1" or "truncated" in row["name"]


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_sample_roundtrip_and_coefficients(name):
    path = SAMPLE / name
    data = path.read_bytes()
    row = MANIFEST[name]
    if _is_arithmetic(row):
        with pytest.raises(UnsupportedJpeg) as e:
            jpeg.parse(data)
        assert e.value.reason == "arithmetic"
        return
    parts = roundtrip(data)
    assert [c.id for c in parts.layout.components]
    if not _is_truncated(row):  # libjpeg invents its own content past a cut
        assert_matches_jpeglib(path, parts)


def test_component_attributes_match_the_frame():
    parts = jpeg.parse((SAMPLE / "crop-flower.png.im_q85_asymmetric.jpg").read_bytes())  # 22x21x12
    comps = parts.layout.components
    assert [(c.h_samp, c.v_samp) for c in comps] == [(2, 2), (2, 1), (1, 2)]
    for c, a in zip(comps, parts.coefficients):
        assert a.shape == (c.block_rows, c.block_cols, 64)
        assert c.quant_table.dtype == np.uint16 and c.quant_table.shape == (64,)
    # 320x240, hmax = vmax = 2: 20 x 15 MCUs
    assert [(c.block_rows, c.block_cols) for c in comps] == [(30, 40), (15, 40), (30, 20)]


def test_truncated_file_rebuilds_only_what_is_there():
    data = (SAMPLE / "x02_truncated-70pct.jpg").read_bytes()
    parts = roundtrip(data)
    assert not data.endswith(b"\xff\xd9")
    assert any(r.overrides for r in parts.layout.records)
    for cut in (len(data) // 3, len(data) // 2, len(data) - 1):
        roundtrip(data[:cut])


def test_trailing_bytes_after_eoi_are_kept():
    data = (SAMPLE / "v08_cjpeg-q75-420.jpg").read_bytes() + b"\x00trailing\xff\xd8garbage"
    assert jpeg.rebuild(jpeg.parse(data)) == data


def test_padding_bits_that_are_not_ones():
    data = (SAMPLE / "v08_jpegtran-restart1.jpg").read_bytes()
    parts = jpeg.parse(data)
    for r in parts.layout.records:
        assert np.all(r.pads == -1)  # libjpeg pads with ones
        r.pads = np.zeros_like(r.pads)
    zero_padded = jpeg.rebuild(parts)
    assert zero_padded != data
    again = roundtrip(zero_padded)
    assert any(np.any(r.pads == 0) for r in again.layout.records)
    for a, b in zip(again.coefficients, jpeg.parse(data).coefficients):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cap", [1, 3, 20])
def test_progressive_eob_runs_shorter_than_libjpeg_writes(cap, tmp_path):
    """Encoders that cap end-of-band runs lower than libjpeg (or never use them) are reproduced."""
    path = SAMPLE / "v08_jpegtran-progressive.jpg"
    parts = jpeg.parse(path.read_bytes())
    for r in parts.layout.records:
        r.eob_cap = cap
    other = jpeg.rebuild(parts)  # a valid JPEG, as such an encoder would write it
    assert other != path.read_bytes()
    again = roundtrip(other)
    assert not any(r.overrides for r in again.layout.records)
    assert {r.eob_cap for r, s in zip(again.layout.records, again.layout.specs) if s.ss > 0} <= {cap, 0x7FFF}
    (tmp_path / "other.jpg").write_bytes(other)
    assert_matches_jpeglib(tmp_path / "other.jpg", again)


def test_segments_in_any_order_and_fill_bytes():
    data = (SAMPLE / "v08_cjpeg-q50-444.jpg").read_bytes()
    com = b"\xff\xfe\x00\x07hello"
    app = b"\xff\xe5\x00\x06abcd"
    moved = data[:2] + com + app + data[2:]
    sos = moved.index(b"\xff\xda")
    moved = moved[:sos] + com + b"\xff\xff" + moved[sos:]  # COM before SOS, fill bytes before the marker
    assert jpeg.rebuild(jpeg.parse(moved)) == moved


def test_arithmetic_lossless_hierarchical_12bit_are_unsupported():
    base = (SAMPLE / "v08_cjpeg-q50-gray.jpg").read_bytes()
    sof = base.index(b"\xff\xc0")
    for marker, reason in ((0xC3, "lossless"), (0xC5, "hierarchical"), (0xC9, "arithmetic"), (0xCA, "arithmetic")):
        with pytest.raises(UnsupportedJpeg) as e:
            jpeg.parse(base[:sof + 1] + bytes([marker]) + base[sof + 2:])
        assert e.value.reason == reason
    with pytest.raises(UnsupportedJpeg) as e:
        jpeg.parse(base[:sof + 4] + b"\x0c" + base[sof + 5:])
    assert e.value.reason == "12-bit"


def test_oversize_frames_are_refused_before_allocation():
    base = (SAMPLE / "v08_cjpeg-q50-gray.jpg").read_bytes()
    sof = base.index(b"\xff\xc0")
    huge = base[:sof + 5] + b"\xff\xff\xff\xff" + base[sof + 9:]
    with pytest.raises(UnsupportedJpeg) as e:
        jpeg.parse(huge)  # 65535 x 65535 > 500 MP
    assert e.value.reason == "too-large"
    big = base[:sof + 5] + b"\x40\x00\x40\x00" + base[sof + 9:]
    with pytest.raises(UnsupportedJpeg) as e:
        jpeg.parse(big)  # 16384 x 16384 = 268 MP is allowed, but not from a 17 kB file
    assert e.value.reason == "too-large"
    with pytest.raises(UnsupportedJpeg) as e:
        jpeg.parse(base, Limits(max_pixels=1000))
    assert e.value.reason == "too-large"


def test_scan_count_and_work_are_bounded():
    data = (SAMPLE / "v08_jpegtran-progressive.jpg").read_bytes()  # 10 scans
    with pytest.raises(UnsupportedJpeg) as e:
        jpeg.parse(data, Limits(max_scans=9))
    assert e.value.reason == "scan-limit"
    with pytest.raises(UnsupportedJpeg) as e:
        jpeg.parse(data, Limits(max_visits_per_byte=1, visit_slack=0))
    assert e.value.reason == "scan-limit"
    assert jpeg.rebuild(jpeg.parse(data)) == data


def test_non_jpeg_input_is_corrupt():
    for data in (b"", b"\xff", b"GIF89a....", b"\xff\xd8", b"\xff\xd8\xff\xd9"):
        with pytest.raises(CorruptJpeg):
            jpeg.parse(data)


def test_layout_blob_is_versioned_and_checked():
    parts = jpeg.parse((SAMPLE / "v08_jpegtran-progressive.jpg").read_bytes())
    blob = parts.layout.to_bytes()
    assert blob[:5] == b"JPLY\x01"
    for bad in (b"", blob[:4] + b"\x09" + blob[5:], blob[:-1], blob + b"\x00", b"JPLY\x01\xff\xff\xff\xff\xff\x0f"):
        with pytest.raises(CorruptJpeg):
            jpeg.JpegLayout.from_bytes(bad)


def test_rebuild_refuses_coefficients_of_the_wrong_shape():
    parts = jpeg.parse((SAMPLE / "v08_cjpeg-q50-420.jpg").read_bytes())
    with pytest.raises(CorruptJpeg):
        jpeg.rebuild(jpeg.JpegParts(parts.layout, parts.coefficients[:2]))
    with pytest.raises(CorruptJpeg):
        jpeg.rebuild(jpeg.JpegParts(parts.layout, [a[:-1] for a in parts.coefficients]))


# --- files made here with libjpeg-turbo's tools: every sampling factor, scan kinds, restart intervals ---

CJPEG_CASES = [
    ["-sample", "1x1"], ["-sample", "2x1"], ["-sample", "1x2"], ["-sample", "2x2"], ["-sample", "4x1"],
    ["-sample", "1x4"], ["-sample", "3x1"], ["-sample", "4x2"], ["-sample", "2x4"], ["-sample", "2x3"], ["-grayscale", "-sample", "4x4"],
    ["-sample", "2x2,1x2,2x1"], ["-grayscale"], ["-grayscale", "-sample", "2x2"],
    ["-progressive"], ["-progressive", "-sample", "4x2"], ["-progressive", "-restart", "1B"],
    ["-progressive", "-restart", "3B", "-sample", "1x1"], ["-restart", "2"], ["-restart", "1B", "-sample", "3x1"],
    ["-optimize", "-restart", "5B"], ["-progressive", "-grayscale"], ["-quality", "100", "-sample", "1x1"],
    ["-quality", "5"], ["-progressive", "-quality", "100"],
]


@pytest.fixture(scope="module")
def ppm(tmp_path_factory):
    if not shutil.which("cjpeg") or not shutil.which("djpeg"):
        pytest.skip("libjpeg-turbo-progs not installed")
    out = tmp_path_factory.mktemp("cjpeg") / "src.ppm"
    subprocess.run(["djpeg", "-outfile", str(out), str(SAMPLE / "crop-flower.png.im_q85_444_1x2.jpg")], check=True)
    return out


@pytest.mark.parametrize("args", CJPEG_CASES, ids=lambda a: "_".join(a))
def test_cjpeg_variants(args, ppm, tmp_path):
    path = tmp_path / "x.jpg"
    subprocess.run(["cjpeg", *args, "-outfile", str(path), str(ppm)], check=True)
    assert_matches_jpeglib(path, roundtrip(path.read_bytes()))


SCAN_SCRIPTS = {
    # non-interleaved sequential scans, components out of frame order
    "sequential-noninterleaved": "2;\n0;\n1;\n",
    # successive approximation on DC and AC with several refinement levels and split bands
    "deep-refinement": "0,1,2: 0-0, 0, 2;\n0: 1-5, 0, 3;\n2: 1-63, 0, 1;\n1: 1-63, 0, 1;\n0: 6-63, 0, 3;\n"
                       "0: 1-63, 3, 2;\n0,1,2: 0-0, 2, 1;\n0,1,2: 0-0, 1, 0;\n0: 1-63, 2, 1;\n2: 1-63, 1, 0;\n"
                       "1: 1-63, 1, 0;\n0: 1-63, 1, 0;\n",
    "dc-per-component": "0: 0-0, 0, 0;\n1: 0-0, 0, 0;\n2: 0-0, 0, 0;\n0: 1-63, 0, 0;\n1: 1-63, 0, 0;\n2: 1-63, 0, 0;\n",
}


@pytest.mark.parametrize("name", sorted(SCAN_SCRIPTS))
@pytest.mark.parametrize("extra", [[], ["-restart", "1B"], ["-optimize"]], ids=["plain", "restart", "optimize"])
def test_scan_scripts(name, extra, ppm, tmp_path):
    script = tmp_path / "scans.txt"
    script.write_text(SCAN_SCRIPTS[name])
    path = tmp_path / "x.jpg"
    subprocess.run(["cjpeg", "-scans", str(script), *extra, "-outfile", str(path), str(ppm)], check=True)
    assert_matches_jpeglib(path, roundtrip(path.read_bytes()))


# --- the whole corpus (JPEGSHRINK_CORPUS=/work/corpus) ---

def _kinds(row: dict, data: bytes) -> list[str]:
    if _is_arithmetic(row):
        return ["arithmetic (refused, as required)"]
    kinds = ["all Huffman-coded", row["coding"]]
    if row.get("restart_interval", "0") not in ("0", ""):
        kinds.append("restart")
    comps = row.get("components", "")
    kinds.append("grey" if comps == "1" else "cmyk" if comps == "4" else f"subsampling:{row['subsampling']}")
    if row.get("exif_thumbnail") == "1":
        kinds.append("exif-thumbnail")
    trailing = row.get("trailing_bytes_after_eoi", "0")
    if trailing == "-1":
        kinds.append("truncated")
    elif trailing not in ("0", ""):
        kinds.append("trailing-data")
    return kinds


@pytest.mark.corpus
def test_corpus_roundtrip(corpus_dir):
    rows = read_manifest(corpus_dir)
    seen = collections.defaultdict(lambda: [0, 0])
    failures, no_oracle = [], []
    for row in rows:
        path = corpus_dir / row["split"] / row["name"]
        if row["split"] not in ("public", "variants"):
            path = next(corpus_dir.glob(f"*/{row['name']}"))
        data = path.read_bytes()
        kinds = _kinds(row, data)
        for k in kinds:
            seen[k][1] += 1
        try:
            parts = roundtrip(data)
            if row["djpeg"] == "ok":
                try:
                    assert_matches_jpeglib(path, parts)
                except OSError as e:  # jpeglib itself cannot read some files (e.g. > 50 APPn markers)
                    no_oracle.append(f"{row['name']}: {e}")
        except UnsupportedJpeg as e:
            if _is_arithmetic(row) and e.reason == "arithmetic":
                seen[kinds[0]][0] += 1
            else:
                failures.append(f"{row['name']}: {e}")
            continue
        except (CorruptJpeg, AssertionError) as e:
            failures.append(f"{row['name']}: {type(e).__name__}: {e}")
            continue
        if _is_arithmetic(row):
            failures.append(f"{row['name']}: arithmetic-coded but accepted")
            continue
        for k in kinds:
            seen[k][0] += 1
    print("\nJPEG layer corpus accept rate (byte-exact rebuild, coefficients = jpeglib where djpeg is clean):")
    for k in sorted(seen, key=lambda k: (not k.startswith("all"), k)):
        ok, n = seen[k]
        print(f"  {k:34s} {ok:4d}/{n:<4d} {100 * ok / n:6.1f}%")
    print(f"jpeglib could not read {len(no_oracle)} accepted files (byte-exact round trip still checked):")
    print("\n".join(no_oracle + failures))
    assert not failures


def test_codec_round_trip_through_the_layer():
    """The codec's contract with this layer: layout blob + coefficient arrays in, the same bytes out."""
    import hashlib

    import zstandard

    from jpegshrink import codec, model

    class RawModel:  # stores the coefficients as they are: checks the plumbing, not compression
        model_id = "test-raw-coefficients"

        def encode(self, coefficients, specs):
            return [zstandard.compress(np.ascontiguousarray(a).tobytes()) for a in coefficients]

        def decode(self, streams, specs, out=None):
            return [np.frombuffer(zstandard.decompress(s), np.int16).reshape(sp.block_rows, sp.block_cols, 64).copy()
                    for s, sp in zip(streams, specs)]

    # registered for this test only: other tests (golden files) see the real registry
    with model.registered(RawModel.model_id, RawModel):
        for name in ("v08_jpegtran-progressive.jpg", "x02_truncated-70pct.jpg", "x01_cmyk-pillow-q90.jpg"):
            data = (SAMPLE / name).read_bytes()
            # the coefficient path itself (compress() would pick its zstd fallback: raw coefficients are big)
            blob = codec._compress_jpeg(data, hashlib.sha256(data).digest(), RawModel.model_id)
            assert codec.inspect(blob).mode == "jpeg"
            assert codec.decompress(blob) == data
    assert RawModel.model_id not in model.registered_ids()


@pytest.mark.parametrize("name", ["v08_cjpeg-q75-420.jpg", "v08_jpegtran-progressive.jpg", "x01_truncated-70pct.jpg"])
def test_rebuild_reads_decoders_buffers_in_place_or_copies_other_arrays(name):
    """A decoder that writes into coefficient_buffers() hands rebuild one buffer it reads in place; any
    other arrays (separate, or the buffers in another order) are copied. Both give the file back."""
    data = (SAMPLE / name).read_bytes()
    parts = jpeg.parse(data)
    bufs = jpeg.coefficient_buffers(parts.layout)
    assert all(not b.any() for b in bufs) and len({id(b.base) for b in bufs}) == 1
    for b, c in zip(bufs, parts.coefficients):
        b[...] = c
    assert jpeg.rebuild(jpeg.JpegParts(parts.layout, bufs)) == data
    separate = [c.copy() for c in parts.coefficients]
    assert jpeg.rebuild(jpeg.JpegParts(parts.layout, separate)) == data
    if len(bufs) > 1:  # views of one buffer, but not at the layout's offsets: must not be read in place
        swapped = jpeg.coefficient_buffers(parts.layout)
        flat = swapped[0].base.reshape(-1)
        a, b = parts.coefficients[0].size, parts.coefficients[1].size
        moved = [flat[b:b + a].reshape(parts.coefficients[0].shape), flat[:b].reshape(parts.coefficients[1].shape)]
        moved[0][...] = parts.coefficients[0]
        moved[1][...] = parts.coefficients[1]
        rest = [c.copy() for c in parts.coefficients[2:]]
        assert jpeg.rebuild(jpeg.JpegParts(parts.layout, moved + rest)) == data


@pytest.mark.parametrize("save", [{}, {"restart_marker_blocks": 5000}, {"restart_marker_rows": 1},
                                  {"progressive": True}],
                         ids=["one-interval", "long-and-short-intervals", "short-intervals", "progressive"])
def test_large_files_rebuild_the_same_on_any_number_of_threads(save):
    """With several threads, a sequential interval of at least 2 x PARALLEL_MCUS MCUs is coded in segments
    appended bit for bit, and the scans of a large multi-scan file are coded side by side: the same bytes
    on any thread count, also where the file was cut short."""
    import io

    from PIL import Image

    from jpegshrink._native import core
    rng = np.random.default_rng(7)  # noise: many FF bytes to stuff, segments that end inside a byte
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (1200, 1600, 3), np.uint8)).save(out, "JPEG", quality=90, subsampling=2,
                                                                          **save)
    data = out.getvalue()
    parts = jpeg.parse(data)
    assert parts.layout.frame.total_blocks >= jpeg.PARALLEL_SCANS_MIN_BLOCKS
    if not save.get("progressive"):
        (spec,) = parts.layout.specs
        assert spec.nmcu == 7500 >= 2 * core.scan.PARALLEL_MCUS  # one interval: the segmented path
    else:
        assert len(parts.layout.specs) > 1
    for threads in (1, 2, 3, 7):
        assert jpeg.rebuild(parts, threads=threads) == data, threads
    cut = data[: len(data) * 2 // 3]
    parts = jpeg.parse(cut)
    for threads in (1, 3):
        assert jpeg.rebuild(parts, threads=threads) == cut, threads
    with pytest.raises(ValueError, match="threads"):
        jpeg.rebuild(parts, threads=0)
