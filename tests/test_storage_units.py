"""Units of the storage layer that need no server and no FUSE: the atomic writer, the FUSE operations
class driven directly, the outcome enums in the journal."""
from __future__ import annotations

import errno
import json
import os
import stat

import pytest
from fsspec.implementations.local import LocalFileSystem

import jpegshrink
from jpegshrink_storage import JpegShrinkFileSystem, StorageError, errors
from jpegshrink_storage.atomic import write_atomic
from jpegshrink_storage.jobs.migrate_object import ObjectResult
from jpegshrink_storage.jobs.outcomes import Outcome
from jpegshrink_storage.mount import JpegShrinkOperations
from jpegshrink_storage.names import TMP_MARK


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_write_atomic_mode_mtime_exclusive_and_cancel(tmp_path):
    target = tmp_path / "a" / "photo.jpg"
    write_atomic(target, b"one", make_parents=True)
    assert target.read_bytes() == b"one" and stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask()
    write_atomic(target, b"two", mode=0o640, mtime=1_000_000_000.5)
    st = target.stat()
    assert target.read_bytes() == b"two" and stat.S_IMODE(st.st_mode) == 0o640
    assert st.st_mtime_ns == 1_000_000_000_500_000_000
    with pytest.raises(FileExistsError):
        write_atomic(target, b"three", exclusive=True)

    def refuse(tmp):
        assert tmp.read_bytes() == b"four" and tmp.name.startswith(TMP_MARK)
        raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError):
        write_atomic(target, b"four", prepare=refuse)
    assert target.read_bytes() == b"two" and os.listdir(target.parent) == ["photo.jpg"]  # no temp file left


def test_layer_writes_on_local_disk_get_the_umask_mode(tmp_path, sample_files):
    layer = JpegShrinkFileSystem(fs=LocalFileSystem(auto_mkdir=True), skip_instance_cache=True)
    layer.pipe_file(str(tmp_path / "d" / "a.jpg"), sample_files[0].read_bytes())
    assert stat.S_IMODE((tmp_path / "d" / "a.jpg").stat().st_mode) == 0o666 & ~_umask()


def test_operations_class_serves_a_folder_without_libfuse(tmp_path, sample_files):
    """The mfusepy operations are a plain class: readdir/getattr/create/write/release/read, called directly."""
    (tmp_path / "store" / "sub").mkdir(parents=True)
    original = sample_files[0].read_bytes()
    (tmp_path / "store" / "sub" / "a.jpg").write_bytes(jpegshrink.compress(original))
    (tmp_path / "store" / ".jpegshrink-staging").mkdir()
    layer = JpegShrinkFileSystem(fs=LocalFileSystem(auto_mkdir=True), skip_instance_cache=True)
    ops = JpegShrinkOperations(layer, str(tmp_path / "store"))
    assert ops.readdir("/", 0) == [".", "..", "sub"]  # the staging folder is not shown
    root = ops.getattr("/")
    assert stat.S_ISDIR(root["st_mode"]) and ops.getattr("/")["st_mtime"] == root["st_mtime"]
    attr = ops.getattr("/sub/a.jpg")
    assert attr["st_size"] == len(original) and attr["st_blocks"] * 512 < len(original) + 512
    fh = ops.open("/sub/a.jpg", os.O_RDONLY)
    assert ops.read("/sub/a.jpg", 100, 10, fh) == original[10:110]
    ops.release("/sub/a.jpg", fh)
    fh = ops.create("/sub/b.jpg", 0o644)
    assert ops.write("/sub/b.jpg", original, 0, fh) == len(original)
    ops.release("/sub/b.jpg", fh)
    assert jpegshrink.decompress((tmp_path / "store" / "sub" / "b.jpg").read_bytes()) == original
    with pytest.raises(OSError) as e:
        ops.getattr("/nothing")
    assert e.value.errno == errno.ENOENT
    read_only = JpegShrinkOperations(layer, str(tmp_path / "store"), read_only=True)
    with pytest.raises(OSError) as e:
        read_only.unlink("/sub/b.jpg")
    assert e.value.errno == errno.EROFS


def test_journal_records_spell_outcomes_as_before():
    """Journals written before the enum (plain strings) read back; new ones are written the same way."""
    record = {"key": "a.jpg", "outcome": "kept-original", "src_etag": "e", "dst_etag": "", "bytes_before": 3,
              "bytes_after": 3, "mode": "", "model_id": "", "reason": "no gain"}
    result = ObjectResult.from_record(record)
    assert result.outcome is Outcome.KEPT_ORIGINAL and result.to_record() == {**record, "done_earlier": False}
    assert json.loads(json.dumps(result.to_record()))["outcome"] == "kept-original"


def test_every_storage_error_has_one_base():
    for name in ("StoreError", "NotFound", "PreconditionFailed", "JournalError", "ClusterError", "VerifyError",
                 "MountError", "MissingDependency"):
        assert issubclass(getattr(errors, name), StorageError)
    assert "pip install 'jpegshrink[s3]'" in str(errors.MissingDependency("s3:// locations", "s3"))


def test_containers_shorter_than_a_v1_header_are_listed_with_their_original_size():
    """Format v2 containers can be smaller than HEADER_SIZE (64 B): a tiny stored object is still one."""
    from fsspec.implementations.memory import MemoryFileSystem

    target = MemoryFileSystem()
    root = f"/tiny-{os.getpid()}"
    tiny = jpegshrink.compress(b"x")
    assert len(tiny) < jpegshrink.HEADER_SIZE
    target.pipe_file(f"{root}/x.bin", tiny)
    try:
        layer = JpegShrinkFileSystem(fs=target, skip_instance_cache=True)
        assert layer.info(f"{root}/x.bin")["size"] == 1 and layer.ls(root)[0]["compressed"] is True
        assert layer.cat_file(f"{root}/x.bin") == b"x"
    finally:
        target.rm(root, recursive=True)


def test_listings_say_which_containers_are_lossy(sample_files):
    from fsspec.implementations.memory import MemoryFileSystem

    jpeg = sample_files[0].read_bytes()
    target = MemoryFileSystem()
    root = f"/lossy-{os.getpid()}"
    target.pipe({f"{root}/lossless.jpg": jpegshrink.compress(jpeg),
                 f"{root}/lossy.jpg": jpegshrink.store_lossy_jpeg(jpeg, {"quality": 75})})
    try:
        layer = JpegShrinkFileSystem(fs=target, skip_instance_cache=True)
        assert {e["name"].rsplit("/", 1)[1]: e["lossy"] for e in layer.ls(root)} == \
            {"lossless.jpg": False, "lossy.jpg": True}
        assert layer.cat_file(f"{root}/lossy.jpg") == jpeg
    finally:
        target.rm(root, recursive=True)
