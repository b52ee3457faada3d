"""learned2p: learned2's model with large components coded as one stream per pass and decoded as a
pipeline over block rows. Same coefficients and the same bits (up to a few bytes per stream) as
learned2, the same result on any number of threads, small components unchanged, damaged or missing
streams refused."""
from __future__ import annotations

import numpy as np
import pytest

from jpegshrink import jpeg
from jpegshrink import model as registry
from jpegshrink.codec import component_specs
from jpegshrink.model import adaptive
from jpegshrink.model.base import ComponentSpec
from jpegshrink.model.priors import PASS_STREAMS_MIN_BLOCKS, WEIGHTS_DIR, PriorsModel

PIPELINED = "learned2p-c4d8c4e8"
PLAIN = "learned2-c4d8c4e8"


def _parts(sample_files, name):
    return jpeg.parse(next(p for p in sample_files if p.name == name).read_bytes())


def _large(sample_files, reps=(2, 2)):
    """A 4:2:0 photo's coefficients, every component tiled ``reps`` times (the sampling stays consistent):
    with (2, 2) luma has 21,328 blocks (split into pass streams), each chroma component 5,332 (not)."""
    parts = _parts(sample_files, "v08_cjpeg-q75-420.jpg")
    cos = [np.ascontiguousarray(np.tile(c, (reps[0], reps[1], 1))) for c in parts.coefficients]
    specs = [ComponentSpec(c.shape[0], c.shape[1], s.h_samp, s.v_samp, s.quant_table)
             for c, s in zip(cos, component_specs(parts.layout))]
    return cos, specs


def _colour_samples(sample_files):
    """(path, parts, specs) of every sample file the JPEG layer accepts that has three or more components."""
    from jpegshrink.errors import JpegShrinkError
    for path in sample_files:
        try:
            parts = jpeg.parse(path.read_bytes())
        except JpegShrinkError:
            continue
        specs = component_specs(parts.layout)
        if len(specs) >= 3:
            yield path, parts, specs


def _model(threads: int, min_blocks: int = PASS_STREAMS_MIN_BLOCKS) -> PriorsModel:
    return PriorsModel(WEIGHTS_DIR / f"{PLAIN}.npz", threads=threads, model_id="test-pipelined",
                       pass_streams_min_blocks=min_blocks)


def test_registered_with_learned2s_statistics():
    m = registry.get(PIPELINED)
    assert m.model_id == PIPELINED
    assert PIPELINED in registry.registered_ids() and PLAIN in registry.registered_ids()


def test_large_components_get_a_stream_per_pass_with_learned2s_bits(sample_files):
    cos, specs = _large(sample_files)
    split = [s.block_rows * s.block_cols >= PASS_STREAMS_MIN_BLOCKS for s in specs]
    assert split[0] and not all(split), "the case must mix split and one-stream components"
    plain = registry.get(PLAIN).encode(cos, specs)
    ours = registry.get(PIPELINED).encode(cos, specs)
    assert len(ours) == sum(adaptive.N_PASSES if s else 1 for s in split)
    # the model is the same, so the bits are: the streams differ by the coder's flush, a byte or two each
    extra = sum(map(len, ours)) - sum(map(len, plain))
    assert 0 <= extra <= 3 * (len(ours) - len(plain)), extra
    # components that are not split keep learned2's stream, byte for byte
    at = 0
    for c, s in enumerate(split):
        width = adaptive.N_PASSES if s else 1
        if not s:
            assert ours[at] == plain[c]
        at += width


@pytest.mark.parametrize("threads", [1, 2, 3, 5])
def test_pipeline_decodes_the_same_on_any_number_of_threads(sample_files, threads):
    cos, specs = _large(sample_files)
    m = _model(threads, min_blocks=64)  # every component split, so every pass is a pipeline unit
    streams = m.encode(cos, specs)
    assert len(streams) == adaptive.N_PASSES * len(specs)
    assert streams == _model(1, min_blocks=64).encode(cos, specs)  # encoding does not depend on threads
    for a, b in zip(m.decode(streams, specs), cos):
        np.testing.assert_array_equal(a, b)


