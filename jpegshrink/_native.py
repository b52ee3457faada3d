"""The compiled core (``jpegshrink._core``, C++ sources in ``jpegshrink/csrc``), with a clear message if
it is missing: the extension is built by ``pip install`` (or ``pip install -e .`` in a checkout), so a
missing module means a source tree that was never installed or built."""
from __future__ import annotations

try:
    from jpegshrink import _core as core
except ImportError as e:  # pragma: no cover - depends on how the package was installed
    raise ImportError("jpegshrink's compiled core (jpegshrink._core) is not built: run `pip install -e .` in the "
                      "source tree (or `python setup.py build_ext --inplace` after editing jpegshrink/csrc)") from e



def image_threads() -> int:
    """How many threads the compiled kernels may use on one image: ``JPEGSHRINK_THREADS`` where set (1 in a
    process pool that already keeps every core busy), else up to 4 of the machine's cores. Only time
    depends on it: every kernel writes the same bytes on any number of threads."""
    import os
    return int(os.environ.get("JPEGSHRINK_THREADS", "0") or 0) or min(4, os.cpu_count() or 1)


__all__ = ["core", "image_threads"]
