"""mix3: the mixed, cross-channel, striped model. Exact round trips on every layout, fewer bytes than
learned2, streams that do not depend on threads or on how the kernel was compiled, damaged streams and
bad weights refused."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jpegshrink import jpeg
from jpegshrink import model as registry
from jpegshrink.codec import component_specs as _specs
from jpegshrink.model.base import ComponentSpec

mix3 = pytest.importorskip("jpegshrink.model.mix3")
try:
    from jpegshrink.model import _mix3  # noqa: F401
except ImportError:
    pytest.skip("mix3 kernel not built (python setup.py build_ext --inplace)", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
MIX3 = [m for m in registry.registered_ids() if m.startswith("mix3-")]
LAYOUTS = ["v08_cjpeg-q50-gray.jpg", "v08_cjpeg-q75-420.jpg", "v08_cjpeg-q95-444.jpg",
           "crop-flower.png.im_q85_asymmetric.jpg", "crop-flower.png.im_q85_luma_subsample.jpg",
           "x01_cmyk-pillow-q90.jpg", "libjxl-testdata__1x1_exif_xmp.jpg", "opencv-doc__scenetext_word04.jpg"]

pytestmark = pytest.mark.skipif(not MIX3, reason="no mix3 model registered")


def _parts(sample_files, name):
    return jpeg.parse(next(p for p in sample_files if p.name == name).read_bytes())


def _tiled(sample_files, reps=(3, 3)):
    """A large image (several stripes) made by tiling a real photo's coefficients."""
    parts = _parts(sample_files, "scikit-learn__china.jpg")
    cos = [np.ascontiguousarray(np.tile(c, (reps[0], reps[1], 1))) for c in parts.coefficients]
    specs = [ComponentSpec(c.shape[0], c.shape[1], s.h_samp, s.v_samp, s.quant_table)
             for c, s in zip(cos, _specs(parts.layout))]
    return cos, specs


@pytest.mark.parametrize("model_id", MIX3)
def test_every_layout_roundtrips(model_id, sample_files):
    m = registry.get(model_id)
    for name in LAYOUTS:
        parts = _parts(sample_files, name)
        specs = _specs(parts.layout)
        streams = m.encode(parts.coefficients, specs)
        for a, b in zip(m.decode(streams, specs), parts.coefficients):
            np.testing.assert_array_equal(a, b, err_msg=name)


@pytest.mark.parametrize("model_id", MIX3)
def test_fewer_bytes_than_learned2_on_photos(model_id, sample_files):
    ours, l2 = registry.get(model_id), registry.get("learned2-c4d8c4e8")
    total_ours = total_l2 = 0
    for name in ("scikit-learn__china.jpg", "scikit-learn__flower.jpg", "x02_trailing-garbage.jpg"):
        parts = _parts(sample_files, name)
        specs = _specs(parts.layout)
        total_ours += sum(map(len, ours.encode(parts.coefficients, specs)))
        total_l2 += sum(map(len, l2.encode(parts.coefficients, specs)))
    assert total_ours < 0.985 * total_l2, (total_ours, total_l2)  # 0.976 when written


def test_stripes_follow_image_size_only():
    def specs(rows, cols):
        return [ComponentSpec(rows * 2, cols * 2, 2, 2, np.ones(64, np.uint16)),
                ComponentSpec(rows, cols, 1, 1, np.ones(64, np.uint16)),
                ComponentSpec(rows, cols, 1, 1, np.ones(64, np.uint16))]
    assert mix3.stripe_count(specs(10, 10)) == 1
    big = specs(188, 250)  # 12 MP 4:2:0 (4000 x 3008)
    n = mix3.stripe_count(big)
    assert n == 4
    rows = mix3.stripe_rows(big, n)
    assert rows[0][0][0] == 0 and rows[-1][0][1] == 376 and rows[-1][1][1] == 188
    assert all(a[0][1] == b[0][0] for a, b in zip(rows, rows[1:]))


