"""The jpegshrink:: layer over real targets: local disk, memory, moto and SeaweedFS S3 servers.

A "mixed tree" is what a half-migrated bucket looks like: containers (already migrated), raw JPEGs
(not yet), and other files (PNG, text, empty). Every read through the layer must give the original
bytes and original sizes, whatever the object is and whichever target holds it.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fsspec
import pytest
from botocore.exceptions import EndpointConnectionError
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem

import jpegshrink
from jpegshrink.errors import CorruptContainer
from jpegshrink_storage import JpegShrinkFileSystem
from jpegshrink_storage.fs import filesystem as jss_fs
from tools.s3servers import moto_server

BUCKET = "photos"


@dataclass
class Backend:
    """One target filesystem, the layer over it, and how to spell its URLs."""

    name: str
    target: Any
    root: str
    url_prefix: str
    url_options: dict

    def layer(self, **kwargs) -> JpegShrinkFileSystem:
        return JpegShrinkFileSystem(fs=self.target, skip_instance_cache=True, **kwargs)

    def path(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def url(self, rel: str) -> str:
        return f"jpegshrink::{self.url_prefix}{self.path(rel)}"


@pytest.fixture(params=["local", "memory", "moto", "seaweedfs"])
def backend(request, tmp_path) -> Iterator[Backend]:
    if request.param == "local":
        yield Backend("local", LocalFileSystem(auto_mkdir=True), str(tmp_path / "store"), "file://", {})
        return
    if request.param == "memory":
        target = MemoryFileSystem()  # the global store: URL chaining (memory://) must see the same data
        root = f"/jpegshrink-test-{os.getpid()}-{request.node.name}".replace("[", "-").replace("]", "")
        yield Backend("memory", target, root, "memory://", {})
        if target.exists(root):
            target.rm(root, recursive=True)
        return
    endpoint = request.getfixturevalue("moto_s3" if request.param == "moto" else "seaweedfs_s3")
    endpoint.create_bucket(BUCKET)
    yield Backend(request.param, endpoint.s3fs(), f"{BUCKET}/tree", "s3://", {"s3": endpoint.storage_options})


@pytest.fixture(scope="module")
def mixed_tree(sample_files) -> dict[str, tuple[bytes, bytes]]:
    """relative path -> (original bytes, bytes as stored on the target)."""
    tree: dict[str, tuple[bytes, bytes]] = {}
    for i, p in enumerate(sample_files[:12]):
        data = p.read_bytes()
        if i % 3 == 2:
            tree[f"raw/{p.name}"] = (data, data)  # not migrated yet
        else:
            tree[f"{'sub/' if i % 2 else ''}{p.name}"] = (data, jpegshrink.compress(data))
    png = b"\x89PNG\r\n\x1a\n" + hashlib.sha256(b"png").digest() * 40
    for name, data in {"other/pic.png": png, "other/notes.txt": b"hello, not a jpeg\n", "other/empty": b""}.items():
        tree[name] = (data, data)
    return tree


def _store_raw(backend: Backend, tree: dict[str, tuple[bytes, bytes]]) -> None:
    for rel, (_, stored) in tree.items():
        backend.target.pipe_file(backend.path(rel), stored)


def test_mixed_tree_reads_original_bytes_and_sizes(backend, mixed_tree, tmp_path):
    _store_raw(backend, mixed_tree)
    fs = backend.layer()
    for rel, (original, stored) in mixed_tree.items():
        path = backend.path(rel)
        assert fs.cat_file(path) == original, rel
        with fs.open(path, "rb") as f:
            assert f.size == len(original)
            assert f.read() == original, rel
        info = fs.info(path)
        assert (info["size"], info["stored_size"]) == (len(original), len(stored)), rel
        assert info["compressed"] == (stored != original)
    listed = fs.find(backend.root, detail=True)
    assert {k.removeprefix(backend.root + "/").lstrip("/"): v["size"] for k, v in listed.items()} == \
        {rel: len(o) for rel, (o, _) in mixed_tree.items()}
    for entry in fs.ls(backend.path("sub"), detail=True):
        rel = "sub/" + entry["name"].rsplit("/", 1)[-1]
        assert entry["size"] == len(mixed_tree[rel][0]) and entry["stored_size"] == len(mixed_tree[rel][1])
    assert fs.du(backend.root) == sum(len(o) for o, _ in mixed_tree.values())
    assert fs.du(backend.root, stored=True) == sum(len(s) for _, s in mixed_tree.values())

    local = tmp_path / "got"
    fs.get(backend.root + "/", str(local), recursive=True)
    for rel, (original, _) in mixed_tree.items():
        assert (local / rel).read_bytes() == original, rel


def test_url_chaining_and_simplecache(backend, mixed_tree):
    _store_raw(backend, mixed_tree)
    rel, (original, stored) = next((r, v) for r, v in mixed_tree.items() if v[0] != v[1])
    with fsspec.open(backend.url(rel), "rb", **backend.url_options) as f:
        assert f.read() == original
    with fsspec.open("simplecache::" + backend.url(rel), "rb", **backend.url_options) as f:
        assert f.read() == original
    fs, path = fsspec.core.url_to_fs(backend.url(rel), **backend.url_options)
    assert isinstance(fs, JpegShrinkFileSystem) and path == fs._strip_protocol(backend.path(rel))
    assert fs.info(path)["stored_size"] == len(stored)
    clone = pickle.loads(pickle.dumps(fs))  # what a Dask worker receives
    assert clone.cat_file(path) == original


def test_range_reads_and_seek(backend, mixed_tree):
    _store_raw(backend, mixed_tree)
    fs = backend.layer()
    for rel in [r for r, (o, s) in mixed_tree.items() if o != s][:2] + ["other/pic.png"]:
        original = mixed_tree[rel][0]
        path = backend.path(rel)
        assert fs.cat_file(path, 100, 300) == original[100:300]
        assert fs.cat_file(path, -2) == original[-2:]
        assert fs.cat_file(path, 10, -10) == original[10:-10]
        assert fs.cat_ranges([path, path], [0, 5], [4, 9]) == [original[:4], original[5:9]]
        with fs.open(path, "rb", block_size=64) as f:
            f.seek(50)
            assert f.read(30) == original[50:80]
            f.seek(-5, 2)
            assert f.read() == original[-5:]
            assert f.read(10) == b""


def test_writes_store_jpegs_compressed_and_others_as_they_are(backend, mixed_tree, tmp_path):
    fs = backend.layer()
    jpeg = next(o for o, s in mixed_tree.values() if len(s) < len(o))
    png = mixed_tree["other/pic.png"][0]
    fs.pipe_file(backend.path("w/piped.jpg"), jpeg)
    with fs.open(backend.path("w/opened.jpg"), "wb") as f:
        for i in range(0, len(jpeg), 1000):
            f.write(jpeg[i:i + 1000])
    (tmp_path / "local.jpg").write_bytes(jpeg)
    fs.put(str(tmp_path / "local.jpg"), backend.path("w/put.jpg"))
    fs.pipe_file(backend.path("w/pic.png"), png)
    container_bytes = jpegshrink.compress(jpeg)  # a container stored as a plain file must stay one
    fs.pipe_file(backend.path("w/blob.jsk"), container_bytes)

    for name in ["piped.jpg", "opened.jpg", "put.jpg"]:
        stored = backend.target.cat_file(backend.path(f"w/{name}"))
        assert jpegshrink.is_container(stored) and jpegshrink.decompress(stored) == jpeg
        assert fs.cat_file(backend.path(f"w/{name}")) == jpeg
        assert fs.info(backend.path(f"w/{name}"))["size"] == len(jpeg)
    assert backend.target.cat_file(backend.path("w/pic.png")) == png
    assert fs.cat_file(backend.path("w/blob.jsk")) == container_bytes

    raw = backend.layer(compress=False)
    raw.pipe_file(backend.path("w/uncompressed.jpg"), jpeg)
    assert backend.target.cat_file(backend.path("w/uncompressed.jpg")) == jpeg


def test_overwrite_updates_listed_size(backend, mixed_tree):
    """The header cache never describes a replaced object by its predecessor's header."""
    fs = backend.layer()
    compressible = sorted((o for o, s in mixed_tree.values() if len(s) < len(o)), key=len)
    small, large = compressible[0], compressible[-1]
    path = backend.path("x/a.jpg")
    fs.pipe_file(path, small)
    assert fs.ls(backend.path("x"), detail=True)[0]["size"] == len(small)
    backend.target.pipe_file(path, jpegshrink.compress(large))  # changed behind the layer's back
    backend.target.invalidate_cache()
    assert fs.ls(backend.path("x"), detail=True)[0]["size"] == len(large)
    assert fs.cat_file(path) == large


