"""Codec adapters for tools/bench.py: one small class per codec, each on one thread where it has a knob.

Each adapter is created inside a benchmark worker process (never in the parent), so that its imports,
thread pools and memory count against that worker alone. The knobs that keep each library on one
thread are set here; bench.py checks them by reporting the share of CPU time spent off the calling
thread (Lepton's default pool shows about 50%, threads='single' 0%; libjxl via imagecodecs is
single-threaded unless numthreads > 1).

A codec is named by a key of :data:`CODECS`, by ``jpegshrink@<model id>`` (jpegshrink writing with that
model, so that two models can be compared in one run), by ``jpegshrink@<path>.npz`` (a mix3 weights file
not yet registered: a candidate, registered in the worker only), or by ``module:attribute`` (a class with the
same methods), which is how tests plug in a deliberately broken codec.
"""
from __future__ import annotations

import importlib
import os
from importlib import metadata

#: Environment for benchmark workers, set before any codec library is imported: OpenMP (torch
#: reads it), BLAS-backed code (the jpegshrink model may use them) and rayon (Lepton's per-CPU pool)
#: get one thread. Torch is not imported here: importing it alone adds ~190 MiB of RSS.
SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1", "RAYON_NUM_THREADS": "1",
}


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


class JpegShrink:
    """jpegshrink.compress / decompress with its default verify-on-write (so encode includes one decode)."""

    name = "jpegshrink"
    verify = True

    def __init__(self, model_id: str | None = None) -> None:
        import jpegshrink
        self._js = jpegshrink
        if model_id and model_id.endswith(".npz"):
            model_id = _register_candidate(model_id)
        self.model_id = model_id

    def version(self) -> str:
        from jpegshrink import model
        return (f"jpegshrink {self._js.__version__} ({os.path.dirname(self._js.__file__)}), "
                f"model {self.model_id or model.DEFAULT_MODEL_ID or '(none registered: all fallback)'}")

    def threads_note(self) -> str:
        return ("OMP/MKL/OPENBLAS_NUM_THREADS=1, but the model may run its own threads (see off-thread "
                "CPU %); encode includes verify-on-write")

    def encode(self, data: bytes) -> bytes:
        return self._js.compress(data, model_id=self.model_id, verify=self.verify)

    def decode(self, blob: bytes) -> bytes:
        return self._js.decompress(blob)

    def describe(self, blob: bytes) -> tuple[str, str]:
        """(mode, reason) of a container: how many files went to fallback, and why."""
        info = self._js.inspect(blob)
        return info.mode, info.reason


def _register_candidate(path: str) -> str:
    """Register a mix3 weights file that has no model id yet, in this worker process only, and return
    the id it would get (``mix3-<sha8>``): a candidate is measured before anyone gives it a permanent
    id. Its containers are benchmark output, never archives."""
    from pathlib import Path
    from jpegshrink import model
    from jpegshrink.model import mix3
    weights = Path(path)
    model_id = mix3.weights_id(weights)
    if model_id not in model.registered_ids():
        model.register(model_id, lambda: mix3.Mix3Model(weights, model_id=model_id))
    return model_id


class JpegShrinkNoVerify(JpegShrink):
    """jpegshrink without verify-on-write: the raw encoder speed (not what users get by default)."""

    name = "jpegshrink-noverify"
    verify = False

    def threads_note(self) -> str:
        return ("OMP/MKL/OPENBLAS_NUM_THREADS=1, but the model may run its own threads (see off-thread "
                "CPU %); verify-on-write off")


class Lepton:
    """lepton_jpeg_python (Microsoft's Rust port of Dropbox Lepton), default format features.

    ``threads="single"`` selects the library's SingleThreadPool; the file still has Lepton's default
    partitions (so the ratio is the same as multi-threaded Lepton), they are just coded one after another.
    """

    name = "lepton"
    _CONFIG = {"threads": "single"}

    def __init__(self, model_id: str | None = None) -> None:
        import lepton_jpeg_python
        self._lep = lepton_jpeg_python

    def version(self) -> str:
        return f"lepton_jpeg_python {_version('lepton_jpeg_python')}"

    def threads_note(self) -> str:
        return "config threads='single' (SingleThreadPool)"

    def encode(self, data: bytes) -> bytes:
        return self._lep.compress_bytes(data, dict(self._CONFIG))

    def decode(self, blob: bytes) -> bytes:
        return self._lep.decompress_bytes(blob, dict(self._CONFIG))


class LeptonDensest(Lepton):
    """Lepton at its densest setting: one partition (``max_partitions=1``), single-thread pool. Lepton's
    default splits an image into partitions for threads and loses ~4-5 % of its saving doing so."""

    name = "lepton1"
    _CONFIG = {"threads": "single", "max_partitions": 1}

    def threads_note(self) -> str:
        return "config threads='single', max_partitions=1 (densest)"


class JpegXL:
    """libjxl lossless JPEG transcode via imagecodecs, default effort (7), numthreads=1."""

    name = "jpegxl"

    def __init__(self, model_id: str | None = None) -> None:
        import imagecodecs
        self._ic = imagecodecs

    def version(self) -> str:
        return f"imagecodecs {_version('imagecodecs')}, {self._ic.jpegxl_version()}, effort default (7)"

    def threads_note(self) -> str:
        return "numthreads=1"

    def encode(self, data: bytes) -> bytes:
        return bytes(self._ic.jpegxl_encode_jpeg(data, numthreads=1))

    def decode(self, blob: bytes) -> bytes:
        return bytes(self._ic.jpegxl_decode_jpeg(blob, numthreads=1))


class Zstd:
    """zstandard level 19 of the whole file: the generic-compressor baseline."""

    name = "zstd"
    LEVEL = 19

    def __init__(self, model_id: str | None = None) -> None:
        import zstandard
        self._c = zstandard.ZstdCompressor(level=self.LEVEL)  # threads=0: single-threaded
        self._d = zstandard.ZstdDecompressor()

    def version(self) -> str:
        import zstandard
        return f"zstandard {_version('zstandard')} (libzstd {zstandard.ZSTD_VERSION}), level {self.LEVEL}"

    def threads_note(self) -> str:
        return "ZstdCompressor threads=0 (no worker threads)"

    def encode(self, data: bytes) -> bytes:
        return self._c.compress(data)

    def decode(self, blob: bytes) -> bytes:
        return self._d.decompress(blob)


CODECS = {c.name: c for c in (JpegShrink, JpegShrinkNoVerify, Lepton, LeptonDensest, JpegXL, Zstd)}
DEFAULT_CODECS = ("jpegshrink", "lepton", "jpegxl", "zstd")


def load(spec: str, model_id: str | None = None):
    """Create the codec named ``spec`` (a key of CODECS, ``jpegshrink@<model id>`` or ``module:Class``)."""
    if spec in CODECS:
        return CODECS[spec](model_id)
    if spec.startswith(JpegShrink.name + "@"):
        return JpegShrink(spec.split("@", 1)[1])
    if ":" not in spec:
        raise ValueError(f"unknown codec {spec!r}: use one of {', '.join(CODECS)} or module:Class")
    module, attr = spec.split(":", 1)
    return getattr(importlib.import_module(module), attr)(model_id)


def display_name(spec: str) -> str:
    """The name a codec is reported under (the part after ':' for plug-in codecs)."""
    return spec if spec in CODECS else spec.rsplit(":", 1)[-1]
