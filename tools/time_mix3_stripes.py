"""How well mix3's stripes split a decode over threads, measured in CPU time (robust on a shared machine).

    python3 tools/time_mix3_stripes.py PHOTO.jpg [--model mix3-XXXX] [--threads 2]

Decodes each stripe of the photo's coefficient streams on its own, timing the thread's CPU time, then
reports the total, the makespan of N threads taking stripes in order (what the model's thread pool
does), and the speed-up that gives; also the wall time of a real 1-thread and N-thread decode (only
meaningful on an idle machine) and the process's peak RSS (VmHWM) after compress + decompress with N
threads.
"""
from __future__ import annotations

import argparse
import heapq
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import jpegshrink  # noqa: E402
from jpegshrink import jpeg  # noqa: E402
from jpegshrink.codec import component_specs as _specs  # noqa: E402
from jpegshrink.model import DENSE_MODEL_ID, mix3  # noqa: E402


def _vm_hwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--model", default=DENSE_MODEL_ID)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    data = args.file.read_bytes()
    parts = jpeg.parse(data)
    specs = _specs(parts.layout)
    one = mix3.Mix3Model(mix3.WEIGHTS_DIR / f"{args.model}.npz", threads=1)
    many = mix3.Mix3Model(mix3.WEIGHTS_DIR / f"{args.model}.npz", threads=args.threads)
    streams = one.encode(parts.coefficients, specs)
    out = [np.zeros((s.block_rows, s.block_cols, 64), np.int16) for s in specs]
    cpu = []
    seed = None
    for i, b in enumerate(streams):
        t = time.thread_time()
        snapshot = one.decode_stripe(i, b, specs, out, seed)
        cpu.append(time.thread_time() - t)
        seed = seed or snapshot
    workers = [0.0] * args.threads
    heapq.heapify(workers)
    parallel = cpu
    if seed is not None:  # a seeded profile: stream 0 (the seed band) runs alone, before the others
        workers = [cpu[0]] * args.threads
        parallel = cpu[1:]
    for c in parallel:
        heapq.heappush(workers, heapq.heappop(workers) + c)
    makespan = max(workers)
    walls = {}
    for name, m in (("1", one), (str(args.threads), many)):
        t = time.perf_counter()
        m.decode(streams, specs)
        walls[name] = time.perf_counter() - t
    blob = jpegshrink.compress(data, model_id=args.model)
    assert jpegshrink.decompress(blob) == data
    mp = specs[0].block_rows * specs[0].block_cols * 64 / 1e6
    print(f"{args.file.name}: {len(data) / 1e6:.2f} MB, luma {mp:.1f} MP, {len(streams)} stripes, model {args.model}")
    print(f"stripe decode CPU s: {', '.join(f'{c:.2f}' for c in cpu)}; total {sum(cpu):.2f} s "
          f"({len(data) / 1e6 / sum(cpu):.2f} MB/s per core)")
    print(f"{args.threads}-thread makespan {makespan:.2f} s: speed-up {sum(cpu) / makespan:.2f}x (CPU-time based)")
    print(f"wall: 1 thread {walls['1']:.2f} s, {args.threads} threads {walls[str(args.threads)]:.2f} s "
          f"({walls['1'] / walls[str(args.threads)]:.2f}x; load average {os.getloadavg()[0]:.1f})")
    print(f"peak RSS after compress+decompress (JPEGSHRINK_THREADS default): {_vm_hwm_mib():.0f} MiB")


if __name__ == "__main__":
    main()
