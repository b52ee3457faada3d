"""learned2: adaptive-1 started from trained statistics. Exact round trips, a real gain where learning
inside the image is expensive (small files), identical streams under other CPU settings, bad weights."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import jpegshrink
from jpegshrink import jpeg
from jpegshrink import model as registry
from jpegshrink.codec import component_specs
from jpegshrink.model.priors import PriorsModel, coarseness, prior_set

ROOT = Path(__file__).resolve().parents[1]
PRIORS = [m for m in registry.registered_ids() if m.startswith(("learned2-", "learned2p-", "learned3-"))]
SMALL = ["v08_cjpeg-q50-gray.jpg", "v08_cjpeg-q75-420.jpg", "v08_cjpeg-q95-444.jpg", "scratch__brick-wall1.jpg",
         "libjxl-testdata__1x1_exif_xmp.jpg", "crop-flower.png.im_q85_asymmetric.jpg"]

pytestmark = pytest.mark.skipif(not PRIORS, reason="no learned2 model registered")


def _parts(sample_files, name):
    return jpeg.parse(next(p for p in sample_files if p.name == name).read_bytes())


def test_the_default_model_is_learned3():
    """learned2's model with pass streams, cross-channel hints and signs (tests/test_pass_streams.py)."""
    assert registry.DEFAULT_MODEL_ID == "learned3-765581a5" and registry.DEFAULT_MODEL_ID in PRIORS


@pytest.mark.parametrize("model_id", PRIORS)
def test_small_files_roundtrip_and_beat_adaptive_1(model_id, sample_files):
    """The point of trained statistics: fewer bytes than adaptive-1, which starts every context at 1/2."""
    ours = registry.get(model_id)
    plain = registry.get("adaptive-1")
    total_ours = total_plain = 0
    for name in SMALL:
        parts = _parts(sample_files, name)
        specs = component_specs(parts.layout)
        streams = ours.encode(parts.coefficients, specs)
        for a, b in zip(ours.decode(streams, specs), parts.coefficients):
            np.testing.assert_array_equal(a, b)
        total_ours += sum(map(len, streams))
        total_plain += sum(map(len, plain.encode(parts.coefficients, specs)))
    assert total_ours < 0.99 * total_plain, (total_ours, total_plain)


@pytest.mark.parametrize("model_id", PRIORS)
def test_statistics_are_not_carried_from_one_image_to_the_next(model_id, sample_files):
    m = registry.get(model_id)
    parts = _parts(sample_files, "scikit-learn__china.jpg")
    specs = component_specs(parts.layout)
    first = m.encode(parts.coefficients, specs)
    m.encode(_parts(sample_files, "v08_cjpeg-q50-gray.jpg").coefficients,
             component_specs(_parts(sample_files, "v08_cjpeg-q50-gray.jpg").layout))
    assert m.encode(parts.coefficients, specs) == first


def test_statistics_set_follows_component_and_quantiser():
    fine = np.ones(64, np.uint16)
    coarse = np.full(64, 60, np.uint16)
    assert coarseness(fine) == 9 and coarseness(coarse) == 540
    edges = (18, 40, 80, 150)
    assert prior_set(0, fine, edges) == "luma0"
    assert prior_set(1, fine, edges) == "chroma0"
    assert prior_set(2, coarse, edges) == "chroma4"


def test_weights_for_the_layout_before_the_sign_grids_still_load():
    """The counter layout only grows at its end: learned2's file names the shorter one and starts the
    same contexts (its golden files decode, tests/test_golden.py)."""
    from jpegshrink.model import adaptive
    with np.load(Path(registry.__file__).parent / "weights" / "learned2-c4d8c4e8.npz") as f:
        assert int(f["n_counters"]) == adaptive.BASE_COUNTERS < adaptive.N_COUNTERS


def test_weights_for_another_context_layout_are_refused(tmp_path):
    np.savez(tmp_path / "learned2-bad.npz", n_counters=np.int64(12), edges=np.array([1]), sets=np.array([]))
    with pytest.raises(ValueError, match="contexts"):
        PriorsModel(tmp_path / "learned2-bad.npz")


def test_codec_writes_the_default_model(sample_files):
    data = next(p for p in sample_files if p.name == "v08_jpegtran-progressive.jpg").read_bytes()
    blob = jpegshrink.compress(data)
    assert jpegshrink.inspect(blob).model_id == registry.DEFAULT_MODEL_ID
    assert jpegshrink.decompress(blob) == data


ENCODE_CHILD = r"""
import json, sys
from jpegshrink import jpeg, model as registry
from jpegshrink.codec import component_specs
m = registry.get(sys.argv[1])
out = {}
for path in sys.argv[2:]:
    parts = jpeg.parse(open(path, "rb").read())
    out[path] = [s.hex() for s in m.encode(parts.coefficients, component_specs(parts.layout))]
print(json.dumps(out))
"""


@pytest.mark.parametrize("model_id", PRIORS)
def test_streams_do_not_depend_on_cpu_features_or_threads(model_id, sample_files):
    """Encode on one thread with SIMD capped (a subprocess); decode here with the defaults."""
    paths = [str(p) for p in sample_files if p.name in ("scikit-learn__china.jpg", "v08_cjpeg-q75-420.jpg")]
    env = dict(os.environ, JPEGSHRINK_THREADS="1",
               NPY_DISABLE_CPU_FEATURES="AVX512F AVX512_SKX AVX2 FMA3 AVX",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, "-c", ENCODE_CHILD, model_id, *paths], env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    encoded = json.loads(res.stdout.strip().splitlines()[-1])
    m = registry.get(model_id)
    for path in paths:
        parts = jpeg.parse(Path(path).read_bytes())
        specs = component_specs(parts.layout)
        streams = [bytes.fromhex(s) for s in encoded[path]]
        assert streams == m.encode(parts.coefficients, specs)
        for a, b in zip(m.decode(streams, specs), parts.coefficients):
            np.testing.assert_array_equal(a, b)
