"""``mix3-<hash8>``: coefficient model v3 -- many contexts per decision, mixed, cross-channel, striped.

Where ``adaptive-1``/``learned2`` give each binary decision one adaptive counter, this model predicts
every decision with several counters selected by different contexts and combines them with an integer
logistic mixer (paq8 style: stretch, weighted sum, squash; weights trained online, weight set selected by
component class, decision type and frequency band), followed by two APM/SSE stages. The kernel is C++
(``jpegshrink/model/csrc/mix3.cpp``, module ``jpegshrink.model._mix3``), one template for encoder and
decoder, all integer: the same bytes on every machine.

What is coded, per block in raster order (all luma blocks of a stripe, then each chroma component):

* the number of nonzero AC coefficients (0..63) as a 6-bit binary tree; contexts: the neighbours'
  counts, and for chroma the co-located luma count and the previous chroma component's count;
* the AC coefficients in zigzag order until that count is used up, each binarised as exponent (bit
  length, unary), sign and mantissa; contexts (the "slots"): Lepton's neighbour prior with the
  remaining count; a DCT-domain prediction of *every* coefficient from the dequantised north and west
  blocks (the boundary value their pixel profile gives, minus what this block's coded coefficients
  already contribute -- the lever behind most of paq8px's lead over Lepton), from north, west and
  both; the intra-block neighbours (u-1, v) and (u, v-1) rescaled by the quantiser ratio; the zero run
  and activity so far; the exact small values of the same coefficient in N, W, NW; cross-channel: the
  co-located luma coefficient (averaged over the luma blocks a chroma block covers, rescaled by the
  quantiser ratio) and, for Cr, the co-located Cb coefficient;
* the DC last, predicted as adaptive-1 does (this block's AC-only boundary pixels against the
  neighbours' pixels), the residual coded with the spread of the estimates, the neighbours' residuals
  and (chroma) the co-located luma and Cb residuals as contexts.

Stripes: each component is cut into the same ``n`` ranges of MCU rows, ``n`` chosen from the image size
alone (one stripe per ~64 K blocks, :func:`stripe_count`); each stripe is one independent stream with its
own model state, so stripes decode in parallel and the bytes never depend on the thread count. Inside
a stripe the first block row has no north neighbour. A *seeded* profile (``Profile.seed_fraction``, the
dense level ``mix3-03361b87``) codes a centred band of the rows first and starts every other stripe from
the state that band's model ends with instead of the trained start (:func:`stripe_rows`). Learned: the mixer's starting weights (one set per
component class, decision type and band) come from ``weights/<model id>.npz`` (tools/train_mix3.py);
inside an image they keep adapting.
"""
from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from jpegshrink._native import image_threads
from jpegshrink.model.base import ComponentSpec, checked_coefficients, checked_output

WEIGHTS_DIR = Path(__file__).parent / "weights"
#: Blocks (all components together) per stripe, about 2.8 MP of 4:2:0: a 12 MP photo gets 4 stripes.
BLOCKS_PER_STRIPE = 65536
_MISSING = ("the mix3 model needs its compiled kernel: build it with "
            "`pip install pybind11 && python setup.py build_ext --inplace`")


def _kernel():
    try:
        from jpegshrink.model import _mix3
    except ImportError as exc:
        raise ImportError(_MISSING) from exc
    return _mix3