def test_transactions_commit_and_discard(backend, mixed_tree):
    fs = backend.layer()
    jpeg = next(o for o, s in mixed_tree.values() if len(s) < len(o))
    with fs.transaction:
        fs.pipe_file(backend.path("t/a.jpg"), jpeg)
        with fs.open(backend.path("t/b.jpg"), "wb") as f:
            f.write(jpeg)
        assert not fs.exists(backend.path("t/a.jpg"))
    assert fs.cat_file(backend.path("t/a.jpg")) == jpeg and fs.cat_file(backend.path("t/b.jpg")) == jpeg

    with pytest.raises(RuntimeError, match="abandon"):
        with fs.transaction:
            fs.pipe_file(backend.path("t/c.jpg"), jpeg)
            raise RuntimeError("abandon")
    assert not fs.exists(backend.path("t/c.jpg"))

    with pytest.raises(RuntimeError, match="half"):  # an exception inside `with open` stores nothing
        with fs.open(backend.path("t/a.jpg"), "wb") as f:
            f.write(b"\xff\xd8 half a jpeg")
            raise RuntimeError("half written")
    assert fs.cat_file(backend.path("t/a.jpg")) == jpeg


def test_exclusive_create(backend):
    fs = backend.layer()
    path = backend.path("e/new.txt")
    with fs.open(path, "xb") as f:
        f.write(b"first")
    with pytest.raises(FileExistsError):
        fs.open(path, "xb")
    with pytest.raises(FileExistsError):
        fs.pipe_file(path, b"second", mode="create")
    assert fs.cat_file(path) == b"first"


