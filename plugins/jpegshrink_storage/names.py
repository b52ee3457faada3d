"""Names the storage layer reserves inside a store: the staging folder and temporary files.

The migration job stages verified copies under :data:`STAGING_DIR`; local atomic writes go through
temporary files starting with :data:`TMP_MARK`. Neither is ever data: the jobs do not list them, and
the ``jpegshrink::`` filesystem (and so the mount) never shows them.
"""
from __future__ import annotations

#: Reserved folder (under the root) for in-place staging copies and probes; never listed as data.
STAGING_DIR = ".jpegshrink-staging"
#: Prefix of temporary files that atomic writes rename into place.
TMP_MARK = ".jsk-tmp-"


def is_internal(key: str) -> bool:
    """True for keys the layer owns (the staging folder and what is in it, temp files): never data."""
    parts = key.rstrip("/").split("/")
    return STAGING_DIR in parts or parts[-1].startswith(TMP_MARK)


def staging_key(key: str) -> str:
    """Where the verified copy of ``key`` waits while ``key`` itself is replaced in place."""
    return f"{STAGING_DIR}/{key}"
