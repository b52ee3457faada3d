"""Containers (v2, and v1 read): damaged, truncated, foreign and future containers give their error, never bytes."""
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


# -- format v2: small inputs cost the header, nothing more ----------------------------------------

def _random(n: int) -> bytes:
    import random
    return random.Random(n).randbytes(n)


@pytest.mark.parametrize("n", [0, 1, 100, 5000])
def test_incompressible_input_costs_only_the_header(n):
    data = _random(n)
    blob = jpegshrink.compress(data)
    # header: magic 8, version 1, mode 1, two varint lengths, sha256 32, CRC 4; body: reason, CRC 4
    assert len(blob) <= n + 50 + 1 + len("not-jpeg") + 4
    assert (jpegshrink.inspect(blob).mode, jpegshrink.inspect(blob).reason) == ("stored", "not-jpeg")
    assert jpegshrink.decompress(blob) == data


def test_empty_input_is_a_container_shorter_than_header_size():
    blob = container.pack(container.Container(container.Mode.STORED, 0, bytes(32), streams=[b""]))
    assert len(blob) == jpegshrink.MIN_CONTAINER_SIZE < len(jpegshrink.compress(b"")) < jpegshrink.HEADER_SIZE
    header = jpegshrink.read_header(blob)  # a whole container shorter than HEADER_SIZE is a valid prefix
    assert (header.original_length, header.container_length) == (0, len(blob))


@pytest.mark.parametrize("data", [_random(300), b"compressible, not a jpeg " * 40], ids=["stored", "fallback"])
def test_damage_to_small_containers_is_detected(data):
    blob = jpegshrink.compress(data)
    for i in range(len(blob)):
        for bit in (0x01, 0x80):
            damaged = bytearray(blob)
            damaged[i] ^= bit
            with pytest.raises(ContainerError):
                jpegshrink.decompress(bytes(damaged))
    for n in range(len(blob)):
        with pytest.raises(CorruptContainer):
            jpegshrink.decompress(blob[:n])


def test_header_fits_in_header_size_for_the_largest_lengths():
    c = container.Container(container.Mode.FALLBACK, (1 << 63) - 1, bytes(32), reason="x", streams=[b"z"])
    blob = container.pack(c)
    header = container.read_header(blob[: container.HEADER_SIZE])
    assert header.header_length == 8 + 1 + 1 + 9 + 32 + 1 + 4 and header.original_length == (1 << 63) - 1
    assert header.container_length == len(blob)  # with a 9-byte total too, 64 bytes: HEADER_SIZE
    with pytest.raises(ValueError):
        container.pack(container.Container(container.Mode.FALLBACK, 1 << 63, bytes(32), streams=[b"z"]))


def test_non_minimal_varint_is_refused():
    blob = jpegshrink.compress(b"")  # header: magic, 2, mode, varint 0, sha256, varint total, CRC
    fields = blob[:10] + b"\x80\x00" + blob[11:43] + bytes([len(blob) + 1])
    with pytest.raises(CorruptContainer, match="non-minimal"):
        container.read_header(fields + struct.pack("<I", zlib.crc32(fields)))


def test_stored_mode_cannot_carry_other_fields():
    with pytest.raises(ValueError):
        container.pack(container.Container(container.Mode.STORED, 1, bytes(32), "model", streams=[b"a"]))


# -- the layout dictionary ------------------------------------------------------------------------

def test_layout_blobs_use_the_pinned_dictionary_and_an_unknown_one_is_refused(sample_files):
    import zstandard

    from jpegshrink.coding import dictionary

    blob = jpegshrink.compress(sample_files[0].read_bytes())
    c = container.unpack(blob)
    assert zstandard.get_frame_parameters(c.layout).dict_id == dictionary.LAYOUT_DICTIONARY_ID
    frame = bytearray(c.layout)  # point the frame at a dictionary that does not exist
    descriptor = frame[4]
    assert descriptor & 3 == 1  # a one-byte dictionary id follows the (optional) window descriptor
    frame[5 if descriptor & 0x20 else 6] = 7
    c.layout = bytes(frame)
    with pytest.raises(CorruptContainer, match="dictionary 7"):
        jpegshrink.decompress(container.pack(c))


# -- format v3: the info field, compressed with the info dictionary ---------------------------------