def test_damaged_container_is_reported_not_served(backend, mixed_tree):
    rel, (original, stored) = next((r, v) for r, v in mixed_tree.items() if v[0] != v[1])
    damaged = stored[:200] + bytes([stored[200] ^ 1]) + stored[201:]
    backend.target.pipe_file(backend.path("bad.jpg"), damaged)
    backend.target.pipe_file(backend.path("cut.jpg"), stored[:-10])
    fs = backend.layer()
    with pytest.raises(CorruptContainer):
        fs.cat_file(backend.path("bad.jpg"))
    with pytest.raises(CorruptContainer):
        fs.open(backend.path("bad.jpg")).read()
    info = fs.info(backend.path("cut.jpg"))
    assert info["size"] == info["stored_size"] == len(stored) - 10 and "truncated" in info["container_error"]


def test_ls_reads_headers_concurrently_once(moto_s3, mixed_tree):
    """`ls` of a folder costs one batch of ranged header reads, then none while objects are unchanged."""
    moto_s3.create_bucket(BUCKET)
    target = moto_s3.s3fs()
    stored = {f"{BUCKET}/many/{i:04d}.jpg": (o, s) for i, (o, s) in
              enumerate(v for v in list(mixed_tree.values()) * 10 if v[0])}
    target.pipe({k: s for k, (o, s) in stored.items()})
    calls = []
    real_cat_ranges = target.cat_ranges

    def counting_cat_ranges(paths, starts, ends, **kw):
        calls.append(len(paths))
        return real_cat_ranges(paths, starts, ends, **kw)

    target.cat_ranges = counting_cat_ranges  # a spy on the real s3fs method, not a mock
    fs = JpegShrinkFileSystem(fs=target, skip_instance_cache=True)
    listing = fs.ls(f"{BUCKET}/many", detail=True)
    assert {e["name"]: e["size"] for e in listing} == {k: len(o) for k, (o, s) in stored.items()}
    could_be_containers = sum(len(s) >= jpegshrink.HEADER_SIZE for o, s in stored.values())
    assert calls == [could_be_containers]  # one batch; objects too small for a header are not read
    fs.ls(f"{BUCKET}/many", detail=True)
    fs.info(f"{BUCKET}/many/0000.jpg")
    assert calls == [could_be_containers]


def test_local_write_failure_keeps_old_object(tmp_path, mixed_tree, monkeypatch):
    fs = JpegShrinkFileSystem(fs=LocalFileSystem(), skip_instance_cache=True)
    old, new = [o for o, s in mixed_tree.values() if len(s) < len(o)][:2]
    path = str(tmp_path / "a.jpg")
    fs.pipe_file(path, old)

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        fs.pipe_file(path, new)
    monkeypatch.undo()
    assert fs.cat_file(path) == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg"]  # no temporary file left


