"""Other projects' test images through the ``jpegshrink::`` layer: every file reads back byte for byte and
none makes a write, a read or a listing raise.

The 899 files (Lepton's and wuffs' fuzz corpora, Pillow, libjpeg-turbo, exiftool, libvips, ImageMagick,
libjxl, image-rs; sources and licences in its SOURCES.md) sit beside the repository in
``../shared/extcorpus``; ``JPEGSHRINK_EXTCORPUS`` names another copy. Truncated, corrupt and hostile
JPEGs among them must come back unchanged (stored as codec fallbacks or passed through), never lost.
"""
from __future__ import annotations

import csv
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fsspec.implementations.memory import MemoryFileSystem

from jpegshrink_storage import JpegShrinkFileSystem

REPO = Path(__file__).resolve().parents[1]
EXTCORPUS = REPO.parent / "shared" / "extcorpus"


@pytest.fixture(scope="module")
def extcorpus() -> Path:
    root = Path(os.environ.get("JPEGSHRINK_EXTCORPUS") or EXTCORPUS)
    if not (root / "files").is_dir():
        pytest.skip(f"{root / 'files'} not found: the shared test images sit beside the repository "
                    f"(../shared/extcorpus), or JPEGSHRINK_EXTCORPUS names a copy")
    return root


@pytest.mark.corpus
@pytest.mark.slow
@pytest.mark.timeout(1800)  # 38 MB through encode + verify + decode: minutes on 2 shared cores
def test_extcorpus_round_trips_through_the_layer(extcorpus):
    with open(extcorpus / "manifest_fetched.tsv", newline="") as f:
        expected = {row["stored"] for row in csv.DictReader(f, delimiter="\t")}
    files = sorted(p.relative_to(extcorpus).as_posix() for p in (extcorpus / "files").rglob("*") if p.is_file())
    assert set(files) == expected  # every fetched file is tested, none silently missing
    layer = JpegShrinkFileSystem(fs=MemoryFileSystem(), skip_instance_cache=True)
    root = f"/jpegshrink-extcorpus-{os.getpid()}"

    def round_trip(rel: str) -> tuple[str, str, bool]:
        data = (extcorpus / rel).read_bytes()
        name = f"{root}/{rel}"
        try:
            layer.pipe_file(name, data)
            info = layer.info(name)
            back = layer.cat_file(name)
            with layer.open(name, "rb") as f:
                f.seek(len(data) // 2)
                tail = f.read()
        except Exception as e:  # a crash: reported with the file's name, the test goes on
            return rel, f"{type(e).__name__}: {e}", False
        if back != data or tail != data[len(data) // 2:] or info["size"] != len(data):
            return rel, "wrong bytes or size", False
        return rel, "", bool(info["compressed"])

    try:
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(round_trip, files))
        listed = layer.find(root, detail=True)
    finally:
        layer.fs.rm(root, recursive=True)
    problems = {rel: why for rel, why, _ in results if why}
    assert problems == {}
    assert {name.removeprefix(root + "/"): e["size"] for name, e in listed.items()} == \
        {rel: (extcorpus / rel).stat().st_size for rel in files}
    print(f"\nextcorpus through jpegshrink::memory: {len(files)} files, 0 wrong, 0 crashes, "
          f"{sum(c for _, _, c in results)} stored as containers")
