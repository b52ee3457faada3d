"""``adaptive-1``: a Lepton-class context model that adapts inside each image; no training, no weights.

What is coded, per component, as one binary-arithmetic-coded stream (:mod:`jpegshrink.coding.binary_arith`)
with integer counters that start fresh for every component of every image:

* pass 0 -- per block, the number of nonzero coefficients among the 49 "interior" ones (both
  frequencies >= 1), as a 6-bit binary tree whose context is the neighbours' counts;
* passes 1-4 -- the interior coefficients in zigzag order, in four frequency groups; each value is
  binarised Exp-Golomb style (exponent in unary, sign, mantissa bits, every bit context-coded) with
  contexts: nonzeros still left in the block, zigzag position, and the bit length of a weighted mean of
  the same coefficient in the blocks above, left and above-left. A block stops once its count is used up;
* pass 5 -- the first row and column ("edges"), each with its own nonzero count, coded with the
  prediction that makes the pixel profile of this block meet its neighbour's across the boundary (an
  integer IDCT of the known coefficients) as context for exponent and sign;
* pass 6 -- the DC, predicted from this block's AC-only boundary pixels and the neighbours' pixels
  (gradient extrapolation to the shared edge, trimmed mean of the 16 per-pixel estimates), with the
  spread of the estimates and the disagreement of the two sides as contexts.

Counters are 16-bit probabilities with a hit count (step 1/(n+1.5), n <= 255); the exponent counters
of interior and edge coefficients start, on first use, from a coarser parent context (position and
prediction only), which keeps the learning cost of the large context space low on small images.
Everything is integer: the same bytes on every CPU. The format of ``adaptive-1`` is frozen by the
golden containers in tests/golden/; any change to what is coded needs a new model id.

Group-major order: pass k is coded for *all* blocks of the component (raster order) before pass k+1,
so every pass can see every block's earlier passes, including the blocks below and to the right.
``PASS_COEFS[k]`` lists the natural coefficient indices a pass codes (pass 0 codes counts only).

Hint hook (for a learned predictor stacked on this model): ``encode``/``decode`` accept
``hints(component, pass_index, coefficients_so_far, nonzero_counts) -> np.ndarray | None``. It is
called once before each pass with read-only views of the component's int16 [block_rows, block_cols, 64]
array, in which exactly the coefficients of passes < pass_index are filled in (everything else is
zero), and of the int64 [block_rows, block_cols] per-block counts of nonzero interior coefficients
(0..49; all zero until pass 0 is done). It may return a uint8 array
[block_rows, block_cols, PASS_HINT_WIDTH[pass_index]] with values in [0, N_HINTS). Hint j of a block is
an extra context dimension for the binary decisions of coefficient PASS_COEFS[pass][j] (pass 0: of the
count; pass 5: hints 0 and 7 also select the row/column count contexts). A context with hint h > 0
starts from, and keeps teaching, the same context with hint 0, so an uninformative hint costs about
2% (measured with hint = (row + col) % 8) instead of 4%. ``None`` or an all-zero hint is the plain
adaptive model, and with ``hints=None`` the hook costs nothing. The same function must be
given to decode; components are coded in parallel threads, so it must be thread-safe.

Pass streams (``pass_streams_min_blocks``; no hints): a component with at least that many blocks is
coded as one stream per pass instead of one for all passes. The model is the same -- no two passes
share a counter, and a pass reads of earlier passes only its own block and the rows above -- so the
bits are the same up to a few bytes per stream, but a decoder can run the passes as a pipeline over
block rows on several cores (pass p of a row once pass p-1 has finished it; compiled, in
``adaptive_model.cpp``'s ``decode_pipelined``). Which components are split follows from the block
counts alone, never from a thread count, so the bytes do not depend on how many threads code them.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional, Sequence

import numpy as np

from jpegshrink._native import core, image_threads
from jpegshrink.blocks import EDGES, INTERIOR
from jpegshrink.coding import binary_arith as ba
from jpegshrink.model.base import ComponentSpec, checked_coefficients, checked_output
from jpegshrink.model.cross_channel import cover, interior_counts

#: The passes are compiled code (jpegshrink/csrc/adaptive_model.h: one template per pass, shared by
#: encoder and decoder); their table is read from there.
_kern = core.adaptive
N_HINTS = _kern.N_HINTS
INTERIOR_GROUPS: tuple[tuple[int, int], ...] = tuple(_kern.INTERIOR_GROUPS)  # ranges into blocks.INTERIOR
PASS_NAMES: tuple[str, ...] = tuple(_kern.PASS_NAMES)
PASS_COEFS: tuple[tuple[int, ...], ...] = (
    ((),)
    + tuple(tuple(int(n) for n in INTERIOR[a:b]) for a, b in INTERIOR_GROUPS)
    + (tuple(int(n) for n in EDGES), (0,)))
PASS_HINT_WIDTH: tuple[int, ...] = tuple(_kern.PASS_HINT_WIDTH)
N_PASSES = len(PASS_COEFS)
assert PASS_HINT_WIDTH == tuple(max(1, len(c)) for c in PASS_COEFS) and len(PASS_NAMES) == N_PASSES

HintFn = Callable[[int, int, np.ndarray, np.ndarray], Optional[np.ndarray]]
#: ``initial_counters(component, spec)``: the counter array (int32[N_COUNTERS], binary_arith's packed
#: form) a component's coding starts from; None starts every context fresh (that is ``adaptive-1``).
InitFn = Callable[[int, ComponentSpec], np.ndarray]
N_COUNTERS = _kern.N_COUNTERS
#: The counter layout before the cross-channel sign grids were appended (what learned2 and learned3-6da68cd5
#: were trained for; the same indices).
BASE_COUNTERS = _kern.BASE_COUNTERS


class AdaptiveModel:
    """The ``adaptive-1`` coefficient model (see the module docstring)."""

    model_id = "adaptive-1"

    def __init__(self, threads: int | None = None, initial_counters: InitFn | None = None,
                 pass_streams_min_blocks: int | None = None, cross_channel: bool = False,
                 cross_sign: bool = False) -> None:
        # JPEGSHRINK_THREADS caps the per-image threads (e.g. 1 in a process pool that already uses every
        # core); the output bytes do not depend on it.
        self._threads = threads or image_threads()
        self._initial = initial_counters
        if pass_streams_min_blocks is not None and pass_streams_min_blocks < 1:
            raise ValueError(f"pass_streams_min_blocks must be >= 1, got {pass_streams_min_blocks}")
        if cross_channel and pass_streams_min_blocks is None:
            raise ValueError("cross-channel hints come with pass streams (pass_streams_min_blocks)")
        if cross_sign and not cross_channel:
            raise ValueError("cross-channel signs come with cross-channel hints")
        self._split_from = pass_streams_min_blocks
        self._cross = cross_channel
        self._cross_sign = cross_sign

    def pass_streams(self, spec: ComponentSpec) -> bool:
        """Whether this model codes the component as one stream per pass (from its size only)."""
        return self._split_from is not None and spec.block_rows * spec.block_cols >= self._split_from

    def encode(self, coefficients: Sequence[np.ndarray], specs: Sequence[ComponentSpec],
               hints: HintFn | None = None) -> list[bytes]:
        if len(coefficients) != len(specs):
            raise ValueError(f"{len(coefficients)} coefficient arrays for {len(specs)} components")
        arrays = [checked_coefficients(c, s, i) for i, (c, s) in enumerate(zip(coefficients, specs))]
        jobs = [(i, a, _quant(s), s) for i, (a, s) in enumerate(zip(arrays, specs))]
        if self._split_from is not None:
            if hints is not None:
                raise ValueError("pass streams take no hints")
            refs = self._references(specs)
            luma = (arrays[0], _quant(specs[0]), interior_counts(arrays[0])) if any(refs) else None
            per_component = self._map(lambda j: self._encode_unit(
                j[1], j[2], j[3], j[0], None if refs[j[0]] is None else (*luma, *refs[j[0]], self._cross_sign)), jobs)
            return [s for streams in per_component for s in streams]
        return self._map(lambda j: encode_component(j[1], j[2], _bind(hints, j[0]),
                                                    self._counters(j[0], j[3])), jobs)

    def decode(self, streams: Sequence[bytes], specs: Sequence[ComponentSpec],
               hints: HintFn | None = None, out: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
        if self._split_from is not None:
            if hints is not None:
                raise ValueError("pass streams take no hints")
            return self._decode_pipelined(streams, specs, out)
        if len(streams) != len(specs):
            raise ValueError(f"{len(streams)} streams for {len(specs)} components")
        targets = checked_output(out, specs) or [None] * len(specs)
        jobs = [(i, bytes(b), s, t) for i, (b, s, t) in enumerate(zip(streams, specs, targets))]
        return self._map(lambda j: _decode_component(j[1], j[2], _bind(hints, j[0]),
                                                     self._counters(j[0], j[2]), j[3]), jobs)

    def _references(self, specs: Sequence[ComponentSpec]) -> list[tuple[int, int] | None]:
        """Per component, (fy, fx) of its cross-channel reference (component 0), or None."""
        if not self._cross:
            return [None] * len(specs)
        return [None] + [cover(specs[0], s) for s in specs[1:]]

    def _encode_unit(self, co: np.ndarray, q: np.ndarray, spec: ComponentSpec, component: int,
                     reference: tuple | None) -> list[bytes]:
        T = self._counters(component, spec)
        if self.pass_streams(spec):
            return encode_passes(co, q, T, reference)
        return [encode_component(co, q, None, T, reference)]

    def _decode_pipelined(self, streams: Sequence[bytes], specs: Sequence[ComponentSpec],
                          out: Sequence[np.ndarray] | None) -> list[np.ndarray]:
        widths = [N_PASSES if self.pass_streams(s) else 1 for s in specs]
        if len(streams) != sum(widths):
            raise ValueError(f"{len(streams)} streams; this image's components are coded in {sum(widths)}")
        targets = checked_output(out, specs) or [np.zeros((s.block_rows, s.block_cols, 64), np.int16) for s in specs]
        refs = self._references(specs)
        jobs, at = [], 0
        for i, (spec, width, co) in enumerate(zip(specs, widths, targets)):
            nz7 = np.zeros((spec.block_rows, spec.block_cols), np.int64)
            jobs.append(([bytes(b) for b in streams[at:at + width]], co, _quant(spec), nz7, np.zeros_like(nz7),
                         self._counters(i, spec), None if refs[i] is None else (0, *refs[i], self._cross_sign)))
            at += width
        report = _kern.decode_pipelined(jobs, self._threads)
        for i, (passes, job) in enumerate(zip(report, jobs)):
            for p, (damaged, overrun) in enumerate(passes):
                if damaged or overrun > 0:
                    raise ValueError(f"coefficient stream is damaged (component {i}, pass {PASS_NAMES[p]})")
            if job[4].any():
                raise ValueError(f"coefficient stream is damaged (component {i}: nonzero counts do not match)")
        return targets

    def _counters(self, component: int, spec: ComponentSpec) -> np.ndarray:
        if self._initial is None:
            return ba.new_counters(N_COUNTERS)
        t = np.array(self._initial(component, spec), dtype=np.int32)  # a private copy: coding mutates it
        if t.shape != (N_COUNTERS,):
            raise ValueError(f"initial counters must be int32[{N_COUNTERS}], got {t.shape}")
        return t

    def _map(self, fn, jobs):
        if len(jobs) <= 1 or self._threads <= 1:
            return [fn(j) for j in jobs]
        with ThreadPoolExecutor(max_workers=min(self._threads, len(jobs))) as pool:
            return list(pool.map(fn, jobs))


def _bind(hints: HintFn | None, component: int):
    if hints is None:
        return None
    return lambda pass_index, so_far, counts: hints(component, pass_index, so_far, counts)


def _quant(s: ComponentSpec) -> np.ndarray:
    q = np.asarray(s.quant_table).astype(np.int64).reshape(-1)
    if q.shape != (64,):
        raise ValueError(f"quantisation table must have 64 entries, got {q.shape}")
    return q


def _read_only(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.flags.writeable = False
    return view


def _hint_for(hints, pass_index: int, so_far: np.ndarray, counts: np.ndarray) -> np.ndarray | None:
    h = hints(pass_index, _read_only(so_far), _read_only(counts))
    if h is None:
        return None
    h = np.asarray(h)
    shape = (so_far.shape[0], so_far.shape[1], PASS_HINT_WIDTH[pass_index])
    if h.shape != shape or h.dtype != np.uint8:
        raise ValueError(f"hint for pass {pass_index} must be uint8 {shape}, got {h.dtype} {h.shape}")
    if h.size and int(h.max()) >= N_HINTS:
        raise ValueError(f"hint values must be < {N_HINTS}, got {int(h.max())}")
    return np.ascontiguousarray(h)


def encode_component(co: np.ndarray, q: np.ndarray, hints, T: np.ndarray, reference: tuple | None = None) -> bytes:
    """One component's stream, starting from counters ``T`` (int32[N_COUNTERS]), which it leaves in
    their final state (what training of initial counters reads). ``reference``: a cross-channel
    reference (luma coefficients, quantiser, interior counts, fy, fx[, cross_sign]) instead of hints."""
    R, C = co.shape[0], co.shape[1]
    coder = ba.BinaryEncoder()
    nz7 = np.zeros((R, C), dtype=np.int64)
    nzrem = np.zeros((R, C), dtype=np.int64)
    so_far = np.zeros_like(co) if hints is not None else None
    for p in range(N_PASSES):
        hint = _hint_for(hints, p, so_far, nz7) if hints is not None else None
        _kern.run_pass(coder, p, co, q, nz7, nzrem, hint, T, reference)
        if so_far is not None and PASS_COEFS[p]:
            idx = list(PASS_COEFS[p])
            so_far[:, :, idx] = co[:, :, idx]
    return coder.finish()


def encode_passes(co: np.ndarray, q: np.ndarray, T: np.ndarray, reference: tuple | None = None) -> list[bytes]:
    """One component as one stream per pass, starting from counters ``T``; ``reference`` as for
    :func:`encode_component`."""
    R, C = co.shape[0], co.shape[1]
    nz7 = np.zeros((R, C), dtype=np.int64)
    nzrem = np.zeros((R, C), dtype=np.int64)
    out = []
    for p in range(N_PASSES):
        coder = ba.BinaryEncoder()
        _kern.run_pass(coder, p, co, q, nz7, nzrem, None, T, reference)
        out.append(coder.finish())
    return out


def _decode_component(data: bytes, spec: ComponentSpec, hints, T: np.ndarray,
                      co: np.ndarray | None = None) -> np.ndarray:
    R, C = spec.block_rows, spec.block_cols
    q = _quant(spec)
    co = np.zeros((R, C, 64), dtype=np.int16) if co is None else co
    coder = ba.BinaryDecoder(data)
    nz7 = np.zeros((R, C), dtype=np.int64)
    nzrem = np.zeros((R, C), dtype=np.int64)
    for p in range(N_PASSES):
        hint = _hint_for(hints, p, co, nz7) if hints is not None else None
        _kern.run_pass(coder, p, co, q, nz7, nzrem, hint, T)
        if coder.damaged or coder.overrun > 0:
            raise ValueError(f"coefficient stream is damaged (pass {PASS_NAMES[p]})")
        if p == len(INTERIOR_GROUPS) and nzrem.any():
            raise ValueError("coefficient stream is damaged (nonzero counts do not match)")
    return co
