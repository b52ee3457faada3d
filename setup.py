"""Build the compiled kernels in place: ``python setup.py build_ext --inplace``.

Each compiled model kernel is one Extension in EXTENSIONS (the lead merges lists from other branches).
No -march=native: the wheels must run on any x86-64/arm64 machine, and the kernels are integer-exact,
so the bytes do not depend on the instruction set anyway.
"""
from setuptools import Extension, setup

try:
    import pybind11
except ImportError as exc:  # pragma: no cover - a build-time requirement
    raise SystemExit("building the kernels needs pybind11: pip install pybind11") from exc

EXTENSIONS = [
    Extension(
        "jpegshrink.model._mix3",
        sources=["jpegshrink/model/csrc/mix3.cpp"],
        include_dirs=[pybind11.get_include()],
        language="c++",
        extra_compile_args=["-std=c++17", "-O2", "-fno-strict-aliasing", "-fvisibility=hidden"],
    ),
]

setup(ext_modules=EXTENSIONS)
