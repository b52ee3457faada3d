"""Adaptive binary arithmetic coding in numba: the coder and the integer probability counters.

The coder is the carry-less 32-bit binary coder of the paq/lpaq family: the interval [x1, x2] is split
at ``x1 + range * p / 2^16`` where ``p`` is the integer probability (1..65535, units of 2^-16) that the
bit is 1, and whole bytes are shifted out once x1 and x2 share their top byte. Everything is integer
arithmetic on int64, so the decoder reproduces the encoder's bits on any CPU.

Counters (``adapt``) pack a 16-bit probability and a 10-bit hit count into one int32 (``p << 10 | n``);
the step size is 1/(n+1.5) until the count reaches ``limit``, so a fresh context learns fast and an old
one settles (the lpaq "StateMap"). :func:`new_counters` makes a fresh array of them.

Coder state lives in a small int64 array ``st`` so numba kernels can pass it around:
``st[X1], st[X2]`` the interval, ``st[X]`` the decoder's window, ``st[POS]`` the byte position, and
``st[ERR]``, a flag a model sets when it decodes something impossible (a damaged stream).
Decoding past the end of the data reads 0xFF (this is what lets the encoder flush a single byte);
:func:`overrun` tells how far past the end a decoder went, which exposes truncated streams.

The model kernels inline these functions, and numba's on-disk cache is keyed on the kernel module's
own source file: after editing this file, delete the ``*.nbi``/``*.nbc`` files under
``jpegshrink/model/__pycache__`` (or touch the kernel module), or the kernels keep the old code.
"""
from __future__ import annotations

import numpy as np

from jpegshrink._jit import njit

X1, X2, X, POS, ERR = 0, 1, 2, 3, 4
STATE_SIZE = 5
#: Probabilities reaching the coder are clamped to [P_MIN, 65536 - P_MIN]: at most 11 bits per decision.
P_MIN = 32
_MASK32 = 0xFFFFFFFF

#: Counter step sizes: RATE[n] = 65536 / (n + 1.5).
RATE = np.array([131072 // (2 * n + 3) for n in range(1024)], dtype=np.int64)
#: A fresh counter: p = 1/2, n = 0. Counters are stored XOR this value, so a fresh array is all zeros
#: (np.zeros maps untouched pages lazily: a large context space costs only what an image touches).
COUNTER_INIT = 32768 << 10


def new_counters(n: int) -> np.ndarray:
    return np.zeros(n, dtype=np.int32)


def new_state() -> np.ndarray:
    st = np.zeros(STATE_SIZE, dtype=np.int64)
    st[X2] = _MASK32
    return st


@njit(inline="always")
def _split(st: np.ndarray, p: int) -> int:
    rng = st[X2] - st[X1]
    return st[X1] + (rng >> 16) * p + (((rng & 0xFFFF) * p) >> 16)


@njit(inline="always")
def encode_bit(st: np.ndarray, buf: np.ndarray, p: int, bit: int) -> None:
    """Code ``bit`` with P(bit = 1) = p / 65536; ``buf`` must have a few free bytes at ``st[POS]``."""
    xmid = _split(st, p)
    if bit:
        st[X2] = xmid
    else:
        st[X1] = xmid + 1
    while ((st[X1] ^ st[X2]) & 0xFF000000) == 0:
        buf[st[POS]] = st[X2] >> 24
        st[POS] += 1
        st[X1] = (st[X1] << 8) & 0xFFFFFFFF
        st[X2] = ((st[X2] << 8) & 0xFFFFFFFF) | 255


@njit(inline="always")
def _next_byte(st: np.ndarray, data: np.ndarray) -> int:
    pos = st[POS]
    st[POS] = pos + 1
    if pos < data.shape[0]:
        return data[pos]
    return 255


@njit(inline="always")
def decode_bit(st: np.ndarray, data: np.ndarray, p: int) -> int:
    """Inverse of :func:`encode_bit`."""
    xmid = _split(st, p)
    if st[X] <= xmid:
        bit = 1
        st[X2] = xmid
    else:
        bit = 0
        st[X1] = xmid + 1
    while ((st[X1] ^ st[X2]) & 0xFF000000) == 0:
        st[X1] = (st[X1] << 8) & 0xFFFFFFFF
        st[X2] = ((st[X2] << 8) & 0xFFFFFFFF) | 255
        st[X] = ((st[X] << 8) & 0xFFFFFFFF) | _next_byte(st, data)
    return bit


@njit
def start_decoder(st: np.ndarray, data: np.ndarray) -> None:
    st[X1] = 0
    st[X2] = _MASK32
    st[POS] = 0
    x = 0
    for _ in range(4):
        x = (x << 8) | _next_byte(st, data)
    st[X] = x


@njit
def finish_encoder(st: np.ndarray, buf: np.ndarray) -> int:
    """Flush; returns the stream length. Any x in [x1, x2] decodes right, and x1's top byte followed
    by the decoder's 0xFF padding lies in it because x2's top byte is larger."""
    buf[st[POS]] = st[X1] >> 24
    st[POS] += 1
    return st[POS]


def overrun(st: np.ndarray, length: int) -> int:
    """Bytes a finished decoder read past the end (a valid stream reads exactly 3 padding bytes)."""
    return int(st[POS]) - length - 3


@njit(inline="always")
def adapt(counters: np.ndarray, ctx: int, bit: int, limit: int) -> None:
    """Move counter ``ctx`` towards ``bit`` with step 1/(n+1.5), n capped at ``limit`` (<= 1023)."""
    c = counters[ctx] ^ COUNTER_INIT
    n = c & 1023
    p = c >> 10
    if bit:
        p += ((65536 - p) * RATE[n]) >> 16
    else:
        p -= (p * RATE[n]) >> 16
    if n < limit:
        n += 1
    counters[ctx] = ((p << 10) | n) ^ COUNTER_INIT


@njit(inline="always")
def clamp_p(p: int) -> int:
    if p < P_MIN:
        return P_MIN
    if p > 65536 - P_MIN:
        return 65536 - P_MIN
    return p


@njit(inline="always")
def code_bit(enc: bool, st: np.ndarray, buf: np.ndarray, counters: np.ndarray, ctx: int, bit: int,
             limit: int) -> int:
    """Encode (``enc``) or decode one bit with adaptive counter ``ctx``; returns the bit."""
    p = clamp_p((counters[ctx] ^ COUNTER_INIT) >> 10)
    if enc:
        encode_bit(st, buf, p, bit)
    else:
        bit = decode_bit(st, buf, p)
    adapt(counters, ctx, bit, limit)
    return bit


#: Hit count a fresh context starts with when it inherits its parent's probability.
BACKOFF_N = 1


@njit(inline="always")
def code_bit_backoff(enc: bool, st: np.ndarray, buf: np.ndarray, counters: np.ndarray, ctx: int, parent: int,
                     bit: int, limit: int) -> int:
    """:func:`code_bit` for a context that is one of many refinements of ``parent``: on its first use it
    starts from the parent's probability (as if seen BACKOFF_N times), and the parent learns every bit.
    A large context space then costs little learning on small images."""
    if ((counters[ctx] ^ COUNTER_INIT) & 1023) == 0:
        p = (counters[parent] ^ COUNTER_INIT) >> 10
        counters[ctx] = ((p << 10) | BACKOFF_N) ^ COUNTER_INIT
    bit = code_bit(enc, st, buf, counters, ctx, bit, limit)
    adapt(counters, parent, bit, limit)
    return bit
