"""The ``jpegshrink::`` layer's ``new_uploads=`` policy: new images stored in the lossy mode, read back as JPEGs.

Local-folder targets only (fast): the policy decides what bytes are stored, which is the same for
every target; the targets' own behaviour is tested in tests/test_storage.py.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path

import fsspec
import numpy as np
import pytest
from fsspec.implementations.local import LocalFileSystem
from PIL import Image

import jpegshrink
from jpegshrink_storage import JpegShrinkFileSystem
from jpegshrink_storage.fs.policy import Goal, Upload, UploadMode, UploadPolicy, classify
from jpegshrink_storage.errors import MountError
from jpegshrink_storage.mount.cli import _parse_options, open_layer

SAMPLE = Path(__file__).resolve().parent / "data" / "sample" / "scikit-learn__china.jpg"


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.ascontiguousarray(np.asarray(Image.open(SAMPLE).convert("RGB").reduce(4)))


def _file(a: np.ndarray, fmt: str = "PNG", **kw) -> bytes:
    b = io.BytesIO()
    Image.fromarray(a).save(b, fmt, **kw)
    return b.getvalue()


def _layer(**kw) -> JpegShrinkFileSystem:
    return JpegShrinkFileSystem(fs=LocalFileSystem(auto_mkdir=True), skip_instance_cache=True, **kw)


def _upload_png(layer, photo, tmp_path) -> tuple[str, bytes, bytes]:
    """Write ``photo`` as ``up/photo.png`` through ``layer``: (its path, the PNG written, the bytes stored)."""
    png = _file(photo)
    path = str(tmp_path / "up" / "photo.png")
    layer.pipe_file(path, png)
    return path, png, (tmp_path / "up" / "photo.png").read_bytes()


# ---------------------------------------------------------------------------------------------- parsing

@pytest.mark.parametrize("spec,mode,goal,value", [
    (None, UploadMode.LOSSLESS, None, None),
    ("lossless", UploadMode.LOSSLESS, None, None),
    ("high-bitrate", UploadMode.HIGH_BITRATE, None, None),
    ("high-bitrate:ssimulacra2=85", UploadMode.HIGH_BITRATE, Goal.SSIMULACRA2, 85.0),
    (" High-Bitrate : bpp=1.2 ", UploadMode.HIGH_BITRATE, Goal.BPP, 1.2),
    ("high-bitrate:quality=92", UploadMode.HIGH_BITRATE, Goal.QUALITY, 92.0),
    ("perceptual", UploadMode.PERCEPTUAL, None, None),
    ("perceptual:bpp=0.2", UploadMode.PERCEPTUAL, Goal.BPP, 0.2),
])
def test_policy_spellings_parse_into_typed_fields(spec, mode, goal, value):
    p = UploadPolicy.parse(spec)
    assert (p.mode, p.goal, p.value, p.lossy_jpegs) == (mode, goal, value, False)
    assert UploadPolicy.parse(str(p)) == p


@pytest.mark.parametrize("spec,match", [
    ("lossy", "unknown mode 'lossy'"),
    ("high_bitrate", "unknown mode"),
    ("high-bitrate:psnr=40", "unknown goal 'psnr'"),
    ("high-bitrate:", "unknown goal ''"),
    ("high-bitrate:ssimulacra2", "needs a value"),
    ("high-bitrate:ssimulacra2=", "needs a value"),
    ("high-bitrate:ssimulacra2=good", "not a number"),
    ("high-bitrate:ssimulacra2=0", r"ssimulacra2 must be in \(0, 100\]"),
    ("high-bitrate:ssimulacra2=120", r"ssimulacra2 must be in \(0, 100\]"),
    ("high-bitrate:quality=90.5", "integer 1..100"),
    ("high-bitrate:quality=0", "integer 1..100"),
    ("high-bitrate:bpp=-1", "bpp must be > 0"),
    ("high-bitrate:bpp=inf", "finite"),
    ("lossless:quality=90", "'lossless' takes no goal"),
    ("perceptual:ssimulacra2=85", "perceptual mode aims at bpp or quality, not ssimulacra2"),
])
def test_malformed_policies_are_refused_when_the_filesystem_is_built(spec, match):
    with pytest.raises(ValueError, match=match):
        _layer(new_uploads=spec)


def test_policy_option_conflicts_are_refused():
    with pytest.raises(TypeError, match="must be a string"):
        _layer(new_uploads=85)
    with pytest.raises(ValueError, match="lossy_jpegs=True needs a lossy new_uploads"):
        _layer(lossy_jpegs=True)
    with pytest.raises(ValueError, match="contradicts compress=False"):
        _layer(new_uploads="high-bitrate", compress=False)


def test_uploads_are_classified_by_content_not_name(photo):
    assert classify(_file(photo, "PNG")) is Upload.IMAGE
    assert classify(_file(photo, "TIFF")) is Upload.IMAGE
    assert classify(_file(photo, "WEBP", lossless=True)) is Upload.IMAGE
    assert classify(_file(photo, "BMP")) is Upload.IMAGE
    assert classify(_file(photo, "PPM")) is Upload.IMAGE
    assert classify(_file(photo, "JPEG")) is Upload.JPEG
    assert classify(_file(photo, "GIF")) is Upload.OTHER        # graphics and animations stay as they are
    assert classify(b"P5\n2 2\n255\n") is Upload.IMAGE and classify(b"P7x") is Upload.OTHER
    assert classify(b"Plain text") is Upload.OTHER
    assert classify(b"plain text") is Upload.OTHER and classify(b"") is Upload.OTHER


# ---------------------------------------------------------------------------------------------- behaviour

def test_new_png_is_stored_lossy_and_read_back_as_a_jpeg_under_its_name(photo, tmp_path):
    layer = _layer(new_uploads="high-bitrate:quality=85")
    path, _, stored = _upload_png(layer, photo, tmp_path)
    info = jpegshrink.inspect(stored)
    assert info.lossy and info.mode == "lossy_jpeg" and info.info["source_format"] == "PNG"
    assert info.info["settings"]["quality"] == 85
    back = layer.cat_file(path)
    assert back == jpegshrink.decompress(stored) and back[:3] == b"\xff\xd8\xff"
    img = Image.open(io.BytesIO(back))
    assert img.format == "JPEG" and img.size == (photo.shape[1], photo.shape[0])
    with layer.open(path, "rb") as f:
        assert f.read() == back
    entry, = layer.ls(str(tmp_path / "up"), detail=True)
    assert entry["name"].endswith("/photo.png")                      # the name is kept
    assert entry["lossy"] is True and entry["container_mode"] == "lossy_jpeg"
    assert entry["content_type"] == "image/jpeg" and entry["size"] == len(back)
    assert layer.info(path) == entry
    assert layer.inspect(path).info["original_recoverable"] is False


def test_new_png_in_the_perceptual_mode_reads_back_as_a_png_marked_lossy(photo, tmp_path):
    pytest.importorskip("torch", reason="the perceptual mode needs pip install 'jpegshrink[perceptual]'")
    layer = _layer(new_uploads="perceptual:bpp=0.3")
    path, png, stored = _upload_png(layer, photo, tmp_path)
    info = jpegshrink.inspect(stored)
    assert info.lossy and info.mode == "perceptual" and info.info["source_format"] == "PNG"
    assert len(stored) * 8 / (photo.shape[0] * photo.shape[1]) <= 0.3          # the goal is the whole object
    back = layer.cat_file(path)
    assert back[:8] == b"\x89PNG\r\n\x1a\n" and back != png                 # the decode, not the source
    assert np.asarray(Image.open(io.BytesIO(back))).shape == photo.shape
    entry, = layer.ls(str(tmp_path / "up"), detail=True)
    assert entry["lossy"] is True and entry["container_mode"] == "perceptual"
    assert entry["content_type"] == "image/png" and entry["size"] == len(back)
    faithful = jpegshrink.decode_image(stored, decoder="faithful")                # still there from the same bytes
    assert faithful.shape == photo.shape


def test_every_write_path_applies_the_policy(photo, tmp_path):
    layer = _layer(new_uploads="high-bitrate")
    png = _file(photo)
    (tmp_path / "local.png").write_bytes(png)
    with layer.open(str(tmp_path / "store" / "a.png"), "wb") as f:
        f.write(png)
    layer.put(str(tmp_path / "local.png"), str(tmp_path / "store" / "b.png"))
    layer.pipe({str(tmp_path / "store" / "c.tif"): _file(photo, "TIFF")})
    with fsspec.open(f"jpegshrink::file://{tmp_path}/store/d.webp", "wb",
                     jpegshrink={"new_uploads": "high-bitrate:quality=80"}) as f:  # URL chaining
        f.write(_file(photo, "WEBP", lossless=True))
    for name, fmt, quality in (("a.png", "PNG", 90), ("b.png", "PNG", 90), ("c.tif", "TIFF", 90), ("d.webp", "WEBP", 80)):
        info = jpegshrink.inspect((tmp_path / "store" / name).read_bytes())
        assert info.lossy and info.info["source_format"] == fmt and info.info["settings"]["quality"] == quality


def test_existing_jpegs_stay_lossless_unless_opted_in(tmp_path):
    original = SAMPLE.read_bytes()
    _layer(new_uploads="high-bitrate:quality=70").pipe_file(str(tmp_path / "kept.jpg"), original)
    stored = (tmp_path / "kept.jpg").read_bytes()
    assert not jpegshrink.inspect(stored).lossy and jpegshrink.decompress(stored) == original
    layer = _layer(new_uploads="high-bitrate:quality=70", lossy_jpegs=True)
    layer.pipe_file(str(tmp_path / "reencoded.jpg"), original)
    info = jpegshrink.inspect((tmp_path / "reencoded.jpg").read_bytes())
    assert info.lossy and info.info["source_format"] == "JPEG"
    assert layer.ls(str(tmp_path), detail=False) and \
        {e["name"].rsplit("/", 1)[1]: e["lossy"] for e in layer.ls(str(tmp_path))} == \
        {"kept.jpg": False, "reencoded.jpg": True}


def test_default_policy_stores_images_as_they_are(photo, tmp_path):
    png = _file(photo)
    _layer().pipe_file(str(tmp_path / "photo.png"), png)
    assert (tmp_path / "photo.png").read_bytes() == png


def _animated(photo) -> bytes:
    frames = [Image.fromarray(photo), Image.fromarray(photo[::-1].copy())]
    b = io.BytesIO()
    frames[0].save(b, "PNG", save_all=True, append_images=frames[1:])
    return b.getvalue()


@pytest.mark.parametrize("make", [
    lambda a: b"just some text that is no image",
    lambda a: _file(np.dstack([a, np.full(a.shape[:2], 100, np.uint8)])),   # transparency a JPEG cannot hold
    _animated,                                                               # several frames
    lambda a: _file(a)[:500],                                                # a truncated upload
    lambda a: _file(np.full((8, 8, 3), 200, np.uint8)),                      # lossy container would be larger
    lambda a: _file(a, "GIF"),                                               # not a format the policy encodes
], ids=["text", "alpha", "animated", "truncated", "tiny", "gif"])
def test_what_the_lossy_mode_cannot_hold_is_stored_as_it_is(photo, tmp_path, make):
    data = make(photo)
    layer = _layer(new_uploads="high-bitrate:quality=85")
    layer.pipe_file(str(tmp_path / "x.png"), data)
    assert (tmp_path / "x.png").read_bytes() == data and layer.cat_file(str(tmp_path / "x.png")) == data
    assert layer.info(str(tmp_path / "x.png"))["compressed"] is False


def test_appends_are_not_new_uploads(photo, tmp_path):
    png = _file(photo)
    layer = _layer(new_uploads="high-bitrate:quality=85")
    with layer.open(str(tmp_path / "log.png"), "ab") as f:
        f.write(png)
    assert (tmp_path / "log.png").read_bytes() == png


def test_ssimulacra2_goal_is_met(photo, tmp_path):
    pytest.importorskip("ssimulacra2")
    layer = _layer(new_uploads="high-bitrate:ssimulacra2=80")
    layer.pipe_file(str(tmp_path / "p.png"), _file(photo[:64, :96]))
    info = layer.inspect(str(tmp_path / "p.png")).info
    assert info["target"] == {"ssimulacra2": 80.0} and info["scores"]["ssimulacra2"] >= 80


def test_policy_survives_pickling_and_mount_options(photo, tmp_path):
    layer = _layer(new_uploads="high-bitrate:bpp=1.5", lossy_jpegs=True)
    copy = pickle.loads(pickle.dumps(layer))
    assert copy.new_uploads == layer.new_uploads == UploadPolicy(UploadMode.HIGH_BITRATE, Goal.BPP, 1.5, True)
    options = _parse_options(["jpegshrink.new_uploads=high-bitrate:quality=88"])
    assert options == {"jpegshrink": {"new_uploads": "high-bitrate:quality=88"}}
    mounted, _ = open_layer(str(tmp_path), options)  # what `jpegshrink mount DIR MNT -o ...` builds
    assert mounted.new_uploads == UploadPolicy(UploadMode.HIGH_BITRATE, Goal.QUALITY, 88.0)
    with pytest.raises(MountError, match="unknown goal 'q'"):
        open_layer(str(tmp_path), _parse_options(["jpegshrink.new_uploads=high-bitrate:q=88"]))


def test_a_lossy_jpeg_reencode_must_beat_the_lossless_store(tmp_path):
    """A JPEG is re-encoded only when that is smaller than storing it losslessly (here: q98 is not)."""
    original = SAMPLE.read_bytes()
    _layer(new_uploads="high-bitrate:quality=98", lossy_jpegs=True).pipe_file(str(tmp_path / "a.jpg"), original)
    stored = (tmp_path / "a.jpg").read_bytes()
    assert not jpegshrink.inspect(stored).lossy and jpegshrink.decompress(stored) == original
