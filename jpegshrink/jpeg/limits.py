"""Size limits checked before any coefficient memory is allocated.

A JPEG header can claim a 65535 x 65535 image in a 200-byte file. The parser refuses such claims up
front, so memory stays proportional to what the file can actually describe: every block of a real scan
costs at least one bit (progressive DC) or two bits (sequential), so a file of N bytes can hold at most
about 8 N blocks.
"""
from __future__ import annotations

from dataclasses import dataclass

from jpegshrink.errors import UnsupportedJpeg


@dataclass(frozen=True)
class Limits:
    """What :func:`jpegshrink.jpeg.parse` accepts; raise them deliberately for special archives."""

    #: Largest width x height, in pixels.
    max_pixels: int = 500_000_000
    #: Largest width or height, in pixels.
    max_side: int = 65535
    #: Most 8x8 blocks (all components) per byte of input, plus :attr:`block_slack`.
    max_blocks_per_byte: int = 8
    #: Blocks always allowed whatever the file size (small images with tiny files).
    block_slack: int = 1 << 16
    #: Most scans in one file (libjpeg-turbo's fuzzers use 500; real encoders write at most a few dozen).
    max_scans: int = 500
    #: Most block visits (blocks per scan, summed over scans) per byte of input, plus :attr:`visit_slack`.
    #: A progressive scan can cover 32767 blocks with a 2-byte EOB run, so without this bound a small
    #: hostile file could make parse walk a huge frame thousands of times (libjpeg's progressive DoS).
    max_visits_per_byte: int = 256
    visit_slack: int = 1 << 22

    def check_frame(self, width: int, height: int) -> None:
        """Refuse an over-size frame before anything is allocated for it."""
        if width > self.max_side or height > self.max_side:
            raise UnsupportedJpeg("too-large", f"{width}x{height} exceeds the side limit of {self.max_side}")
        if width * height > self.max_pixels:
            raise UnsupportedJpeg("too-large", f"{width}x{height} exceeds the limit of {self.max_pixels} pixels")

    def check_blocks(self, blocks: int, data_length: int) -> None:
        """Refuse a block grid the input cannot plausibly fill (memory ~ actual image, not the claim)."""
        allowed = self.max_blocks_per_byte * data_length + self.block_slack
        if blocks > allowed:
            raise UnsupportedJpeg("too-large", f"the frame needs {blocks} blocks but {data_length} bytes of "
                                               f"JPEG can describe at most {allowed}")


    def check_scans(self, scans: int, visits: int, data_length: int) -> None:
        """Refuse files whose scans would take time out of proportion to their size."""
        if scans > self.max_scans:
            raise UnsupportedJpeg("scan-limit", f"more than {self.max_scans} scans")
        allowed = self.max_visits_per_byte * data_length + self.visit_slack
        if visits > allowed:
            raise UnsupportedJpeg("scan-limit", f"its scans visit {visits} blocks, more than the {allowed} that "
                                                f"{data_length} bytes of JPEG may ask for")


DEFAULT_LIMITS = Limits()