def test_a_seed_band_comes_first_and_every_row_is_coded_once():
    """Seeded stripes: stream 0 is a centred band of 1/k of the MCU rows; the other streams are the
    plain stripes with that band cut out, in order; together they cover every block row once."""
    specs = [ComponentSpec(376, 500, 2, 2, np.ones(64, np.uint16)),
             ComponentSpec(188, 250, 1, 1, np.ones(64, np.uint16))]
    n = mix3.stripe_count(specs)
    for k in (16, 5, 200):
        rows = mix3.stripe_rows(specs, n, k)
        band = max(1, 188 // k)
        a = 188 // 2 - band // 2
        assert rows[0] == [(2 * a, 2 * (a + band)), (a, a + band)]
        for ci, total in ((0, 376), (1, 188)):
            covered = sorted(r[ci] for r in rows)
            assert covered[0][0] == 0 and covered[-1][1] == total
            assert all(x[1] == y[0] for x, y in zip(covered, covered[1:]))
        rest = [r[1] for r in rows[1:]]
        assert rest == sorted(rest) and len(rows) in (n + 1, n + 2)
    one = [ComponentSpec(20, 20, 1, 1, np.ones(64, np.uint16))]
    assert mix3.stripe_rows(one, 1, 16) == [[(0, 20)]]  # one stripe: no seed band


def test_seeded_stripes_start_from_the_seed_band(sample_files):
    """The seeded profile codes the same image in fewer bytes than the plain one (the other stripes start
    from what the seed band learned), and a seeded stripe cannot be decoded without the seed's state."""
    cos, specs = _tiled(sample_files)
    plain = mix3.Mix3Model(None, threads=2, profile=mix3.DENSE)
    seeded = mix3.Mix3Model(None, threads=2, profile=mix3.DENSE_SEEDED)
    streams = seeded.encode(cos, specs)
    assert sum(map(len, streams)) < sum(map(len, plain.encode(cos, specs)))
    out = [np.zeros_like(c) for c in cos]
    with pytest.raises(ValueError, match="stream 0 first"):
        seeded.decode_stripe(1, streams[1], specs, out)
    seed = seeded.decode_stripe(0, streams[0], specs, out)
    for i in range(1, len(streams)):
        assert seeded.decode_stripe(i, streams[i], specs, out, seed) is None
    for a, b in zip(out, cos):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError):  # a damaged seed band spoils every stripe
        seeded.decode([streams[0][: len(streams[0]) // 2]] + streams[1:], specs)


@pytest.mark.parametrize("model_id", MIX3)
def test_streams_do_not_depend_on_threads(model_id, sample_files):
    cos, specs = _tiled(sample_files)
    one = mix3.Mix3Model(mix3.WEIGHTS_DIR / f"{model_id}.npz", threads=1)
    two = mix3.Mix3Model(mix3.WEIGHTS_DIR / f"{model_id}.npz", threads=3)
    streams = one.encode(cos, specs)
    assert len(streams) == len(mix3.stripe_rows(specs, mix3.stripe_count(specs), one.profile.seed_fraction))
    assert mix3.stripe_count(specs) >= 2
    assert two.encode(cos, specs) == streams
    for a, b in zip(two.decode(streams, specs), cos):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("model_id", MIX3)
def test_damaged_streams_are_refused(model_id, sample_files):
    m = registry.get(model_id)
    parts = _parts(sample_files, "v08_cjpeg-q75-420.jpg")
    specs = _specs(parts.layout)
    (s,) = m.encode(parts.coefficients, specs)
    with pytest.raises(ValueError):
        m.decode([s[: len(s) // 2]], specs)
    with pytest.raises(ValueError):
        m.decode([s, s], specs)
    rng = np.random.default_rng(7)
    for _ in range(5):  # garbage decodes to garbage or fails cleanly: never a crash
        junk = rng.integers(0, 256, len(s), dtype=np.uint8).tobytes()
        try:
            out = m.decode([junk], specs)
        except ValueError:
            continue
        assert [o.shape for o in out] == [c.shape for c in parts.coefficients]


def test_weights_for_another_layout_are_refused(tmp_path):
    np.savez(tmp_path / "mix3-bad.npz", mixer_init=np.zeros(3, np.int32), counter_init=np.zeros(3, np.uint32))
    with pytest.raises(ValueError, match="kernel"):
        mix3.Mix3Model(tmp_path / "mix3-bad.npz")


def test_a_weights_file_records_its_profile(tmp_path):
    """The profile is part of the format: it travels in the weights file (so in the model id's hash), a
    file without one is the dense profile, and a profile naming a part the kernel lacks is refused."""
    w, d, profile = mix3.read_weights(mix3.WEIGHTS_DIR / "mix3-48305388.npz")
    assert profile == mix3.DENSE
    for model_id in MIX3:
        assert mix3.read_weights(mix3.WEIGHTS_DIR / f"{model_id}.npz")[2] in mix3.PROFILES.values()
    bad = mix3.Profile(leave_out=("sse", "no-such-part"), ac_table_bits=18)
    np.savez(tmp_path / "mix3-bad.npz", mixer_init=w, counter_init=d, profile=np.array(bad.to_json()))
    with pytest.raises(ValueError, match="no-such-part"):
        mix3.Mix3Model(tmp_path / "mix3-bad.npz")
    big = mix3.Profile(ac_table_bits=30)
    np.savez(tmp_path / "mix3-big.npz", mixer_init=w, counter_init=d, profile=np.array(big.to_json()))
    with pytest.raises(ValueError, match="table bits"):
        mix3.Mix3Model(tmp_path / "mix3-big.npz")


def test_profiles_are_different_formats(sample_files):
    """The same start in another profile writes other bytes (the fast profile leaves parts out) and
    still round-trips exactly."""
    cos, specs = _tiled(sample_files)  # several stripes, so that seeding matters too
    streams = {}
    for name, profile in mix3.PROFILES.items():
        m = mix3.Mix3Model(None, threads=2, profile=profile)
        streams[name] = m.encode(cos, specs)
        for a, b in zip(m.decode(streams[name], specs), cos):
            np.testing.assert_array_equal(a, b)
    assert len({tuple(v) for v in streams.values()}) == len(streams)  # every profile its own bytes


@pytest.mark.parametrize("name", sorted(mix3.PROFILES))
def test_compiled_instances_write_the_generic_bytes(name, sample_files):
    """The kernel has instances compiled for the profiles' flag sets (no per-decision flag tests);
    they must write the bytes of the generic instance, and the profiles must actually get them."""
    profile = mix3.PROFILES[name]
    assert profile.flags() in _mix3.COMPILED_FLAGS
    for ablation in (0, _mix3.FLAGS["cross"]):
        m = mix3.Mix3Model(None, threads=1, profile=profile, flags=ablation)
        g = mix3.Mix3Model(None, threads=1, profile=profile, flags=ablation, compiled=False)
        for f in ("scikit-learn__china.jpg", "v08_cjpeg-q75-420.jpg"):
            parts = _parts(sample_files, f)
            specs = _specs(parts.layout)
            streams = m.encode(parts.coefficients, specs)
            assert streams == g.encode(parts.coefficients, specs), (name, ablation, f)
            for a, b in zip(g.decode(streams, specs), parts.coefficients):
                np.testing.assert_array_equal(a, b)


def test_net_hint_slot_reads_the_hints(sample_files):
    """The network-prior experiment's kernel part (tools/net_prior_mix3.py): the hints change the bytes,
    the same hints decode them exactly, and the part refuses to run without hints."""
    parts = _parts(sample_files, "scikit-learn__china.jpg")
    specs = _specs(parts.layout)
    m = mix3.Mix3Model(None, threads=1, profile=mix3.FAST, flags=_mix3.FLAGS["net_hint"])
    rng = np.random.default_rng(0)
    informative = [np.minimum(np.abs(c), 15).astype(np.uint8) for c in parts.coefficients]  # the answer itself
    noise = [rng.integers(0, 16, c.shape, dtype=np.uint8) for c in parts.coefficients]
    told = m.encode(parts.coefficients, specs, hints=informative)
    assert sum(map(len, told)) < sum(map(len, m.encode(parts.coefficients, specs, hints=noise)))
    for a, b in zip(m.decode(told, specs, hints=informative), parts.coefficients):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="needs hints"):
        m.encode(parts.coefficients, specs)


def test_weights_file_is_named_by_its_hash():
    for model_id in MIX3:
        assert mix3.weights_id(mix3.WEIGHTS_DIR / f"{model_id}.npz") == model_id


ENCODE_CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from jpegshrink import jpeg
from jpegshrink.codec import component_specs as _specs
from jpegshrink.model import mix3
assert mix3.__file__.startswith(sys.argv[1]), mix3.__file__
m = mix3.load(sys.argv[2])
out = {}
for path in sys.argv[3:]:
    parts = jpeg.parse(open(path, "rb").read())
    out[path] = [s.hex() for s in m.encode(parts.coefficients, _specs(parts.layout))]
print(json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.parametrize("model_id", MIX3)
def test_streams_do_not_depend_on_how_the_kernel_was_compiled(model_id, sample_files, tmp_path):
    """Build the kernel again without optimisation (-O0, a different instruction schedule and no
    vectorisation), encode in a subprocess on one thread, and compare with this build's streams."""
    if shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("no C++ compiler")
    pybind11 = pytest.importorskip("pybind11")
    tree = tmp_path / "tree"
    # Everything as built here (the compiled core included) except the kernel under test, rebuilt below.
    shutil.copytree(ROOT / "jpegshrink", tree / "jpegshrink",
                    ignore=shutil.ignore_patterns("_mix3*.so", "_mix3*.pyd", "__pycache__"))
    import sysconfig
    ext = sysconfig.get_config_var("EXT_SUFFIX")
    cxx = shutil.which("g++") or shutil.which("c++")
    subprocess.run([cxx, "-O0", "-std=c++17", "-shared", "-fPIC", f"-I{pybind11.get_include()}",
                    f"-I{sysconfig.get_paths()['include']}", str(tree / "jpegshrink/model/csrc/mix3.cpp"),
                    "-o", str(tree / f"jpegshrink/model/_mix3{ext}")], check=True, timeout=600)
    paths = [str(p) for p in sample_files if p.name in ("scikit-learn__china.jpg", "v08_cjpeg-q75-420.jpg")]
    env = dict(os.environ, JPEGSHRINK_THREADS="1", PYTHONPATH=str(tree))
    res = subprocess.run([sys.executable, "-c", ENCODE_CHILD, str(tree), model_id, *paths], env=env,
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    import json
    encoded = json.loads(res.stdout.strip().splitlines()[-1])
    m = registry.get(model_id)
    for path in paths:
        parts = jpeg.parse(Path(path).read_bytes())
        streams = [bytes.fromhex(s) for s in encoded[path]]
        assert streams == m.encode(parts.coefficients, _specs(parts.layout))


def test_cli_dense_level_writes_the_dense_model(tmp_path, sample_files):
    import jpegshrink
    from jpegshrink.cli import main
    photo = next(p for p in sample_files if p.name == "v08_cjpeg-q75-420.jpg")
    src = tmp_path / photo.name
    src.write_bytes(photo.read_bytes())
    assert main(["compress", str(src), "--level", "dense", "-o", str(tmp_path / "a.jsk"), "-q"]) == 0
    assert jpegshrink.inspect((tmp_path / "a.jsk").read_bytes()).model_id == registry.DENSE_MODEL_ID
    assert main(["decompress", str(tmp_path / "a.jsk"), "-o", str(tmp_path / "b.jpg"), "-q"]) == 0
    assert (tmp_path / "b.jpg").read_bytes() == photo.read_bytes()


def test_every_model_decodes_into_the_buffers_it_is_given(sample_files):
    """decode(out=...) writes the coefficients into the caller's arrays and returns them (the codec gives
    the JPEG layer's buffers, so the rebuild copies nothing); arrays of the wrong shape are refused."""
    from jpegshrink.model.base import checked_output
    parts = _parts(sample_files, "v08_cjpeg-q75-420.jpg")
    specs = _specs(parts.layout)
    for model_id in ["learned2-c4d8c4e8", *MIX3]:
        m = registry.get(model_id)
        streams = m.encode(parts.coefficients, specs)
        bufs = jpeg.coefficient_buffers(parts.layout)
        got = m.decode(streams, specs, out=bufs)
        assert all(g is b for g, b in zip(got, bufs)), model_id
        for a, b in zip(bufs, parts.coefficients):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="output must be int16"):
        checked_output([np.zeros((1, 1, 64), np.int16)] * len(specs), specs)
    with pytest.raises(ValueError, match="output arrays for"):
        checked_output([], specs)
