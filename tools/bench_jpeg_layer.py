#!/usr/bin/env python3
"""Throughput of the JPEG bitstream layer: parse + rebuild, MB of JPEG per second on one core.

Makes 12 MP test files from a photo (resized with Pillow, then ``cjpeg -quality 90`` baseline and
``-progressive``), warms the JIT, then times parse and rebuild separately. Times are CPU seconds of this
process (``time.process_time``: one core, robust to other load on a shared machine), best of
``--repeat``; wall-clock medians are printed beside them. Numba start-up is measured in fresh
subprocesses: with an empty cache (compile everything) and with the cache filled (load only).

    python3 tools/bench_jpeg_layer.py [--source photo.jpg] [--extra more.jpg ...]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_SOURCE = Path("/work/corpus/public/lomiri-wallpapers-20.04__Kleiber_by_Lukas_Baubkus.jpg")
FALLBACK_SOURCE = ROOT / "tests" / "data" / "sample" / "scikit-learn__china.jpg"

_STARTUP = """
import time, sys
t0 = time.perf_counter()
from jpegshrink import jpeg
t1 = time.perf_counter()
t_parse = t_rebuild = 0.0
for path in sys.argv[1:]:  # a baseline and a progressive file: every scan coder is compiled or loaded
    data = open(path, "rb").read()
    t2 = time.perf_counter()
    parts = jpeg.parse(data)
    t3 = time.perf_counter()
    assert jpeg.rebuild(parts) == data
    t_parse += t3 - t2
    t_rebuild += time.perf_counter() - t3
print(f"{t1 - t0:.3f} {t_parse:.3f} {t_rebuild:.3f}")
"""


def make_files(source: Path, workdir: Path, size: tuple[int, int], quality: int) -> list[Path]:
    from PIL import Image

    ppm = workdir / "source.ppm"
    Image.open(source).convert("RGB").resize(size, Image.LANCZOS).save(ppm)
    out = []
    for name, extra in (("baseline", []), ("progressive", ["-progressive"])):
        path = workdir / f"{size[0]}x{size[1]}_q{quality}_{name}.jpg"
        subprocess.run(["cjpeg", "-quality", str(quality), *extra, "-outfile", str(path), str(ppm)], check=True)
        out.append(path)
    return out


def startup(samples: list[Path]) -> dict[str, list[float]]:
    """Import / first parse / first rebuild seconds in fresh processes (twice: first and second start)."""
    results = {}
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for label in ("first start", "second start"):
        out = subprocess.run([sys.executable, "-c", _STARTUP, *map(str, samples)], env=env, check=True,
                             capture_output=True, text=True).stdout.split()
        results[label] = [float(x) for x in out]
    return results


def throughput(path: Path, repeat: int) -> dict[str, float]:
    from jpegshrink import jpeg

    data = path.read_bytes()
    parts = jpeg.parse(data)  # warm-up (JIT, caches)
    assert jpeg.rebuild(parts) == data
    cpu_p, cpu_r, wall = [], [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        parts = jpeg.parse(data)
        c1 = time.process_time()
        out = jpeg.rebuild(parts)
        c2, w1 = time.process_time(), time.perf_counter()
        assert out == data
        cpu_p.append(c1 - c0)
        cpu_r.append(c2 - c1)
        wall.append(w1 - w0)
    mb = len(data) / 1e6
    p, r = min(cpu_p), min(cpu_r)
    return {"MB": mb, "parse_s": p, "rebuild_s": r, "MBps": mb / (p + r), "parse_MBps": mb / p,
            "rebuild_MBps": mb / r, "wall_MBps": mb / statistics.median(wall)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE if DEFAULT_SOURCE.exists() else FALLBACK_SOURCE)
    ap.add_argument("--size", default="4000x3000")
    ap.add_argument("--quality", type=int, default=90)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--extra", type=Path, nargs="*", default=[], help="more JPEG files to time as they are")
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        files = make_files(args.source, Path(tmp), size, args.quality) + list(args.extra)
        print(f"source {args.source.name}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print("\n| start-up (fresh process, first baseline + first progressive file) | import s | "
              "first parses s | first rebuilds s |\n|---|---|---|---|")
        for label, (imp, par, reb) in startup(files[:2]).items():
            print(f"| {label} | {imp:.2f} | {par:.2f} | {reb:.2f} |")
        print("\n| file | MB | parse ms | rebuild ms | parse+rebuild MB/s (CPU) | parse MB/s | rebuild MB/s "
              "| MB/s (wall, median) |\n|---|---|---|---|---|---|---|---|")
        for path in files:
            r = throughput(path, args.repeat)
            print(f"| {path.name} | {r['MB']:.2f} | {r['parse_s'] * 1e3:.0f} | {r['rebuild_s'] * 1e3:.0f} | "
                  f"**{r['MBps']:.1f}** | {r['parse_MBps']:.1f} | {r['rebuild_MBps']:.1f} | {r['wall_MBps']:.1f} |")


if __name__ == "__main__":
    main()
