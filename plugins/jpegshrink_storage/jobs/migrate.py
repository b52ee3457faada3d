"""``jpegshrink migrate SRC DST``: turn the JPEGs of a bucket (or folder) into verified containers.

The driver: it checks access, probes how the server protects conditional replaces, opens the journal,
lists the source, skips what the journal records as finished, runs :func:`~jpegshrink_storage.
jobs.migrate_object.migrate_object` on the rest (threads or Dask), journals each result as it arrives and
builds the report. What happens to each object, and why nothing is lost, is in migrate_object.py and
docs/migrate.md.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import jpegshrink
from jpegshrink_storage.errors import StoreError
from jpegshrink_storage.jobs.cli import add_common_args, progress_bar, run_cli, store_config
from jpegshrink_storage.jobs.executors import check_cluster, run_tasks
from jpegshrink_storage.jobs.journal import Journal
from jpegshrink_storage.jobs.migrate_object import (MigrateJob, ObjectResult, estimate_object, lost_result,
                                                    migrate_object)
from jpegshrink_storage.jobs.outcomes import OUTCOME_GROUPS, Outcome
from jpegshrink_storage.jobs.report import Report
from jpegshrink_storage.names import staging_key
from jpegshrink_storage.stores import ObjectRef, ObjectStore, StoreConfig, WriteGuard, open_store

#: Outcomes that make the job exit non-zero (the objects are retried by the next run).
PROBLEMS = OUTCOME_GROUPS["problems"]
#: Itemised in the report, with their reasons.
ITEMISED = (Outcome.FAILED, Outcome.CHANGED, "fallbacks", Outcome.KEPT_ORIGINAL)


# ---------------------------------------------------------------------------------------- driver

@dataclass
class MigrateOptions:
    src: StoreConfig
    dst: StoreConfig
    journal: Path | None = None
    workers: int = 4
    dask: str | None = None
    dry_run: bool = False
    sample: int = 100
    seed: int = 0
    other: str = "copy"
    fallbacks: str = "store"
    guard: str = "auto"  #: "auto" (probe), "if-match" or "head-recheck"
    change_retries: int = 1
    retry_budget_s: float = 120.0
    progress: bool = True


def run_migration(opts: MigrateOptions) -> Report:
    """Run (or resume) a migration; raises StoreError/JournalError/ClusterError before writing anything."""
    src, dst = open_store(opts.src), open_store(opts.dst)
    src.check_access()
    in_place = _same_location(src, dst)
    if not in_place and _nested(src, dst):
        raise StoreError(f"{dst.describe()} and {src.describe()} overlap: use the same location (in place) "
                         f"or two separate ones")
    if not opts.dry_run:  # a dry run reads the source only
        dst.check_access(create=True)  # a missing destination folder is made, as cp -r and rsync do
    if opts.dask:
        check_cluster(opts.dask)
    header = {"source": src.describe(), "destination": dst.describe(), "in_place": in_place,
              "dry_run": opts.dry_run, "jpegshrink": jpegshrink.__version__,
              "workers": f"dask {opts.dask}" if opts.dask else f"{opts.workers} threads"}
    job = MigrateJob(opts.src, opts.dst, in_place, opts.other, opts.fallbacks, opts.change_retries,
                     opts.retry_budget_s)
    if opts.dry_run:
        return _dry_run(opts, job, src, header)
    guard = _write_guard(dst, opts.guard)
    header["replace_guard"] = asdict(guard) if in_place else "not needed (copy)"
    job = replace(job, dst=replace(job.dst, guard=guard),
                  src=replace(job.src, guard=guard) if in_place else job.src)
    identity = {"command": "migrate", "source": src.describe(), "destination": dst.describe()}
    path = opts.journal or default_journal_path(identity)
    with Journal(path, identity) as journal:
        header["journal"] = str(path)
        listing = list(src.list())
        staged = frozenset(_staged_keys(dst)) if in_place else frozenset()
        job = replace(job, staged=staged)
        report = Report("migrate", header, PROBLEMS, ITEMISED, OUTCOME_GROUPS)
        # the journal says what was done; the stores say whether it still holds (another client may have
        # put the original back, or deleted what was written): only both together let an object be skipped
        at_destination = None if in_place else {ref.key: ref.etag for ref in dst.list()}
        todo = []
        for ref in listing:
            rec = journal.get(ref.key)
            done = ObjectResult.from_record(rec) if rec else None
            if done and still_holds(done, ref, at_destination):
                _count(report, done, now=False)
            else:
                todo.append(ref)
        header["resumed_from_journal"] = len(listing) - len(todo)
        with progress_bar(len(todo), opts.progress, "migrate") as bar:
            for result in run_tasks(migrate_object, job, todo, workers=opts.workers, dask_address=opts.dask,
                                    on_lost=lost_result):
                journal.record(result.to_record())
                _count(report, result, now=not result.done_earlier)
                bar.update(1)
                bar.set_postfix_str(f"saved {(report.bytes_before - report.bytes_after) / 1e6:.1f} MB",
                                    refresh=False)
        dst.remove_staging()  # the probe's and this run's staging folders, unless a copy still waits there
    return report


def still_holds(done: ObjectResult, ref: ObjectRef, at_destination: dict[str, str] | None) -> bool:
    """Whether a journal record still describes the stores: the source is the version the record saw,
    and the destination holds what the record wrote. ``at_destination``: key -> ETag listed at the
    destination now, or None in place (where the listed object IS the destination)."""
    if done.outcome.is_problem or done.outcome is Outcome.VANISHED:  # vanished, yet listed: it is back
        return False
    if at_destination is None:
        return ref.etag == (done.dst_etag if done.outcome.wrote_destination else done.src_etag)
    if ref.etag != done.src_etag:
        return False
    return not done.dst_etag or at_destination.get(ref.key) == done.dst_etag


def _count(report: Report, r: ObjectResult, now: bool = True) -> None:
    fallback = "fallbacks" if r.mode == "fallback" or r.outcome is Outcome.KEPT_ORIGINAL else None
    report.add(r.outcome, r.key, r.bytes_before, r.bytes_after, r.reason, now=now, extra_item=fallback)


def _dry_run(opts: MigrateOptions, job: MigrateJob, src: ObjectStore, header: dict) -> Report:
    """Compress a random sample (reads only) and scale its saving to the whole listing."""
    listing = list(src.list())
    sample = sorted(random.Random(opts.seed).sample(listing, min(opts.sample, len(listing))), key=lambda r: r.key)
    report = Report("migrate --dry-run", header, (Outcome.FAILED,),
                    (Outcome.FAILED, "fallbacks", Outcome.KEPT_ORIGINAL), OUTCOME_GROUPS)
    with progress_bar(len(sample), opts.progress, "estimate") as bar:
        for result in run_tasks(estimate_object, job, sample, workers=opts.workers, dask_address=opts.dask,
                                on_lost=lost_result):
            _count(report, result)
            bar.update(1)
    total = sum(r.size for r in listing)
    ratio = report.bytes_after / report.bytes_before if report.bytes_before else 1.0
    header.update({"listed_objects": len(listing), "listed_bytes": total, "sampled_objects": len(sample),
                   "estimated_bytes_after": round(total * ratio),
                   "estimated_bytes_saved": round(total * (1 - ratio))})
    return report


def _write_guard(store: ObjectStore, choice: str) -> WriteGuard:
    if choice == "auto":
        return store.probe_write_guard()
    return WriteGuard(choice, choice)


def _staged_keys(store: ObjectStore) -> set[str]:
    """Keys with a staging copy left by an interrupted in-place replace."""
    staging = replace(store.config, url=store.config.url.rstrip("/") + "/" + staging_key(""))
    try:
        return {ref.key for ref in open_store(staging).list()}
    except FileNotFoundError:
        return set()


def _same_location(a: ObjectStore, b: ObjectStore) -> bool:
    return a.scope() == b.scope()


def _nested(a: ObjectStore, b: ObjectStore) -> bool:
    """One location inside the other: the job would list its own output as input."""
    return a.scope().overlaps(b.scope())


def default_journal_path(identity: dict) -> Path:
    """One journal per (source, destination) under the user's cache folder."""
    digest = hashlib.sha256(repr(sorted(identity.items())).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "jpegshrink" / f"migrate-{digest}.jsonl"


# ------------------------------------------------------------------------------------------- CLI

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jpegshrink migrate",
        description="Replace the JPEGs under SRC by verified jpegshrink containers in DST (DST may be SRC: "
                    "in place). Resumable: run it again after any interruption.")
    p.add_argument("src", help="s3://bucket/prefix or a local folder")
    p.add_argument("dst", help="s3://bucket/prefix or a local folder; the same as SRC migrates in place")
    add_common_args(p)
    p.add_argument("--journal", type=Path, help="journal file (default: one per SRC/DST under ~/.cache/jpegshrink)")
    p.add_argument("--dry-run", action="store_true", help="write nothing; estimate the saving from a sample")
    p.add_argument("--sample", type=int, default=100, help="objects compressed by --dry-run (default 100)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the --dry-run sample")
    p.add_argument("--other", choices=("copy", "leave"), default="copy",
                   help="non-JPEG objects: copy them to DST unchanged, or leave them out (in place: always left)")
    p.add_argument("--fallbacks", choices=("store", "keep-original"), default="store",
                   help="JPEGs the codec can only store as a zstd fallback: store the container if smaller "
                        "(default), or keep the original bytes")
    p.add_argument("--replace-guard", choices=("auto", "if-match", "head-recheck"), default="auto",
                   help="in place: how a source is protected against concurrent changes (auto: probe the "
                        "server for If-Match support)")
    p.add_argument("--change-retries", type=int, default=1,
                   help="times an object that another client changed during its migration is read again")
    p.add_argument("--multipart-threshold-mb", type=int, default=16, help="multipart uploads from this size")
    return p


def main_migrate(argv: list[str] | None = None) -> int:
    """Entry point of ``jpegshrink migrate``: 0 when every object is done, 1 when any failed, 2 on errors."""
    args = build_parser().parse_args(argv)

    def run() -> int:
        opts = MigrateOptions(
            src=store_config(args.src, args), dst=store_config(args.dst, args), journal=args.journal,
            workers=args.workers, dask=args.dask, dry_run=args.dry_run, sample=args.sample, seed=args.seed,
            other=args.other, fallbacks=args.fallbacks, guard=args.replace_guard,
            change_retries=args.change_retries, retry_budget_s=args.retry_seconds,
            progress=not args.no_progress)
        report = run_migration(opts)
        report.write(args.report, args.json, sys.stdout)
        return 1 if report.failed else 0

    return run_cli("jpegshrink migrate", run)


if __name__ == "__main__":
    sys.exit(main_migrate())
