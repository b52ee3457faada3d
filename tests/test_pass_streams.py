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