def test_every_sample_layout_roundtrips_with_pass_streams(sample_files):
    """Grey, 4:2:0, 4:4:4, odd sampling, CMYK, 1 x 1: split at a tiny threshold so each takes the pipeline."""
    m = _model(2, min_blocks=1)
    for name in ["v08_cjpeg-q50-gray.jpg", "v08_cjpeg-q75-420.jpg", "v08_cjpeg-q95-444.jpg",
                 "crop-flower.png.im_q85_asymmetric.jpg", "x01_cmyk-pillow-q90.jpg",
                 "libjxl-testdata__1x1_exif_xmp.jpg"]:
        parts = _parts(sample_files, name)
        specs = component_specs(parts.layout)
        for a, b in zip(m.decode(m.encode(parts.coefficients, specs), specs), parts.coefficients):
            np.testing.assert_array_equal(a, b, err_msg=name)


def test_decodes_into_the_given_buffers(sample_files):
    parts = _parts(sample_files, "v08_cjpeg-q75-420.jpg")
    specs = component_specs(parts.layout)
    m = _model(2, min_blocks=1)
    bufs = jpeg.coefficient_buffers(parts.layout)
    got = m.decode(m.encode(parts.coefficients, specs), specs, out=bufs)
    assert all(g is b for g, b in zip(got, bufs))
    for a, b in zip(bufs, parts.coefficients):
        np.testing.assert_array_equal(a, b)


