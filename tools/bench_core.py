"""Speed of the coding core: cold start of the CLI, and steady-state one-thread encode/decode MB/s beside Lepton.

Why: the core's kernels must start at once (no JIT on first use) and must not be slower than what they
replaced. Run it from two checkouts (e.g. the numba version in a ``git worktree`` of an older commit,
and this one) in the same session and compare; Lepton single-thread in the same run is the anchor.

* cold start: ``jpegshrink compress FILE -o X`` then ``jpegshrink decompress X -o Y``, each a new
  process (``python -m jpegshrink.cli``, PYTHONPATH = this checkout), wall seconds, byte-identical check;
* steady state, in one process with JPEGSHRINK_THREADS=1 (one thread, set before import): after a
  warm-up, the best of ``--repeat`` runs of ``compress(verify=False)`` (the encoder alone) and of
  ``decompress``, CPU seconds of the process, as MB/s of the original JPEG; the same for Lepton
  (lepton_jpeg_python, threads='single') on the same bytes.

    python3 tools/bench_core.py FILE... [--model ID] [--repeat 3] [--label compiled]
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ["JPEGSHRINK_THREADS"] = "1"
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ[var] = "1"
sys.path.insert(0, str(ROOT))


def cold_start(path: Path, model: str | None) -> list[tuple[float, float]]:
    """(wall, CPU) seconds of a compress and of a decompress of one file, each in a new process (CPU: user +
    system of the child, which is what a loaded machine cannot inflate)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "plugins")]))
    env.pop("JPEGSHRINK_THREADS", None)  # as a user runs it
    with tempfile.TemporaryDirectory() as tmp:
        packed, restored = Path(tmp) / "packed.jpg", Path(tmp) / "restored.jpg"
        extra = ["--model", model] if model else []
        times = []
        for argv in (["compress", str(path), "-o", str(packed), *extra], ["decompress", str(packed), "-o", str(restored)]):
            t, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run([sys.executable, "-m", "jpegshrink.cli", *argv, "-q"], env=env, check=True,
                           stdout=subprocess.DEVNULL)
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            times.append((time.perf_counter() - t, r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime))
        if restored.read_bytes() != path.read_bytes():
            raise SystemExit(f"{path}: cold-start round trip is not byte-identical")
    return times


def best_cpu(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def steady(path: Path, model: str | None, repeat: int) -> dict[str, float]:
    import jpegshrink
    import lepton_jpeg_python as lepton

    data = path.read_bytes()
    blob = jpegshrink.compress(data, model_id=model, verify=False)
    if jpegshrink.inspect(blob).mode != "jpeg" or jpegshrink.decompress(blob) != data:
        raise SystemExit(f"{path}: not coded by the coefficient path, or not byte-identical")
    cfg = {"threads": "single"}
    lep = lepton.compress_bytes(data, dict(cfg))
    if bytes(lepton.decompress_bytes(lep, dict(cfg))) != data:
        raise SystemExit(f"{path}: Lepton round trip is not byte-identical")
    mb = len(data) / 1e6
    return {
        "MB": mb, "ratio": len(blob) / len(data), "lepton_ratio": len(lep) / len(data),
        "enc": mb / best_cpu(lambda: jpegshrink.compress(data, model_id=model, verify=False), repeat),
        "dec": mb / best_cpu(lambda: jpegshrink.decompress(blob), repeat),
        "lep_enc": mb / best_cpu(lambda: lepton.compress_bytes(data, dict(cfg)), repeat),
        "lep_dec": mb / best_cpu(lambda: lepton.decompress_bytes(lep, dict(cfg)), repeat),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", type=Path, nargs="+")
    ap.add_argument("--model", help="model id (default: the package default)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--label", default="this checkout")
    ap.add_argument("--cold", type=Path, help="file for the cold-start timing (default: the first)")
    ap.add_argument("--no-cold", action="store_true")
    args = ap.parse_args()
    import jpegshrink
    from jpegshrink import model as registry
    model = args.model or registry.DEFAULT_MODEL_ID
    print(f"{args.label}: jpegshrink from {Path(jpegshrink.__file__).parent}, model {model}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if not args.no_cold:
        cold = args.cold or args.files[0]
        (cw, cc), (dw, dc) = cold_start(cold, args.model)
        print(f"\ncold start, {cold.name} ({cold.stat().st_size / 1e6:.2f} MB), each a new process: "
              f"compress {cw:.2f} s wall / {cc:.2f} s CPU, decompress {dw:.2f} s wall / {dc:.2f} s CPU")
    print("\n| file | MB | ratio | encode MB/s | decode MB/s | Lepton ratio | Lepton encode MB/s | "
          "Lepton decode MB/s | encode / Lepton | decode / Lepton |\n|---|---|---|---|---|---|---|---|---|---|")
    tot = dict.fromkeys(("MB", "enc_s", "dec_s", "lep_enc_s", "lep_dec_s"), 0.0)
    for path in args.files:
        r = steady(path, args.model, args.repeat)
        print(f"| {path.name[:40]} | {r['MB']:.2f} | {r['ratio']:.3f} | {r['enc']:.2f} | {r['dec']:.2f} | "
              f"{r['lepton_ratio']:.3f} | {r['lep_enc']:.2f} | {r['lep_dec']:.2f} | {r['enc'] / r['lep_enc']:.2f} | "
              f"{r['dec'] / r['lep_dec']:.2f} |", flush=True)
        tot["MB"] += r["MB"]
        for k in ("enc", "dec", "lep_enc", "lep_dec"):
            tot[k + "_s"] += r["MB"] / r[k]
    mb = tot["MB"]
    print(f"| **all ({len(args.files)} files)** | {mb:.2f} | | **{mb / tot['enc_s']:.2f}** | **{mb / tot['dec_s']:.2f}** "
          f"| | {mb / tot['lep_enc_s']:.2f} | {mb / tot['lep_dec_s']:.2f} | "
          f"{tot['lep_enc_s'] / tot['enc_s']:.2f} | {tot['lep_dec_s'] / tot['dec_s']:.2f} |")


if __name__ == "__main__":
    main()
