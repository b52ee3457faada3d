"""The reusable S3 test servers start on 127.0.0.1, hold data, reset, and stop without leftovers."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tools.s3servers import S3Endpoint


@pytest.mark.parametrize("server", ["moto_s3", "seaweedfs_s3"])
def test_server_round_trip_and_reset(server, request):
    endpoint: S3Endpoint = request.getfixturevalue(server)
    assert endpoint.url.startswith("http://127.0.0.1:")
    endpoint.create_bucket("photos")
    fs = endpoint.s3fs()
    fs.pipe_file("photos/dir/a.bin", b"\xff\xd8hello")
    assert fs.cat_file("photos/dir/a.bin", start=2, end=5) == b"hel"
    assert endpoint.boto3_client().get_object(Bucket="photos", Key="dir/a.bin")["Body"].read() == b"\xff\xd8hello"
    endpoint.reset()
    assert endpoint.boto3_client().list_buckets()["Buckets"] == []


def test_seaweedfs_leaves_nothing_in_the_temp_folder(seaweedfs_s3):
    """weed puts its unix sockets (seaweedfs-s3-<port>.sock, ...) and logs in /tmp unless told otherwise."""
    port = seaweedfs_s3.url.rsplit(":", 1)[1]
    leftovers = [p.name for folder in {Path("/tmp"), Path(tempfile.gettempdir())} if folder.is_dir()
                 for p in folder.iterdir() if p.name.startswith("seaweedfs-") and p.name.endswith(f"-{port}.sock")]
    assert leftovers == []
