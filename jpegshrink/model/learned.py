"""``learned-<hash8>``: ``adaptive-1`` with context hints from an exact integer network.

The adaptive model (:mod:`jpegshrink.model.adaptive`) codes each component in passes and asks, before
each pass, for an optional hint per coefficient of the pass: an extra context dimension of its
adaptive statistics. Here a small CNN (:mod:`jpegshrink.model.network`) computes those hints for the
four interior passes (the weights file names the passes), from what the decoder already has: the component's nonzero
counts and interior coefficients of earlier passes, over all neighbouring blocks (also below and to
the right, which the adaptive contexts cannot see), conditioned on the quantisation table. The
network only *selects* statistics, which still adapt inside the image, so a miscalibrated prediction
costs little; and its integer arithmetic makes the hints bit-identical on every machine.

One batched network call per pass and component (5 per component, whatever the image size). Luma
(component 0) and chroma (the others) have their own weights; components stay independent units.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from jpegshrink.blocks import EDGES, INTERIOR
from jpegshrink.model import adaptive
from jpegshrink.model.base import ComponentSpec
from jpegshrink.model.features import COUNT_CHANNEL, network_inputs, quant_classes
from jpegshrink.model.network import ExactNetwork

WEIGHTS_DIR = Path(__file__).parent / "weights"
#: the adaptive-1 passes the network was trained for (pass index -> coefficients it codes)
STAGE_CODES = {1: tuple(INTERIOR[0:3]), 2: tuple(INTERIOR[3:10]), 3: tuple(INTERIOR[10:21]),
               4: tuple(INTERIOR[21:49]), 5: tuple(EDGES)}


def _check_pass_layout() -> None:
    for stage, codes in STAGE_CODES.items():
        if tuple(adaptive.PASS_COEFS[stage]) != tuple(int(c) for c in codes):
            raise RuntimeError(f"adaptive pass {stage} codes {adaptive.PASS_COEFS[stage]}, the learned "
                               f"model was trained for {codes}")


class LearnedModel:
    """A registered coefficient model: ``adaptive-1`` plus hints from the weights ``learned-<hash8>.npz``."""

    def __init__(self, weights: Path, threads: int | None = None) -> None:
        _check_pass_layout()
        self.model_id = weights.stem
        with np.load(weights) as f:
            arrays = dict(f)
        self.nets = (ExactNetwork.from_arrays(arrays, "luma"), ExactNetwork.from_arrays(arrays, "chroma"))
        self.passes = frozenset(int(p) for p in arrays["passes"])
        if not self.passes <= set(STAGE_CODES):
            raise ValueError(f"{weights.name}: hints for passes {sorted(self.passes)}; the network knows {sorted(STAGE_CODES)}")
        if any(net.n_hints > adaptive.N_HINTS for net in self.nets):
            raise ValueError(f"{weights.name}: more hints than adaptive-1 has contexts for")
        self._adaptive = adaptive.AdaptiveModel(threads)

    interior = INTERIOR

    @staticmethod
    def known_before(stage: int) -> np.ndarray:
        """Natural indices of the coefficients decoded before pass ``stage`` (the interior of earlier passes)."""
        return np.array([c for s in range(1, stage) for c in STAGE_CODES[s]], np.int64)

    def encode(self, coefficients: Sequence[np.ndarray], specs: Sequence[ComponentSpec]) -> list[bytes]:
        return self._adaptive.encode(coefficients, specs, hints=self.hint_function(specs))

    def decode(self, streams: Sequence[bytes], specs: Sequence[ComponentSpec],
               out: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
        return self._adaptive.decode(streams, specs, hints=self.hint_function(specs), out=out)

    def hint_function(self, specs: Sequence[ComponentSpec]):
        """The thread-safe hint hook for one image (see adaptive's module docstring)."""
        qclasses = [quant_classes(s.quant_table) for s in specs]

        def hints(component: int, pass_index: int, so_far: np.ndarray, counts: np.ndarray) -> np.ndarray | None:
            if pass_index not in self.passes:
                return None
            return self.pass_hints(component, pass_index, so_far, counts, specs[component].quant_table,
                                   qclasses[component])
        return hints

    def pass_hints(self, component: int, stage: int, so_far: np.ndarray, counts: np.ndarray,
                   quant_table: np.ndarray, qclasses: np.ndarray | None = None) -> np.ndarray:
        """uint8 [rows, cols, len(STAGE_CODES[stage])]: the hints for one pass of one component."""
        net = self.nets[0 if component == 0 else 1]
        known = np.append(self.known_before(stage), COUNT_CHANNEL)
        targets = np.array(STAGE_CODES[stage], np.int64)
        qclasses = quant_classes(quant_table) if qclasses is None else qclasses
        mu = net.predict(network_inputs(so_far, quant_table, counts), qclasses, stage, known, targets)
        return net.hints(mu, targets)


def load(model_id: str) -> LearnedModel:
    """The learned model whose weights file is ``weights/<model_id>.npz``."""
    return LearnedModel(WEIGHTS_DIR / f"{model_id}.npz")
