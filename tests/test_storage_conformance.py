"""fsspec's own conformance suite (fsspec.tests.abstract, as s3fs runs it) on the layer over memory and disk.

The suite writes small non-JPEG files, so it checks the layer's filesystem plumbing (put/get/copy/
pipe/open/exclusive modes, globbing, directories) rather than the codec.
"""
from __future__ import annotations

import fsspec.tests.abstract as abstract
import pytest
from fsspec.implementations.local import LocalFileSystem
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


class JpegShrinkLocalFixtures(abstract.AbstractFixtures):
    @pytest.fixture(scope="class")
    def fs(self):
        return JpegShrinkFileSystem(fs=LocalFileSystem(auto_mkdir=True), skip_instance_cache=True)

    @pytest.fixture
    def fs_path(self, tmpdir):
        return str(tmpdir / "remote")


class TestJpegShrinkLocalCopy(abstract.AbstractCopyTests, JpegShrinkLocalFixtures):
    pass


class TestJpegShrinkLocalGet(abstract.AbstractGetTests, JpegShrinkLocalFixtures):
    pass


class TestJpegShrinkLocalPut(abstract.AbstractPutTests, JpegShrinkLocalFixtures):
    pass


class TestJpegShrinkLocalPipe(abstract.AbstractPipeTests, JpegShrinkLocalFixtures):
    pass


class TestJpegShrinkLocalOpen(abstract.AbstractOpenTests, JpegShrinkLocalFixtures):
    pass
