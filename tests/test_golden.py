"""Old archives decode forever: every golden container still gives its original's sha256."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import jpegshrink

GOLDEN = Path(__file__).parent / "golden"
INDEX = json.loads((GOLDEN / "index.json").read_text())


def test_every_registered_model_has_golden_files():
    from jpegshrink import model
    covered = {row["model_id"] for row in INDEX}
    assert set(model.known()) <= covered, "run tools/make_golden.py for the new model"


@pytest.mark.parametrize("row", INDEX, ids=[row["file"] for row in INDEX])
def test_golden_container_decodes_to_its_original(row):
    blob = (GOLDEN / row["file"]).read_bytes()
    assert hashlib.sha256(blob).hexdigest() == row["container_sha256"], "golden files are never rewritten"
    info = jpegshrink.inspect(blob)
    assert (info.mode, info.model_id) == (row["mode"], row["model_id"])
    assert hashlib.sha256(jpegshrink.decompress(blob)).hexdigest() == row["original_sha256"]
