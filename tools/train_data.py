"""Build the learned model's training tensors from the public corpus (seeded, reproducible).

For every public JPEG: its own coefficients plus ``--variants`` re-encodings of its decoded pixels with
cjpeg at a random quality in [50, 98] and a random sampling (4:2:0, 4:2:2, 4:4:4 or greyscale).
Progressive files carry the same coefficients as sequential ones, so they are not re-encoded.
Each component becomes fixed-size crops of CROP x CROP blocks (chroma at its own resolution) of
``features.block_features`` (int8), zero-padded where the component is smaller. Files of the
validation packages go to the ``val`` arrays only and are never trained on.

    nice python3 tools/train_data.py --corpus /work/corpus --out /work/main/.device/data.npz
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from jpegshrink.model.features import block_features, quant_classes  # noqa: E402

#: Source packages held out for validation (never trained on): photos, wallpapers, diagrams.
VAL_PACKAGES = ("lomiri-wallpapers-20.04", "labelme-examples", "kalzium-data", "desktop-base")
CROP = 32
SAMPLINGS = ("2x2", "2x1", "1x1", "grey")


def read_components(path: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(coefficients int16 [hb, wb, 64], quant table [64])] per component, via jpeglib."""
    import jpeglib
    jpeglib.version.set("turbo210")
    j = jpeglib.read_dct(path)
    j.load()
    comps = [j.Y] + ([j.Cb, j.Cr] if j.Cb is not None else [])
    out = []
    for i, c in enumerate(comps):
        hb, wb = c.shape[:2]
        out.append((np.ascontiguousarray(c.reshape(hb, wb, 64)), j.qt[j.quant_tbl_no[i]].reshape(64)))
    return out


def reencode(src: str, dst: str, quality: int, sampling: str) -> None:
    pixels = subprocess.run(["djpeg", "-pnm", src], check=True, capture_output=True).stdout
    args = ["cjpeg", "-quality", str(quality)]
    args += ["-grayscale"] if sampling == "grey" else ["-sample", sampling]
    with open(dst, "wb") as f:
        subprocess.run(args, input=pixels, check=True, stdout=f, stderr=subprocess.DEVNULL)


def crops(rng: np.random.Generator, feats: np.ndarray, n: int) -> list[tuple[np.ndarray, tuple[int, int]]]:
    hb, wb = feats.shape[:2]
    out = []
    for _ in range(n):
        r = int(rng.integers(0, max(hb - CROP, 0) + 1))
        c = int(rng.integers(0, max(wb - CROP, 0) + 1))
        crop = feats[r:r + CROP, c:c + CROP]
        padded = np.zeros((CROP, CROP, 64), np.int8)
        padded[:crop.shape[0], :crop.shape[1]] = crop
        out.append((padded, crop.shape[:2]))
    return out


def process(task: tuple[str, int, int]) -> list[dict]:
    path, variants, seed = task
    rng = np.random.default_rng(zlib.crc32(os.path.basename(path).encode()) ^ seed)
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        sources = [(path, "orig")]
        for v in range(variants):
            q = int(rng.integers(50, 99))
            s = SAMPLINGS[int(rng.integers(0, len(SAMPLINGS)))]
            dst = os.path.join(tmp, f"v{v}.jpg")
            try:
                reencode(path, dst, q, s)
            except subprocess.CalledProcessError:
                continue
            sources.append((dst, f"q{q}-{s}"))
        for src, tag in sources:
            try:
                comps = read_components(src)
            except Exception:  # CMYK, arithmetic-coded, truncated: not training material
                continue
            for ci, (coefs, qt) in enumerate(comps):
                feats = block_features(coefs, qt)
                n = max(1, min(8 if ci == 0 else 2, feats.shape[0] * feats.shape[1] // (CROP * CROP * 4)))
                for crop, hw in crops(rng, feats, n):
                    records.append(dict(feats=crop, hw=hw, kind=int(ci > 0), qcls=quant_classes(qt), tag=tag))
    return records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="/work/corpus")
    ap.add_argument("--out", required=True)
    ap.add_argument("--variants", type=int, default=2)
    ap.add_argument("--seed", type=int, default=20261124)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    with open(Path(args.corpus) / "MANIFEST.tsv", newline="") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t") if r["split"] == "public"]
    tasks, splits, packages = [], [], []
    for r in sorted(rows, key=lambda r: r["name"]):
        tasks.append((str(Path(args.corpus) / "public" / r["name"]), args.variants, args.seed))
        splits.append("val" if r["source_package"] in VAL_PACKAGES else "train")
        packages.append(r["source_package"])
    arrays: dict[str, list] = {f"{s}_{k}": [] for s in ("train", "val") for k in ("feats", "hw", "kind", "qcls")}
    with ProcessPoolExecutor(args.workers) as pool:
        for split, records in zip(splits, pool.map(process, tasks, chunksize=4)):
            for rec in records:
                for k in ("feats", "hw", "kind", "qcls"):
                    arrays[f"{split}_{k}"].append(rec[k])
    out = {k: np.stack(v).astype(np.int8 if k.endswith("feats") else np.int16) for k, v in arrays.items()}
    meta = dict(val_packages=VAL_PACKAGES, seed=args.seed, variants=args.variants, crop=CROP,
                train_packages=sorted({p for p, s in zip(packages, splits) if s == "train"}),
                n_train_files=splits.count("train"), n_val_files=splits.count("val"))
    out["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez_compressed(args.out, **out)
    print(json.dumps({k: list(v.shape) for k, v in out.items()}), meta["n_train_files"], meta["n_val_files"])


if __name__ == "__main__":
    main()
