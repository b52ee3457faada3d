"""``jpegshrink migrate SRC DST``: turn the JPEGs of a bucket (or folder) into verified containers.

Per object (:func:`migrate_object`, run on threads or Dask workers), nothing is lost at any step:

1. A ranged GET of the first 64 bytes classifies the object: a container already (skipped), a JPEG, or
   something else (copied to DST or left, by ``--other``). An empty object is "other".
2. The JPEG is read whole, with the ETag it had at that read, and compressed; ``jpegshrink.compress``
   verifies its own encode by decoding. If the container is not smaller (or, with ``--fallbacks
   keep-original``, if the codec had to fall back), the original is kept as it is.
3. To another destination: the container is written with user metadata (original size and sha256,
   codec, model, original content type, source ETag), read back, compared byte for byte and decoded.
4. In place: the container first goes to a staging key (``.jpegshrink-staging/<key>``) and is read back
   and verified there; only then is the source replaced, *if its ETag is still the one that was read*
   (``If-Match`` where the server honours it, else a HEAD re-check just before the write; the probe
   result is in the report). The replaced object is read back and verified, then the staging copy is
   deleted. So at every instant a verified copy of the data exists in the store. A source changed by
   another client is never clobbered: it is read again (``--change-retries``) or reported as changed.
   A run killed between these steps is finished by the next run (a container at the key plus a staging
   copy: the key is verified, restored from staging if damaged, and the staging copy deleted).

The driver (:func:`run_migration`) lists the source, skips what the journal records as finished, runs
the rest, journals each result as it arrives, and builds the report.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import jpegshrink
from jpegshrink_storage import objectmeta as om
from jpegshrink_storage.cli_common import add_common_args, progress_bar, run_cli, store_config
from jpegshrink_storage.executors import check_cluster, run_tasks
from jpegshrink_storage.journal import Journal
from jpegshrink_storage.objectstore import (Blob, NotFound, ObjectRef, ObjectStore, PreconditionFailed, S3Store,
                                            StoreConfig, StoreError, WriteGuard, cached_store, open_store,
                                            staging_key)
from jpegshrink_storage.report import Report
from jpegshrink_storage.retry import with_retries

#: Outcomes that are final: a later run with the journal does not look at these objects again.
FINISHED = frozenset({"migrated", "recovered", "already-container", "kept-original", "copied", "left", "vanished"})
#: Outcomes that make the job exit non-zero (the objects are retried by the next run).
PROBLEMS = ("failed", "changed")
#: Report totals: converted to containers, skipped (nothing to do or nothing to gain), problems.
GROUPS = {"converted": ("migrated", "recovered"),
          "skipped": ("already-container", "kept-original", "left", "copied", "vanished"),
          "problems": PROBLEMS}


class VerifyError(Exception):
    """What was read back is not what was written, or does not decode to the original."""


@dataclass(frozen=True)
class MigrateJob:
    """Everything a worker needs to migrate one object (picklable: sent to Dask workers)."""

    src: StoreConfig
    dst: StoreConfig
    in_place: bool
    other: str = "copy"  #: non-JPEG objects: "copy" to DST or "leave" them
    fallbacks: str = "store"  #: codec fallbacks: "store" the (smaller) container or "keep-original"
    change_retries: int = 1
    retry_budget_s: float = 120.0
    staged: frozenset[str] = field(default_factory=frozenset)


@dataclass
class ObjectResult:
    """What happened to one object; one journal line."""

    key: str
    outcome: str
    src_etag: str = ""
    dst_etag: str = ""
    bytes_before: int = 0
    bytes_after: int = 0
    mode: str = ""  #: container mode ("jpeg" or "fallback") when a container was written
    model_id: str = ""
    reason: str = ""  #: fallback reason, why an object was kept or left, or what failed


# ------------------------------------------------------------------------------- one object (worker)

def migrate_object(job: MigrateJob, ref: ObjectRef) -> ObjectResult:
    """Migrate one object; never raises (errors become a ``failed`` result with the reason)."""
    try:
        return _Migration(job, ref).run()
    except NotFound:
        return ObjectResult(ref.key, "vanished", ref.etag, "", ref.size, 0, reason="deleted by another client")
    except Exception as e:
        return ObjectResult(ref.key, "failed", ref.etag, "", ref.size, ref.size, reason=_describe(e))


def lost_result(ref: ObjectRef, exc: BaseException) -> ObjectResult:
    return ObjectResult(ref.key, "failed", ref.etag, "", ref.size, ref.size,
                        reason=f"worker lost: {_describe(exc)}")


class _Migration:
    def __init__(self, job: MigrateJob, ref: ObjectRef) -> None:
        self.job, self.ref, self.key = job, ref, ref.key
        self.src = cached_store(job.src)
        self.dst = cached_store(job.dst)

    def retry(self, step):
        return with_retries(step, budget_s=self.job.retry_budget_s)

    def run(self) -> ObjectResult:
        for _ in range(self.job.change_retries + 1):
            head = self.retry(lambda: self.src.get(self.key, first=jpegshrink.HEADER_SIZE))
            kind = om.classify(head.data)
            if kind == "container":
                return self.settle_container(head) if self.job.in_place else self.copy_verbatim(head, kind)
            if kind == "other":
                self.drop_stale_staging()
                if self.job.in_place or self.job.other == "leave":
                    return self.result("left", head, head.size, reason="not a JPEG")
                return self.copy_verbatim(head, kind)
            done = None if self.job.in_place else self.found_at_destination(head)
            if done:
                return done
            blob = self.retry(lambda: self.src.get(self.key))
            if om.classify(blob.data[:jpegshrink.HEADER_SIZE]) != "jpeg":
                continue  # replaced between the two reads: classify again
            result = self.migrate_jpeg(blob)
            if result is not None:
                return result
        return ObjectResult(self.key, "changed", self.ref.etag, "", self.ref.size, self.ref.size,
                            reason="the object kept changing while it was migrated; the next run retries it")

    def result(self, outcome: str, src: Blob, after: int, before: int | None = None, dst_etag: str = "",
               **kw) -> ObjectResult:
        return ObjectResult(self.key, outcome, src.etag, dst_etag, src.size if before is None else before,
                            after, **kw)

    def migrate_jpeg(self, blob: Blob) -> ObjectResult | None:
        """Compress, write, verify; None when the source changed before it could be replaced."""
        container = jpegshrink.compress(blob.data)
        info = jpegshrink.inspect(container)
        reason = keep_reason(len(blob.data), info, self.job.fallbacks)
        if reason:
            if self.job.in_place:
                self.drop_stale_staging()
                return self.result("kept-original", blob, blob.size, reason=reason)
            etag = self.write_verified(self.key, blob.data, {om.SOURCE_ETAG: blob.etag}, blob.content_type)
            return self.result("kept-original", blob, blob.size, dst_etag=etag, reason=reason)
        meta = om.container_metadata(info, blob.content_type, blob.etag)
        done = dict(mode=info.mode, model_id=info.model_id, reason=info.reason)
        if not self.job.in_place:
            etag = self.write_verified(self.key, container, meta, om.CONTAINER_CONTENT_TYPE, blob.data)
            return self.result("migrated", blob, len(container), dst_etag=etag, **done)
        stage = staging_key(self.key)
        self.write_verified(stage, container, meta, om.CONTAINER_CONTENT_TYPE, blob.data)
        try:
            etag = self.replace_source(container, meta, blob.etag)
        except PreconditionFailed:
            self.retry(lambda: self.dst.delete(stage))
            return None
        try:  # byte equality suffices here: these very bytes decoded to the original from the staging copy
            self.check_readback(self.key, container, None)
        except VerifyError:
            self.restore(stage, blob)
            raise
        self.retry(lambda: self.dst.delete(stage))
        return self.result("migrated", blob, len(container), dst_etag=etag, **done)

    def drop_stale_staging(self) -> None:
        """A staging copy from an interrupted run whose source was since replaced by another writer."""
        if self.key in self.job.staged:
            self.retry(lambda: self.dst.delete(staging_key(self.key)))

    def replace_source(self, container: bytes, meta: dict[str, str], etag: str) -> str:
        """Conditional replace; a lost response to a write that landed is recognised, not mistaken for a race."""
        try:
            return self.retry(lambda: self.dst.put(self.key, container, meta, om.CONTAINER_CONTENT_TYPE,
                                                   if_match=etag))
        except PreconditionFailed:
            now = self.retry(lambda: self.dst.get(self.key))
            if now.data == container:
                return now.etag
            raise

    def write_verified(self, key: str, data: bytes, meta: dict[str, str], content_type: str,
                       original: bytes | None = None) -> str:
        etag = self.retry(lambda: self.dst.put(key, data, meta, content_type))
        self.check_readback(key, data, original)
        return etag

    def check_readback(self, key: str, written: bytes, original: bytes | None) -> None:
        """Read ``key`` back: same bytes as written and, for a container, it decodes to the original."""
        back = self.retry(lambda: self.dst.get(key)).data
        if back != written:
            raise VerifyError(f"read-back of {key} differs from what was written ({len(back)} vs {len(written)} bytes)")
        if original is not None:
            try:
                decoded = jpegshrink.decompress(back)
            except jpegshrink.ContainerError as e:
                raise VerifyError(f"read-back of {key} does not decode: {e}") from None
            if decoded != original:
                raise VerifyError(f"read-back of {key} decodes to other bytes than the original")

    def restore(self, stage: str, original: Blob) -> None:
        """The replaced object failed its read-back: put the original back (the staging copy stays)."""
        current = self.retry(lambda: self.dst.head(self.key))
        self.retry(lambda: self.dst.put(self.key, original.data, original.metadata, original.content_type,
                                        if_match=current.etag if current else None))

    def settle_container(self, head: Blob) -> ObjectResult:
        """In place, the key holds a container: done earlier, or an interrupted replace to finish."""
        stage = staging_key(self.key)
        # the start-up listing of staging copies misses those of this very run (a Dask range rerun
        # after its worker died), so ask
        if self.key not in self.job.staged and self.retry(lambda: self.dst.head(stage)) is None:
            original = jpegshrink.read_header(head.data).original_length
            return self.result("already-container", head, head.size, before=original)
        staged = self.retry(lambda: self.dst.get(stage))
        current = self.retry(lambda: self.dst.get(self.key))
        if not _decodes(current.data):
            if not _decodes(staged.data):
                raise VerifyError(f"{self.key} and its staging copy are both damaged")
            etag = self.retry(lambda: self.dst.put(self.key, staged.data, staged.metadata, staged.content_type,
                                                   if_match=current.etag))
            self.check_readback(self.key, staged.data, jpegshrink.decompress(staged.data))
            current = replace(current, data=staged.data, etag=etag)
        header = jpegshrink.read_header(current.data)
        self.retry(lambda: self.dst.delete(stage))
        return self.result("recovered", current, len(current.data), before=header.original_length,
                           dst_etag=current.etag, reason="finished an interrupted in-place replace")

    def found_at_destination(self, head: Blob) -> ObjectResult | None:
        """Copy mode: DST already holds this source version (an earlier run, journal lost): verify, skip."""
        existing = self.retry(lambda: self.dst.head(self.key))
        if existing is None or existing.metadata.get(om.SOURCE_ETAG) != head.etag:
            return None
        stored = self.retry(lambda: self.dst.get(self.key))
        if om.classify(stored.data[:jpegshrink.HEADER_SIZE]) != "container" or not _decodes(stored.data):
            return None
        original = jpegshrink.read_header(stored.data).original_length
        return self.result("migrated", head, len(stored.data), before=original, dst_etag=stored.etag,
                           reason="found verified at the destination")

    def copy_verbatim(self, head: Blob, kind: str) -> ObjectResult:
        """Copy mode: a non-JPEG or an existing container goes to DST byte for byte."""
        outcome = "already-container" if kind == "container" else "copied"
        before = jpegshrink.read_header(head.data).original_length if kind == "container" else head.size
        existing = self.retry(lambda: self.dst.head(self.key))
        if existing is not None and existing.metadata.get(om.SOURCE_ETAG) == head.etag:
            return self.result(outcome, head, existing.size, before=before, dst_etag=existing.etag)
        blob = self.retry(lambda: self.src.get(self.key))
        meta = {**blob.metadata, om.SOURCE_ETAG: blob.etag}
        etag = self.write_verified(self.key, blob.data, meta, blob.content_type)
        return self.result(outcome, blob, blob.size, before=before, dst_etag=etag)


def keep_reason(original_size: int, info: jpegshrink.ContainerInfo, fallbacks: str) -> str | None:
    """Why the original stays as it is (``None``: store the container)."""
    if info.stored_length >= original_size:
        why = "no gain"
    elif info.mode == "fallback" and fallbacks == "keep-original":
        why = "codec fell back"
    else:
        return None
    return f"{why} ({info.reason})" if info.reason else why


def _decodes(data: bytes) -> bool:
    try:
        jpegshrink.decompress(data)
        return True
    except jpegshrink.JpegShrinkError:
        return False


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}".replace("\n", " ")[:500]


# --------------------------------------------------------------------------------------- dry run

def estimate_object(job: MigrateJob, ref: ObjectRef) -> ObjectResult:
    """Dry run: what migrating this object would give (reads only, writes nothing)."""
    try:
        store = cached_store(job.src)
        blob = with_retries(lambda: store.get(ref.key), budget_s=job.retry_budget_s)
        kind = om.classify(blob.data[:jpegshrink.HEADER_SIZE])
        if kind == "container":
            original = jpegshrink.read_header(blob.data).original_length
            return ObjectResult(ref.key, "already-container", blob.etag, "", original, blob.size)
        if kind == "other":
            return ObjectResult(ref.key, "left" if job.in_place or job.other == "leave" else "copied",
                                blob.etag, "", blob.size, blob.size, reason="not a JPEG")
        container = jpegshrink.compress(blob.data)
        info = jpegshrink.inspect(container)
        reason = keep_reason(blob.size, info, job.fallbacks)
        if reason:
            return ObjectResult(ref.key, "kept-original", blob.etag, "", blob.size, blob.size, reason=reason)
        return ObjectResult(ref.key, "migrated", blob.etag, "", blob.size, len(container), info.mode,
                            info.model_id, info.reason)
    except Exception as e:
        return ObjectResult(ref.key, "failed", ref.etag, "", ref.size, ref.size, reason=_describe(e))


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
    dst.check_access()
    if opts.dask:
        check_cluster(opts.dask)
    in_place = _same_location(src, dst)
    if not in_place and _nested(src, dst):
        raise StoreError(f"{dst.describe()} and {src.describe()} overlap: use the same location (in place) "
                         f"or two separate ones")
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
        report = Report("migrate", header, PROBLEMS, ("failed", "changed", "fallbacks", "kept-original"), GROUPS)
        todo = []
        for ref in listing:
            rec = journal.get(ref.key)
            if rec and rec["outcome"] in FINISHED and ref.etag in (rec["src_etag"], rec["dst_etag"]):
                _count(report, ObjectResult(**rec), now=False)
            else:
                todo.append(ref)
        header["resumed_from_journal"] = len(listing) - len(todo)
        with progress_bar(len(todo), opts.progress, "migrate") as bar:
            for result in run_tasks(migrate_object, job, todo, workers=opts.workers, dask_address=opts.dask,
                                    on_lost=lost_result):
                journal.record(asdict(result))
                _count(report, result)
                bar.update(1)
                bar.set_postfix_str(f"saved {(report.bytes_before - report.bytes_after) / 1e6:.1f} MB",
                                    refresh=False)
    return report


def _count(report: Report, r: ObjectResult, now: bool = True) -> None:
    fallback = "fallbacks" if r.mode == "fallback" or r.outcome == "kept-original" else None
    report.add(r.outcome, r.key, r.bytes_before, r.bytes_after, r.reason, now=now, extra_item=fallback)


def _dry_run(opts: MigrateOptions, job: MigrateJob, src: ObjectStore, header: dict) -> Report:
    """Compress a random sample (reads only) and scale its saving to the whole listing."""
    listing = list(src.list())
    sample = sorted(random.Random(opts.seed).sample(listing, min(opts.sample, len(listing))), key=lambda r: r.key)
    report = Report("migrate --dry-run", header, ("failed",), ("failed", "fallbacks", "kept-original"), GROUPS)
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
    if choice != "auto" or not isinstance(store, S3Store):
        mode = "head-recheck" if choice == "auto" else choice
        return WriteGuard(mode, mode)
    return store.probe_conditional_writes()


def _staged_keys(store: ObjectStore) -> set[str]:
    """Keys with a staging copy left by an interrupted in-place replace."""
    staging = replace(store.config, url=store.config.url.rstrip("/") + "/" + staging_key(""))
    try:
        return {ref.key for ref in open_store(staging).list()}
    except FileNotFoundError:
        return set()


def _same_location(a: ObjectStore, b: ObjectStore) -> bool:
    return a.describe().rstrip("/") == b.describe().rstrip("/")


def _nested(a: ObjectStore, b: ObjectStore) -> bool:
    """One location inside the other: the job would list its own output as input."""
    x, y = a.describe().rstrip("/") + "/", b.describe().rstrip("/") + "/"
    if isinstance(a, S3Store) and isinstance(b, S3Store):
        if a.config.endpoint_url != b.config.endpoint_url or a.bucket != b.bucket:
            return False
        x, y = a.prefix, b.prefix
    return x.startswith(y) or y.startswith(x)


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
