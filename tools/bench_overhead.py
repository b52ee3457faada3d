"""What the container costs on small inputs: bytes over the original, and bytes lost to Lepton.

Small files are where a fixed per-object cost shows: a 3 kB thumbnail that saves 20 % gives back 600 B,
so 150 B of container overhead is a quarter of the gain. This script reports, for whatever jpegshrink is
on ``PYTHONPATH`` (run it once on an older checkout for a before/after):

* incompressible non-JPEG inputs of fixed sizes: container bytes minus original bytes (the worst case);
* real small JPEGs (under ``--max-bytes``): jpegshrink's total next to Lepton's in the same run, and the
  container overhead (container bytes minus the layout and stream payload it carries).

    PYTHONPATH=. python3 tools/bench_overhead.py --corpus /work/corpus/public [--max-bytes 15000]
"""
from __future__ import annotations

import argparse
import random
import statistics
from pathlib import Path

import jpegshrink
from jpegshrink.coding import container

SIZES = (0, 1, 16, 100, 1000, 4096, 15000)


def incompressible() -> list[tuple[int, int]]:
    """(original bytes, container bytes) for seeded random inputs: nothing can shrink them."""
    rng = random.Random(0)
    return [(n, len(jpegshrink.compress(rng.randbytes(n)))) for n in SIZES]


def small_jpegs(folder: Path, max_bytes: int) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg")
                  and p.stat().st_size < max_bytes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=Path(__file__).resolve().parent.parent / "tests/data/sample")
    ap.add_argument("--max-bytes", type=int, default=15000)
    args = ap.parse_args()
    fmt = container.FORMAT_VERSION
    print(f"jpegshrink {jpegshrink.__version__}, container format v{fmt}")
    print("\nincompressible input (seeded random bytes): container - original")
    print("| original bytes | container bytes | overhead |\n|---:|---:|---:|")
    for n, c in incompressible():
        print(f"| {n} | {c} | {c - n:+d} |")

    try:
        import lepton_jpeg_python as lepton
    except ImportError:
        lepton = None
    files = small_jpegs(args.corpus, args.max_bytes)
    orig = ours = lep = 0
    lep_files = lep_orig = lep_ours = 0
    overheads, modes = [], {}
    for path in files:
        data = path.read_bytes()
        blob = jpegshrink.compress(data)
        c = container.unpack(blob)
        modes[c.mode.name.lower()] = modes.get(c.mode.name.lower(), 0) + 1
        overheads.append(len(blob) - len(c.layout) - sum(len(s) for s in c.streams))
        orig, ours = orig + len(data), ours + len(blob)
        if lepton is not None:
            try:
                packed = lepton.compress_bytes(data, {"threads": "single"})
            except Exception:  # Lepton refuses some files; compare on the files both accept
                continue
            lep_files, lep_orig, lep_ours, lep = (lep_files + 1, lep_orig + len(data), lep_ours + len(blob),
                                                  lep + len(packed))
    print(f"\nJPEGs under {args.max_bytes} bytes in {args.corpus}: {len(files)} files, {orig:,} bytes "
          f"({', '.join(f'{n} {m}' for m, n in sorted(modes.items()))})")
    if not files:
        return
    print(f"jpegshrink: {ours:,} bytes ({100 * (1 - ours / orig):.1f} % saved); container overhead per file "
          f"(container - layout - streams): mean {statistics.mean(overheads):.1f} B, "
          f"min {min(overheads)}, max {max(overheads)}")
    if lepton is not None and lep_files:
        print(f"on the {lep_files} files Lepton accepts ({lep_orig:,} bytes): jpegshrink {lep_ours:,} "
              f"({100 * (1 - lep_ours / lep_orig):.1f} %), Lepton {lep:,} ({100 * (1 - lep / lep_orig):.1f} %); "
              f"jpegshrink - Lepton = {(lep_ours - lep) / lep_files:+.1f} B per file")


if __name__ == "__main__":
    main()
