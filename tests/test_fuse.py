"""A real FUSE mount of the jpegshrink:: layer (mfusepy + libfuse3), driven with ordinary tools.

Skips, with the reason, where /dev/fuse, fusermount3 or libfuse is missing.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import jpegshrink
from jpegshrink_storage import StorageError
from jpegshrink_storage.mount import cli as jfuse


def _fuse_missing() -> str | None:
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is missing (apt-get install fuse3)"
    try:
        jfuse.load_mfusepy()
    except StorageError as e:
        return str(e)
    return None


_MISSING = _fuse_missing()
if _MISSING:
    print(f"test_fuse: skipping FUSE tests: {_MISSING}")
needs_fuse = pytest.mark.skipif(_MISSING is not None, reason=f"FUSE unavailable: {_MISSING}")


@pytest.fixture(scope="module")
def originals(sample_files) -> dict[str, bytes]:
    files = {p.name: p.read_bytes() for p in sample_files[:8]}
    files["notes.txt"] = b"not a jpeg\n"
    return files


def _fill(write, originals: dict[str, bytes]) -> None:
    """Half the JPEGs stored as containers (migrated), the rest as they are."""
    for i, (name, data) in enumerate(originals.items()):
        write(name if i % 2 else f"sub/{name}", jpegshrink.compress(data) if i % 2 and data[:2] == b"\xff\xd8"
              else data)


def _serve(url: str, mnt: Path, *extra: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "jpegshrink_storage.mount", url, str(mnt), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=jfuse.child_env())
    deadline = time.monotonic() + 30
    while not os.path.ismount(mnt):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"mount did not come up: {proc.communicate()[0].decode(errors='replace')}")
        time.sleep(0.05)
    return proc


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in args and "pytest" not in args:
            found.append(f"{cmdline.parent.name}: {args}")
    return found


def _stop(proc: subprocess.Popen, mnt: Path, how: str) -> None:
    if how == "sigterm":
        proc.send_signal(signal.SIGTERM)
    else:
        subprocess.run(["fusermount3", "-u", str(mnt)], check=True)
    try:
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            subprocess.run(["fusermount3", "-uz", str(mnt)])
    assert not os.path.ismount(mnt)
    assert _processes_mentioning(str(mnt)) == []


def _check_mount(mnt: Path, originals: dict[str, bytes]) -> None:
    sizes = {}
    for folder in (mnt, mnt / "sub"):
        listing = subprocess.run(["ls", "-l", str(folder)], capture_output=True, text=True, check=True).stdout
        for line in listing.splitlines()[1:]:
            fields = line.split()
            if fields[0].startswith("-"):
                sizes[fields[-1]] = int(fields[4])
    assert sizes == {name: len(data) for name, data in originals.items()}
    paths = sorted(str(p) for p in mnt.rglob("*") if p.is_file())
    sums = subprocess.run(["sha256sum", *paths], capture_output=True, text=True, check=True).stdout
    got = {Path(line.split(None, 1)[1]).name: line.split()[0] for line in sums.splitlines()}
    assert got == {name: hashlib.sha256(data).hexdigest() for name, data in originals.items()}


@needs_fuse
def test_local_mount_reads_writes_and_sigterm(tmp_path, originals):
    store, mnt = tmp_path / "store", tmp_path / "mnt"
    mnt.mkdir()

    def write(rel: str, data: bytes) -> None:
        (store / rel).parent.mkdir(parents=True, exist_ok=True)
        (store / rel).write_bytes(data)

    _fill(write, originals)
    proc = _serve(str(store), mnt)
    try:
        _check_mount(mnt, originals)
        jpeg_name = next(n for n, d in originals.items() if len(jpegshrink.compress(d)) < len(d))
        source = tmp_path / "source.jpg"
        source.write_bytes(originals[jpeg_name])
        (mnt / "new").mkdir()
        subprocess.run(["cp", str(source), str(mnt / "new" / "copy.jpg")], check=True)
        (mnt / "new" / "hello.txt").write_bytes(b"hello through fuse\n")
        stored = (store / "new" / "copy.jpg").read_bytes()
        assert jpegshrink.is_container(stored) and jpegshrink.decompress(stored) == originals[jpeg_name]
        assert (store / "new" / "hello.txt").read_bytes() == b"hello through fuse\n"
        assert (mnt / "new" / "copy.jpg").read_bytes() == originals[jpeg_name]
        assert os.stat(mnt / "new" / "copy.jpg").st_size == len(originals[jpeg_name])
        os.rename(mnt / "new" / "hello.txt", mnt / "new" / "renamed.txt")
        os.unlink(mnt / "new" / "copy.jpg")
        assert sorted(os.listdir(store / "new")) == ["renamed.txt"]
    finally:
        _stop(proc, mnt, "sigterm")


@needs_fuse
def test_s3_mount_reads_writes_and_fusermount(tmp_path, moto_s3, originals):
    moto_s3.create_bucket("photos")
    target = moto_s3.s3fs()
    _fill(lambda rel, data: target.pipe_file(f"photos/lib/{rel}", data), originals)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    options = [x for k, v in (("s3.endpoint_url", moto_s3.url), ("s3.key", "testing"), ("s3.secret", "testing"))
               for x in ("-o", f"{k}={v}")]
    proc = _serve("s3://photos/lib", mnt, *options)
    try:
        _check_mount(mnt, originals)
        jpeg_name = next(n for n, d in originals.items() if len(jpegshrink.compress(d)) < len(d))
        source = tmp_path / "source.jpg"
        source.write_bytes(originals[jpeg_name])
        (mnt / "new").mkdir()  # S3 has no empty folders: the mount remembers this one
        subprocess.run(["cp", str(source), str(mnt / "new" / "copy.jpg")], check=True)
        assert os.listdir(mnt / "new") == ["copy.jpg"]
        stored = target.cat_file("photos/lib/new/copy.jpg")
        assert jpegshrink.is_container(stored) and jpegshrink.decompress(stored) == originals[jpeg_name]
        assert (mnt / "new" / "copy.jpg").read_bytes() == originals[jpeg_name]
    finally:
        _stop(proc, mnt, "fusermount")


@needs_fuse
def test_read_only_background_mount(tmp_path, originals):
    store, mnt = tmp_path / "store", tmp_path / "mnt"
    mnt.mkdir()

    def write(rel: str, data: bytes) -> None:
        (store / rel).parent.mkdir(parents=True, exist_ok=True)
        (store / rel).write_bytes(data)

    _fill(write, originals)
    log = tmp_path / "bg.log"
    assert jfuse.main([str(store), str(mnt), "--background", "--read-only", "--log-file", str(log)]) == 0
    try:
        assert os.path.ismount(mnt)
        _check_mount(mnt, originals)
        with pytest.raises(OSError):
            (mnt / "refused.txt").write_bytes(b"read-only mount")
        assert not (store / "refused.txt").exists()
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)], check=True)
    deadline = time.monotonic() + 20
    while _processes_mentioning(str(mnt)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_mentioning(str(mnt)) == [] and not os.path.ismount(mnt)


def test_mount_errors_are_messages_not_tracebacks(tmp_path, capsys, monkeypatch):
    """Runs without FUSE too: every refusal is one line on stderr and exit status 2 (as migrate/verify)."""
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "a.txt").write_bytes(b"a")
    empty = tmp_path / "empty"
    empty.mkdir()
    store = str(tmp_path / "store")
    assert jfuse.main(["mount", store, str(tmp_path / "absent")]) == 2
    assert jfuse.main([str(tmp_path / "no-such-store"), str(empty)]) == 2
    assert jfuse.main(["bogus://x", str(empty)]) == 2
    assert jfuse.main([store, str(empty), "-o", "endpoint=x"]) == 2
    assert jfuse.main([store, store]) == 2  # not empty: mounting would hide its files
    monkeypatch.setattr(jfuse, "FUSE_DEVICE", str(tmp_path / "no-fuse-device"))
    assert jfuse.main([store, str(empty)]) == 2
    err = capsys.readouterr().err
    for message in ["does not exist or is not a folder", "not a folder that exists", "Protocol not known",
                    "must look like PROTOCOL.NAME=VALUE", "is not empty", "no-fuse-device is missing"]:
        assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 6


@pytest.fixture(params=["moto", "seaweedfs"])
def any_s3(request, monkeypatch):
    """Each S3 server of the session, emptied; SeaweedFS refuses the dummy session token, so none is sent."""
    endpoint = request.getfixturevalue(f"{request.param}_s3")
    for k in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    return endpoint


@needs_fuse
def test_s3_mount_with_folder_marker_keys_works_with_find_du_cp_tar(tmp_path, any_s3, originals):
    """0-byte ``dir/`` keys (S3 consoles make them; SeaweedFS keeps one per folder, and an older
    migration left ``.jpegshrink-staging/``) are folders on the mount, the staging folder is not shown,
    and the everyday tree tools work."""
    client = any_s3.boto3_client()
    client.create_bucket(Bucket="photos")
    _fill(lambda rel, data: client.put_object(Bucket="photos", Key=f"lib/{rel}", Body=data), originals)
    for marker in ("lib/sub/", "lib/empty/", "lib/.jpegshrink-staging/", "lib/.jpegshrink-staging/sub/"):
        client.put_object(Bucket="photos", Key=marker, Body=b"")
    mnt, out = tmp_path / "mnt", tmp_path / "out"
    mnt.mkdir()
    options = [x for k, v in (("s3.endpoint_url", any_s3.url), ("s3.key", "testing"), ("s3.secret", "testing"))
               for x in ("-o", f"{k}={v}")]
    proc = _serve("s3://photos/lib", mnt, *options)
    try:
        def run(*cmd: str) -> str:
            done = subprocess.run(cmd, capture_output=True, text=True)
            assert done.returncode == 0 and done.stderr == "", (cmd, done.stderr)
            return done.stdout

        found = set(run("find", str(mnt), "-mindepth", "1", "-printf", "%y %P\n").splitlines())
        files = {f"f {'' if i % 2 else 'sub/'}{name}" for i, name in enumerate(originals)}
        assert found == files | {"d sub", "d empty"}
        assert run("stat", "-c", "%F", str(mnt / "sub"), str(mnt / "empty")).split("\n")[:2] == ["directory"] * 2
        assert int(run("du", "-sb", str(mnt)).split()[0]) == sum(len(d) for d in originals.values())
        run("du", "-s", str(mnt))  # st_blocks: the stored sizes
        run("cp", "-r", str(mnt), str(out))
        copied = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
        assert copied == {(name if i % 2 else f"sub/{name}"): data for i, (name, data) in enumerate(originals.items())}
        assert (out / "empty").is_dir()
        run("tar", "-cf", str(tmp_path / "t.tar"), "-C", str(mnt), ".")
        listed = set(run("tar", "-tf", str(tmp_path / "t.tar")).split())
        assert "./empty/" in listed and not any(".jpegshrink-staging" in n for n in listed)
    finally:
        _stop(proc, mnt, "fusermount")
