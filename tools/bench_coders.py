"""Raw entropy-coder throughput: our adaptive binary coder against constriction's categorical coder.

Why this exists: the adaptive model could code with per-decision adaptive binary arithmetic coding in
the compiled core (what it does) or with constriction's batched categorical range coder (probabilities
fixed inside a batch). This measures the coders alone, so the choice can be rechecked:

* ours: N binary decisions over 1000 adaptive contexts (skewed bits), encode and decode;
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

from jpegshrink.coding import binary_arith as ba  # noqa: E402


def bench_binary(n: int, rng: np.random.Generator) -> None:
    ctxs = rng.integers(0, 1000, n)
    bits = (rng.random(n) < (rng.random(1000) * 0.3)[ctxs]).astype(np.uint8)
    enc = ba.BinaryEncoder()
    t = time.thread_time()
    enc.code_bits(ba.new_counters(1000), ctxs, bits, 255)
    t_enc = time.thread_time() - t
    data = enc.finish()
    dec = ba.BinaryDecoder(data)
    t = time.thread_time()
    out = dec.code_bits(ba.new_counters(1000), ctxs, 255)
    t_dec = time.thread_time() - t
    assert np.array_equal(out, bits)
    print(f"adaptive binary coder (compiled core): {n / t_enc / 1e6:.0f} M decisions/s encode, "
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
    bench_binary(args.n, rng)
    bench_constriction(args.n // 4, rng)


if __name__ == "__main__":
    main()
