"""decode_image(blob, restore=True): the learned deblocking filter of the lossy mode (jpegshrink/lossy/restore.py)."""
from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import jpegshrink
from jpegshrink.errors import MissingDependency, UnknownModel
from jpegshrink.lossy import restore

SAMPLE = Path(__file__).resolve().parent / "data" / "sample" / "scikit-learn__china.jpg"


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """Not a tuning photo of tools/train_restore.py (those come from plasma-workspace-wallpapers)."""
    return np.ascontiguousarray(np.asarray(Image.open(SAMPLE).convert("RGB").reduce(2))[:200, :280])


def _psnr(a, b) -> float:
    return float(10 * np.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - b) ** 2)))


def test_every_shipped_model_hashes_to_its_name():
    assert restore.DEFAULT in restore.MODELS
    for name, file in restore.MODELS.items():
        data = (restore.WEIGHTS / file).read_bytes()
        assert restore.name_of(data) == name and len(data) < 1 << 20


def test_restore_improves_psnr_and_never_touches_the_jpeg(photo):
    pytest.importorskip("torch")
    blob = jpegshrink.encode_image(photo, quality=60, measure=False)
    jpeg = jpegshrink.decompress(blob)
    plain = jpegshrink.decode_image(blob)
    fixed = jpegshrink.decode_image(blob, restore=True)
    assert fixed.shape == plain.shape and fixed.dtype == np.uint8
    assert _psnr(photo, fixed) > _psnr(photo, plain) + 0.1
    assert jpegshrink.decompress(blob) == jpeg     # the stored JPEG is what it was
    assert jpegshrink.decode_image(blob, restore=restore.DEFAULT).tobytes() == fixed.tobytes()


def test_restore_handles_grey_and_tiles(photo, monkeypatch):
    pytest.importorskip("torch")
    grey = np.ascontiguousarray(photo[:, :, 1])
    blob = jpegshrink.encode_image(grey, quality=70, measure=False)
    out = jpegshrink.decode_image(blob, restore=True)
    assert out.shape == grey.shape and out.dtype == np.uint8
    monkeypatch.setattr(restore, "TILE", 80)   # several tiles with overlaps: the same picture
    monkeypatch.setattr(restore, "OVERLAP", 16)
    tiled = jpegshrink.decode_image(blob, restore=True)
    assert np.abs(tiled.astype(int) - out).max() <= 1


def test_restore_leaves_content_that_is_not_a_jpeg_alone(photo):
    b = io.BytesIO()
    Image.fromarray(photo).save(b, "PNG")
    blob = jpegshrink.compress(b.getvalue())
    np.testing.assert_array_equal(jpegshrink.decode_image(blob, restore=True), photo)


def test_restore_errors_are_one_line(photo, monkeypatch):
    blob = jpegshrink.encode_image(photo[:32, :32], quality=80, measure=False)
    with pytest.raises(UnknownModel, match="no restoration model 'restore-00000000'"):
        jpegshrink.decode_image(blob, restore="restore-00000000")
    with pytest.raises(TypeError, match="restore must be"):
        jpegshrink.decode_image(blob, restore=1)
    monkeypatch.setitem(restore.MODELS, "restore-deadbeef", restore.MODELS[restore.DEFAULT])
    with pytest.raises(UnknownModel, match="do not hash to restore-deadbeef"):
        jpegshrink.decode_image(blob, restore="restore-deadbeef")
    restore.load.cache_clear()
    monkeypatch.setitem(sys.modules, "torch", None)   # as if torch were not installed
    with pytest.raises(MissingDependency, match=r"pip install 'jpegshrink\[restore\]'"):
        jpegshrink.decode_image(blob, restore=True)
    restore.load.cache_clear()

