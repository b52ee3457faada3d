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
    #: "auto" picks 4:4:4 or 4:2:0 per image (see chroma_noise_percent); or force "444" / "420".
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
    flatten_luma: int = 60
    flatten_chroma: int = 0
    #: "auto" keeps full chroma when the error 4:2:0 alone causes exceeds this percentage of the chroma
    #: quantisation noise (mean step^2 / 12) at the chosen quality: subsampling only pays while it hides
    #: below the noise the quantiser adds anyway, which is why high qualities end up 4:4:4.
    chroma_noise_percent: int = 100
    #: Chroma steps in percent when chroma is kept at full resolution (4:4:4 has 4x the chroma coefficients).
    chroma_444_percent: int = 200
    #: Rounds of RDO (each re-estimates the cost table from the previous one).
    rdo_rounds: int = 2
    #: 1 = end-of-run trellis in the RDO rounds (quant.quantise ``truncate``): trailing zeros of each
    #: block's interior / first row / first column are free, so cutting a run's tail can pay; 0 = off.
    run_trellis: int = 1
    #: 4:2:0 only: strength in percent of the round of error feedback that makes the decoder's upsampled
    #: chroma match the source (transform.downsample_sharp); 0 = the plain 2x2 mean (lossy-1/2).
    chroma_sharpen: int = 100
    #: DC step of the luma / chroma table in percent of the scaled base table's. Our coder predicts DC
    #: from the neighbours' pixels, so a finer DC step costs few bits and removes visible blocking in
    #: smooth areas, and blotchy colour (tuning photos: 100 % -> 45 % / 30 % is the largest single gain
    #: of encoder lossy-3).
    dc_percent: int = 45
    chroma_dc_percent: int = 30
    #: The two lowest AC steps (natural positions 1 and 8) of every table, in percent.
    low_ac_percent: int = 75

    def __post_init__(self) -> None:
        if not 1 <= self.quality <= 100:
            raise ValueError(f"quality must be 1..100, not {self.quality}")
        if self.tables not in quant.TABLE_FAMILIES:
            raise ValueError(f"tables must be one of {tuple(quant.TABLE_FAMILIES)}, not {self.tables!r}")
        if self.subsampling not in SUBSAMPLINGS:
            raise ValueError(f"subsampling must be one of {SUBSAMPLINGS}, not {self.subsampling!r}")
        for name in ("chroma_sharpen", "dc_percent", "chroma_dc_percent", "low_ac_percent"):
            if not 0 <= getattr(self, name) <= 1000:
                raise ValueError(f"{name} must be a percentage in 0..1000, not {getattr(self, name)}")

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
        sub = _choose_subsampling(planes, settings, chroma_table(settings))
    mcu = 16 if sub == "420" else 8
    rows, cols = -(-height // mcu) * mcu, -(-width // mcu) * mcu
    planes = [transform.pad_to(p, rows, cols) for p in planes]
    if sub == "420":
        planes = [planes[0]] + [transform.downsample_sharp(p, settings.chroma_sharpen) for p in planes[1:]]
    coefs = [transform.forward_dct(p) for p in planes]
    tables = [_low_scaled(quant.table(quant.TABLE_FAMILIES[settings.tables][0], settings.quality, settings.flatten_luma),
                          settings.dc_percent, settings.low_ac_percent)]
    table_of = [0]
    if len(coefs) > 1:
        ct = _low_scaled(chroma_table(settings), settings.chroma_dc_percent, settings.low_ac_percent)
        if sub == "444":
            ct = np.clip((ct * settings.chroma_444_percent + 50) // 100, 1, 255)
        tables.append(ct)
        table_of += [1, 1]
    lw = quant.block_weights(coefs[0], settings.aq_strength, settings.aq_threshold)
    weights = [lw] + [quant.weights_for(lw, c.shape[0], c.shape[1], 2 if sub == "420" else 1) for c in coefs[1:]]
    lam = settings.lam_milli * 65536 // 1000
    q = [quant.quantise(c, tables[t], w, lam, None) for c, t, w in zip(coefs, table_of, weights)]
    if lam > 0:
        for _ in range(settings.rdo_rounds):
            costs = [quant.cost_table(q[:1]), quant.cost_table(q[1:]) if len(q) > 1 else None]
            q = [quant.quantise(c, tables[t], w, lam, costs[t], truncate=bool(settings.run_trellis))
                 for c, t, w in zip(coefs, table_of, weights)]
    comps = [quant.to_int16(x) for x in q]
    sampling = [(1, 1)] if sub == "grey" else [(2, 2) if sub == "420" else (1, 1), (1, 1), (1, 1)]
    app = writer.metadata_segments(src.exif, src.icc, src.xmp) if keep_metadata else \
        writer.metadata_segments(b"", b"", b"")
    return Encoded(writer.write_jpeg(comps, sampling, tables, table_of, width, height, app), sub)


def _low_scaled(t: np.ndarray, dc_percent: int, low_ac_percent: int) -> np.ndarray:
    """``t`` with its DC step and its two lowest AC steps (natural 1 and 8) scaled, in percent (1..255)."""
    t = t.copy()
    for ks, p in (((0,), dc_percent), ((1, 8), low_ac_percent)):
        for k in ks:
            t[k] = min(max((int(t[k]) * p + 50) // 100, 1), 255)
    return t


def chroma_table(settings: Settings) -> np.ndarray:
    return quant.table(quant.TABLE_FAMILIES[settings.tables][1], settings.quality, settings.flatten_chroma)


def _choose_subsampling(planes: list[np.ndarray], s: Settings, chroma_steps: np.ndarray) -> str:
    if s.subsampling != "auto":
        return s.subsampling
    noise = int(np.sum(chroma_steps.astype(np.int64) ** 2))   # 64 * mean step^2
    # chroma_detail (8-bit MSE) * 100 * 64 * 12 > percent * noise, in integers of the rounded detail
    detail = round(transform.chroma_detail(planes[1], planes[2]) * 1000)
    return "444" if detail * 64 * 12 > s.chroma_noise_percent * 10 * noise else "420"
