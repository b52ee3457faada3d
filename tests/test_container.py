"""Container v1: damaged, truncated, foreign and future containers give their error, never bytes."""
from __future__ import annotations

import struct
import zlib

import pytest

import jpegshrink
from jpegshrink.coding import container
from jpegshrink.errors import ContainerError, CorruptContainer, UnsupportedVersion


@pytest.fixture(scope="module")
def blob(sample_files) -> bytes:
    return jpegshrink.compress(sample_files[0].read_bytes())


def test_round_trip_and_header(sample_files, blob):
    original = sample_files[0].read_bytes()
    assert jpegshrink.decompress(blob) == original
    header = jpegshrink.read_header(blob[: jpegshrink.HEADER_SIZE])
    assert header.original_length == len(original)
    assert header.container_length == len(blob)


def test_non_jpeg_input_round_trips_as_fallback():
    data = b"hello, not a jpeg" * 100
    blob = jpegshrink.compress(data)
    assert jpegshrink.decompress(blob) == data
    assert jpegshrink.inspect(blob).mode == "fallback"
    assert jpegshrink.inspect(blob).reason


def test_every_single_byte_flip_is_detected(blob):
    for i in range(len(blob)):
        damaged = bytearray(blob)
        damaged[i] ^= 0x40
        with pytest.raises(ContainerError):
            jpegshrink.decompress(bytes(damaged))


def test_truncation_at_every_length_is_detected(blob):
    for n in range(len(blob)):
        with pytest.raises(CorruptContainer):
            jpegshrink.decompress(blob[:n])


def test_foreign_bytes_are_refused(sample_files):
    with pytest.raises(CorruptContainer, match="not a jpegshrink container"):
        jpegshrink.decompress(sample_files[0].read_bytes())


def test_future_version_is_refused(blob):
    head = bytearray(blob[: container.HEADER_SIZE])
    struct.pack_into("<H", head, 8, container.FORMAT_VERSION + 1)
    struct.pack_into("<I", head, 60, zlib.crc32(bytes(head[:60])))
    with pytest.raises(UnsupportedVersion, match="upgrade jpegshrink"):
        jpegshrink.decompress(bytes(head) + blob[container.HEADER_SIZE:])


def test_lossy_jpeg_container_is_marked_lossy_and_gives_back_its_jpeg(sample_files):
    jpeg_bytes = sample_files[0].read_bytes()
    blob = jpegshrink.store_lossy_jpeg(jpeg_bytes, {"source_format": "png", "quality": 80})
    assert jpegshrink.decompress(blob) == jpeg_bytes
    info = jpegshrink.inspect(blob)
    assert (info.mode, info.lossy, info.format_version) == ("lossy_jpeg", True, container.FORMAT_VERSION)
    assert info.info == {"lossy": True, "source_format": "png", "quality": 80}
    assert not jpegshrink.inspect(jpegshrink.compress(jpeg_bytes)).lossy


def test_version_1_cannot_claim_a_lossy_mode(blob):
    head = bytearray(blob[: container.HEADER_SIZE])
    struct.pack_into("<HB", head, 8, 1, int(container.Mode.LOSSY_JPEG))
    struct.pack_into("<I", head, 60, zlib.crc32(bytes(head[:60])))
    with pytest.raises(CorruptContainer, match="version 1"):
        container.read_header(bytes(head))