def test_missing_cut_or_swapped_streams_are_refused(sample_files):
    cos, specs = _large(sample_files)
    m = _model(2, min_blocks=64)
    streams = m.encode(cos, specs)
    with pytest.raises(ValueError, match="streams"):
        m.decode(streams[:-1], specs)
    cut = list(streams)
    cut[3] = cut[3][: len(cut[3]) // 2]  # interior pass 2 of luma, half of it
    with pytest.raises(ValueError, match="damaged"):
        m.decode(cut, specs)
    swapped = list(streams)
    swapped[1], swapped[5] = swapped[5], swapped[1]
    with pytest.raises(ValueError, match="damaged"):
        m.decode(swapped, specs)


def test_hints_are_refused_with_pass_streams(sample_files):
    parts = _parts(sample_files, "v08_cjpeg-q75-420.jpg")
    specs = component_specs(parts.layout)
    am = adaptive.AdaptiveModel(1, pass_streams_min_blocks=1)
    with pytest.raises(ValueError, match="no hints"):
        am.encode(parts.coefficients, specs, hints=lambda *a: None)
    with pytest.raises(ValueError, match=">= 1"):
        adaptive.AdaptiveModel(1, pass_streams_min_blocks=0)


def test_kernel_checks_its_arguments():
    co = np.zeros((2, 2, 64), np.int16)
    q = np.ones(64, np.int64)
    nz = np.zeros((2, 2), np.int64)
    T = np.zeros(adaptive.N_COUNTERS, np.int32)
    with pytest.raises(ValueError, match="threads"):
        adaptive._kern.decode_pipelined([([b""] * adaptive.N_PASSES, co, q, nz, nz.copy(), T)], 0)
    with pytest.raises(ValueError, match="one stream per pass"):
        adaptive._kern.decode_pipelined([([b""] * 3, co, q, nz, nz.copy(), T)], 1)
    with pytest.raises(ValueError, match="dimension"):
        adaptive._kern.decode_pipelined([([b""], co, q, np.zeros((3, 2), np.int64), nz.copy(), T)], 1)


# --- learned3: pass streams with cross-channel hints (chroma contexts see the co-located luma) ---

CROSS_IDS = ["learned3-6da68cd5", "learned3-765581a5"]  # the second also codes chroma signs with the luma sign
CROSS = CROSS_IDS[-1]


@pytest.mark.parametrize("threads", [1, 2, 3, 5])
@pytest.mark.parametrize("model_id", CROSS_IDS)
def test_cross_channel_decodes_the_same_on_any_number_of_threads(sample_files, threads, model_id):
    """Chroma pass p of a row waits for luma pass p of the rows it covers; any schedule, same result."""
    cos, specs = _large(sample_files)
    m = registry.get(model_id)
    streams = m.encode(cos, specs)
    model = PriorsModel(WEIGHTS_DIR / f"{model_id}.npz", threads=threads, model_id="test-cross")
    assert model.cross_channel and model.cross_sign == model_id.endswith("765581a5")
    assert streams == model.encode(cos, specs)
    for a, b in zip(model.decode(streams, specs), cos):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("model_id", CROSS_IDS)
def test_cross_channel_conditioning_saves_chroma_bytes(sample_files, model_id):
    """Over every colour sample file: chroma (and CMYK's other channels) in fewer bytes than learned2p,
    luma within a per cent (only the statistics differ: the two were trained on different item sets).
    Not every file gains (where luma says little about chroma the extra context costs some learning)."""
    plain, cross = registry.get(PIPELINED), registry.get(model_id)
    luma = [0, 0]
    rest = [0, 0]
    for path, parts, specs in _colour_samples(sample_files):
        a, b = plain.encode(parts.coefficients, specs), cross.encode(parts.coefficients, specs)
        luma[0] += len(a[0])
        luma[1] += len(b[0])
        rest[0] += sum(map(len, a[1:]))
        rest[1] += sum(map(len, b[1:]))
        for x, y in zip(cross.decode(b, specs), parts.coefficients):
            np.testing.assert_array_equal(x, y, err_msg=path.name)
    assert rest[1] < 0.95 * rest[0], rest
    assert abs(luma[1] - luma[0]) < 0.01 * luma[0], luma


@pytest.mark.parametrize("model_id", CROSS_IDS)
def test_cross_channel_roundtrips_every_layout(sample_files, model_id):
    """Grey (no chroma), 4:2:0, 4:4:4, chroma covering 2 x 1 and 1 x 2 luma blocks, chroma sampled finer
    than luma (does not nest: no reference), CMYK, 1 x 1; a tiny threshold so every component is split."""
    from jpegshrink.model.cross_channel import cover
    m = PriorsModel(WEIGHTS_DIR / f"{model_id}.npz", threads=2, model_id="test-cross")
    nested = []
    for name in ["v08_cjpeg-q50-gray.jpg", "v08_cjpeg-q75-420.jpg", "v08_cjpeg-q95-444.jpg",
                 "crop-flower.png.im_q85_asymmetric.jpg", "crop-flower.png.im_q85_luma_subsample.jpg",
                 "x01_cmyk-pillow-q90.jpg", "libjxl-testdata__1x1_exif_xmp.jpg"]:
        parts = _parts(sample_files, name)
        specs = component_specs(parts.layout)
        nested += [cover(specs[0], s) is not None for s in specs[1:]]
        for a, b in zip(m.decode(m.encode(parts.coefficients, specs), specs), parts.coefficients):
            np.testing.assert_array_equal(a, b, err_msg=name)
    assert any(nested) and not all(nested)  # both kinds were exercised


def test_kernel_checks_cross_channel_references():
    co = np.zeros((2, 2, 64), np.int16)
    q = np.ones(64, np.int64)
    nz = np.zeros((2, 2), np.int64)
    T = np.zeros(adaptive.N_COUNTERS, np.int32)
    luma = ([b""] * adaptive.N_PASSES, np.zeros((4, 4, 64), np.int16), q, np.zeros((4, 4), np.int64),
            np.zeros((4, 4), np.int64), T.copy())
    chroma = ([b""] * adaptive.N_PASSES, co, q, nz, nz.copy(), T)
    with pytest.raises(ValueError, match="reference"):
        adaptive._kern.decode_pipelined([luma, (*chroma, (5, 2, 2))], 1)  # no such component
    with pytest.raises(ValueError, match="block grid"):
        adaptive._kern.decode_pipelined([luma, (*chroma, (0, 1, 2))], 1)  # does not cover it
    with pytest.raises(ValueError, match="fy and fx"):
        adaptive._kern.decode_pipelined([luma, (*chroma, (0, 0, 2))], 1)
    with pytest.raises(ValueError, match="reference"):
        adaptive._kern.decode_pipelined([(*luma, (0, 1, 1)), chroma], 1)  # itself


def test_cross_channel_signs_cost_fewer_bytes_on_colour_photos(sample_files):
    """The sign of the co-located luma coefficient as a context of chroma signs: fewer chroma bytes than
    the same hints without it, over the colour samples."""
    hints_only, signs = registry.get(CROSS_IDS[0]), registry.get(CROSS_IDS[1])
    sizes = [0, 0]
    for _, parts, specs in _colour_samples(sample_files):
        sizes[0] += sum(map(len, hints_only.encode(parts.coefficients, specs)[1:]))
        sizes[1] += sum(map(len, signs.encode(parts.coefficients, specs)[1:]))
    assert sizes[1] < sizes[0], sizes


def test_cross_signs_need_cross_channel_hints():
    with pytest.raises(ValueError, match="cross-channel"):
        adaptive.AdaptiveModel(1, pass_streams_min_blocks=1, cross_sign=True)
