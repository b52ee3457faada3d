"""Shared fixtures: the committed sample JPEGs and, when JPEGSHRINK_CORPUS is set, the full corpus."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

SAMPLE_DIR = Path(__file__).parent / "data" / "sample"
REPO = Path(__file__).resolve().parents[1]


def _register_fsspec_entry_points() -> None:
    """Make ``jpegshrink::`` URLs work when the checkout is tested without being installed.

    Registered from pyproject.toml's own ``fsspec.specs`` entry points (not a copy of them), so the
    tests also check that what an install would register names a real class.
    """
    import fsspec
    try:
        import tomllib
    except ImportError:  # Python 3.10: the installed entry points must do
        return
    specs = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]["fsspec.specs"]
    for protocol, target in specs.items():
        fsspec.register_implementation(protocol, target.replace(":", "."), clobber=True)


_register_fsspec_entry_points()


def read_manifest(folder: Path) -> list[dict[str, str]]:
    """Rows of a corpus MANIFEST.tsv (the committed sample has the same columns)."""
    with open(folder / "MANIFEST.tsv", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


@pytest.fixture(scope="session")
def sample_files() -> list[Path]:
    return sorted(p for p in SAMPLE_DIR.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The folder built by ../shared/corpus/make_corpus.sh; tests using it skip unless it is given."""
    path = os.environ.get("JPEGSHRINK_CORPUS")
    if not path:
        pytest.skip("set JPEGSHRINK_CORPUS to a corpus built by shared/corpus/make_corpus.sh")
    return Path(path)
