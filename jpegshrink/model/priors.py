"""``learned2-<hash8>``: ``adaptive-1``'s contexts started from trained statistics instead of p = 1/2.

``adaptive-1`` starts every one of its ~1.5 M binary contexts at p = 1/2 in every image and learns
everything inside the image. On a large photo that learning cost is a fraction of a percent, but on
the small files of an archive (thumbnails, previews, icons) it is what makes us lose to Lepton. This
model codes exactly what ``adaptive-1`` codes, with the same kernels, but each context starts from the
probability it ended with, on average, in the training photos, and with a hit count (its confidence)
that says how fast the image may move it away (``tools/train_priors.py``). The statistics stay adaptive.

One set of starting statistics per (luma or chroma) x (quantiser coarseness bucket): the same context
behaves differently at quality 50 and 98, and the decoder knows the quantisation table before it
decodes a coefficient. Everything is integer (packed counters, see :mod:`jpegshrink.coding.binary_arith`),
so the streams are identical on every machine; a weights file is named by its sha256 and never changes.
"""
from __future__ import annotations

import bisect
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from jpegshrink.coding import binary_arith as ba
from jpegshrink.model import adaptive
from jpegshrink.model.base import ComponentSpec

WEIGHTS_DIR = Path(__file__).parent / "weights"
#: Natural indices of the nine lowest AC frequencies (zigzag 1..9): their quantiser steps measure coarseness.
LOW_AC = (1, 8, 16, 9, 2, 3, 10, 17, 24)


def coarseness(quant_table: np.ndarray) -> int:
    """Sum of the quantiser steps of the nine lowest AC frequencies (9 at quality 100, ~110 at 50)."""
    q = np.asarray(quant_table).reshape(-1).astype(np.int64)
    return int(sum(int(q[i]) for i in LOW_AC))


def prior_set(component: int, quant_table: np.ndarray, edges: Sequence[int]) -> str:
    """Name of the statistics set a component starts from: ``luma<b>`` or ``chroma<b>``, where b is the
    coarseness bucket (``coarseness <= edges[0]`` is bucket 0)."""
    kind = "luma" if component == 0 else "chroma"
    return f"{kind}{bisect.bisect_left(list(edges), coarseness(quant_table))}"


def pack(p: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Counters in binary_arith's packed form from probabilities (1..65535, units of 2^-16) and hit counts."""
    return ((p.astype(np.int64) << 10) | n.astype(np.int64)).astype(np.int32) ^ np.int32(ba.COUNTER_INIT)


def dense_counters(idx: np.ndarray, p: np.ndarray, n: np.ndarray) -> np.ndarray:
    """A full counter array: the trained contexts ``idx`` start from (p, n), every other one fresh."""
    t = ba.new_counters(adaptive.N_COUNTERS)
    t[idx.astype(np.int64)] = pack(p, n)
    return t


#: ``learned2p``: a component of at least this many blocks (1 MP of luma) is coded as one stream per
#: pass (adaptive's "pass streams"), so that its passes decode as a pipeline on several cores. Smaller
#: ones keep one stream: six more streams cost ~20 bytes, and a small component decodes in milliseconds.
PASS_STREAMS_MIN_BLOCKS = 16384


class PriorsModel:
    """A registered coefficient model: ``adaptive-1`` started from the statistics in ``weights``.

    ``pass_streams_min_blocks`` (None: never) codes large components as one stream per pass; the
    model id then differs from the weights file's name (the same statistics, another stream layout)."""

    def __init__(self, weights: Path, threads: int | None = None, model_id: str | None = None,
                 pass_streams_min_blocks: int | None = None) -> None:
        self.model_id = model_id or weights.stem
        with np.load(weights) as f:
            arrays = dict(f)
        # The counter layout only ever grows at its end (adaptive_model.h), so a file trained for an earlier
        # layout still names the same contexts; any other size is another model's.
        if int(arrays["n_counters"]) not in (adaptive.BASE_COUNTERS, adaptive.N_COUNTERS):
            raise ValueError(f"{weights.name} was trained for {int(arrays['n_counters'])} contexts; "
                             f"adaptive-1 has {adaptive.N_COUNTERS} (or {adaptive.BASE_COUNTERS} before its "
                             f"cross-channel sign grids)")
        self.edges = tuple(int(e) for e in arrays["edges"])
        #: the file's own format flags (learned3 on): chroma contexts see the co-located luma, which
        #: comes with pass streams from the block count the file names
        self.cross_channel = bool(int(arrays.get("cross_channel", 0)))
        #: ... and their signs are coded with the co-located luma sign as context
        self.cross_sign = bool(int(arrays.get("cross_sign", 0)))
        if "pass_streams_min_blocks" in arrays:
            if pass_streams_min_blocks is not None:
                raise ValueError(f"{weights.name} names its own pass-stream threshold")
            pass_streams_min_blocks = int(arrays["pass_streams_min_blocks"])
        #: per set name: (context indices, starting probabilities, hit counts), as trained
        self.sets = {str(k): (arrays[f"idx_{k}"], arrays[f"p_{k}"], arrays[f"n_{k}"]) for k in arrays["sets"]}
        self._dense: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        self._adaptive = adaptive.AdaptiveModel(threads, initial_counters=self.initial_counters,
                                                pass_streams_min_blocks=pass_streams_min_blocks,
                                                cross_channel=self.cross_channel, cross_sign=self.cross_sign)

    def initial_counters(self, component: int, spec: ComponentSpec) -> np.ndarray:
        """The (shared, read-only) starting counters of one component; contexts never seen in training
        start fresh, as in adaptive-1."""
        name = prior_set(component, spec.quant_table, self.edges)
        with self._lock:
            if name not in self._dense:
                if name in self.sets:
                    t = dense_counters(*self.sets[name])
                else:
                    t = ba.new_counters(adaptive.N_COUNTERS)
                t.flags.writeable = False
                self._dense[name] = t
            return self._dense[name]

    def encode(self, coefficients: Sequence[np.ndarray], specs: Sequence[ComponentSpec]) -> list[bytes]:
        return self._adaptive.encode(coefficients, specs)

    def decode(self, streams: Sequence[bytes], specs: Sequence[ComponentSpec],
               out: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
        return self._adaptive.decode(streams, specs, out=out)


#: Models whose id is not their statistics file's name: id -> (file stem, pass_streams_min_blocks).
PIPELINED = {"learned2p-c4d8c4e8": ("learned2-c4d8c4e8", PASS_STREAMS_MIN_BLOCKS)}


def load(model_id: str) -> PriorsModel:
    """The model ``model_id``: statistics ``weights/<model_id>.npz``, or a pipelined model's (see PIPELINED)."""
    if model_id in PIPELINED:
        stem, min_blocks = PIPELINED[model_id]
        return PriorsModel(WEIGHTS_DIR / f"{stem}.npz", model_id=model_id, pass_streams_min_blocks=min_blocks)
    return PriorsModel(WEIGHTS_DIR / f"{model_id}.npz")
