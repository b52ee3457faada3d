"""Adaptive binary arithmetic coding: the integer probability counters, and the coder from the compiled core.

The coder (``BinaryEncoder`` / ``BinaryDecoder``, C++ in ``jpegshrink/csrc/binary_arith.h``) is the
carry-less 32-bit binary coder of the paq/lpaq family: the interval [x1, x2] is split at
``x1 + range * p / 2^16`` where ``p`` is the integer probability (P_MIN..65536 - P_MIN, units of 2^-16)
that the bit is 1, and whole bytes are shifted out once x1 and x2 share their top byte. Everything is
integer arithmetic, so the decoder reproduces the encoder's bits on any CPU. Decoding past the end of
the data reads 0xFF (this lets the encoder flush a single byte); ``BinaryDecoder.overrun`` > 0 exposes
a truncated stream, and ``BinaryDecoder.damaged`` says a model decoded something impossible.

Counters pack a 16-bit probability and a 10-bit hit count into one int32 (``p << 10 | n``), stored XOR
:data:`COUNTER_INIT` so that a fresh array (:func:`new_counters`) is all zeros (np.zeros maps untouched
pages lazily: a large context space costs only what an image touches). The step size is 1/(n+1.5)
until the count reaches a limit, so a fresh context learns fast and an old one settles (the lpaq
"StateMap"). ``code_bits`` on either coder codes a sequence of decisions with given contexts (tests,
benchmarks); the models' kernels call the coder directly in C++.
"""
from __future__ import annotations

import numpy as np

from jpegshrink._native import core

BinaryEncoder = core.arith.BinaryEncoder
BinaryDecoder = core.arith.BinaryDecoder

#: Probabilities reaching the coder are clamped to [P_MIN, 65536 - P_MIN]: at most 11 bits per decision.
P_MIN = core.arith.P_MIN
#: A fresh counter: p = 1/2, n = 0 (counters are stored XOR this value).
COUNTER_INIT = core.arith.COUNTER_INIT


def new_counters(n: int) -> np.ndarray:
    """``n`` fresh counters (int32, all zeros: p = 1/2, no hits)."""
    return np.zeros(n, dtype=np.int32)


__all__ = ["COUNTER_INIT", "P_MIN", "BinaryDecoder", "BinaryEncoder", "new_counters"]
