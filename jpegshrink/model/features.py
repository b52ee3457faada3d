"""Integer input features of the learned model, computed exactly from quantised DCT coefficients.

The network sees one image component at block resolution: 64 channels per block, one per DCT
coefficient (natural order). Every value here comes from integer table look-ups and integer
arithmetic, so training (which ships these arrays to the GPU) and exact inference (which recomputes
them while decoding) agree bit for bit on every machine.

* AC coefficient ``c``  -> ``sign(c) * bitlen(|c|)`` in [-16, 16]: sign and magnitude class.
* DC coefficient ``c``  -> ``round(c * q_dc / 16)`` clipped to [-64, 64]: the block's mean
  brightness in steps of two pixel levels, independent of the quantiser.
* quantisation table    -> ``qclass(q)`` = #{j >= 1 : ceil(2^(j/4)) <= q}, about ``4*log2(q)``
  (0..63), one value per coefficient: how the network is conditioned on quality.

* channel 64 (``network_inputs``) -> the block's number of nonzero interior coefficients (0..49).

``magnitude_class`` is the training target: ``min(bitlen(|c|), N_CLASSES - 1)``.
"""
from __future__ import annotations

import numpy as np

from jpegshrink.blocks import INTERIOR, ZIGZAG, ZIGZAG_RANK

#: ZIGZAG_POS[n] is the zigzag position of natural index n.
ZIGZAG_POS = ZIGZAG_RANK

#: Number of magnitude classes the network is trained to predict (bit lengths 0..6, then 7+).
N_CLASSES = 8
DC_FEATURE_LIMIT = 64

_BITLEN = np.array([int(v).bit_length() for v in range(1 << 16)], dtype=np.int8)
# ceil(2^(j/4)) for j = 1..64, computed with integers only: smallest t with t^4 >= 2^j.
_Q_THRESHOLDS = np.array([next(t for t in range(1, 1 << 17) if t ** 4 >= 1 << j) for j in range(1, 65)],
                         dtype=np.int64)


def bitlen(values: np.ndarray) -> np.ndarray:
    """Bit length of ``|values|`` (0 for 0) as int8; ``values`` must fit in int16/uint16 magnitude."""
    return _BITLEN[np.abs(values.astype(np.int32))]


def block_features(coefficients: np.ndarray, quant_table: np.ndarray) -> np.ndarray:
    """int8 [block_rows, block_cols, 64] network input for one component (see module docstring)."""
    coefficients = np.asarray(coefficients)
    if coefficients.ndim != 3 or coefficients.shape[2] != 64:
        raise ValueError(f"coefficients must be [block_rows, block_cols, 64], got {coefficients.shape}")
    c32 = coefficients.astype(np.int32)
    features = (np.sign(c32) * _BITLEN[np.abs(c32)]).astype(np.int8)
    dc = c32[:, :, 0] * int(quant_table[0])
    # round(dc / 16) with integer arithmetic (floor division rounds toward -inf, so add half first)
    features[:, :, 0] = np.clip((dc + 8) // 16, -DC_FEATURE_LIMIT, DC_FEATURE_LIMIT).astype(np.int8)
    return features


COUNT_CHANNEL = 64


def network_inputs(coefficients: np.ndarray, quant_table: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """int8 [block_rows, block_cols, 65]: ``block_features`` plus the interior nonzero ``counts``."""
    feats = block_features(coefficients, quant_table)
    return np.concatenate([feats, np.asarray(counts).astype(np.int8)[:, :, None]], axis=2)


def magnitude_class(coefficients: np.ndarray) -> np.ndarray:
    """int8 training target: ``min(bitlen(|c|), N_CLASSES - 1)``."""
    return np.minimum(bitlen(coefficients), N_CLASSES - 1).astype(np.int8)


def quant_classes(quant_table: np.ndarray) -> np.ndarray:
    """int64[64]: ``qclass`` of each quantiser (natural order), 0..63."""
    q = np.asarray(quant_table, dtype=np.int64).reshape(64)
    return np.minimum(np.searchsorted(_Q_THRESHOLDS, q, side="right"), 63).astype(np.int64)
