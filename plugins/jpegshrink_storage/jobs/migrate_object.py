"""The migration of one object (run on threads or Dask workers): nothing is lost at any step.

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
   result is in the report). The replaced object is read back and compared byte for byte with the
   bytes that decoded from the staging copy, then the staging copy is deleted. So at every instant a
   verified copy of the data exists in the store. A source changed by another client is never
   clobbered: it is read again (``--change-retries``) or reported as changed.
   A run killed between these steps is finished by the next run (a container at the key plus a staging
   copy: the key is verified, restored from staging if damaged, and the staging copy deleted).

Every function here takes a picklable :class:`MigrateJob` and returns an :class:`ObjectResult` (one
journal line), never raising: the driver (jobs/migrate.py) owns the listing, journal and report.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import jpegshrink
from jpegshrink_storage.errors import NotFound, PreconditionFailed, VerifyError
from jpegshrink_storage.jobs import metadata as om
from jpegshrink_storage.jobs.metadata import Kind
from jpegshrink_storage.jobs.outcomes import Outcome
from jpegshrink_storage.jobs.retry import with_retries
from jpegshrink_storage.names import staging_key
from jpegshrink_storage.stores import Blob, ObjectRef, StoreConfig, cached_store


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
    outcome: Outcome
    src_etag: str = ""
    dst_etag: str = ""
    bytes_before: int = 0
    bytes_after: int = 0
    mode: str = ""  #: container mode ("jpeg" or "fallback") when a container was written
    model_id: str = ""
    reason: str = ""  #: fallback reason, why an object was kept or left, or what failed
    done_earlier: bool = False  #: the work was found done (by a run whose journal is lost), not done now

    def to_record(self) -> dict[str, Any]:
        """The journal line (plain JSON types)."""
        return {**asdict(self), "outcome": self.outcome.value}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ObjectResult:
        return cls(**{"done_earlier": False, **record, "outcome": Outcome(record["outcome"])})


# ------------------------------------------------------------------------------- one object (worker)

def migrate_object(job: MigrateJob, ref: ObjectRef) -> ObjectResult:
    """Migrate one object; never raises (errors become a ``failed`` result with the reason)."""
    try:
        return _Migration(job, ref).run()
    except NotFound:
        return ObjectResult(ref.key, Outcome.VANISHED, ref.etag, "", ref.size, 0, reason="deleted by another client")
    except Exception as e:
        return ObjectResult(ref.key, Outcome.FAILED, ref.etag, "", ref.size, ref.size, reason=_describe(e))


def lost_result(ref: ObjectRef, exc: BaseException) -> ObjectResult:
    return ObjectResult(ref.key, Outcome.FAILED, ref.etag, "", ref.size, ref.size,
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
            if kind is Kind.CONTAINER:
                return self.settle_container(head) if self.job.in_place else self.copy_verbatim(head, kind)
            if kind is Kind.OTHER:
                self.drop_stale_staging()
                if self.job.in_place or self.job.other == "leave":
                    return self.result(Outcome.LEFT, head, head.size, reason="not a JPEG")
                return self.copy_verbatim(head, kind)
            done = None if self.job.in_place else self.found_at_destination(head)
            if done:
                return done
            blob = self.retry(lambda: self.src.get(self.key))
            if om.classify(blob.data[:jpegshrink.HEADER_SIZE]) is not Kind.JPEG:
                continue  # replaced between the two reads: classify again
            result = self.migrate_jpeg(blob)
            if result is not None:
                return result
        return ObjectResult(self.key, Outcome.CHANGED, self.ref.etag, "", self.ref.size, self.ref.size,
                            reason="the object kept changing while it was migrated; the next run retries it")

    def result(self, outcome: Outcome, src: Blob, after: int, before: int | None = None, dst_etag: str = "",
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
                return self.result(Outcome.KEPT_ORIGINAL, blob, blob.size, reason=reason)
            etag = self.write_verified(self.key, blob.data, {om.SOURCE_ETAG: blob.etag}, blob.content_type)
            return self.result(Outcome.KEPT_ORIGINAL, blob, blob.size, dst_etag=etag, reason=reason)
        meta = om.container_metadata(info, blob.content_type, blob.etag)
        done = dict(mode=info.mode, model_id=info.model_id, reason=info.reason)
        if not self.job.in_place:
            etag = self.write_verified(self.key, container, meta, om.CONTAINER_CONTENT_TYPE, blob.data)
            return self.result(Outcome.MIGRATED, blob, len(container), dst_etag=etag, **done)
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
        return self.result(Outcome.MIGRATED, blob, len(container), dst_etag=etag, **done)

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
            return self.result(Outcome.ALREADY_CONTAINER, head, head.size, before=original)
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
        return self.result(Outcome.RECOVERED, current, len(current.data), before=header.original_length,
                           dst_etag=current.etag, reason="finished an interrupted in-place replace")

    def found_at_destination(self, head: Blob) -> ObjectResult | None:
        """Copy mode: DST already holds this source version (an earlier run, journal lost): verify, skip."""
        existing = self.retry(lambda: self.dst.head(self.key))
        if existing is None or existing.metadata.get(om.SOURCE_ETAG) != head.etag:
            return None
        stored = self.retry(lambda: self.dst.get(self.key))
        if om.classify(stored.data[:jpegshrink.HEADER_SIZE]) is not Kind.CONTAINER or not _decodes(stored.data):
            return None
        original = jpegshrink.read_header(stored.data).original_length
        return self.result(Outcome.MIGRATED, head, len(stored.data), before=original, dst_etag=stored.etag,
                           reason="found verified at the destination", done_earlier=True)

    def copy_verbatim(self, head: Blob, kind: Kind) -> ObjectResult:
        """Copy mode: a non-JPEG or an existing container goes to DST byte for byte."""
        outcome = Outcome.ALREADY_CONTAINER if kind is Kind.CONTAINER else Outcome.COPIED
        before = jpegshrink.read_header(head.data).original_length if kind is Kind.CONTAINER else head.size
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
        if kind is Kind.CONTAINER:
            original = jpegshrink.read_header(blob.data).original_length
            return ObjectResult(ref.key, Outcome.ALREADY_CONTAINER, blob.etag, "", original, blob.size)
        if kind is Kind.OTHER:
            return ObjectResult(ref.key, Outcome.LEFT if job.in_place or job.other == "leave" else Outcome.COPIED,
                                blob.etag, "", blob.size, blob.size, reason="not a JPEG")
        container = jpegshrink.compress(blob.data)
        info = jpegshrink.inspect(container)
        reason = keep_reason(blob.size, info, job.fallbacks)
        if reason:
            return ObjectResult(ref.key, Outcome.KEPT_ORIGINAL, blob.etag, "", blob.size, blob.size, reason=reason)
        return ObjectResult(ref.key, Outcome.MIGRATED, blob.etag, "", blob.size, len(container), info.mode,
                            info.model_id, info.reason)
    except Exception as e:
        return ObjectResult(ref.key, Outcome.FAILED, ref.etag, "", ref.size, ref.size, reason=_describe(e))
