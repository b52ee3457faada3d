"""Where the time of one decode goes, and the peak memory of a compress + decompress, for any model.

    python3 tools/time_split.py /tmp/photo24mp.jpg [--model learned2-c4d8c4e8] [--threads 1] [--repeat 5]

Runs ``jpegshrink.compress`` and ``jpegshrink.decompress`` on the file once to warm up (caches,
weights), then times the parts of a decode separately: container unpack + layout (zstd, sha256 of the
container body), coefficient model (entropy decoding, and the network for hinted models), JPEG rebuild,
and the final sha256 check; with ``--repeat N`` the compress and the decode are timed N times each and
the fastest runs are printed (the decode with its parts; on a shared machine the fastest run is the
least disturbed one). Peak RSS is the process's high-water mark (VmHWM) after both calls, so it
covers the encoder's verify decode too.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _vm_hwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("file", type=Path)
    p.add_argument("--model", help="model id (default: the library default)")
    p.add_argument("--threads", default="1", help="JPEGSHRINK_THREADS for the run (default 1: one core)")
    p.add_argument("--repeat", type=int, default=1, help="time the decode this many times, print the fastest run")
    args = p.parse_args(argv)
    os.environ["JPEGSHRINK_THREADS"] = args.threads
    import jpegshrink
    from jpegshrink import jpeg
    from jpegshrink.coding import container, dictionary

    data = args.file.read_bytes()
    t_compress = float("inf")
    for _ in range(max(1, args.repeat)):  # the fastest of --repeat compressions, like the decodes
        t0 = time.perf_counter()
        blob = jpegshrink.compress(data, model_id=args.model)
        t_compress = min(t_compress, time.perf_counter() - t0)
    assert jpegshrink.decompress(blob) == data
    info = jpegshrink.inspect(blob)
    if info.mode != "jpeg":
        raise SystemExit(f"stored as {info.mode} ({info.reason}): nothing to split")

    runs = [_timed_decode(blob, data) for _ in range(max(1, args.repeat))]
    parts = min(runs, key=sum)
    c = container.unpack(blob)
    layout = jpeg.JpegLayout.from_bytes(dictionary.decompress(c.layout, 64 << 20))
    mp = layout.components[0].block_rows * layout.components[0].block_cols * 64 / 1e6
    print(f"{args.file.name}: {len(data) / 1e6:.2f} MB, luma {mp:.1f} MP (padded), model {c.model_id}, "
          f"JPEGSHRINK_THREADS={args.threads}; container {len(blob) / len(data):.3f} of the original")
    fastest = f", fastest of {len(runs)}" if len(runs) > 1 else ""
    print(f"decode{fastest} {sum(parts):.2f} s ({len(data) / 1e6 / sum(parts):.2f} MB/s) = unpack+layout {parts[0]:.3f} s"
          f" + coefficient model {parts[1]:.2f} s + JPEG rebuild {parts[2]:.2f} s + sha256 {parts[3]:.3f} s")
    print(f"compress (parse + encode + verify decode) {t_compress:.2f} s; peak RSS {_vm_hwm_mib():.0f} MiB")


def _timed_decode(blob: bytes, data: bytes) -> list[float]:
    """Seconds of: container unpack + layout, coefficient model, JPEG rebuild, sha256 check."""
    from jpegshrink import jpeg, model as registry
    from jpegshrink._native import image_threads
    from jpegshrink.codec import component_specs
    from jpegshrink.coding import container, dictionary
    t = [time.perf_counter()]
    c = container.unpack(blob)
    layout = jpeg.JpegLayout.from_bytes(dictionary.decompress(c.layout, 64 << 20))
    t.append(time.perf_counter())
    coefs = registry.get(c.model_id).decode(c.streams, component_specs(layout), out=jpeg.coefficient_buffers(layout))
    t.append(time.perf_counter())
    out = jpeg.rebuild(jpeg.JpegParts(layout, coefs), threads=image_threads())
    t.append(time.perf_counter())
    ok = hashlib.sha256(out).digest() == c.original_sha256
    t.append(time.perf_counter())
    assert ok and out == data
    return [b - a for a, b in zip(t, t[1:])]


if __name__ == "__main__":
    main()
