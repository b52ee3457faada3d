"""jpegshrink migrate against a real (moto) S3 server and local folders: results, report, idempotence, races."""
from __future__ import annotations

import hashlib
import json
import urllib.request

import pytest

import jpegshrink
from jpegshrink_storage.jobs import metadata as om
from jpegshrink_storage.jobs.migrate import main_migrate
from jpegshrink_storage.names import STAGING_DIR
from jpegshrink_storage.jobs.verify import main_verify
from migrate_support import bucket_contents, fill_bucket, jpeg_keys, sample_objects, write_manifest
from tools.s3servers import free_ports


def migrate(endpoint, *args: str) -> int:
    return main_migrate([*args, "--endpoint-url", endpoint.url, "--no-progress"])


def check_all_recoverable(contents: dict, objects: dict[str, bytes]) -> None:
    """Every original is in the bucket: as itself, or as a container that decodes to it."""
    assert set(contents) == set(objects)
    for key, original in objects.items():
        data = contents[key]["data"]
        assert (jpegshrink.decompress(data) if jpegshrink.is_container(data) else data) == original, key


def test_copy_to_another_bucket_end_to_end(moto_s3, tmp_path):
    objects = sample_objects()
    c = moto_s3.boto3_client()
    fill_bucket(c, "photos", "raw/", objects)
    c.create_bucket(Bucket="archive")
    report_path = tmp_path / "report.json"
    rc = migrate(moto_s3, "s3://photos/raw", "s3://archive/shrunk", "--journal", str(tmp_path / "j"),
                 "--report", str(report_path), "--workers", "3")
    assert rc == 0
    report = json.loads(report_path.read_text())
    dst = bucket_contents(c, "archive", "shrunk/")
    check_all_recoverable(dst, objects)
    assert bucket_contents(c, "photos", "raw/").keys() == objects.keys()  # the source is untouched
    jpegs = jpeg_keys(objects)
    counts = report["counts"]
    assert counts.get("migrated", 0) + counts.get("kept-original", 0) == len(jpegs)
    assert counts["copied"] == len(objects) - len(jpegs)
    assert report["bytes_before"] == sum(len(v) for v in objects.values())
    assert report["bytes_after"] == sum(v["size"] for v in dst.values())
    assert report["failed"] == [] and report["ok"] is True
    assert report["converted"] == counts["migrated"] and report["problems"] == 0
    assert report["skipped"] == counts.get("kept-original", 0) + counts["copied"]
    assert sum(report["reasons"]["fallbacks"].values()) == len(report["fallbacks"])
    stored_fallbacks = [k for k, o in dst.items()
                        if jpegshrink.is_container(o["data"]) and jpegshrink.inspect(o["data"]).mode == "fallback"]
    # the report lists every JPEG the model could not shrink: stored as fallbacks or kept as they were
    assert len(report["fallbacks"]) == len(stored_fallbacks) + counts.get("kept-original", 0)
    assert 0 < counts["migrated"] and counts["migrated"] > len(stored_fallbacks)
    for key, obj in dst.items():
        if jpegshrink.is_container(obj["data"]):
            meta = c.head_object(Bucket="archive", Key="shrunk/" + key)["Metadata"]
            assert meta[om.ORIGINAL_SHA256] == hashlib.sha256(objects[key]).hexdigest()
            assert meta[om.ORIGINAL_SIZE] == str(len(objects[key]))
            assert meta[om.CONTENT_TYPE] == "image/jpeg"
            assert meta[om.CODEC].startswith(f"jpegshrink/{jpegshrink.__version__}")
    manifest = write_manifest(tmp_path / "manifest", objects)
    assert main_verify(["s3://archive/shrunk", "--endpoint-url", moto_s3.url, "--manifest", str(manifest),
                        "--no-progress"]) == 0


