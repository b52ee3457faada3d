"""End to end on a real S3 implementation (SeaweedFS ``weed mini``): in place, multipart, If-Match."""
from __future__ import annotations

import hashlib
import json
import signal

import pytest

import jpegshrink
from jpegshrink_storage.jobs.migrate import main_migrate
from jpegshrink_storage.jobs.verify import main_verify
from migrate_support import (KILL_AFTER, bucket_contents, fill_bucket, jpeg_keys, run_migrate_process, sample_objects,
                             write_manifest)


@pytest.fixture
def weed(seaweedfs_s3, monkeypatch):
    for k in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):  # SeaweedFS answers InvalidAccessKeyId to these
        monkeypatch.delenv(k, raising=False)
    return seaweedfs_s3


def _big_jpeg() -> bytes:
    """A JPEG with 1.6 MB of incompressible and 1.4 MB of compressible trailing bytes: its container is
    about 1.7 MB, over a 1 MB multipart threshold."""
    return sample_objects()["scikit-learn__flower.jpg"] + hashlib.shake_256(b"x").digest(1_600_000) + bytes(1_400_000)


def test_in_place_end_to_end_on_seaweedfs(weed, tmp_path, capsys):
    objects = {**sample_objects(), "big/huge.jpg": _big_jpeg()}
    c = weed.boto3_client()
    fill_bucket(c, "photos", "", objects)
    args = ["s3://photos", "s3://photos", "--endpoint-url", weed.url, "--journal", str(tmp_path / "j"),
            "--multipart-threshold-mb", "1", "--no-progress", "--json"]
    assert main_migrate(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["replace_guard"] == {"single": "if-match", "multipart": "if-match"}
    stored = bucket_contents(c, "photos")
    assert set(stored) == set(objects)  # no staging copy left
    for key, original in objects.items():
        data = stored[key]["data"]
        assert (jpegshrink.decompress(data) if jpegshrink.is_container(data) else data) == original
    assert jpegshrink.is_container(stored["big/huge.jpg"]["data"])
    assert "-" in stored["big/huge.jpg"]["etag"]  # went up as a multipart upload
    assert report["bytes_before"] == sum(len(v) for v in objects.values())
    assert report["bytes_after"] == sum(v["size"] for v in stored.values())
    counts = report["counts"]
    assert counts.get("migrated", 0) + counts.get("kept-original", 0) == len(jpeg_keys(objects))
    assert counts["left"] == len(objects) - len(jpeg_keys(objects))
    manifest = write_manifest(tmp_path / "manifest", objects)
    assert main_verify(["s3://photos", "--endpoint-url", weed.url, "--manifest", str(manifest),
                        "--no-progress"]) == 0


def test_multipart_replace_is_conditional_on_seaweedfs(weed, tmp_path, monkeypatch):
    """Another client rewrites the big object during its compression: the conditional multipart
    completion is refused by the server and the new bytes survive."""
    c = weed.boto3_client()
    c.create_bucket(Bucket="photos")
    c.put_object(Bucket="photos", Key="huge.jpg", Body=_big_jpeg())
    newer = _big_jpeg() + b"edited elsewhere"
    real_compress = jpegshrink.compress

    def racing_compress(data: bytes, **kw) -> bytes:
        c.put_object(Bucket="photos", Key="huge.jpg", Body=newer)
        return real_compress(data, **kw)

    monkeypatch.setattr(jpegshrink, "compress", racing_compress)
    report = tmp_path / "r.json"
    assert main_migrate(["s3://photos", "s3://photos", "--endpoint-url", weed.url, "--journal", str(tmp_path / "j"),
                         "--multipart-threshold-mb", "1", "--change-retries", "0", "--no-progress",
                         "--report", str(report)]) == 1
    assert json.loads(report.read_text())["counts"] == {"changed": 1}
    assert bucket_contents(c, "photos").keys() == {"huge.jpg"}
    assert c.get_object(Bucket="photos", Key="huge.jpg")["Body"].read() == newer


def test_killed_and_resumed_under_a_prefix_leaves_no_staging_folder(weed, tmp_path, capsys):
    """SIGKILLed right after a source was replaced (its staging copy still there), then run again: every
    original is recoverable, and the staging folder -- which SeaweedFS keeps, as a folder and as a
    0-byte ``lib/.jpegshrink-staging/`` key, once its last object is gone -- is removed."""
    everything = sample_objects()
    top = sorted(everything)[:4]  # with what is in folders: JPEGs and other files, 8 objects
    objects = {k: v for k, v in everything.items() if "/" in k or k in top}
    c = weed.boto3_client()
    fill_bucket(c, "photos", "lib/", objects)
    args = ["s3://photos/lib", "s3://photos/lib", "--endpoint-url", weed.url, "--journal", str(tmp_path / "j"),
            "--workers", "2", "--no-progress", "--json"]
    killed = run_migrate_process(args, prelude=KILL_AFTER.format(cls="S3Store", name="put", match="data", nth=3))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert any(p["Prefix"] == "lib/.jpegshrink-staging/" for p in
               c.list_objects_v2(Bucket="photos", Prefix="lib/", Delimiter="/").get("CommonPrefixes", []))
    resumed = run_migrate_process(args)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["resumed_from_journal"] + report["processed_this_run"] == len(objects)
    stored = bucket_contents(c, "photos", "lib/")
    assert set(stored) == set(objects)
    for key, original in objects.items():
        data = stored[key]["data"]
        assert (jpegshrink.decompress(data) if jpegshrink.is_container(data) else data) == original
    folders = c.list_objects_v2(Bucket="photos", Prefix="lib/", Delimiter="/").get("CommonPrefixes", [])
    assert sorted(p["Prefix"] for p in folders) == sorted({f"lib/{k.rsplit('/', 1)[0]}/" for k in objects if "/" in k})
