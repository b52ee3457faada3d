"""jpegshrink verify finds every kind of damage it claims to, and only that."""
from __future__ import annotations

import hashlib
import json

import pytest

import jpegshrink
from jpegshrink_storage.jobs import metadata as om
from jpegshrink_storage.jobs.migrate import main_migrate
from jpegshrink_storage.jobs.verify import in_sample, main_verify, read_manifest
from migrate_support import fill_bucket, jpeg_keys, sample_objects, write_manifest


def verify(endpoint, *args: str) -> int:
    return main_verify([*args, "--endpoint-url", endpoint.url, "--no-progress", "--json"])


@pytest.fixture
def migrated_bucket(moto_s3, tmp_path):
    objects = sample_objects()
    c = moto_s3.boto3_client()
    fill_bucket(c, "photos", "", objects)
    assert main_migrate(["s3://photos", "s3://photos", "--endpoint-url", moto_s3.url, "--no-progress",
                         "--journal", str(tmp_path / "j")]) == 0
    containers = sorted(k for k in jpeg_keys(objects)
                        if jpegshrink.is_container(c.get_object(Bucket="photos", Key=k, Range="bytes=0-63")["Body"].read()))
    return c, objects, containers


def test_damage_of_every_kind_is_reported(moto_s3, migrated_bucket, tmp_path, capsys):
    c, objects, containers = migrated_bucket
    manifest = write_manifest(tmp_path / "manifest", objects)
    assert verify(moto_s3, "s3://photos", "--manifest", str(manifest)) == 0
    clean = json.loads(capsys.readouterr().out)
    assert clean["counts"]["ok"] == len(containers) and clean["ok"]

    def rewrite(key, body=None, **meta_changes):
        obj = c.get_object(Bucket="photos", Key=key)
        meta = {**obj["Metadata"], **meta_changes}
        c.put_object(Bucket="photos", Key=key, Body=obj["Body"].read() if body is None else body, Metadata=meta)

    flipped, truncated, bad_meta, unwrapped, deleted = containers[:5]
    blob = c.get_object(Bucket="photos", Key=flipped)["Body"].read()
    rewrite(flipped, blob[:200] + bytes([blob[200] ^ 1]) + blob[201:])
    rewrite(truncated, c.get_object(Bucket="photos", Key=truncated)["Body"].read()[:-100])
    rewrite(bad_meta, **{om.ORIGINAL_SHA256: "0" * 64})
    rewrite(unwrapped, objects[unwrapped])  # plain JPEG again, but the metadata still claims a container
    c.delete_object(Bucket="photos", Key=deleted)
    c.put_object(Bucket="photos", Key="notes/readme.txt", Body=b"tampered")

    report_file = tmp_path / "report.json"
    assert verify(moto_s3, "s3://photos", "--manifest", str(manifest), "--report", str(report_file)) == 1
    report = json.loads(report_file.read_text())
    printed = json.loads(capsys.readouterr().out)
    timing = {"elapsed_s", "objects_per_s", "mb_per_s"}
    assert {k: v for k, v in printed.items() if k not in timing} == {k: v for k, v in report.items() if k not in timing}
    keys = {name: sorted(i["key"] for i in report[name])
            for name in ("corrupt", "undecodable", "mismatch", "missing", "failed")}
    assert keys == {"corrupt": sorted([flipped, truncated, unwrapped]), "undecodable": [],
                    "mismatch": sorted([bad_meta, "notes/readme.txt"]), "missing": [deleted], "failed": []}
    assert report["ok"] is False
    assert report["counts"]["ok"] == len(containers) - 5

    # without a manifest the deleted object and the edited text file cannot be known as problems
    assert verify(moto_s3, "s3://photos") == 1
    report = json.loads(capsys.readouterr().out)
    assert sorted(i["key"] for i in report["mismatch"]) == [bad_meta] and report["missing"] == []


def test_sample_is_a_stable_fraction(moto_s3, migrated_bucket, capsys):
    c, objects, _ = migrated_bucket
    runs = []
    for _ in range(2):
        assert verify(moto_s3, "s3://photos", "--sample", "0.3", "--seed", "7") == 0
        runs.append(json.loads(capsys.readouterr().out)["checked_objects"])
    expected = sum(in_sample(k, 0.3, 7) for k in objects)
    assert runs == [expected, expected] and 0 < expected < len(objects)


def test_manifest_formats(tmp_path):
    tsv = tmp_path / "m.tsv"
    tsv.write_text("name\tbytes\tsha256\na.jpg\t3\tABCD\n")
    assert read_manifest(tsv) == {"a.jpg": "abcd"}
    sums = tmp_path / "m.sha256"
    sums.write_text("abcd  dir/b c.jpg\nef01 *x.bin\n")
    assert read_manifest(sums) == {"dir/b c.jpg": "abcd", "x.bin": "ef01"}


def test_missing_manifest_file_is_a_clear_error(moto_s3, tmp_path, capsys):
    moto_s3.create_bucket("photos")
    assert verify(moto_s3, "s3://photos", "--manifest", str(tmp_path / "nope")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read the manifest" in err


def test_a_container_from_a_newer_jpegshrink_is_undecodable_not_corrupt(moto_s3, capsys):
    from jpegshrink.coding import container  # test-only: forge what a future model would write

    original = sample_objects()["scikit-learn__flower.jpg"]
    future = container.pack(container.Container(container.Mode.JPEG, len(original),
                                                hashlib.sha256(original).digest(), "model-from-the-future"))
    c = moto_s3.boto3_client()
    c.create_bucket(Bucket="photos")
    c.put_object(Bucket="photos", Key="a.jpg", Body=future)
    assert verify(moto_s3, "s3://photos") == 1
    report = json.loads(capsys.readouterr().out)
    assert report["counts"] == {"undecodable": 1} and "UnknownModel" in report["undecodable"][0]["reason"]
