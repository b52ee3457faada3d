"""The migration journal: durable records, torn lines after a kill, one job per journal, one run at a time."""
from __future__ import annotations

import pytest

from jpegshrink_storage.jobs.journal import Journal, JournalError

JOB = {"command": "migrate", "source": "s3://a/", "destination": "s3://a/"}


def test_records_survive_reopening_and_a_torn_last_line(tmp_path):
    path = tmp_path / "j.jsonl"
    with Journal(path, JOB) as j:
        j.record({"key": "a.jpg", "outcome": "failed"})
        j.record({"key": "b.jpg", "outcome": "migrated"})
        j.record({"key": "a.jpg", "outcome": "migrated"})
    with open(path, "ab") as f:
        f.write(b'{"key": "c.jpg", "outc')  # SIGKILL in the middle of a write
    with Journal(path, JOB) as j:
        assert j.records == {"a.jpg": {"key": "a.jpg", "outcome": "migrated"},
                             "b.jpg": {"key": "b.jpg", "outcome": "migrated"}}
        j.record({"key": "c.jpg", "outcome": "left"})
    with Journal(path, JOB) as j:
        assert set(j.records) == {"a.jpg", "b.jpg", "c.jpg"}


def test_a_torn_first_line_starts_afresh(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_bytes(b'{"job": {"comm')
    with Journal(path, JOB) as j:
        assert j.records == {}
    with Journal(path, JOB) as j:
        assert j.records == {}


def test_another_jobs_journal_and_a_busy_journal_are_refused(tmp_path):
    path = tmp_path / "j.jsonl"
    with Journal(path, JOB):
        with pytest.raises(JournalError, match="in use"):
            Journal(path, JOB)
    with pytest.raises(JournalError, match="another job"):
        Journal(path, {**JOB, "destination": "s3://b/"})
    (tmp_path / "x").write_text("hello\nworld\n")
    with pytest.raises(JournalError, match="not a jpegshrink journal"):
        Journal(tmp_path / "x", JOB)
