"""Shared fixtures: the committed sample JPEGs and, when JPEGSHRINK_CORPUS is set, the full corpus."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

SAMPLE_DIR = Path(__file__).parent / "data" / "sample"


def read_manifest(folder: Path) -> list[dict[str, str]]:
    """Rows of a corpus MANIFEST.tsv (the committed sample has the same columns)."""
    with open(folder / "MANIFEST.tsv", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


@pytest.fixture(scope="session")
def sample_files() -> list[Path]:
    return sorted(p for p in SAMPLE_DIR.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The folder built by tools/corpus/make_corpus.sh; tests using it skip unless it is given."""
    path = os.environ.get("JPEGSHRINK_CORPUS")
    if not path:
        pytest.skip("set JPEGSHRINK_CORPUS to a corpus built by tools/corpus/make_corpus.sh")
    return Path(path)
