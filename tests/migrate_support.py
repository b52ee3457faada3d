"""Helpers shared by the migrate/verify tests: a bucket filled with the committed sample, CLI runs."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

SAMPLE_DIR = Path(__file__).parent / "data" / "sample"
REPO = Path(__file__).resolve().parent.parent
#: Non-JPEG objects that sit beside the photos: text, a PNG signature, an empty object, a "fake" .jpg.
OTHER_FILES = {
    "notes/readme.txt": b"holiday photos, do not delete\n",
    "icon.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
    "empty.bin": b"",
    "not-really.jpg": b"GIF89a" + b"\x00" * 100,
}


def sample_objects() -> dict[str, bytes]:
    """Every committed sample JPEG (two of them under a sub-folder) plus the non-JPEG files."""
    objects = {}
    for i, path in enumerate(sorted(SAMPLE_DIR.glob("*.jpg"))):
        key = f"sub/{path.name}" if i < 2 else path.name
        objects[key] = path.read_bytes()
    objects["ünïcode dir/photo #1 (copy).jpg"] = objects[key]  # a name that needs quoting everywhere
    objects.update(OTHER_FILES)
    return objects


def jpeg_keys(objects: dict[str, bytes]) -> set[str]:
    return {k for k, v in objects.items() if v[:3] == b"\xff\xd8\xff"}


def fill_bucket(client, bucket: str, prefix: str, objects: dict[str, bytes]) -> None:
    client.create_bucket(Bucket=bucket)
    for key, data in objects.items():
        content_type = "image/jpeg" if key.endswith(".jpg") else "application/octet-stream"
        client.put_object(Bucket=bucket, Key=prefix + key, Body=data, ContentType=content_type)


def bucket_contents(client, bucket: str, prefix: str = "") -> dict[str, dict]:
    """key (relative to prefix) -> {"etag", "size", "data"} for every object."""
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            out[obj["Key"][len(prefix):]] = {"etag": obj["ETag"], "size": obj["Size"], "data": body}
    return out


def write_manifest(path: Path, objects: dict[str, bytes]) -> Path:
    """sha256sum-style manifest of the originals."""
    path.write_text("".join(f"{hashlib.sha256(v).hexdigest()}  {k}\n" for k, v in objects.items()))
    return path


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "plugins"), env.get("PYTHONPATH", "")])
    return env


def run_migrate_process(args: list[str], *, prelude: str = "", timeout: float = 120) -> subprocess.CompletedProcess:
    """``main_migrate(args)`` in a fresh Python process; ``prelude`` runs first (fault injection)."""
    code = (f"import sys\n{prelude}\nfrom jpegshrink_storage.jobs.migrate import main_migrate\n"
            f"sys.exit(main_migrate({args!r}))\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          env=subprocess_env(), cwd=REPO)


#: Runs before main_migrate in the child: SIGKILL the process right after the n-th call of a method
#: whose first argument matches; the call itself has completed (its effect is in the store/journal).
KILL_AFTER = '''
import os, signal
from jpegshrink_storage.names import STAGING_DIR
from jpegshrink_storage.stores.s3 import S3Store
from jpegshrink_storage.jobs.journal import Journal
_cls, _name, _match, _nth = {cls}, {name!r}, {match!r}, {nth}
_calls = [0]
_orig = getattr(_cls, _name)
def _patched(self, *args, **kwargs):
    out = _orig(self, *args, **kwargs)
    first = args[0] if args else ""
    key = first.get("key", "") if isinstance(first, dict) else first
    if _match == "any" or (_match == "staging") == key.startswith(STAGING_DIR + "/"):
        _calls[0] += 1
        if _calls[0] == _nth:
            os.kill(os.getpid(), signal.SIGKILL)
    return out
setattr(_cls, _name, _patched)
'''
