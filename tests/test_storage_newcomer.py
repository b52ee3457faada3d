"""migrate/verify as a new user met them: a resume that trusted its journal over the stores, local jobs that
needed boto, a destination folder that had to exist, a re-run that listed files again, verify's negative
saving, and files written 0600."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import fsspec
import pytest

import jpegshrink
from jpegshrink_storage.jobs.migrate import main_migrate
from jpegshrink_storage.jobs.verify import main_verify
from migrate_support import REPO, bucket_contents, fill_bucket, sample_objects, subprocess_env


@pytest.fixture(scope="module")
def shrinkable() -> dict[str, bytes]:
    """Three sample JPEGs whose containers are smaller (so they are migrated, not kept)."""
    jpegs = {k: v for k, v in sorted(sample_objects().items()) if v[:3] == b"\xff\xd8\xff" and "/" not in k}
    return dict([(k, v) for k, v in jpegs.items() if len(jpegshrink.compress(v)) < len(v)][:3])


def _run(args: list[str], capsys) -> tuple[int, dict]:
    rc = main_migrate([*args, "--no-progress", "--json"])
    return rc, json.loads(capsys.readouterr().out)


def test_resume_redoes_what_another_client_restored_in_place(moto_s3, tmp_path, capsys, shrinkable):
    """Migrated, then put back to the original bytes by another client: S3 gives it the very ETag the
    journal recorded for the source. The next run must look at what the key holds now."""
    c = moto_s3.boto3_client()
    fill_bucket(c, "photos", "", shrinkable)
    args = ["s3://photos", "s3://photos", "--endpoint-url", moto_s3.url, "--journal", str(tmp_path / "j")]
    assert _run(args, capsys)[0] == 0
    restored = next(iter(shrinkable))
    c.put_object(Bucket="photos", Key=restored, Body=shrinkable[restored])
    rc, report = _run(args, capsys)
    assert rc == 0
    assert report["counts_this_run"] == {"migrated": 1} and report["resumed_from_journal"] == len(shrinkable) - 1
    data = c.get_object(Bucket="photos", Key=restored)["Body"].read()
    assert jpegshrink.is_container(data) and jpegshrink.decompress(data) == shrinkable[restored]


def test_resume_redoes_what_is_gone_or_replaced_at_the_destination(moto_s3, tmp_path, capsys, shrinkable):
    c = moto_s3.boto3_client()
    fill_bucket(c, "photos", "", shrinkable)
    c.create_bucket(Bucket="archive")
    args = ["s3://photos", "s3://archive", "--endpoint-url", moto_s3.url, "--journal", str(tmp_path / "j")]
    assert _run(args, capsys)[0] == 0
    deleted, replaced, kept = list(shrinkable)
    c.delete_object(Bucket="archive", Key=deleted)
    c.put_object(Bucket="archive", Key=replaced, Body=shrinkable[replaced])
    rc, report = _run(args, capsys)
    assert rc == 0 and report["counts_this_run"] == {"migrated": 2}
    assert report["counts"] == {"migrated": 3}
    stored = bucket_contents(c, "archive")
    assert {k: jpegshrink.decompress(v["data"]) for k, v in stored.items()} == shrinkable
    # journal lost: the destination is checked object by object, and that is not reported as work done now
    rc, report = _run([*args[:-1], str(tmp_path / "fresh")], capsys)
    assert rc == 0 and report["counts"] == {"migrated": 3} and report["processed_this_run"] == 0


def test_into_a_new_folder_then_a_rerun_says_nothing_to_do(tmp_path, capsys, shrinkable):
    """The destination folder is made (as cp -r and rsync do); files get the umask's mode; a re-run is a
    summary, not the earlier run's per-object lines again."""
    src = tmp_path / "src"
    src.mkdir()
    for name, data in shrinkable.items():
        (src / name).write_bytes(data)
    (src / "no-gain.jpg").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(3000))  # kept as it is, itemised
    dst = tmp_path / "new" / "deeper"
    args = [str(src), str(dst), "--journal", str(tmp_path / "j"), "--no-progress"]
    assert main_migrate([*args, "--dry-run"]) == 0 and not dst.exists()  # a dry run writes nothing
    assert main_migrate(args) == 0
    first = capsys.readouterr().out
    assert "no-gain.jpg" in first  # the run that kept it says so
    umask = os.umask(0o022)
    os.umask(umask)
    for name, data in shrinkable.items():
        assert jpegshrink.decompress((dst / name).read_bytes()) == data
        assert (dst / name).stat().st_mode & 0o777 == 0o666 & ~umask
    assert main_migrate(args) == 0
    again = capsys.readouterr().out
    assert "this run: nothing to do" in again and f"done by earlier runs: {len(shrinkable) + 1}" in again
    assert not any(name in again for name in [*shrinkable, "no-gain.jpg"])


