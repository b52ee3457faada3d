"""Which files tools/bench.py measures, and what it knows about each (from MANIFEST.tsv and Pillow).

The corpus README asks for three things honoured here: identify the corpus by the sha256 of its
MANIFEST.tsv, deduplicate files by sha256 before totalling (some variants are byte-identical to their
source), and report public/ and variants/ separately. The manifest has no "flat image" column, so one
is computed the way the corpus build skips flat images: over 14% of the 8x8 luma blocks nearly uniform
(max - min <= 2).
"""
from __future__ import annotations

import csv
import hashlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

JPEG_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif")
FLAT_BLOCK_RANGE = 2
FLAT_FRACTION = 0.14


@dataclass
class FileEntry:
    path: str
    name: str
    folder: str
    split: str
    package: str
    bytes: int
    sha256: str
    megapixels: float | None = None
    coding: str = "unknown"  # manifest columns: which code paths of a codec the file exercises
    components: str = "unknown"
    restart_interval: str = "0"
    flat_fraction: float | None = None
    kind: str = "unknown"  # photo | flat | undecodable (Pillow could not decode it)

    def to_json(self) -> dict:
        return asdict(self)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifests_for(folder: Path) -> list[Path]:
    """The MANIFEST.tsv files describing ``folder``: its own and its parent's (the corpus root)."""
    return [m for m in (folder / "MANIFEST.tsv", folder.parent / "MANIFEST.tsv") if m.is_file()]


def _manifest_rows(folder: Path) -> dict[str, dict[str, str]]:
    rows: dict[str, dict[str, str]] = {}
    for m in reversed(manifests_for(folder)):  # the folder's own manifest wins
        with open(m, newline="") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                split = row.get("split", "")
                if m.parent != folder and split and split != folder.name:
                    continue  # a corpus-root row for a file of another folder with the same name
                rows[row["name"]] = row
    return rows


def collect(folders: list[Path], files_from: Path | None) -> list[Path]:
    """JPEG paths from the folders (not recursive) and from a list file, in a stable order."""
    paths: list[Path] = []
    for folder in folders:
        if not folder.is_dir():
            raise SystemExit(f"not a folder: {folder}")
        paths += sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in JPEG_SUFFIXES)
    if files_from is not None:
        for line in files_from.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                p = Path(line.strip())
                if not p.is_file():
                    raise SystemExit(f"{files_from}: no such file: {p}")
                paths.append(p)
    return paths


def evenly_spaced(paths: list[Path], limit: int) -> list[Path]:
    """``limit`` paths per folder, spread evenly over each folder's sorted list (so over packages)."""
    by_folder: dict[Path, list[Path]] = {}
    for p in paths:
        by_folder.setdefault(p.parent, []).append(p)
    out: list[Path] = []
    for group in by_folder.values():
        if len(group) <= limit:
            out += group
        else:
            out += [group[i * len(group) // limit] for i in range(limit)]
    return out


def describe(paths: list[Path]) -> tuple[list[FileEntry], list[dict[str, str]]]:
    """Entries for unique files (first occurrence of each sha256 wins) and the duplicates dropped."""
    rows_by_folder: dict[Path, dict[str, dict[str, str]]] = {}
    entries: list[FileEntry] = []
    seen: dict[str, str] = {}
    dropped: list[dict[str, str]] = []
    for p in paths:
        sha = sha256_file(p)
        if sha in seen:
            dropped.append({"path": str(p), "duplicate_of": seen[sha]})
            continue
        seen[sha] = str(p)
        folder = p.parent
        rows = rows_by_folder.setdefault(folder, _manifest_rows(folder))
        row = rows.get(p.name, {})
        package = row.get("source_package") or (p.name.split("__")[0] if "__" in p.name else folder.name)
        mp = float(row["megapixels"]) if row.get("megapixels") else None
        entries.append(FileEntry(str(p), p.name, str(folder), row.get("split") or folder.name, package,
                                 p.stat().st_size, sha, mp, row.get("coding", "unknown"),
                                 row.get("components", "unknown"), row.get("restart_interval") or "0"))
    return entries, dropped


def flatness(path: str) -> tuple[float | None, float | None]:
    """(megapixels, fraction of nearly uniform 8x8 luma blocks), or (None, None) if Pillow fails."""
    import numpy as np
    from PIL import Image, ImageFile
    ImageFile.LOAD_TRUNCATED_IMAGES = True  # the truncated variants still have a measurable top part
    try:
        with Image.open(path) as im:
            w, h = im.size
            luma = np.asarray(im.convert("L"), dtype=np.int16)
    except Exception:  # noqa: BLE001 - e.g. arithmetic-coded files on a Pillow without that decoder
        return None, None
    bh, bw = h // 8, w // 8
    if bh == 0 or bw == 0:  # smaller than one block: judge the whole image as one block
        return w * h / 1e6, float(int(luma.max()) - int(luma.min()) <= FLAT_BLOCK_RANGE)
    blocks = luma[:bh * 8, :bw * 8].reshape(bh, 8, bw, 8)
    spread = blocks.max(axis=(1, 3)) - blocks.min(axis=(1, 3))
    return w * h / 1e6, float((spread <= FLAT_BLOCK_RANGE).mean())


def classify(entries: list[FileEntry], workers: int) -> None:
    """Fill megapixels (where the manifest lacks it), flat_fraction and kind, in parallel."""
    with ProcessPoolExecutor(max(1, workers), mp_context=get_context("spawn")) as ex:
        for e, (mp, frac) in zip(entries, ex.map(flatness, [e.path for e in entries], chunksize=4)):
            if e.megapixels is None:
                e.megapixels = mp
            e.flat_fraction = frac
            e.kind = "undecodable" if frac is None else ("flat" if frac > FLAT_FRACTION else "photo")
