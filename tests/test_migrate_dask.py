"""migrate and verify on a Dask LocalCluster (2 worker processes): same results, journal and report."""
from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

import jpegshrink
from jpegshrink_storage.jobs.executors import partition
from jpegshrink_storage.jobs.migrate import main_migrate
from jpegshrink_storage.jobs.verify import main_verify
from migrate_support import bucket_contents, fill_bucket, jpeg_keys, sample_objects, write_manifest
from tools.s3servers import dummy_aws_env, free_ports

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def dask_cluster():
    with dummy_aws_env():  # the worker processes inherit the dummy credentials
        cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                                           dashboard_address=None)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def dask_scheduler(dask_cluster):
    return dask_cluster.scheduler_address


def test_migrate_and_verify_on_dask(moto_s3, dask_scheduler, tmp_path, capsys):
    objects = sample_objects()
    c = moto_s3.boto3_client()
    fill_bucket(c, "photos", "in/", objects)
    c.create_bucket(Bucket="archive")
    common = ["--endpoint-url", moto_s3.url, "--dask", dask_scheduler, "--no-progress", "--json"]
    journal = tmp_path / "journal.jsonl"
    assert main_migrate(["s3://photos/in", "s3://archive", "--journal", str(journal), *common]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["workers"] == f"dask {dask_scheduler}"
    assert report["objects"] == len(objects) and report["failed"] == []
    counts = report["counts"]
    assert counts.get("migrated", 0) + counts.get("kept-original", 0) == len(jpeg_keys(objects))
    assert counts["copied"] == len(objects) - len(jpeg_keys(objects))
    dst = bucket_contents(c, "archive")
    assert report["bytes_after"] == sum(v["size"] for v in dst.values())
    for key, original in objects.items():
        data = dst[key]["data"]
        assert (jpegshrink.decompress(data) if jpegshrink.is_container(data) else data) == original
    # the driver journaled every result the workers returned: a second run has nothing to do
    assert len(journal.read_text().splitlines()) == 1 + len(objects)
    assert main_migrate(["s3://photos/in", "s3://archive", "--journal", str(journal), *common]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["resumed_from_journal"] == len(objects) and again["processed_this_run"] == 0
    assert again["bytes_after"] == report["bytes_after"]

    manifest = write_manifest(tmp_path / "manifest", objects)
    assert main_verify(["s3://archive", "--manifest", str(manifest), *common]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["ok"] == counts["migrated"]
    victim = sorted(k for k in dst if jpegshrink.is_container(dst[k]["data"]))[0]
    c.put_object(Bucket="archive", Key=victim, Body=dst[victim]["data"][:-1])
    assert main_verify(["s3://archive", "--manifest", str(manifest), *common]) == 1
    assert [i["key"] for i in json.loads(capsys.readouterr().out)["corrupt"]] == [victim]


def test_in_place_on_dask(moto_s3, dask_scheduler, tmp_path, capsys):
    objects = sample_objects()
    c = moto_s3.boto3_client()
    fill_bucket(c, "photos", "", objects)
    assert main_migrate(["s3://photos", "s3://photos", "--journal", str(tmp_path / "j"), "--endpoint-url",
                         moto_s3.url, "--dask", dask_scheduler, "--no-progress", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["counts"]["left"] == len(objects) - len(jpeg_keys(objects))
    stored = bucket_contents(c, "photos")
    assert set(stored) == set(objects)  # no staging copies left
    for key, original in objects.items():
        data = stored[key]["data"]
        assert (jpegshrink.decompress(data) if jpegshrink.is_container(data) else data) == original


def test_unreachable_scheduler_is_one_clear_line(moto_s3, tmp_path, capsys):
    moto_s3.create_bucket("photos")
    (port,) = free_ports(1)
    rc = main_migrate(["s3://photos", "s3://photos", "--journal", str(tmp_path / "j"), "--endpoint-url",
                       moto_s3.url, "--dask", f"tcp://127.0.0.1:{port}", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "cannot reach the Dask scheduler" in err
    assert not (tmp_path / "j").exists()


def test_partition_covers_the_key_space_in_contiguous_ranges():
    keys = [f"k{i:04d}" for i in range(1003)]
    for workers in (1, 2, 7):
        ranges = partition(keys, workers)
        assert [k for r in ranges for k in r] == keys
        assert len(ranges) >= min(len(keys), 4 * workers) and max(map(len, ranges)) <= 200
    assert partition([], 2) == [] and partition(["a"], 4) == [["a"]]


def test_a_worker_killed_mid_run_loses_nothing(moto_s3, dask_cluster, tmp_path, capsys):
    """SIGKILL one worker process while ranges are in flight: Dask reruns its range elsewhere, and the
    per-object steps are idempotent, so the in-place job still ends complete and verified."""
    base = sample_objects()
    objects = {f"{i}/{k}": v for i in range(3) for k, v in base.items()}
    c = moto_s3.boto3_client()
    fill_bucket(c, "photos", "", objects)
    journal = tmp_path / "journal.jsonl"
    args = ["s3://photos", "s3://photos", "--journal", str(journal), "--endpoint-url", moto_s3.url,
            "--dask", dask_cluster.scheduler_address, "--no-progress", "--json"]
    rc = []
    job = threading.Thread(target=lambda: rc.append(main_migrate(args)))
    job.start()
    deadline = time.monotonic() + 60
    while not (journal.exists() and journal.read_bytes().count(b"\n") >= 2) and time.monotonic() < deadline:
        time.sleep(0.005)
    pids = [n.process.process.pid for n in dask_cluster.workers.values()]
    os.kill(pids[0], signal.SIGKILL)
    job.join(120)
    report = json.loads(capsys.readouterr().out)
    assert rc == [0], report["failed"]
    assert report["objects"] == len(objects) and report["processed_this_run"] == len(objects)
    manifest = write_manifest(tmp_path / "manifest", objects)
    assert main_verify(["s3://photos", "--manifest", str(manifest), "--endpoint-url", moto_s3.url,
                        "--no-progress"]) == 0
    stored = bucket_contents(c, "photos")
    assert set(stored) == set(objects)  # no staging copies left
    dask_cluster.wait_for_workers(2, timeout=60)
