"""A bounded cache of object headers, keyed by path and checked against the object's version.

Listing a folder of containers needs each object's original size, which lives in its first
:data:`jpegshrink.HEADER_SIZE` bytes. Reading them is one ranged request per object, so results are
kept; an entry is used only while the target still reports the same version of the object (size plus
whatever change marker the target lists: ETag, mtime, creation time...), so a replaced object is never
described by its predecessor's header.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Hashable

from jpegshrink_storage.fs.objects import StoredHeader

#: Keys that fsspec targets put in ``info()``/``ls()`` entries and that change when an object does.
VERSION_KEYS = ("ETag", "etag", "VersionId", "LastModified", "last_modified", "mtime", "created",
                "generation", "md5Hash", "ino")


def object_version(entry: dict[str, Any]) -> Hashable:
    """A value that differs between two versions of an object, from its target listing entry."""
    return (entry.get("size"), *(str(entry[k]) for k in VERSION_KEYS if k in entry))


class HeaderCache:
    """Thread-safe LRU map ``path -> (version, StoredHeader)`` holding at most ``maxsize`` entries."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._entries: OrderedDict[str, tuple[Hashable, StoredHeader]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: str, version: Hashable) -> StoredHeader | None:
        with self._lock:
            hit = self._entries.get(path)
            if hit is None or hit[0] != version:
                return None
            self._entries.move_to_end(path)
            return hit[1]

    def put(self, path: str, version: Hashable, header: StoredHeader) -> None:
        if self.maxsize <= 0:
            return
        with self._lock:
            self._entries[path] = (version, header)
            self._entries.move_to_end(path)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)

    def invalidate(self, path: str) -> None:
        """Forget one object (after it was written or removed)."""
        with self._lock:
            self._entries.pop(path, None)

    def invalidate_tree(self, path: str | None = None) -> None:
        """Forget ``path`` and everything below it (all entries when ``path`` is None)."""
        with self._lock:
            if path is None:
                self._entries.clear()
                return
            prefix = path.rstrip("/") + "/"
            for key in [k for k in self._entries if k == path or k.startswith(prefix)]:
                del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)
