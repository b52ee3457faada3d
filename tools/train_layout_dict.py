"""Train the zstd dictionary that container format v2 compresses JPEG layout blobs with.

A layout blob is everything of a JPEG that is not coefficients: marker segments, quantisation and
Huffman tables, the scan script. Most JPEGs share much of it (libjpeg's standard Huffman tables, its
quality-scaled quantisation tables, JFIF/Exif boilerplate), and on a small file those bytes are a large
part of the container: zstd alone has nothing to match them against, a dictionary has. Trained on the
public corpus without the validation packages, so the held-out figure it prints is honest.

The file it writes is part of the format: once a container uses it, it never changes. A better
dictionary is a new id (``--dict-id``), registered next to the old one in jpegshrink/coding/dictionary.py.

    PYTHONPATH=. python3 tools/train_layout_dict.py --corpus /work/corpus [--dict-id 1] [--size 16384]
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import sys
from pathlib import Path

import zstandard

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from jpegshrink import jpeg  # noqa: E402
from jpegshrink.codec import ZSTD_LEVEL  # noqa: E402
from jpegshrink.errors import JpegShrinkError  # noqa: E402
from train_priors import VAL_PACKAGES  # noqa: E402


def layouts(corpus: Path) -> tuple[list[bytes], list[bytes]]:
    """(training, held-out) layout blobs of the public corpus, in name order."""
    with open(corpus / "MANIFEST.tsv", newline="") as f:
        rows = sorted((r for r in csv.DictReader(f, delimiter="\t") if r["split"] == "public"),
                      key=lambda r: r["name"])
    train, held_out = [], []
    for r in rows:
        try:
            blob = jpeg.parse((corpus / "public" / r["name"]).read_bytes()).layout.to_bytes()
        except JpegShrinkError:
            continue
        (held_out if r["source_package"] in VAL_PACKAGES else train).append(blob)
    return train, held_out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--dict-id", type=int, default=1)
    ap.add_argument("--size", type=int, default=16384)
    ap.add_argument("--out", type=Path, default=ROOT / "jpegshrink" / "coding" / "dictionaries")
    args = ap.parse_args()
    train, held_out = layouts(args.corpus)
    # Fixed cover parameters and one thread: the same corpus gives the same dictionary.
    d = zstandard.train_dictionary(args.size, train, k=64, d=8, dict_id=args.dict_id, threads=1, level=ZSTD_LEVEL)
    raw = d.as_bytes()
    path = args.out / f"layout-{args.dict_id}.zdict"
    path.write_bytes(raw)
    plain = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    with_dict = zstandard.ZstdCompressor(level=ZSTD_LEVEL, dict_data=d)
    before = sum(len(plain.compress(b)) for b in held_out)
    after = sum(len(with_dict.compress(b)) for b in held_out)
    print(f"wrote {path}: {len(raw)} bytes, sha256 {hashlib.sha256(raw).hexdigest()}, from {len(train)} layouts")
    print(f"held-out packages ({len(held_out)} layouts): {before:,} -> {after:,} bytes, "
          f"{(before - after) / len(held_out):.0f} B per file saved")


if __name__ == "__main__":
    main()
