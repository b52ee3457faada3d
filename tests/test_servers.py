"""The reusable S3 test servers start on 127.0.0.1, hold data, reset, and stop without leftovers."""
from __future__ import annotations

import pytest

from servers import S3Endpoint, moto_s3, moto_endpoint, seaweedfs_endpoint, seaweedfs_s3  # noqa: F401


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
