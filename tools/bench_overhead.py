"""What the container costs on small inputs: bytes over the original, and bytes lost to Lepton.

Small files are where a fixed per-object cost shows: a 3 kB thumbnail that saves 20 % gives back 600 B,
so 150 B of container overhead is a quarter of the gain. This script reports, for whatever jpegshrink is
on ``PYTHONPATH`` (run it once on an older checkout for a before/after):

* incompressible non-JPEG inputs of fixed sizes: container bytes minus original bytes (the worst case);
* real small JPEGs (under ``--max-bytes``): jpegshrink's total next to Lepton's in the same run, and the
  container overhead (container bytes minus the layout and stream payload it carries).

    PYTHONPATH=. python3 tools/bench_overhead.py --corpus /work/corpus/public [--max-bytes 15000]

With a corpus MANIFEST.tsv it also reports the files of the validation packages (under
``--held-out-max-bytes``), which neither the trained statistics nor the layout dictionary have seen.

``--lossy`` reports instead where the bytes of lossy-mode containers go (``encode_image`` of the
tuning photos of tools/bench_lossy.py, 0.25 MP, at a few qualities): layout blob, coefficient streams
and the rest (header, info, lengths, CRC), per quality:

    PYTHONPATH=. python3 tools/bench_overhead.py --lossy [--photos 6]
"""
from __future__ import annotations

import argparse
import csv
import random
import statistics
import sys
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
    ap.add_argument("--held-out-max-bytes", type=int, default=100000)
    ap.add_argument("--lossy", action="store_true", help="lossy-mode containers of the lossy bench's tuning photos")
    ap.add_argument("--photos", type=int, default=6, help="--lossy: first N tuning photos")
    args = ap.parse_args()
    fmt = container.FORMAT_VERSION
    print(f"jpegshrink {jpegshrink.__version__}, container format v{fmt}")
    if args.lossy:
        lossy(args.photos)
        return
    print("\nincompressible input (seeded random bytes): container - original")
    print("| original bytes | container bytes | overhead |\n|---:|---:|---:|")
    for n, c in incompressible():
        print(f"| {n} | {c} | {c - n:+d} |")

    report(small_jpegs(args.corpus, args.max_bytes), f"JPEGs under {args.max_bytes} bytes in {args.corpus}")
    held_out = [p for p in held_out_jpegs(args.corpus) if p.stat().st_size < args.held_out_max_bytes]
    if held_out:
        report(held_out, f"JPEGs of the validation packages (held out from every training) under "
                         f"{args.held_out_max_bytes} bytes")


def lossy(n_photos: int, qualities: tuple[int, ...] = (35, 55, 75, 92)) -> None:
    """Mean bytes per part of ``encode_image`` containers, per quality (bench_lossy's tuning photos)."""
    from jpegshrink.coding import dictionary
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_lossy import TUNING, load_photo   # jpegshrink is imported already: PYTHONPATH's stays in use
    photos = [load_photo(*p)[1] for p in TUNING[:n_photos]]
    print(f"\nlossy containers of {len(photos)} tuning photos of tools/bench_lossy.py (mean bytes per container)")
    print("| quality | container | layout blob | layout version | streams | rest (header, info, lengths, CRC) |")
    print("|---:|---:|---:|---|---:|---:|")
    for q in qualities:
        rows, versions = [], set()
        for a in photos:
            blob = jpegshrink.encode_image(a, quality=q, measure=False)
            c = container.unpack(blob)
            versions.add(dictionary.decompress(c.layout, 1 << 20)[4])
            streams = sum(len(s) for s in c.streams)
            rows.append((len(blob), len(c.layout), streams, len(blob) - len(c.layout) - streams))
        m = [statistics.mean(col) for col in zip(*rows)]
        print(f"| {q} | {m[0]:.1f} | {m[1]:.1f} | {', '.join(map(str, sorted(versions)))} | {m[2]:.1f} | {m[3]:.1f} |")


def held_out_jpegs(folder: Path) -> list[Path]:
    """Files of the packages no trained part (priors, layout dictionary) has seen, if a manifest says."""
    if not (folder / "MANIFEST.tsv").exists():
        return []
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train_priors import VAL_PACKAGES
    with open(folder / "MANIFEST.tsv", newline="") as f:
        return sorted(folder / r["name"] for r in csv.DictReader(f, delimiter="\t")
                      if r["source_package"] in VAL_PACKAGES and (folder / r["name"]).exists())


def report(files: list[Path], title: str) -> None:
    try:
        import lepton_jpeg_python as lepton
    except ImportError:
        lepton = None
    orig = ours = lep = 0
    lep_files = lep_orig = lep_ours = 0
    overheads, layouts, modes = [], [], {}
    for path in files:
        data = path.read_bytes()
        blob = jpegshrink.compress(data)
        c = container.unpack(blob)
        modes[c.mode.name.lower()] = modes.get(c.mode.name.lower(), 0) + 1
        overheads.append(len(blob) - len(c.layout) - sum(len(s) for s in c.streams))
        layouts.append(len(c.layout))
        orig, ours = orig + len(data), ours + len(blob)
        if lepton is not None:
            try:
                packed = lepton.compress_bytes(data, {"threads": "single"})
            except Exception:  # Lepton refuses some files; compare on the files both accept
                continue
            lep_files, lep_orig, lep_ours, lep = (lep_files + 1, lep_orig + len(data), lep_ours + len(blob),
                                                  lep + len(packed))
    print(f"\n{title}: {len(files)} files, {orig:,} bytes "
          f"({', '.join(f'{n} {m}' for m, n in sorted(modes.items()))})")
    if not files:
        return
    print(f"jpegshrink: {ours:,} bytes ({100 * (1 - ours / orig):.1f} % saved); container overhead per file "
          f"(container - layout - streams): mean {statistics.mean(overheads):.1f} B, "
          f"min {min(overheads)}, max {max(overheads)}; layout blob mean {statistics.mean(layouts):.1f} B")
    if lepton is not None and lep_files:
        print(f"on the {lep_files} files Lepton accepts ({lep_orig:,} bytes): jpegshrink {lep_ours:,} "
              f"({100 * (1 - lep_ours / lep_orig):.1f} %), Lepton {lep:,} ({100 * (1 - lep / lep_orig):.1f} %); "
              f"jpegshrink - Lepton = {(lep_ours - lep) / lep_files:+.1f} B per file")


if __name__ == "__main__":
    main()