def test_s3_server_dies_during_write(mixed_tree):
    """The target stops between open and close: the write raises and no object (partial or not) appears."""
    jpeg = next(o for o, s in mixed_tree.values() if len(s) < len(o))
    with moto_server() as endpoint:
        endpoint.create_bucket("dying")
        fs = JpegShrinkFileSystem(fs=endpoint.s3fs(config_kwargs={
            "connect_timeout": 2, "read_timeout": 5, "retries": {"max_attempts": 1}}),
                                  skip_instance_cache=True)
        fs.pipe_file("dying/old.jpg", jpeg)
        f = fs.open("dying/new.jpg", "wb")
        f.write(jpeg)
        endpoint.stop()
        with pytest.raises(EndpointConnectionError):  # s3fs lets botocore's error through
            f.close()
        with pytest.raises(EndpointConnectionError):
            fs.pipe_file("dying/old.jpg", b"\xff\xd8 replacement")
    with moto_server() as again:  # moto keeps its buckets in-process, so a new server shows the state
        survivor = JpegShrinkFileSystem(fs=again.s3fs(), skip_instance_cache=True)
        assert survivor.ls("dying", detail=False) == ["dying/old.jpg"]
        assert survivor.cat_file("dying/old.jpg") == jpeg
        again.reset()


def test_large_objects_are_read_lazily(backend, mixed_tree, monkeypatch):
    """Objects above the whole-read limit: size from the header, decode on first read, ranged pass-through."""
    _store_raw(backend, mixed_tree)
    monkeypatch.setattr(jss_fs, "WHOLE_READ_LIMIT", 100)
    fs = backend.layer()
    for rel in [next(r for r, (o, s) in mixed_tree.items() if o != s), "other/pic.png"]:
        original = mixed_tree[rel][0]
        with fs.open(backend.path(rel), "rb", block_size=32) as f:
            assert f.size == len(original)
            f.seek(40)
            assert f.read(100) == original[40:140]
            f.seek(0)
            assert f.read() == original


def test_append_mode(backend, mixed_tree):
    fs = backend.layer()
    jpeg = next(o for o, s in mixed_tree.values() if len(s) < len(o))
    fs.pipe_file(backend.path("ap/a.jpg"), jpeg[:1000])
    with fs.open(backend.path("ap/a.jpg"), "ab") as f:
        f.write(jpeg[1000:])
    assert fs.cat_file(backend.path("ap/a.jpg")) == jpeg
    assert jpegshrink.is_container(backend.target.cat_file(backend.path("ap/a.jpg")))


def test_pickled_layer_reads_in_a_fresh_process(moto_s3, mixed_tree):
    """What a Dask worker does: unpickle the filesystem (no instance cache there) and read."""
    moto_s3.create_bucket(BUCKET)
    original, stored = next(v for v in mixed_tree.values() if v[0] != v[1])
    fs, path = fsspec.core.url_to_fs(f"jpegshrink::s3://{BUCKET}/p/a.jpg", s3=moto_s3.storage_options)
    fs.fs.pipe_file(path, stored)
    code = "import pickle, sys, hashlib; fs, p = pickle.load(sys.stdin.buffer); " \
           "print(hashlib.sha256(fs.cat_file(p)).hexdigest(), fs.info(p)['size'])"
    out = subprocess.run([sys.executable, "-c", code], input=pickle.dumps((fs, path)), capture_output=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout.decode().split() == [hashlib.sha256(original).hexdigest(), str(len(original))]


def test_put_and_get_a_folder(backend, mixed_tree, tmp_path):
    """`put` keeps fsspec's path rules while storing files concurrently; `get` gives the originals back."""
    local = tmp_path / "upload"
    for rel, (original, _) in mixed_tree.items():
        (local / rel).parent.mkdir(parents=True, exist_ok=True)
        (local / rel).write_bytes(original)
    fs = backend.layer(workers=4)
    fs.put(str(local), backend.path("up"), recursive=True)
    for rel, (original, _) in mixed_tree.items():
        path = backend.path(f"up/{rel}")
        assert fs.cat_file(path) == original, rel
        worth_it = original[:2] == b"\xff\xd8" and len(jpegshrink.compress(original)) < len(original)
        assert jpegshrink.is_container(backend.target.cat_file(path)) == worth_it, rel
    fs.get(backend.path("up"), str(tmp_path / "down"), recursive=True)
    for rel, (original, _) in mixed_tree.items():
        assert (tmp_path / "down" / rel).read_bytes() == original, rel
