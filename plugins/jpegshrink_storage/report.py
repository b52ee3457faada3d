"""Job reports: totals built up object by object, written as JSON (for programs) and text (for people)."""
from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Report:
    """Counts, bytes and the itemised problems of one job; ``problems`` lists the outcomes that make it fail."""

    command: str
    header: dict[str, Any]
    problems: tuple[str, ...]
    itemised: tuple[str, ...]
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)  #: totals over several outcomes
    counts: Counter = field(default_factory=Counter)
    bytes_before: int = 0
    bytes_after: int = 0
    items: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    processed_now: int = 0
    bytes_processed_now: int = 0
    started: float = field(default_factory=time.monotonic)

    def add(self, outcome: str, key: str, before: int, after: int, reason: str = "", *, now: bool = True,
            extra_item: str | None = None) -> None:
        """Count one object; ``now=False`` for results carried over from an earlier run's journal."""
        self.counts[outcome] += 1
        self.bytes_before += before
        self.bytes_after += after
        if now:
            self.processed_now += 1
            self.bytes_processed_now += before
        for name in {outcome, extra_item} & set(self.itemised):
            self.items.setdefault(name, []).append({"key": key, "reason": reason})

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
        lines.append(f"  this run: {d['processed_this_run']} objects in {d['elapsed_s']:.1f} s "
                     f"({d['objects_per_s']} objects/s, {d['mb_per_s']} MB/s)")
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
