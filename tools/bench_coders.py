"""Raw entropy-coder throughput: the numba adaptive binary coder against constriction's categorical coder.

Why this exists: the adaptive model could code with per-decision adaptive binary arithmetic coding in
numba (what it does) or with constriction's batched categorical range coder (probabilities fixed inside
a batch). This measures the coders alone, so the choice can be rechecked:

* numba: N binary decisions over 1000 adaptive contexts (skewed bits), encode and decode;
* constriction: N/4 symbols of a 17-symbol alphabet in one batch (one exponent symbol replaces several
  binary decisions), given ready float64 probability tables (building them is not timed).

    python3 tools/bench_coders.py [--n 10000000]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jpegshrink._jit import njit  # noqa: E402
from jpegshrink.coding import binary_arith as ba  # noqa: E402


@njit
def _run(enc, bits, ctxs, counters, st, buf):
    for i in range(bits.shape[0]):
        bits[i] = ba.code_bit(enc, st, buf, counters, ctxs[i], bits[i], 255)


def bench_numba(n: int, rng: np.random.Generator) -> None:
    ctxs = rng.integers(0, 1000, n)
    bits = (rng.random(n) < (rng.random(1000) * 0.3)[ctxs]).astype(np.int64)
    buf = np.empty(n, np.uint8)
    _run(True, bits[:10].copy(), ctxs, ba.new_counters(1000), ba.new_state(), buf)  # compile
    st = ba.new_state()
    t = time.thread_time()
    _run(True, bits.copy(), ctxs, ba.new_counters(1000), st, buf)
    t_enc = time.thread_time() - t
    data = buf[:ba.finish_encoder(st, buf)].copy()
    st = ba.new_state()
    ba.start_decoder(st, data)
    out = np.zeros(n, np.int64)
    t = time.thread_time()
    _run(False, out, ctxs, ba.new_counters(1000), st, data)
    t_dec = time.thread_time() - t
    assert np.array_equal(out, bits)
    print(f"numba adaptive binary coder: {n / t_enc / 1e6:.0f} M decisions/s encode, "
          f"{n / t_dec / 1e6:.0f} M decisions/s decode, {8 * len(data) / n:.3f} bits/decision")


def bench_constriction(n: int, rng: np.random.Generator) -> None:
    import constriction
    k, distinct = 17, 2000
    probs = rng.dirichlet(np.full(k, 0.3), size=distinct)
    symbols = np.array([rng.choice(k, p=p) for p in probs], dtype=np.int32)
    reps = max(1, n // distinct)
    probs, symbols = np.tile(probs, (reps, 1)), np.tile(symbols, reps)
    family = constriction.stream.model.Categorical(perfect=False)
    enc = constriction.stream.queue.RangeEncoder()
    t = time.thread_time()
    enc.encode(symbols, family, probs)
    t_enc = time.thread_time() - t
    dec = constriction.stream.queue.RangeDecoder(enc.get_compressed())
    t = time.thread_time()
    out = dec.decode(family, probs)
    t_dec = time.thread_time() - t
    assert np.array_equal(out, symbols)
    print(f"constriction range coder, 17-symbol categorical, one batch of {len(symbols)}: "
          f"{len(symbols) / t_enc / 1e6:.0f} M symbols/s encode, {len(symbols) / t_dec / 1e6:.0f} M symbols/s decode")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000_000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    bench_numba(args.n, rng)
    bench_constriction(args.n // 4, rng)


if __name__ == "__main__":
    main()
