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
    """The folder built by ../shared/corpus/make_corpus.sh; tests using it skip unless it is given."""
    path = os.environ.get("JPEGSHRINK_CORPUS")
    if not path:
        pytest.skip("set JPEGSHRINK_CORPUS to a corpus built by shared/corpus/make_corpus.sh")
    return Path(path)


#: Tests that take minutes (real S3 servers, process kills, Dask clusters, whole-codec benchmarks, the
#: cross-configuration encode of the slowest model): ``pytest -m "not slow"`` is the fast subset for
#: development; CI (``.ci/run``) runs everything. Listed here, by file or test, so the list is one place.
SLOW_TESTS = (
    "test_migrate.py", "test_migrate_dask.py", "test_migrate_faults.py", "test_migrate_seaweedfs.py",
    "test_bench_tool.py", "test_fuse.py", "test_learned_determinism.py::test_encode_conservative_decode_default",
)


def pytest_collection_modifyitems(items):
    for item in items:
        if item.nodeid.rsplit("/", 1)[-1].startswith(SLOW_TESTS):
            item.add_marker(pytest.mark.slow)
