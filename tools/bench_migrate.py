"""Throughput of ``jpegshrink migrate`` (in place) and ``jpegshrink verify`` against a local SeaweedFS.

For each configuration (1, 2, 4 threads; a 2-worker Dask LocalCluster) a fresh bucket is filled with the
same JPEGs (not timed), migrated in place, then verified completely; the figures are the jobs' own
reports (objects/s; MB/s of original bytes). The codec in use is printed: while no coefficient model is
registered, every container is a zstd fallback, so rerun this when main has its model.

    python3 tools/bench_migrate.py [--files DIR] [--limit N] [--configs 1,2,4,dask2] [--json OUT]

Run it on an otherwise idle machine; SeaweedFS, the job and (for Dask) its workers share the cores.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

import jpegshrink  # noqa: E402
from jpegshrink_storage.jobs.migrate import MigrateOptions, run_migration  # noqa: E402
from jpegshrink_storage.jobs.verify import run_verify  # noqa: E402
from jpegshrink_storage.stores import StoreConfig  # noqa: E402
from tools.s3servers import seaweedfs_server  # noqa: E402

DEFAULT_FILES = Path("/work/corpus/public")


def codec_description() -> str:
    from jpegshrink import model

    default = model.DEFAULT_MODEL_ID
    return (f"jpegshrink {jpegshrink.__version__}, default model {default or 'none (every container is a zstd fallback)'}"
            f", models known: {', '.join(model.registered_ids()) or 'none'}")


def run_config(endpoint, files: list[Path], name: str, workers: int, dask: str | None) -> dict:
    client = endpoint.boto3_client()
    bucket = f"bench-{name}".replace("_", "-")
    client.create_bucket(Bucket=bucket)
    for path in files:
        client.put_object(Bucket=bucket, Key=path.name, Body=path.read_bytes(), ContentType="image/jpeg")
    config = StoreConfig(f"s3://{bucket}", endpoint_url=endpoint.url, max_connections=max(10, 2 * workers))
    with tempfile.TemporaryDirectory() as tmp:
        migrate = run_migration(MigrateOptions(config, config, journal=Path(tmp) / "journal.jsonl", workers=workers,
                                               dask=dask, progress=False)).to_dict()
    verify = run_verify(config, workers=workers, dask=dask, progress=False).to_dict()
    assert migrate["ok"] and verify["ok"], (migrate["failed"], verify)
    endpoint.reset()
    return {"config": name, "objects": migrate["objects"], "bytes_before": migrate["bytes_before"],
            "bytes_after": migrate["bytes_after"], "counts": migrate["counts"],
            "migrate_s": migrate["elapsed_s"], "migrate_objects_per_s": migrate["objects_per_s"],
            "migrate_mb_per_s": migrate["mb_per_s"], "verify_s": verify["elapsed_s"],
            "verify_objects_per_s": verify["objects_per_s"], "verify_mb_per_s": verify["mb_per_s"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=Path, default=DEFAULT_FILES if DEFAULT_FILES.is_dir() else ROOT / "tests/data/sample")
    p.add_argument("--limit", type=int, default=150, help="first N JPEGs (sorted by name) of --files")
    p.add_argument("--configs", default="1,2,4,dask2", help="thread counts and daskN (N worker processes)")
    p.add_argument("--json", type=Path, help="write the results here too")
    args = p.parse_args()
    files = sorted(args.files.glob("*.jpg"))[:args.limit]
    total = sum(f.stat().st_size for f in files)
    print(f"# {len(files)} JPEGs from {args.files}, {total / 1e6:.1f} MB; {codec_description()}")
    print(f"# {platform.node()} {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    results = []
    with seaweedfs_server() as endpoint:
        for key in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):  # SeaweedFS refuses requests carrying these
            os.environ.pop(key, None)
        for name in args.configs.split(","):
            if name.startswith("dask"):
                from distributed import LocalCluster

                with LocalCluster(n_workers=int(name[4:]), processes=True, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
                    results.append(run_config(endpoint, files, name, int(name[4:]), cluster.scheduler_address))
            else:
                results.append(run_config(endpoint, files, f"threads{name}", int(name), None))
            r = results[-1]
            print(f"| {r['config']} | {r['objects']} | {r['migrate_objects_per_s']:.1f} | {r['migrate_mb_per_s']:.2f} "
                  f"| {r['verify_objects_per_s']:.1f} | {r['verify_mb_per_s']:.2f} "
                  f"| {100 * (1 - r['bytes_after'] / r['bytes_before']):.2f} % |", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"codec": codec_description(), "files": str(args.files),
                                         "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
