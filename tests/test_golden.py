"""Old archives decode forever: every golden container still gives its original's sha256."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import jpegshrink
from jpegshrink.coding.container import FORMAT_VERSION, Mode

GOLDEN = Path(__file__).parent / "golden"
INDEX = json.loads((GOLDEN / "index.json").read_text())


def test_every_registered_model_has_golden_files():
    from jpegshrink import model
    covered = {row["model_id"] for row in INDEX}
    assert set(model.registered_ids()) <= covered, "run tools/make_golden.py for the new model"


def test_every_mode_of_the_written_formats_has_golden_files():
    # The writer picks v3 for containers with info (lossy ones) and v2 for the others: both are current.
    covered = {row["mode"] for row in INDEX if row["format_version"] >= 2}
    # PERCEPTUAL decodes to pixels, not to bytes; its golden files come with its decoder.
    assert {m.name.lower() for m in Mode if m != Mode.PERCEPTUAL} <= covered, "run tools/make_golden.py"
    newest = {row["mode"] for row in INDEX if row["format_version"] == FORMAT_VERSION}
    assert Mode.LOSSY_JPEG.name.lower() in newest, "run tools/make_golden.py"


@pytest.mark.parametrize("row", INDEX, ids=[row["file"] for row in INDEX])
def test_golden_container_decodes_to_its_original(row):
    blob = (GOLDEN / row["file"]).read_bytes()
    assert hashlib.sha256(blob).hexdigest() == row["container_sha256"], "golden files are never rewritten"
    info = jpegshrink.inspect(blob)
    assert (info.mode, info.model_id, info.format_version) == (row["mode"], row["model_id"], row["format_version"])
    assert info.lossy == row.get("lossy", False)
    assert hashlib.sha256(jpegshrink.decompress(blob)).hexdigest() == row["original_sha256"]


def test_every_jpeg_layout_version_has_golden_files():
    """Layout version 2 (Huffman tables left out, derived from the coefficients) is pinned like the rest."""
    from jpegshrink.coding import container, dictionary
    from jpegshrink.jpeg import layout
    versions = set()
    for row in INDEX:
        c = container.unpack((GOLDEN / row["file"]).read_bytes())
        if c.layout:
            versions.add(dictionary.decompress(c.layout, 1 << 20)[4])
    assert {layout.VERSION, layout.VERSION_DERIVED_TABLES} <= versions, "run tools/make_golden.py"
