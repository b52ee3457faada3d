"""Build of jpegshrink's compiled extensions (everything else is in pyproject.toml).

Each extension is one entry of ``EXTENSIONS``, made with :func:`extension` so that all of them share the
same compile flags: -O3 (measured a few per cent faster than -O2 on the model passes; the kernels are
integer-only, so the optimisation level cannot change a byte) and no -march/-mtune flags, so the code
does not depend on the build machine's CPU either. ``JPEGSHRINK_SANITIZE=1`` builds with
AddressSanitizer and UndefinedBehaviorSanitizer for fuzzing (load it with
``LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)"``
and ``ASAN_OPTIONS=detect_leaks=0``: libstdc++ too, or ASan cannot intercept C++ exceptions in a Python process).

    pip install -e .                          # builds in place
    python setup.py build_ext --inplace       # rebuild after editing jpegshrink/csrc
"""
from __future__ import annotations

import os
from pathlib import Path

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

CSRC = Path("jpegshrink") / "csrc"


def _flags() -> tuple[list[str], list[str]]:
    """(compile, link) flags shared by every extension."""
    compile_args = ["-O3", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    link_args: list[str] = []
    if os.environ.get("JPEGSHRINK_SANITIZE") == "1":
        sanitize = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer", "-g"]
        compile_args += sanitize
        link_args += sanitize
    return compile_args, link_args


def extension(name: str, sources: list[str], headers: list[str] = ()) -> Pybind11Extension:
    """A C++17 pybind11 extension module built with the shared flags."""
    compile_args, link_args = _flags()
    return Pybind11Extension(name, sorted(sources), depends=sorted(headers), cxx_std=17,
                             extra_compile_args=compile_args, extra_link_args=link_args)


EXTENSIONS = [
    # Huffman scan coders, bit I/O, the binary arithmetic coder, the adaptive model's passes and the
    # lossy mode's quantisation kernels.
    extension("jpegshrink._core", [str(CSRC / f) for f in ("module.cpp", "bitio.cpp", "sequential.cpp",
                                                           "progressive.cpp", "adaptive_model.cpp",
                                                           "lossy_rdo.cpp", "lossy_transform.cpp")],
              [str(p) for p in CSRC.glob("*.h")]),
    # Model v3 (mix3): mixed contexts, SSE, striped; its own module so each model's kernel stands alone.
    extension("jpegshrink.model._mix3", ["jpegshrink/model/csrc/mix3.cpp"], [str(CSRC / "common.h")]),
]

setup(ext_modules=EXTENSIONS, cmdclass={"build_ext": build_ext})
