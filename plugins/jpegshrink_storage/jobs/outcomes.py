"""What a job did to one object: the migration's outcomes and verify's statuses, as enums.

Their values are what the journal, the JSON report and the text report spell (stable: journals written
by earlier versions are read back with them).
"""
from __future__ import annotations

from enum import Enum


class Outcome(str, Enum):
    """What ``migrate`` did to one object."""

    MIGRATED = "migrated"  #: the JPEG is now a verified container at the destination
    RECOVERED = "recovered"  #: an interrupted in-place replace was finished
    ALREADY_CONTAINER = "already-container"  #: nothing to do (copied as it is to another destination)
    KEPT_ORIGINAL = "kept-original"  #: no gain, or a codec fallback with --fallbacks keep-original
    COPIED = "copied"  #: not a JPEG, copied unchanged to the destination
    LEFT = "left"  #: not a JPEG, left where it is (in place, or --other leave)
    VANISHED = "vanished"  #: deleted by another client while the job ran
    CHANGED = "changed"  #: kept changing while it was migrated; the next run takes it
    FAILED = "failed"  #: an error; the next run takes it

    @property
    def is_problem(self) -> bool:
        """Makes the job exit 1; never final (the next run looks at the object again)."""
        return self in (Outcome.FAILED, Outcome.CHANGED)

    @property
    def wrote_destination(self) -> bool:
        """In place: whether the outcome replaced the object at its key (else the key holds the source)."""
        return self in (Outcome.MIGRATED, Outcome.RECOVERED)


#: Report totals over several outcomes.
OUTCOME_GROUPS: dict[str, tuple[Outcome, ...]] = {
    "converted": (Outcome.MIGRATED, Outcome.RECOVERED),
    "skipped": (Outcome.ALREADY_CONTAINER, Outcome.KEPT_ORIGINAL, Outcome.LEFT, Outcome.COPIED, Outcome.VANISHED),
    "problems": (Outcome.FAILED, Outcome.CHANGED),
}


class VerifyStatus(str, Enum):
    """What ``verify`` found for one object."""

    OK = "ok"  #: a container that decodes to what its header and metadata say
    PLAIN = "plain"  #: not a container (and matching the manifest, when it names the object)
    CORRUPT = "corrupt"  #: does not decode, or the metadata claims a container the bytes are not
    UNDECODABLE = "undecodable"  #: intact, but needs a newer jpegshrink (model or format version)
    MISMATCH = "mismatch"  #: decodes, but to other bytes than the metadata or manifest say
    MISSING = "missing"  #: named in the manifest, not in the store
    FAILED = "failed"  #: could not be read

    @property
    def is_problem(self) -> bool:
        return self not in (VerifyStatus.OK, VerifyStatus.PLAIN)