def stripe_count(specs: Sequence[ComponentSpec]) -> int:
    """How many stripes an image is coded in: from its size only (never from a thread count)."""
    mcu_rows = _mcu_rows(specs)
    if mcu_rows is None:
        return 1
    blocks = sum(s.block_rows * s.block_cols for s in specs)
    return max(1, min(mcu_rows, (blocks + BLOCKS_PER_STRIPE // 2) // BLOCKS_PER_STRIPE))


def _mcu_rows(specs: Sequence[ComponentSpec]) -> int | None:
    """MCU rows if every component's block rows are a whole number of MCU rows, else None (one stripe)."""
    vs = [max(1, s.v_samp) for s in specs]
    rows = specs[0].block_rows // vs[0]
    if any(s.block_rows != rows * v for s, v in zip(specs, vs)):
        return None
    return rows


def stripe_rows(specs: Sequence[ComponentSpec], n: int, seed_fraction: int = 0) -> list[list[tuple[int, int]]]:
    """Per stream, per component, the block-row range [r0, r1) it codes.

    ``n`` ranges of MCU rows; with ``seed_fraction`` (a seeded profile) and ``n >= 2``, first a *seed
    band* of ``max(1, m // seed_fraction)`` of the ``m`` MCU rows, centred, then the ``n`` ranges with
    the band cut out of them (a range it splits becomes two, in order). The seed band is coded first from
    the trained start; every other stream starts from the state the seed band's model ends with.
    """
    if n == 1:
        return [[(0, s.block_rows) for s in specs]]
    m = _mcu_rows(specs)
    assert m is not None
    vs = [max(1, s.v_samp) for s in specs]
    cuts = {i * m // n for i in range(n + 1)}
    band = max(1, m // seed_fraction) if seed_fraction else 0
    lo = m // 2 - band // 2
    hi = lo + band  # the seed band [lo, hi), empty without one
    cuts = sorted(cuts | {lo, hi}) if band else sorted(cuts)
    ranges = ([(lo, hi)] if band else []) + [(a, b) for a, b in zip(cuts, cuts[1:]) if not lo <= a < b <= hi]
    return [[(a * v, b * v) for v in vs] for a, b in ranges]


@dataclass(frozen=True)
class Profile:
    """Which parts of the kernel a model uses and how large its hashed AC tables are.

    Part of the format: a weights file records its profile (``profile`` in the .npz; a file without one,
    like ``mix3-48305388``, is :data:`DENSE`), so the model id, which hashes the file, names it too.
    ``leave_out`` names kernel parts by the keys of the kernel's ``FLAGS``.
    """

    leave_out: tuple[str, ...] = ()
    ac_table_bits: int = 21
    #: 0: every stripe starts from the trained start. k: a seed band of 1/k of the MCU rows is coded
    #: first and every other stripe starts from its final state (:func:`stripe_rows`), which takes back
    #: most of what cutting an image into stripes costs, for a serial 1/k of the decode.
    seed_fraction: int = 0

    def flags(self) -> int:
        known = _kernel().FLAGS
        unknown = sorted(set(self.leave_out) - set(known))
        if unknown:
            raise ValueError(f"mix3 profile names unknown kernel parts {unknown} (known: {sorted(known)})")
        out = 0
        for name in self.leave_out:
            out |= known[name]
        return out

    def to_json(self) -> str:
        d = {"leave_out": sorted(self.leave_out), "ac_table_bits": self.ac_table_bits}
        if self.seed_fraction:  # written only when set: the files made before it keep their bytes
            d["seed_fraction"] = self.seed_fraction
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Profile":
        d = json.loads(text)
        return cls(tuple(sorted(d["leave_out"])), int(d["ac_table_bits"]), int(d.get("seed_fraction", 0)))


#: Every part, 2 MiB-entry AC tables: the densest, slowest profile (``mix3-48305388``, ``--level dense``).
DENSE = Profile()
#: A read-speed candidate: slot 0 (Lepton-class, trained start), the joint north/west DCT-domain
#: prediction and the cross-channel slots, one mixer, no SSE, AC tables of 2^18 counters (they fit the
#: L3 cache). Measured (BENCHMARKS.md, "Model v3", the trade-off table): 2.6x DENSE's decode speed for
#: 2.2 points less saving, but still ~0.23x Lepton's speed at 1.145x its saving, so no model id has it:
#: it meets neither floor of issue 16 and every registered id is kept forever. Train one with
#: ``tools/train_mix3.py fit --profile fast`` and measure it with ``tools/bench.py --codecs
#: jpegshrink@<weights>.npz``.
FAST = Profile(leave_out=tuple(sorted(("mix2", "sse", "side_pred", "count_pred", "exact", "intra", "run"))),
               ac_table_bits=18)
#: FAST with the AC sign and top mantissa bit coded by one counter each instead of the mixer (a
#: quarter of the mixed decisions on detailed photos): see BENCHMARKS.md, "mix3 kernel speed".
FAST2 = Profile(leave_out=tuple(sorted(FAST.leave_out + ("sign_mix", "top_mix"))), ac_table_bits=18)
#: FAST2 with two AC slots only: Lepton-class slot 0 and the joint north/west DCT-domain prediction.
LITE = Profile(leave_out=tuple(sorted(FAST2.leave_out + ("aux",))), ac_table_bits=18)
#: DENSE with seeded stripes: a centred band of 1/16 of the MCU rows is coded first and every other
#: stripe starts from its model's final state instead of the trained start.
DENSE_SEEDED = Profile(seed_fraction=16)
PROFILES = {"dense": DENSE, "dense-seeded": DENSE_SEEDED, "fast": FAST, "fast2": FAST2, "lite": LITE}


class Mix3Model:
    """A registered coefficient model: the mix3 kernel started from the weights in ``<model_id>.npz``
    (or from its built-in defaults with ``weights=None``, which is what training starts from, in the
    profile given; a weights file carries its own profile, so giving one beside it is refused).
    ``flags`` leaves out further parts, ``striped=False`` codes one stripe and ``seeded=False`` plain
    stripes under a seeded profile (ablations only). ``compiled=False`` runs the kernel's generic
    instance, which reads the flags at run time, even where an instance is compiled for them: the same
    bytes, slower (what the tests compare the compiled instances against)."""

    def __init__(self, weights: Path | None, threads: int | None = None, flags: int = 0,
                 striped: bool = True, model_id: str | None = None, profile: Profile | None = None,
                 compiled: bool = True, seeded: bool = True) -> None:
        self._k = _kernel()
        self.model_id = model_id or (weights.stem if weights is not None else "mix3-untrained")
        #: trained starting state: mixer weights int32[N_WEIGHTS], direct counters uint32[N_DIRECT]
        self.init: tuple[np.ndarray, np.ndarray] | tuple[None, None] = (None, None)
        if weights is not None:
            if profile is not None:
                raise ValueError(f"{weights.name} records its own profile; do not pass one")
            w, d, profile = read_weights(weights)
            self.init = (w, d)
        self.profile = profile or DENSE
        self._threads = threads or image_threads()
        self._flags = flags | self.profile.flags()
        self._bits = self.profile.ac_table_bits
        self._striped = striped
        self._seed_fraction = self.profile.seed_fraction if seeded else 0
        self._compiled = compiled

    def _plan(self, specs: Sequence[ComponentSpec]):
        if not specs or len(specs) > 4:
            raise ValueError(f"mix3 codes 1 to 4 components, got {len(specs)}")
        n = stripe_count(specs) if self._striped else 1
        quants = [_quant(s) for s in specs]
        samp = [(max(1, s.h_samp), max(1, s.v_samp)) for s in specs]
        return stripe_rows(specs, n, self._seed_fraction), quants, samp

    def _run(self, n: int, stripe):
        """``stripe(index, seed, want_snapshot)`` for each of ``n`` streams, in parallel, except that with
        a seeded profile (more than one stream) the seed band, stream 0, runs first and the others start
        from the state its model ends with."""
        if self._seed_fraction and n > 1:
            first = stripe(0, None, True)
            return [first] + self._map([lambda i=i: stripe(i, first[2], False) for i in range(1, n)])
        return self._map([lambda i=i: stripe(i, None, False) for i in range(n)])

    def encode(self, coefficients: Sequence[np.ndarray], specs: Sequence[ComponentSpec],
               want_state: bool = False, hints: Sequence[np.ndarray] | None = None):
        """The streams, one per stripe; with ``want_state`` also each stripe's final (weights, counters),
        which is what training averages. ``hints`` (uint8, shaped as the coefficients) feed AC slot 6
        when the kernel flag ``net_hint`` is set: the network-prior experiment of
        tools/net_prior_mix3.py, not a registered format."""
        if len(coefficients) != len(specs):
            raise ValueError(f"{len(coefficients)} coefficient arrays for {len(specs)} components")
        arrays = [checked_coefficients(c, s, i) for i, (c, s) in enumerate(zip(coefficients, specs))]
        rows, quants, samp = self._plan(specs)
        results = self._run(len(rows), lambda i, seed, snap: self._stripe(
            True, arrays, quants, samp, rows[i], None, want_state, hints, seed, snap))
        if want_state:
            return [r[0] for r in results], [r[1] for r in results]
        return [r[0] for r in results]

    def decode(self, streams: Sequence[bytes], specs: Sequence[ComponentSpec],
               hints: Sequence[np.ndarray] | None = None, out: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
        rows, quants, samp = self._plan(specs)
        if len(streams) != len(rows):
            raise ValueError(f"{len(streams)} streams for {len(rows)} stripes")
        for s in specs:
            if s.block_rows * s.block_cols * 64 * 2 > (1 << 31):
                raise ValueError("component too large")
        out = checked_output(out, specs) or [np.zeros((s.block_rows, s.block_cols, 64), dtype=np.int16) for s in specs]
        data = [bytes(b) for b in streams]
        try:
            self._run(len(rows), lambda i, seed, snap: self._stripe(
                False, out, quants, samp, rows[i], data[i], False, hints, seed, snap))
        except ValueError as exc:
            raise ValueError(f"{exc} (mix3)") from None
        return out

    def decode_stripe(self, index: int, stream: bytes, specs: Sequence[ComponentSpec],
                      out: Sequence[np.ndarray], seed=None):
        """Decode stream ``index`` alone into ``out`` (int16 [rows, cols, 64] per component), for tools
        that time or inspect stripes one by one (:meth:`decode` is the normal path). With a seeded
        profile, stream 0 returns the state the others start from: pass it as ``seed`` for them."""
        rows, quants, samp = self._plan(specs)
        seeded = bool(self._seed_fraction) and len(rows) > 1
        if seeded and index > 0 and seed is None:
            raise ValueError("a seeded stripe needs the seed band's state: decode stream 0 first")
        return self._stripe(False, list(out), quants, samp, rows[index], bytes(stream), False, None,
                            seed if index > 0 else None, seeded and index == 0)[2]

    def _stripe(self, encode, arrays, quants, samp, rows, data, want_state, hints=None, seed=None, snapshot=False):
        return self._k.code_stripe(encode, arrays, quants, samp, rows, data, *self.init, self._flags, self._bits,
                                   want_state, self._compiled, None if hints is None else list(hints), seed,
                                   snapshot)

    def _map(self, jobs):
        if len(jobs) <= 1 or self._threads <= 1:
            return [j() for j in jobs]
        with ThreadPoolExecutor(max_workers=min(self._threads, len(jobs))) as pool:
            return list(pool.map(lambda j: j(), jobs))


def _quant(s: ComponentSpec) -> np.ndarray:
    q = np.asarray(s.quant_table).astype(np.int64).reshape(-1)
    if q.shape != (64,):
        raise ValueError(f"quantisation table must have 64 entries, got {q.shape}")
    # A zero step cannot come from a valid JPEG; treat it as 1 so the kernel's divisions stay defined
    # (the coefficients are coded exactly either way).
    return np.clip(q, 1, 65535)


def read_weights(path: Path) -> tuple[np.ndarray, np.ndarray, Profile]:
    """(mixer weights, direct counters, profile) from a weights file, checked against this kernel's
    layout. A file without a profile is :data:`DENSE` (the first mix3 file predates profiles)."""
    k = _kernel()
    with np.load(path) as f:
        w = np.asarray(f["mixer_init"], dtype=np.int32)
        d = np.asarray(f["counter_init"], dtype=np.uint32)
        profile = Profile.from_json(str(f["profile"])) if "profile" in f.files else DENSE
    profile.flags()  # names only parts this kernel has
    if not 12 <= profile.ac_table_bits <= k.AC_TABLE_BITS_MAX:
        raise ValueError(f"{path.name}: AC table bits {profile.ac_table_bits} outside 12..{k.AC_TABLE_BITS_MAX}")
    if w.shape != (k.N_WEIGHTS,) or d.shape != (k.N_DIRECT,):
        raise ValueError(f"{path.name} holds {w.shape} mixer weights and {d.shape} counters; this kernel "
                         f"has {k.N_WEIGHTS} and {k.N_DIRECT}")
    return w, d, profile


def weights_id(path: Path) -> str:
    """The model id a weights file is published under: ``mix3-`` + the first 8 hex of its sha256."""
    return "mix3-" + hashlib.sha256(path.read_bytes()).hexdigest()[:8]


def load(model_id: str) -> Mix3Model:
    """The model whose mixer weights are ``weights/<model_id>.npz``."""
    return Mix3Model(WEIGHTS_DIR / f"{model_id}.npz")
