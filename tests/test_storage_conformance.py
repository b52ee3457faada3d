"""fsspec's own conformance suite (fsspec.tests.abstract, as s3fs runs it) against the jpegshrink layer.

The suite writes small non-JPEG files, so it checks the layer's filesystem plumbing (put/get/copy/
pipe/open/exclusive modes, globbing, directories) rather than the codec.
"""
from __future__ import annotations

import fsspec
import fsspec.tests.abstract as abstract
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from jpegshrink_storage import JpegShrinkFileSystem


class JpegShrinkMemoryFixtures(abstract.AbstractFixtures):
    @pytest.fixture(scope="class")
    def fs(self):
        target = MemoryFileSystem(skip_instance_cache=True)
        target.store = {}
        target.pseudo_dirs = [""]
        return JpegShrinkFileSystem(fs=target, skip_instance_cache=True)

    @pytest.fixture
    def fs_path(self):
        return "/jpegshrink-conformance"

    @pytest.fixture
    def fs_join(self):
        return lambda *parts: "/".join(parts)


class TestJpegShrinkCopy(abstract.AbstractCopyTests, JpegShrinkMemoryFixtures):
    pass


class TestJpegShrinkGet(abstract.AbstractGetTests, JpegShrinkMemoryFixtures):
    pass


class TestJpegShrinkPut(abstract.AbstractPutTests, JpegShrinkMemoryFixtures):
    pass


class TestJpegShrinkPipe(abstract.AbstractPipeTests, JpegShrinkMemoryFixtures):
    pass


class TestJpegShrinkOpen(abstract.AbstractOpenTests, JpegShrinkMemoryFixtures):
    pass