def test_in_place_then_rerun_changes_nothing(moto_s3, tmp_path, capsys):
    objects = sample_objects()
    c = moto_s3.boto3_client()
    fill_bucket(c, "photos", "", objects)
    journal = str(tmp_path / "journal.jsonl")
    assert migrate(moto_s3, "s3://photos", "s3://photos", "--journal", journal, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["in_place"] is True
    assert report["replace_guard"] == {"single": "if-match", "multipart": "head-recheck"}  # moto 5.2
    after = bucket_contents(c, "photos")
    check_all_recoverable(after, objects)  # also: no staging object is left
    assert report["counts"]["left"] == len(objects) - len(jpeg_keys(objects))
    assert report["bytes_after"] == sum(v["size"] for v in after.values()) < report["bytes_before"]

    # same journal: nothing is looked at again; fresh journal: everything is recognised, nothing rewritten
    for j in (journal, str(tmp_path / "fresh.jsonl")):
        assert migrate(moto_s3, "s3://photos", "s3://photos", "--journal", j, "--json") == 0
        again = json.loads(capsys.readouterr().out)
        assert {k: v["etag"] for k, v in bucket_contents(c, "photos").items()} == \
               {k: v["etag"] for k, v in after.items()}
        assert again["bytes_after"] == report["bytes_after"]
        assert again["bytes_before"] == report["bytes_before"]
    assert again["resumed_from_journal"] == 0
    assert again["counts"]["already-container"] == report["counts"]["migrated"]


def test_dry_run_writes_nothing_and_estimates(moto_s3, tmp_path, capsys):
    objects = sample_objects()
    c = moto_s3.boto3_client()
    fill_bucket(c, "photos", "", objects)
    before = {k: v["etag"] for k, v in bucket_contents(c, "photos").items()}
    journal = tmp_path / "journal.jsonl"
    assert migrate(moto_s3, "s3://photos", "s3://photos", "--dry-run", "--sample", "10", "--json",
                   "--journal", str(journal)) == 0
    report = json.loads(capsys.readouterr().out)
    assert {k: v["etag"] for k, v in bucket_contents(c, "photos").items()} == before
    assert not journal.exists()
    assert report["sampled_objects"] == 10 and report["listed_objects"] == len(objects)
    assert report["listed_bytes"] == sum(len(v) for v in objects.values())
    assert 0 < report["estimated_bytes_after"] <= report["listed_bytes"]


@pytest.mark.parametrize("guard", ["if-match", "head-recheck"])
@pytest.mark.parametrize("change_retries", [0, 1])
def test_object_overwritten_by_another_client_is_not_clobbered(moto_s3, tmp_path, monkeypatch, guard,
                                                               change_retries):
    """Another client replaces a photo while it is being compressed: the new photo must survive."""
    objects = sample_objects()
    c = moto_s3.boto3_client()
    fill_bucket(c, "photos", "", objects)
    victim = sorted(jpeg_keys(objects))[5]
    newer = objects[sorted(jpeg_keys(objects))[6]] + b"edited"
    real_compress = jpegshrink.compress

    def racing_compress(data: bytes, **kw) -> bytes:
        if data == objects[victim]:
            c.put_object(Bucket="photos", Key=victim, Body=newer)  # the other client wins the race
        return real_compress(data, **kw)

    monkeypatch.setattr(jpegshrink, "compress", racing_compress)
    report_path = tmp_path / "r.json"
    rc = migrate(moto_s3, "s3://photos", "s3://photos", "--journal", str(tmp_path / "j"), "--replace-guard",
                 guard, "--change-retries", str(change_retries), "--report", str(report_path))
    report = json.loads(report_path.read_text())
    stored = c.get_object(Bucket="photos", Key=victim)["Body"].read()
    objects[victim] = newer
    check_all_recoverable(bucket_contents(c, "photos"), objects)  # includes: no staging copy left behind
    manifest = write_manifest(tmp_path / "manifest", objects)
    assert main_verify(["s3://photos", "--endpoint-url", moto_s3.url, "--manifest", str(manifest),
                        "--no-progress"]) == 0
    if change_retries == 0:
        assert rc == 1 and stored == newer
        assert [i["key"] for i in report["changed"]] == [victim]
    else:
        assert rc == 0 and jpegshrink.decompress(stored) == newer
    assert report["replace_guard"]["single"] == guard


def test_recovers_an_interrupted_in_place_replace(moto_s3, tmp_path):
    """A run died after replacing two sources but before deleting their staging copies; one of the
    replaced objects was then damaged. The next run restores it from its verified staging copy."""
    c = moto_s3.boto3_client()
    objects = {"a.jpg": sample_objects()["scikit-learn__flower.jpg"], "b.jpg": sample_objects()["kalzium-data__trichter.jpg"]}
    c.create_bucket(Bucket="photos")
    for key, data in objects.items():
        blob = jpegshrink.compress(data)
        c.put_object(Bucket="photos", Key=f"{STAGING_DIR}/{key}", Body=blob)
        c.put_object(Bucket="photos", Key=key, Body=blob if key == "a.jpg" else blob[:-1] + b"\x00")
    # a third run died after staging, and another client then replaced the source by a text file
    c.put_object(Bucket="photos", Key=f"{STAGING_DIR}/c.txt", Body=jpegshrink.compress(objects["a.jpg"]))
    c.put_object(Bucket="photos", Key="c.txt", Body=b"now a text")
    objects["c.txt"] = b"now a text"
    report = tmp_path / "r.json"
    assert migrate(moto_s3, "s3://photos", "s3://photos", "--journal", str(tmp_path / "j"),
                   "--report", str(report)) == 0
    assert json.loads(report.read_text())["counts"] == {"recovered": 2, "left": 1}
    check_all_recoverable(bucket_contents(c, "photos"), objects)  # also: the staging copies are gone


def test_big_objects_use_multipart(moto_s3, tmp_path):
    """A 1.7 MB container over a 1 MB threshold goes up as a multipart upload (ETag "...-N"), in place
    (moto: HEAD re-check, as it ignores If-Match on multipart completes) and copied."""
    rnd = hashlib.shake_256(b"seed").digest(1_600_000)
    big = sample_objects()["scikit-learn__flower.jpg"] + rnd + bytes(1_400_000)
    c = moto_s3.boto3_client()
    c.create_bucket(Bucket="photos")
    c.create_bucket(Bucket="copy")
    c.put_object(Bucket="photos", Key="big.jpg", Body=big)
    for dst in ("s3://copy", "s3://photos"):
        assert migrate(moto_s3, "s3://photos", dst, "--journal", str(tmp_path / dst[5:]),
                       "--multipart-threshold-mb", "1") == 0
        head = c.head_object(Bucket=dst[5:], Key="big.jpg")
        assert head["ETag"].strip('"').endswith("-1")  # one part: S3 parts are at least 5 MiB
        assert jpegshrink.decompress(c.get_object(Bucket=dst[5:], Key="big.jpg")["Body"].read()) == big


def test_local_folders_copy_and_in_place(tmp_path):
    objects = sample_objects()
    src, dst = tmp_path / "src", tmp_path / "dst"
    for key, data in objects.items():
        (src / key).parent.mkdir(parents=True, exist_ok=True)
        (src / key).write_bytes(data)
    dst.mkdir()
    for target in (dst, src):
        assert main_migrate([str(src), str(target), "--journal", str(tmp_path / f"{target.name}.j"),
                             "--no-progress"]) == 0
        files = {p.relative_to(target).as_posix(): p.read_bytes() for p in target.rglob("*") if p.is_file()}
        check_all_recoverable({k: {"data": v} for k, v in files.items()}, objects)
    manifest = write_manifest(tmp_path / "m", objects)
    assert main_verify([str(src), "--manifest", str(manifest), "--no-progress"]) == 0
    from jpegshrink.cli import main  # the way users reach it: jpegshrink verify ...
    assert main(["verify", str(src), "--manifest", str(manifest), "--no-progress"]) == 0
    (src / "notes/readme.txt").write_bytes(b"edited")
    assert main(["verify", str(src), "--manifest", str(manifest), "--no-progress"]) == 1


# ------------------------------------------------------------------------ errors that stop the job

def test_missing_bucket_is_one_clear_line(moto_s3, tmp_path, capsys):
    moto_s3.create_bucket("photos")
    journal = tmp_path / "j"
    assert migrate(moto_s3, "s3://photos", "s3://nope-missing", "--journal", str(journal)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bucket 'nope-missing' does not exist" in err and "Traceback" not in err
    assert not journal.exists()
    assert main_verify(["s3://nope-missing", "--endpoint-url", moto_s3.url, "--no-progress"]) == 2
    assert "bucket 'nope-missing' does not exist" in capsys.readouterr().err


def test_wrong_credentials_are_one_clear_line(moto_s3, tmp_path, capsys, monkeypatch):
    objects = {"a.jpg": sample_objects()["scikit-learn__flower.jpg"]}
    c = moto_s3.boto3_client()
    fill_bucket(c, "photos", "", objects)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")
    _moto_auth(moto_s3, "0")  # from now on moto checks credentials (it knows none)
    try:
        rc = migrate(moto_s3, "s3://photos", "s3://photos", "--journal", str(tmp_path / "j"))
        vrc = main_verify(["s3://photos", "--endpoint-url", moto_s3.url, "--no-progress"])
    finally:
        _moto_auth(moto_s3, "inf")
    assert rc == 2 and vrc == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all("denied" in line and "credentials" in line for line in lines)
    assert not (tmp_path / "j").exists()
    assert c.get_object(Bucket="photos", Key="a.jpg")["Body"].read() == objects["a.jpg"]
    assert [o["Key"] for o in c.list_objects_v2(Bucket="photos")["Contents"]] == ["a.jpg"]


def test_unreachable_endpoint_is_one_clear_line(tmp_path, capsys):
    (port,) = free_ports(1)
    rc = main_migrate(["s3://photos", "s3://photos", "--endpoint-url", f"http://127.0.0.1:{port}",
                       "--journal", str(tmp_path / "j"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "cannot reach the S3 endpoint" in err
    assert not (tmp_path / "j").exists()


def _moto_auth(endpoint, count: str) -> None:
    req = urllib.request.Request(f"{endpoint.url}/moto-api/reset-auth", data=count.encode(), method="POST",
                                 headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(req, timeout=10).close()


def test_overlapping_locations_are_refused(tmp_path, capsys):
    (tmp_path / "photos" / "out").mkdir(parents=True)
    rc = main_migrate([str(tmp_path / "photos"), str(tmp_path / "photos" / "out"), "--journal",
                       str(tmp_path / "j"), "--no-progress"])
    assert rc == 2 and "overlap" in capsys.readouterr().err and not (tmp_path / "j").exists()


def test_options_for_non_jpegs_and_fallbacks(tmp_path, capsys):
    objects = sample_objects()
    src, dst = tmp_path / "src", tmp_path / "dst"
    for key, data in objects.items():
        (src / key).parent.mkdir(parents=True, exist_ok=True)
        (src / key).write_bytes(data)
    dst.mkdir()
    assert main_migrate([str(src), str(dst), "--other", "leave", "--fallbacks", "keep-original", "--json",
                         "--journal", str(tmp_path / "j"), "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    files = {p.relative_to(dst).as_posix(): p.read_bytes() for p in dst.rglob("*") if p.is_file()}
    jpegs = jpeg_keys(objects)
    kept = {k for k in jpegs if _codec_gains_nothing(objects[k])}
    assert 0 < len(kept) < len(jpegs)  # the sample has both kinds (arithmetic-coded files always fall back)
    assert files.keys() == set(jpegs)  # non-JPEGs left out
    for key in jpegs:
        if key in kept:
            assert files[key] == objects[key]  # kept as it was
        else:
            assert jpegshrink.is_container(files[key]) and jpegshrink.decompress(files[key]) == objects[key]
    assert report["counts"] == {"migrated": len(jpegs) - len(kept), "kept-original": len(kept),
                                "left": len(objects) - len(jpegs)}
    assert all(i["reason"].startswith(("codec fell back", "no gain")) for i in report["kept-original"])


def _codec_gains_nothing(data: bytes) -> bool:
    blob = jpegshrink.compress(data)
    return jpegshrink.inspect(blob).mode == "fallback" or len(blob) >= len(data)


def test_throttling_and_dropped_connections_are_ridden_out(moto_s3, tmp_path, monkeypatch):
    """Every write is first refused with SlowDown and every read first fails on a reset connection."""
    from botocore.exceptions import ClientError, ConnectionClosedError
    from jpegshrink_storage.stores.s3 import S3Store

    objects = sample_objects()
    c = moto_s3.boto3_client()
    fill_bucket(c, "photos", "", objects)
    seen: set = set()

    def flaky(name, error):
        real = getattr(S3Store, name)

        def call(self, key, *args, **kwargs):
            if (name, key) not in seen:
                seen.add((name, key))
                raise error
            return real(self, key, *args, **kwargs)
        monkeypatch.setattr(S3Store, name, call)

    flaky("put", ClientError({"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "PutObject"))
    flaky("get", ConnectionClosedError(endpoint_url=moto_s3.url))
    report = tmp_path / "r.json"
    assert migrate(moto_s3, "s3://photos", "s3://photos", "--journal", str(tmp_path / "j"), "--report",
                   str(report)) == 0
    assert json.loads(report.read_text())["problems"] == 0
    assert any(name == "put" and key.startswith(STAGING_DIR) for name, key in seen)
    assert {("get", k) for k in objects} <= seen
    check_all_recoverable(bucket_contents(c, "photos"), objects)


def test_a_replaced_object_that_reads_back_wrong_gets_its_original_back(moto_s3, tmp_path, monkeypatch):
    """The store returns damaged bytes for the read-back after a replace: the original is put back, the
    object is reported failed, and the next run migrates it."""
    from jpegshrink_storage.stores.s3 import S3Store

    objects = {"a.jpg": sample_objects()["scikit-learn__flower.jpg"]}
    c = moto_s3.boto3_client()
    fill_bucket(c, "photos", "", objects)
    real_get = S3Store.get
    reads: list[str] = []

    def damaging_get(self, key, first=None):
        blob = real_get(self, key, first)
        reads.append(key)
        if key == "a.jpg" and reads.count("a.jpg") == 3:  # ranged GET, GET, then the read-back after replace
            return type(blob)(blob.data[:-1] + b"\x00", blob.etag, blob.metadata, blob.content_type, blob.size)
        return blob

    monkeypatch.setattr(S3Store, "get", damaging_get)
    report = tmp_path / "r.json"
    args = ("s3://photos", "s3://photos", "--journal", str(tmp_path / "j"), "--report", str(report))
    assert migrate(moto_s3, *args) == 1
    failed = json.loads(report.read_text())["failed"]
    assert [f["key"] for f in failed] == ["a.jpg"] and "differs from what was written" in failed[0]["reason"]
    assert c.get_object(Bucket="photos", Key="a.jpg")["Body"].read() == objects["a.jpg"]
    monkeypatch.setattr(S3Store, "get", real_get)
    assert migrate(moto_s3, *args) == 0
    check_all_recoverable(bucket_contents(c, "photos"), objects)


def test_read_only_credentials_stop_before_anything_is_written(moto_s3, tmp_path, capsys, monkeypatch):
    import boto3

    objects = {"a.jpg": sample_objects()["scikit-learn__flower.jpg"]}
    c = moto_s3.boto3_client()
    fill_bucket(c, "photos", "", objects)
    iam = boto3.client("iam", endpoint_url=moto_s3.url, region_name="us-east-1")
    iam.create_user(UserName="reader")
    iam.put_user_policy(UserName="reader", PolicyName="read", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetObject"], "Resource": "*"}]}))
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_SECURITY_TOKEN", raising=False)
    _moto_auth(moto_s3, "0")
    try:
        rc = migrate(moto_s3, "s3://photos", "s3://photos", "--journal", str(tmp_path / "j"))
    finally:
        _moto_auth(moto_s3, "inf")
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "denied (AccessDenied)" in err
    assert not (tmp_path / "j").exists()
    assert [o["Key"] for o in c.list_objects_v2(Bucket="photos")["Contents"]] == ["a.jpg"]
