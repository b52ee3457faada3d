"""Benchmark the jpegshrink:: storage layer against reading the raw JPEGs from the same target.

For each target (local disk, moto, SeaweedFS) it stores the same JPEGs twice: as they are, and as the
containers ``jpegshrink.compress`` makes (whatever codec is installed: say which in the figures). Then:

* read throughput: every object read whole, raw (``target.cat_file``) vs through the layer
  (``layer.cat_file`` and ``layer.open().read()``), in MB/s of ORIGINAL bytes, best of ``--repeat``;
* ``ls`` of a folder of ``--objects`` containers: raw target listing, the layer cold (header reads),
  the layer warm (header cache);
* ``info`` of one object: raw, layer cold, layer warm (mean of 50 calls).

Usage: PYTHONPATH=.:plugins nice python3 tools/bench_storage.py [--files 100] [--objects 1000]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import jpegshrink
from fsspec.implementations.local import LocalFileSystem

sys.path.insert(0, str(Path(__file__).resolve().parent))
from s3servers import moto_server, seaweedfs_server, weed_binary  # noqa: E402

from jpegshrink_storage import JpegShrinkFileSystem  # noqa: E402

DEFAULT_CORPUS = Path("/work/corpus/public")


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def mean_of(n: int, fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def bench_target(name: str, target, root: str, originals: dict[str, bytes], containers: dict[str, bytes],
                 n_objects: int, repeat: int) -> list[str]:
    raw_paths = [f"{root}/raw/{k}" for k in originals]
    enc_paths = [f"{root}/enc/{k}" for k in originals]
    target.pipe({p: originals[k] for p, k in zip(raw_paths, originals)})
    target.pipe({p: containers[k] for p, k in zip(enc_paths, originals)})
    blobs = list(containers.values())
    many = {f"{root}/many/{i:05d}.jpg": blobs[i % len(blobs)] for i in range(n_objects)}
    target.pipe(many)
    total = sum(map(len, originals.values()))

    def fresh() -> JpegShrinkFileSystem:
        target.invalidate_cache()
        return JpegShrinkFileSystem(fs=target, skip_instance_cache=True)

    layer = fresh()
    assert all(layer.cat_file(p) == originals[k] for p, k in zip(enc_paths, originals))
    t_raw = best_of(repeat, lambda: [target.cat_file(p) for p in raw_paths])
    t_cat = best_of(repeat, lambda: [layer.cat_file(p) for p in enc_paths])

    def open_read(fs, paths) -> None:
        for p in paths:
            with fs.open(p, "rb") as f:
                f.read()
    t_raw_open = best_of(repeat, lambda: (target.invalidate_cache(), open_read(target, raw_paths)))
    t_open = best_of(repeat, lambda: open_read(layer, enc_paths))
    t_pass = best_of(repeat, lambda: [layer.cat_file(p) for p in raw_paths])

    folder = f"{root}/many"
    t_ls_raw = best_of(repeat, lambda: (target.invalidate_cache(), target.ls(folder, detail=True)))
    t_ls_cold = best_of(repeat, lambda: fresh().ls(folder, detail=True))
    warm = fresh()
    warm.ls(folder, detail=True)
    t_ls_warm = best_of(repeat, lambda: (target.invalidate_cache(), warm.ls(folder, detail=True)))

    one = enc_paths[0]
    t_info_raw = mean_of(50, lambda: (target.invalidate_cache(), target.info(one)))
    t_info_cold = mean_of(50, lambda: fresh().info(one))
    warm.info(one)
    t_info_warm = mean_of(50, lambda: (target.invalidate_cache(), warm.info(one)))

    mb = total / 1e6
    return [
        f"| {name} | read whole, raw JPEGs (`target.cat_file`) | {mb / t_raw:.1f} MB/s |",
        f"| {name} | read whole, containers (`layer.cat_file`) | {mb / t_cat:.1f} MB/s |",
        f"| {name} | read whole, raw JPEGs (`target.open().read()`) | {mb / t_raw_open:.1f} MB/s |",
        f"| {name} | read whole, containers (`layer.open().read()`) | {mb / t_open:.1f} MB/s |",
        f"| {name} | read whole, raw JPEGs through the layer (pass-through) | {mb / t_pass:.1f} MB/s |",
        f"| {name} | `ls` {n_objects} objects: raw target | {t_ls_raw * 1e3:.0f} ms |",
        f"| {name} | `ls` {n_objects} objects: layer, cold (header reads) | {t_ls_cold * 1e3:.0f} ms |",
        f"| {name} | `ls` {n_objects} objects: layer, warm (header cache) | {t_ls_warm * 1e3:.0f} ms |",
        f"| {name} | `info`: raw target | {t_info_raw * 1e3:.3f} ms |",
        f"| {name} | `info`: layer, cold | {t_info_cold * 1e3:.3f} ms |",
        f"| {name} | `info`: layer, warm | {t_info_warm * 1e3:.3f} ms |",
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS if DEFAULT_CORPUS.is_dir()
                   else Path(__file__).resolve().parent.parent / "tests" / "data" / "sample")
    p.add_argument("--files", type=int, default=100, help="JPEGs read in the throughput test")
    p.add_argument("--objects", type=int, default=1000, help="objects in the folder that `ls` lists")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--targets", default="local,moto,seaweedfs")
    args = p.parse_args(argv)

    files = sorted(args.corpus.glob("*.jpg"))[: args.files]
    originals = {f.name: f.read_bytes() for f in files}
    t0 = time.perf_counter()
    containers = {k: jpegshrink.compress(v) for k, v in originals.items()}
    t_enc = time.perf_counter() - t0
    orig_total, stored_total = sum(map(len, originals.values())), sum(map(len, containers.values()))
    modes = sorted({jpegshrink.inspect(b).mode for b in containers.values()})
    print(f"{len(files)} JPEGs from {args.corpus}: {orig_total / 1e6:.1f} MB, containers "
          f"{stored_total / 1e6:.1f} MB ({stored_total / orig_total:.3f}), container modes {modes}, "
          f"encode {orig_total / 1e6 / t_enc:.1f} MB/s", flush=True)

    rows = ["| target | measure | result |", "|---|---|---|"]
    targets = args.targets.split(",")
    if "local" in targets:
        with tempfile.TemporaryDirectory() as tmp:
            rows += bench_target("local", LocalFileSystem(auto_mkdir=True), tmp, originals, containers,
                                 args.objects, args.repeat)
    for name, server in (("moto", moto_server), ("seaweedfs", seaweedfs_server)):
        if name not in targets:
            continue
        if name == "seaweedfs" and weed_binary() is None:
            print("seaweedfs: weed binary missing, skipped")
            continue
        with server() as endpoint:
            endpoint.create_bucket("bench")
            rows += bench_target(name, endpoint.s3fs(), "bench", originals, containers, args.objects,
                                 args.repeat)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
