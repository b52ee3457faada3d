"""Perceptual mode: round trip, exact latents across CPU configurations, hostile inputs, golden files."""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("constriction")
from PIL import Image  # noqa: E402

import jpegshrink  # noqa: E402
from jpegshrink.coding import container  # noqa: E402
from jpegshrink.errors import BadImage, CorruptContainer, ImageError, UnknownModel  # noqa: E402
from jpegshrink.perceptual import decoders, intnet, model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "sample" / "scikit-learn__china.jpg"
GOLDEN = ROOT / "tests" / "golden" / "perceptual"


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A real photo, box-downscaled 4x, cropped to a size that is not a multiple of 64 (edge padding)."""
    img = Image.open(SAMPLE).convert("RGB").reduce(4)
    return np.ascontiguousarray(np.asarray(img)[:90, :150])


@pytest.fixture(scope="module")
def blob(photo) -> bytes:
    return jpegshrink.encode_image(photo, mode="perceptual", quality=80)


def _psnr(a, b):
    return 10 * np.log10(255.0 ** 2 / np.mean((a.astype(float) - b) ** 2))


def test_round_trip_and_inspect(photo, blob):
    out = jpegshrink.decode_image(blob)
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert _psnr(photo, out) > 24  # the trained codec at 80 % of its ladder; an untrained one gives ~13 dB
    info = jpegshrink.inspect(blob)
    assert info.mode == "perceptual" and info.lossy and info.model_id == model.DEFAULT_MODEL_ID
    assert info.info["kind"] == "lossy-perceptual" and info.info["decoder"] == "faithful" and info.info["seed"] == 0
    assert (info.info["width"], info.info["height"]) == (150, 90)


def test_rate_ladder_and_bpp_target(photo):
    low = jpegshrink.encode_image(photo, mode="perceptual", quality=0)
    high = jpegshrink.encode_image(photo, mode="perceptual", quality=100)
    assert len(low) < len(high)
    pixels = photo.shape[0] * photo.shape[1]
    budget_bpp = 8 * (len(low) + len(high)) / 2 / pixels
    mid = jpegshrink.encode_image(photo, mode="perceptual", target={"bpp": budget_bpp})
    assert len(low) < len(mid) <= budget_bpp * pixels / 8
    # a bisected (fractional) rate: the header's PNG length and sha256 are those of what a read returns
    c = container.unpack(mid)
    assert c.info["rate"] != int(c.info["rate"])
    png = jpegshrink.decompress(mid)
    assert (len(png), hashlib.sha256(png).digest()) == (c.original_length, c.original_sha256)


def test_decompress_is_a_png_of_the_recorded_decode(blob):
    png = jpegshrink.decompress(blob)
    assert png.startswith(b"\x89PNG")
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), jpegshrink.decode_image(blob))


def test_perceptual_decoder_is_seeded(photo):
    if not decoders.GENERATORS:
        pytest.skip("no generator weights in this build")
    # written with the newest codec that has a generator (the default codec may have none yet)
    recorded = jpegshrink.encode_image(photo, mode="perceptual", quality=80, decoder="perceptual", seed=3)
    assert jpegshrink.inspect(recorded).model_id == decoders.default_codec("perceptual")
    assert jpegshrink.inspect(recorded).info["decoder"] in decoders.GENERATORS  # the alias is resolved to an id
    a = jpegshrink.decode_image(recorded, decoder="perceptual", seed=3)
    b = jpegshrink.decode_image(recorded, decoder="perceptual", seed=3)
    c = jpegshrink.decode_image(recorded, decoder="perceptual", seed=4)
    np.testing.assert_array_equal(a, b)
    assert a.shape == photo.shape and not np.array_equal(a, c)
    np.testing.assert_array_equal(jpegshrink.decode_image(recorded), a)


def test_integer_layer_is_exact():
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, (5, 4, 3, 3)).astype(np.int8)
    b = rng.integers(-1000, 1000, 5).astype(np.int64)
    x = rng.integers(0, 256, (4, 7, 9)).astype(np.int64)
    got = intnet.IntLayer(w, b)(x)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    want = np.zeros((5, 7, 9), np.int64)
    for o in range(5):
        for i in range(4):
            for dy in range(3):
                for dx in range(3):
                    want[o] += int(w[o, i, dy, dx]) * xp[i, dy:dy + 7, dx:dx + 9]
        want[o] += b[o]
    np.testing.assert_array_equal(got, want)


CHILD = r"""
import hashlib, json, sys, numpy as np, torch
import jpegshrink
from PIL import Image
a = np.ascontiguousarray(np.asarray(Image.open(sys.argv[1]).convert("RGB").reduce(4))[:90, :150])
blob = jpegshrink.encode_image(a, mode="perceptual", quality=60)
pixels = jpegshrink.decode_image(blob)
print(json.dumps({"blob": blob.hex(), "pixels": hashlib.sha256(pixels.tobytes()).hexdigest(),
                  "threads": torch.get_num_threads()}))
