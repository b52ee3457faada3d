"""The high-bitrate encoder: pixels -> a baseline JPEG whose coefficients are chosen for our coder.

Pipeline (every step integer): colour conversion and chroma subsampling (:mod:`.transform`), forward
DCT, per-image tables and masking weights, rounding with a dead zone, then two rounds of
rate-distortion optimised quantisation priced with a cost table re-estimated from the previous round
(:mod:`.quant`), and the JPEG writer (:mod:`.writer`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from jpegshrink.lossy import quant, transform, writer
from jpegshrink.lossy.source import SourceImage

SUBSAMPLINGS = ("auto", "444", "420")


@dataclass(frozen=True)
class Settings:
    """Encoder knobs. Defaults were tuned on the tuning photos of tools/bench_lossy.py (never the held-out set)."""

    quality: int = 90
    #: "auto" picks 4:2:0 only when quality is below :attr:`full_chroma_quality` and the chroma is smooth.
    subsampling: str = "auto"
    #: Lagrange multiplier of the rate term, in 1/1000 of (quantiser step)^2 per bit; 0 = no RDO.
    lam_milli: int = 20
    #: Masking strength in percent (0 = every block weighs the same).
    aq_strength: int = 25
    #: Activity (sum of |AC| in coefficient units) at which a block's distortion weight halves, at strength 100.
    aq_threshold: int = 200
    #: Base quantisation tables (quant.TABLE_FAMILIES), scaled by quality.
    tables: str = "jpegli"
    #: Flattening of the luma and chroma tables towards their DC step, percent.
    flatten_luma: int = 30
    flatten_chroma: int = 0
    #: 4:2:0 is considered below this quality only.
    full_chroma_quality: int = 98
    #: ... and only when 4:2:0 alone costs less than this chroma MSE (8-bit units, times 100).
    chroma_detail_max: int = 1500
    #: Rounds of RDO (each re-estimates the cost table from the previous one).
    rdo_rounds: int = 2

    def __post_init__(self) -> None:
        if not 1 <= self.quality <= 100:
            raise ValueError(f"quality must be 1..100, not {self.quality}")
        if self.tables not in quant.TABLE_FAMILIES:
            raise ValueError(f"tables must be one of {tuple(quant.TABLE_FAMILIES)}, not {self.tables!r}")
        if self.subsampling not in SUBSAMPLINGS:
            raise ValueError(f"subsampling must be one of {SUBSAMPLINGS}, not {self.subsampling!r}")

    def to_info(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Encoded:
    jpeg: bytes
    subsampling: str


def encode(src: SourceImage, settings: Settings, *, keep_metadata: bool = True) -> Encoded:
    width, height = src.size
    if src.grey:
        planes = [transform.grey_plane(src.pixels)]
        sub = "grey"
    else:
        planes = transform.rgb_to_ycbcr(src.pixels)
        sub = _choose_subsampling(planes, settings)
    mcu = 16 if sub == "420" else 8
    rows, cols = -(-height // mcu) * mcu, -(-width // mcu) * mcu
    planes = [transform.pad_to(p, rows, cols) for p in planes]
    if sub == "420":
        planes = [planes[0]] + [transform.downsample_2x2(p) for p in planes[1:]]
    coefs = [transform.forward_dct(p) for p in planes]
    luma_base, chroma_base = quant.TABLE_FAMILIES[settings.tables]
    tables = [quant.table(luma_base, settings.quality, settings.flatten_luma)]
    if len(coefs) > 1:
        tables.append(quant.table(chroma_base, settings.quality, settings.flatten_chroma))
    table_of = [0] + [1] * (len(coefs) - 1)
    lw = quant.block_weights(coefs[0], settings.aq_strength, settings.aq_threshold)
    weights = [lw] + [quant.weights_for(lw, c.shape[0], c.shape[1], 2 if sub == "420" else 1) for c in coefs[1:]]
    lam = settings.lam_milli * 65536 // 1000
    q = [quant.quantise(c, tables[t], w, lam, None) for c, t, w in zip(coefs, table_of, weights)]
    if lam > 0:
        for _ in range(settings.rdo_rounds):
            costs = [quant.cost_table(q[:1]), quant.cost_table(q[1:]) if len(q) > 1 else None]
            q = [quant.quantise(c, tables[t], w, lam, costs[t]) for c, t, w in zip(coefs, table_of, weights)]
    comps = [quant.to_int16(x) for x in q]
    sampling = [(1, 1)] if sub == "grey" else [(2, 2) if sub == "420" else (1, 1), (1, 1), (1, 1)]
    app = writer.metadata_segments(src.exif, src.icc, src.xmp) if keep_metadata else \
        writer.metadata_segments(b"", b"", b"")
    return Encoded(writer.write_jpeg(comps, sampling, tables, table_of, width, height, app), sub)


def _choose_subsampling(planes: list[np.ndarray], s: Settings) -> str:
    if s.subsampling != "auto":
        return s.subsampling
    if s.quality >= s.full_chroma_quality:
        return "444"
    return "420" if transform.chroma_detail(planes[1], planes[2]) * 100 < s.chroma_detail_max else "444"