REALISTIC_INFO = {"encoder": "jpegshrink-lossy-3", "mode": "high-bitrate", "original_recoverable": False,
                  "scores": {"psnr_y": 41.25, "ssimulacra2": 84.113}, "settings": {"quality": 85,
                  "subsampling_chosen": "420"}, "source_format": "PNG", "source_height": 1200, "source_width": 1600}


def test_a_container_with_info_is_v3_with_a_dictionary_frame_and_one_without_stays_v2(sample_files):
    import zstandard

    from jpegshrink.coding import dictionary

    jpeg_bytes = sample_files[0].read_bytes()
    assert container.read_header(jpegshrink.compress(jpeg_bytes)).version == 2
    blob = jpegshrink.store_lossy_jpeg(jpeg_bytes, REALISTIC_INFO)
    c = container.unpack(blob)
    assert container.read_header(blob).version == container.FORMAT_VERSION == 3
    assert c.info == {"lossy": True, **REALISTIC_INFO}
    # the stored field is the zstd frame, and it is far smaller than the JSON it holds
    plain = container.pack(container.Container(c.mode, c.original_length, c.original_sha256, c.model_id,
                                               c.reason, c.layout, c.streams))
    stored_info = len(blob) - len(plain)
    assert stored_info < len(container.info_json(c.info)) / 2
    start = blob.index(b"\x28\xb5\x2f\xfd")  # the info frame comes first in the body
    assert zstandard.get_frame_parameters(blob[start:]).dict_id == dictionary.INFO_DICTIONARY_ID


@pytest.mark.parametrize("frame, match", [
    (b"\x28\xb5\x2f\xfd" + b"not a frame at all", "damaged"),
    (None, "not valid JSON"),        # a good frame of something that is not JSON
    ("bomb", "claims"),              # a frame that inflates past the info limit
])
def test_a_bad_info_frame_is_a_corrupt_container(sample_files, monkeypatch, frame, match):
    import zstandard

    from jpegshrink.coding import dictionary

    if frame is None:
        frame = zstandard.ZstdCompressor().compress(b"\xff not json")
    elif frame == "bomb":
        frame = zstandard.ZstdCompressor(level=3).compress(b"{" + b" " * (2 << 20) + b"}")
    blob = jpegshrink.store_lossy_jpeg(sample_files[0].read_bytes(), REALISTIC_INFO)
    c = container.unpack(blob)
    monkeypatch.setattr(dictionary, "compress_info", lambda raw, level: frame)
    with pytest.raises(CorruptContainer, match=match):
        container.unpack(container.pack(c))


def test_a_layout_frame_claiming_more_than_the_limit_is_refused_before_allocation(sample_files):
    import zstandard

    blob = jpegshrink.compress(sample_files[0].read_bytes())
    c = container.unpack(blob)
    # zstandard would size its output by the frame's claim (65 MiB here; a forged one could say 1 TB)
    c.layout = zstandard.ZstdCompressor(level=1).compress(bytes(65 << 20))
    with pytest.raises(CorruptContainer, match="claims 68157440 bytes"):
        jpegshrink.decompress(container.pack(c))


def test_lossy_layouts_take_the_smaller_of_the_generic_and_the_lossy_dictionary(sample_files):
    import numpy as np
    import zstandard

    from jpegshrink.coding import dictionary

    def layout_dict(blob):
        return zstandard.get_frame_parameters(container.unpack(blob).layout).dict_id

    rng = np.random.default_rng(0)
    pixels = (rng.integers(0, 40, (96, 128, 3)) + np.linspace(0, 200, 128)[None, :, None]).astype(np.uint8)
    ours = jpegshrink.encode_image(pixels, mode="high-bitrate", quality=60, measure=False)
    assert layout_dict(ours) == dictionary.LOSSY_LAYOUT_DICTIONARY_ID
    assert container.read_header(ours).version == 3  # a v2 reader never meets dictionary 3
    # a libjpeg file stored as lossy: its standard Huffman tables are what the generic dictionary knows
    foreign = jpegshrink.store_lossy_jpeg(sample_files[0].read_bytes(), {"source_format": "png"})
    assert layout_dict(foreign) == dictionary.LAYOUT_DICTIONARY_ID
    with pytest.raises(ValueError, match="not a layout dictionary"):
        dictionary.compress_layout(b"x", 3, dictionary.INFO_DICTIONARY_ID)