"""


def test_latents_and_pixels_do_not_depend_on_cpu_features_or_threads(photo):
    """Encode + decode on one thread with SIMD capped (a subprocess); decode again here with the defaults."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", ATEN_CPU_CAPABILITY="default",
               ONEDNN_MAX_CPU_ISA="SSE41", MKL_ENABLE_INSTRUCTIONS="SSE4_2",
               NPY_DISABLE_CPU_FEATURES="AVX512F AVX512_SKX AVX2 FMA3 AVX",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, "-c", CHILD, str(SAMPLE)], env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    child = json.loads(res.stdout.strip().splitlines()[-1])
    assert child["threads"] == 1
    blob = bytes.fromhex(child["blob"])
    here = jpegshrink.encode_image(photo, mode="perceptual", quality=60)
    assert container.unpack(here).streams == container.unpack(blob).streams  # identical latents, both ways
    torch.set_num_threads(2)
    pixels = jpegshrink.decode_image(blob)
    assert hashlib.sha256(pixels.tobytes()).hexdigest() == child["pixels"]


@pytest.mark.parametrize("bad, exc", [
    (np.zeros((0, 5, 3), np.uint8), BadImage),
    (np.zeros((8, 8, 3), np.float32), BadImage),
    (np.zeros((8, 8, 4), np.uint8), BadImage),
    (b"not an image", BadImage),
    ("a string", TypeError),
])
def test_bad_images_are_refused(bad, exc):
    with pytest.raises(exc):
        jpegshrink.encode_image(bad, mode="perceptual")


def test_bad_arguments_are_refused(photo):
    with pytest.raises(ValueError):
        jpegshrink.encode_image(photo, mode="perceptual", quality=101)
    with pytest.raises(ValueError):
        jpegshrink.encode_image(photo, mode="perceptual", quality=50, target={"bpp": 0.2})
    with pytest.raises(ValueError):
        jpegshrink.encode_image(photo, mode="perceptual", target={"ssimulacra2": 80})
    with pytest.raises(ImageError):
        jpegshrink.encode_image(photo, mode="perceptual", decoder="no-such-decoder")
    with pytest.raises(UnknownModel):
        jpegshrink.encode_image(photo, mode="perceptual", model_id="hp1-00000000")


def test_damaged_containers_are_refused(blob):
    c = container.unpack(blob)
    flipped = bytearray(c.streams[0])
    flipped[len(flipped) // 2] ^= 0x10
    for change in ({"streams": [bytes(flipped), c.streams[1]]},
                   {"info": {**c.info, "latents_sha256": "0" * 64}},
                   {"info": {**c.info, "width": 10 ** 6}},
                   {"streams": [c.streams[0][:-4], c.streams[1]]}):
        damaged = container.pack(container.Container(**{**c.__dict__, **change}))
        with pytest.raises(CorruptContainer):
            jpegshrink.decode_image(damaged)
    raw = bytearray(blob)
    raw[-10] ^= 1
    with pytest.raises(CorruptContainer):
        jpegshrink.decode_image(bytes(raw))


def test_missing_torch_is_one_line():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import numpy as np, jpegshrink\n"
            "try:\n    jpegshrink.encode_image(np.zeros((8, 8, 3), np.uint8), mode='perceptual')\n"
            "except jpegshrink.MissingDependency as e:\n    print('MSG', e)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "pip install 'jpegshrink[perceptual]'" in res.stdout


def _golden_cases():
    index = GOLDEN / "index.json"
    return sorted(json.loads(index.read_text()).items()) if index.exists() else []


@pytest.mark.parametrize("name, expect", _golden_cases())
def test_golden_containers_decode(name, expect):
    """Old containers keep decoding: latents exactly; pixels identical here (float synthesis: see docs)."""
    blob = (GOLDEN / name).read_bytes()
    c = container.unpack(blob)
    assert c.model_id in model.REGISTERED
    pixels = jpegshrink.decode_image(blob, decoder=expect["decoder"], seed=expect["seed"])
    want = np.asarray(Image.open(GOLDEN / expect["png"]).convert("RGB"))
    assert pixels.shape == want.shape
    diff = np.abs(pixels.astype(int) - want)
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999, "golden decode drifted"


def test_golden_index_covers_every_registered_codec():
    covered = {container.unpack((GOLDEN / n).read_bytes()).model_id for n, _ in _golden_cases()}
    assert set(model.REGISTERED) <= covered, "run tools/make_golden.py --perceptual"


def test_a_generator_serves_only_the_codec_it_was_trained_on():
    from jpegshrink.perceptual import decoders, gan, model
    for g in decoders.GENERATORS:
        codec_id = gan.codec_of(g)
        assert decoders.resolve(g, codec_id) == g
        assert decoders.default_codec(g) == codec_id
        with pytest.raises(decoders.UnknownDecoder, match="trained on codec"):
            decoders.resolve(g, "hp0-00000000")
    # "perceptual" picks the newest codec that has a generator; faithful the newest codec of all
    assert decoders.default_codec("perceptual") in {gan.codec_of(g) for g in decoders.GENERATORS}
    assert decoders.default_codec("faithful") == model.DEFAULT_MODEL_ID


def test_a_newer_codec_without_a_generator_serves_faithful_while_perceptual_keeps_the_old_one(monkeypatch):
    from jpegshrink.perceptual import decoders, gan, model
    old = gan.codec_of(decoders.GENERATORS[-1])
    monkeypatch.setattr(model, "REGISTERED", model.REGISTERED + ("hp9-00000000",))
    monkeypatch.setattr(model, "DEFAULT_MODEL_ID", "hp9-00000000")
    assert decoders.default_codec("faithful") == "hp9-00000000"
    assert decoders.default_codec("perceptual") == old
    with pytest.raises(decoders.UnknownDecoder, match="no perceptual decoder is trained for codec hp9"):
        decoders.resolve("perceptual", "hp9-00000000")
