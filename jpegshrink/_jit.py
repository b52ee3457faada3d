"""A numba ``njit`` that never breaks the import.

``cache=True`` makes numba write compiled code next to the source or under ``NUMBA_CACHE_DIR``; when
neither is writable the decorator raises at import time. We probe once and compile without a cache in
that case (slower start, same results). Set ``NUMBA_CACHE_DIR`` in services to keep the cache.
"""
from __future__ import annotations

import functools
import os
import tempfile

import numba


@functools.lru_cache(maxsize=1)
def _cache_is_writable() -> bool:
    candidates = [os.environ.get("NUMBA_CACHE_DIR"), os.path.join(os.path.dirname(__file__), "__pycache__"),
                  os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "numba")]
    for path in filter(None, candidates):
        try:
            os.makedirs(path, exist_ok=True)
            with tempfile.TemporaryFile(dir=path):
                return True
        except OSError:
            continue
    return False


def njit(*args, **kwargs):
    """``numba.njit`` with ``cache=True, nogil=True`` where a cache can be written."""
    kwargs.setdefault("cache", _cache_is_writable())
    kwargs.setdefault("nogil", True)
    return numba.njit(*args, **kwargs)
