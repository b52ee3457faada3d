"""``jpegshrink verify URL``: audit stored objects by decoding them; find corrupt, missing and mismatching ones.

For every listed object (or a stable sample of them, ``--sample FRACTION``):

* a container is decoded completely (``jpegshrink.decompress`` checks the result against the sha256 in
  its header; any damage is *corrupt*; a model or format version this jpegshrink lacks is
  *undecodable*); the decoded sha256 and size are compared with the object's user
  metadata, when present, and with the manifest, when given (a difference is a *mismatch*);
* an object that is not a container but whose metadata says it is one is *corrupt*; other plain objects
  are hashed and compared with the manifest (they are not counted as problems otherwise);
* a name in the manifest with no object is *missing* (checked against the whole listing, sample or not).

The manifest is either a TSV/CSV with ``name`` and ``sha256`` columns (as tests/data/sample/MANIFEST.tsv)
or ``sha256sum`` output (``<hex>  <name>`` per line); names are relative to URL.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import sys
from dataclasses import dataclass
from pathlib import Path

import jpegshrink
from jpegshrink_storage.errors import NotFound
from jpegshrink_storage.jobs import metadata as om
from jpegshrink_storage.jobs.cli import add_common_args, progress_bar, run_cli, store_config
from jpegshrink_storage.jobs.executors import check_cluster, run_tasks
from jpegshrink_storage.jobs.outcomes import VerifyStatus
from jpegshrink_storage.jobs.report import Report
from jpegshrink_storage.jobs.retry import with_retries
from jpegshrink_storage.stores import ObjectRef, StoreConfig, cached_store, open_store

PROBLEMS = tuple(s for s in VerifyStatus if s.is_problem)


@dataclass(frozen=True)
class VerifyJob:
    store: StoreConfig
    retry_budget_s: float = 120.0


@dataclass(frozen=True)
class VerifyItem:
    ref: ObjectRef
    expected_sha256: str | None  #: from the manifest, if it names this object


@dataclass
class VerifyResult:
    key: str
    status: VerifyStatus
    original_size: int = 0
    stored_size: int = 0
    reason: str = ""


def verify_object(job: VerifyJob, item: VerifyItem) -> VerifyResult:
    """Decode and cross-check one object; never raises."""
    key = item.ref.key
    try:
        store = cached_store(job.store)
        blob = with_retries(lambda: store.get(key), budget_s=job.retry_budget_s)
    except NotFound:
        return VerifyResult(key, VerifyStatus.MISSING, reason="deleted while the audit ran")
    except Exception as e:
        return VerifyResult(key, VerifyStatus.FAILED, reason=f"cannot read: {type(e).__name__}: {e}")
    stored = len(blob.data)
    if not jpegshrink.is_container(blob.data):
        if om.ORIGINAL_SHA256 in blob.metadata:
            return VerifyResult(key, VerifyStatus.CORRUPT, stored, stored,
                                "metadata says jpegshrink container, but the bytes are not one")
        sha = hashlib.sha256(blob.data).hexdigest()
        if item.expected_sha256 and sha != item.expected_sha256:
            return VerifyResult(key, VerifyStatus.MISMATCH, stored, stored,
                                f"sha256 {sha} differs from the manifest's {item.expected_sha256}")
        return VerifyResult(key, VerifyStatus.PLAIN, stored, stored)
    try:
        original = jpegshrink.decompress(blob.data)
    except (jpegshrink.UnknownModel, jpegshrink.UnsupportedVersion) as e:  # intact, but needs a newer jpegshrink
        return VerifyResult(key, VerifyStatus.UNDECODABLE, 0, stored, f"{type(e).__name__}: {e}")
    except jpegshrink.ContainerError as e:
        return VerifyResult(key, VerifyStatus.CORRUPT, 0, stored, f"{type(e).__name__}: {e}")
    sha = hashlib.sha256(original).hexdigest()
    checks = [("metadata", blob.metadata.get(om.ORIGINAL_SHA256)), ("manifest", item.expected_sha256)]
    for source, expected in checks:
        if expected and expected != sha:
            return VerifyResult(key, VerifyStatus.MISMATCH, len(original), stored,
                                f"decoded sha256 {sha} differs from the {source}'s {expected}")
    meta_size = blob.metadata.get(om.ORIGINAL_SIZE)
    if meta_size and meta_size != str(len(original)):
        return VerifyResult(key, VerifyStatus.MISMATCH, len(original), stored,
                            f"decoded size {len(original)} differs from the metadata's {meta_size}")
    return VerifyResult(key, VerifyStatus.OK, len(original), stored)


def lost_result(item: VerifyItem, exc: BaseException) -> VerifyResult:
    return VerifyResult(item.ref.key, VerifyStatus.FAILED, reason=f"worker lost: {type(exc).__name__}: {exc}")


def read_manifest(path: Path) -> dict[str, str]:
    """name -> lowercase sha256 hex, from a TSV/CSV with name and sha256 columns or sha256sum output."""
    text = path.read_text()
    first = text.splitlines()[0] if text else ""
    if "sha256" in first and ("name" in first):
        dialect = "excel-tab" if "\t" in first else "excel"
        return {row["name"]: row["sha256"].strip().lower() for row in csv.DictReader(io.StringIO(text), dialect=dialect)}
    out = {}
    for line in text.splitlines():
        if line.strip():
            digest, _, name = line.strip().partition(" ")
            out[name.strip().lstrip("*")] = digest.lower()
    return out


def in_sample(key: str, fraction: float, seed: int) -> bool:
    """Stable sampling: the same keys are picked on every machine and run for a given seed."""
    if fraction >= 1:
        return True
    h = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") < fraction * 2**64


def run_verify(config: StoreConfig, *, sample: float = 1.0, seed: int = 0, manifest: dict[str, str] | None = None,
               workers: int = 4, dask: str | None = None, retry_budget_s: float = 120.0,
               progress: bool = True) -> Report:
    store = open_store(config)
    store.check_access()
    if dask:
        check_cluster(dask)
    header = {"url": store.describe(), "sample": sample, "jpegshrink": jpegshrink.__version__,
              "workers": f"dask {dask}" if dask else f"{workers} threads"}
    report = Report("verify", header, PROBLEMS, PROBLEMS,
                    sized=(VerifyStatus.OK, VerifyStatus.PLAIN))  # what does not decode has no known size
    listing = list(store.list())
    manifest = manifest or {}
    listed = {ref.key for ref in listing}
    for name in sorted(set(manifest) - listed):
        report.add(VerifyStatus.MISSING, name, 0, 0, "named in the manifest, not in the store")
    items = [VerifyItem(ref, manifest.get(ref.key)) for ref in listing if in_sample(ref.key, sample, seed)]
    header.update({"listed_objects": len(listing), "checked_objects": len(items),
                   "manifest_entries": len(manifest)})
    job = VerifyJob(config, retry_budget_s)
    with progress_bar(len(items), progress, "verify") as bar:
        for r in run_tasks(verify_object, job, items, workers=workers, dask_address=dask, on_lost=lost_result):
            report.add(r.status, r.key, r.original_size, r.stored_size, r.reason)
            bar.update(1)
            if r.status.is_problem:
                bar.set_postfix_str(f"problems {sum(report.counts[p] for p in PROBLEMS)}", refresh=False)
    return report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jpegshrink verify",
        description="Decode stored objects and check them against their container header, their metadata "
                    "and optionally a manifest; exit 1 if anything is corrupt, missing or mismatching.")
    p.add_argument("url", help="s3://bucket/prefix or a local folder")
    add_common_args(p)
    p.add_argument("--sample", type=float, default=1.0, metavar="FRACTION",
                   help="check only this fraction of the objects (stable for a given --seed; default all)")
    p.add_argument("--seed", type=int, default=0, help="which sample --sample picks")
    p.add_argument("--manifest", type=Path, help="expected sha256 per name (TSV/CSV name,sha256 or sha256sum)")
    return p


def main_verify(argv: list[str] | None = None) -> int:
    """Entry point of ``jpegshrink verify``: 0 when all is well, 1 on any problem, 2 when it cannot run."""
    args = build_parser().parse_args(argv)
    if not 0 < args.sample <= 1:
        print("jpegshrink verify: error: --sample must be in (0, 1]", file=sys.stderr)
        return 2

    def run() -> int:
        try:
            manifest = read_manifest(args.manifest) if args.manifest else None
        except (OSError, KeyError, UnicodeDecodeError) as e:
            print(f"jpegshrink verify: error: cannot read the manifest {args.manifest}: {e}", file=sys.stderr)
            return 2
        report = run_verify(store_config(args.url, args), sample=args.sample, seed=args.seed, manifest=manifest,
                            workers=args.workers, dask=args.dask, retry_budget_s=args.retry_seconds,
                            progress=not args.no_progress)
        report.write(args.report, args.json, sys.stdout)
        return 1 if report.failed else 0

    return run_cli("jpegshrink verify", run)


if __name__ == "__main__":
    sys.exit(main_verify())