_NO_BOTO = '''
import json, sys
class _NoBoto:  # as if only `pip install jpegshrink` had run: no s3 or dask extra
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("boto3", "botocore", "s3fs", "aiobotocore", "distributed"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _NoBoto())
from jpegshrink.cli import main
codes = [main(argv) for argv in json.loads(sys.argv[1])]
print("exit codes:", json.dumps(codes))
'''


def test_local_jobs_need_no_boto_and_s3_names_the_extra(tmp_path, shrinkable):
    src = tmp_path / "src"
    src.mkdir()
    for name, data in shrinkable.items():
        (src / name).write_bytes(data)
    commands = [["migrate", str(src), str(tmp_path / "dst"), "--journal", str(tmp_path / "j"), "--no-progress"],
                ["verify", str(tmp_path / "dst"), "--no-progress"],
                ["migrate", "s3://photos", "s3://photos", "--no-progress", "--journal", str(tmp_path / "j2")],
                ["verify", str(tmp_path / "dst"), "--dask", "tcp://127.0.0.1:9", "--no-progress"]]
    done = subprocess.run([sys.executable, "-c", _NO_BOTO, json.dumps(commands)], capture_output=True, text=True,
                          env=subprocess_env(), cwd=REPO, timeout=300)
    assert done.stdout.strip().splitlines()[-1] == "exit codes: [0, 0, 2, 2]", done.stderr
    assert done.stderr.strip().splitlines() == [
        "jpegshrink migrate: error: s3:// locations needs the 's3' extra (No module named 'boto3'); "
        "pip install 'jpegshrink[s3]'",
        "jpegshrink verify: error: --dask needs the 'dask' extra (No module named 'distributed'); "
        "pip install 'jpegshrink[dask]'"]


def test_verify_totals_leave_out_what_does_not_decode(tmp_path, capsys, shrinkable):
    """A corrupt container has no known original size: counting its stored bytes alone made the saving
    negative. The totals cover the objects that decode; the problems are listed apart."""
    good, bad = list(shrinkable)[:2]
    (tmp_path / good).write_bytes(container := jpegshrink.compress(shrinkable[good]))
    damaged = bytearray(jpegshrink.compress(shrinkable[bad]))
    damaged[len(damaged) // 2] ^= 0xFF
    (tmp_path / bad).write_bytes(bytes(damaged))
    assert main_verify([str(tmp_path), "--no-progress", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["counts"] == {"ok": 1, "corrupt": 1}
    assert (report["bytes_before"], report["bytes_after"]) == (len(shrinkable[good]), len(container))
    assert report["bytes_saved"] > 0 and [i["key"] for i in report["corrupt"]] == [bad]


def test_endpoint_from_the_environment_or_a_profile(moto_s3, tmp_path, monkeypatch, capsys, shrinkable):
    """What docs/storage.md promises: AWS_ENDPOINT_URL (boto3 and s3fs alike) or a profile with its own
    endpoint_url and keys, instead of --endpoint-url and key variables."""
    c = moto_s3.boto3_client()
    fill_bucket(c, "photos", "", shrinkable)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_s3.url)
    assert main_migrate(["s3://photos", "s3://photos", "--journal", str(tmp_path / "j1"), "--no-progress"]) == 0
    with fsspec.open("jpegshrink::s3://photos/" + next(iter(shrinkable)), "rb") as f:
        assert f.read() == next(iter(shrinkable.values()))
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    (tmp_path / "config").write_text(f"[profile lab]\nregion = us-east-1\nendpoint_url = {moto_s3.url}\n")
    (tmp_path / "credentials").write_text("[lab]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    capsys.readouterr()
    assert main_verify(["s3://photos", "--profile", "lab", "--no-progress", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"] == {"ok": len(shrinkable)}
