"""Job reports: totals built up object by object, written as JSON (for programs) and text (for people)."""
from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any


def _names(outcomes: Iterable[Enum | str]) -> tuple[str, ...]:
    return tuple(o.value if isinstance(o, Enum) else o for o in outcomes)


@dataclass
class Report:
    """Counts, bytes and the itemised problems of one job; ``problems`` lists the outcomes that make it fail.

    Outcomes are enum members (jobs.outcomes); the report keys everything by their values.
    ``sized``: the outcomes whose bytes enter the totals (None: all). verify leaves out objects it could
    not decode: their original size is unknown, and counting their stored bytes alone would make the
    saving negative.
    """

    command: str
    header: dict[str, Any]
    problems: tuple[Enum | str, ...]
    itemised: tuple[Enum | str, ...]
    groups: dict[str, tuple[Enum | str, ...]] = field(default_factory=dict)  #: totals over several outcomes
    sized: tuple[Enum | str, ...] | None = None
    counts: Counter = field(default_factory=Counter)
    counts_now: Counter = field(default_factory=Counter)
    bytes_before: int = 0
    bytes_after: int = 0
    items: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    processed_now: int = 0
    bytes_processed_now: int = 0
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.problems, self.itemised = _names(self.problems), _names(self.itemised)
        self.groups = {name: _names(outcomes) for name, outcomes in self.groups.items()}
        self.sized = None if self.sized is None else _names(self.sized)

    def add(self, outcome: Enum | str, key: str, before: int, after: int, reason: str = "", *, now: bool = True,
            extra_item: str | None = None) -> None:
        """Count one object; ``now=False`` for results carried over from an earlier run's journal
        (counted in the totals, never itemised again: they were reported by the run that did them)."""
        name = outcome.value if isinstance(outcome, Enum) else outcome
        self.counts[name] += 1
        if self.sized is None or name in self.sized:
            self.bytes_before += before
            self.bytes_after += after
        if not now:
            return
        self.counts_now[name] += 1
        self.processed_now += 1
        self.bytes_processed_now += before
        for item in {name, extra_item} & set(self.itemised):
            self.items.setdefault(item, []).append({"key": key, "reason": reason})

    @property
    def failed(self) -> bool:
        return any(self.counts[p] for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self.started
        saved = self.bytes_before - self.bytes_after
        return {
            "command": self.command, **self.header,
            "objects": sum(self.counts.values()),
            "counts": dict(sorted(self.counts.items())),
            **{name: sum(self.counts[o] for o in outcomes) for name, outcomes in self.groups.items()},
            "bytes_before": self.bytes_before, "bytes_after": self.bytes_after, "bytes_saved": saved,
            "saved_percent": round(100 * saved / self.bytes_before, 3) if self.bytes_before else 0.0,
            **{name: sorted(self.items.get(name, []), key=lambda i: i["key"]) for name in self.itemised},
            "reasons": {name: dict(Counter(i["reason"] for i in self.items[name]).most_common())
                        for name in self.itemised if self.items.get(name)},
            "processed_this_run": self.processed_now,
            "counts_this_run": dict(sorted(self.counts_now.items())),
            "elapsed_s": round(elapsed, 3),
            "objects_per_s": round(self.processed_now / elapsed, 2) if elapsed else 0.0,
            "mb_per_s": round(self.bytes_processed_now / 1e6 / elapsed, 3) if elapsed else 0.0,
            "ok": not self.failed,
        }

    def to_text(self) -> str:
        d = self.to_dict()
        lines = [f"jpegshrink {self.command}: {'OK' if d['ok'] else 'PROBLEMS FOUND'}"]
        lines += [f"  {k}: {v}" for k, v in self.header.items() if not isinstance(v, (dict, list))]
        lines.append(f"  objects: {d['objects']} ("
                     + ", ".join(f"{k} {v}" for k, v in d["counts"].items()) + ")")
        if self.groups:
            lines.append("  " + ", ".join(f"{name}: {d[name]}" for name in self.groups))
        lines.append(f"  bytes before: {d['bytes_before']:,}  after: {d['bytes_after']:,}  "
                     f"saved: {d['bytes_saved']:,} ({d['saved_percent']:.2f} %)")
        done_before = d["objects"] - d["processed_this_run"]
        if d["processed_this_run"]:
            lines.append(f"  this run: {d['processed_this_run']} objects ("
                         + ", ".join(f"{k} {v}" for k, v in d["counts_this_run"].items())
                         + f") in {d['elapsed_s']:.1f} s ({d['objects_per_s']} objects/s, {d['mb_per_s']} MB/s)")
        else:
            lines.append("  this run: nothing to do")
        if done_before:
            lines.append(f"  done by earlier runs: {done_before} objects")
        for name in self.itemised:
            entries = d[name]
            if not entries:
                continue
            lines.append(f"  {name} ({len(entries)}):")
            if len(entries) <= 10:
                lines += [f"    {e['key']}: {e['reason']}" for e in entries]
                continue
            by_reason = Counter(e["reason"] for e in entries)  # many: summarise, the JSON lists them all
            lines += [f"    {n} x {reason}" for reason, n in by_reason.most_common(20)]
            if len(by_reason) > 20:
                lines.append(f"    ... {len(by_reason) - 20} more reasons in the JSON report")
        return "\n".join(lines)

    def write(self, path: str | None, as_json: bool, stream) -> None:
        """The JSON report to ``path`` (if given); JSON or text to ``stream``."""
        if path:
            Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        print(json.dumps(self.to_dict(), indent=1) if as_json else self.to_text(), file=stream)
