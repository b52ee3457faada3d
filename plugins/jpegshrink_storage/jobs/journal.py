"""The job journal: an append-only JSONL file, fsynced per record, that makes a job resumable.

The driver process alone writes it (workers only return results), one line per finished object. A job
killed at any instant (SIGKILL included) leaves at worst a torn last line, which loading ignores; the
object it described is simply looked at again, and the per-object steps are idempotent (an object that
already holds a container is recognised from its first bytes). The first line names the job so that a
journal is never applied to another source/destination pair by mistake. An exclusive ``flock`` keeps
two jobs from sharing one journal.
"""
from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

from jpegshrink_storage.errors import JournalError


class Journal:
    """Records of finished objects, keyed by object key; later records replace earlier ones."""

    def __init__(self, path: Path, job: dict[str, Any]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a+b")
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            raise JournalError(f"journal {self.path} is in use by another running job") from None
        self.records: dict[str, dict[str, Any]] = {}
        self._load(job)

    def _load(self, job: dict[str, Any]) -> None:
        self._file.seek(0)
        lines = self._file.read().split(b"\n")
        if lines == [b""]:
            self._append({"job": job})
            return
        try:
            first = json.loads(lines[0])["job"]
        except (ValueError, KeyError, TypeError):
            if len(lines) == 1:  # killed while writing the very first line: nothing to resume
                self._file.truncate(0)
                self._append({"job": job})
                return
            raise JournalError(f"{self.path} is not a jpegshrink journal") from None
        if first != job:
            raise JournalError(f"journal {self.path} belongs to another job ({first}); use another --journal")
        for line in lines[1:]:
            try:
                record = json.loads(line)
            except ValueError:  # a torn final line from a killed run
                continue
            self.records[record["key"]] = record
        if not lines[-1] == b"":  # terminate a torn line so the next record starts cleanly
            self._file.write(b"\n")

    def get(self, key: str) -> dict[str, Any] | None:
        return self.records.get(key)

    def record(self, record: dict[str, Any]) -> None:
        """Append and fsync one object's record; it is durable when this returns."""
        self._append(record)
        self.records[record["key"]] = record

    def _append(self, obj: dict[str, Any]) -> None:
        self._file.write(json.dumps(obj, separators=(",", ":")).encode() + b"\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
