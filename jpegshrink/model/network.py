"""Exact integer inference of the learned hint network (numpy only; bit-identical on every machine).

The network reads one component at block resolution (``features.block_features``: 64 int8 channels,
plus channel 64 = the block's count of nonzero interior coefficients) and predicts, for coefficients
not yet decoded, a scalar ``mu`` that orders their expected magnitude class (an ordinal-logistic
head; its training script left the tree with the retired model's tools, see git history). The caller names the ``known`` channels (those already decoded) and the
``stage`` (the coding pass); the other channels are ignored, so they may hold anything.

Layers: ``n`` 3x3 convolutions with ReLU, then a 1x1 head.  All arithmetic is integer:

* weights are int8 with fixed per-output-channel requantisation multipliers ``m`` (``>> SHIFT``);
* activations are integers in [0, 127]; a 3x3 product sum is at most 127 * sum|w| < 2^24, which is
  checked when the weights load, so a float32 BLAS matmul of these integer-valued arrays is *exact*
  in any summation order, on any CPU, with any thread count;
* biases, the quantisation-table conditioning (``wq`` per quantiser class) and the stage embedding
  (``emb``) are int64 in accumulator units and are added after the matmul in int64;
* requantisation is ``clip((acc * m + 2^(SHIFT-1)) >> SHIFT, 0, 127)`` in int64.

Memory stays bounded on any image size: rows are processed in stripes with a halo of one block per
3x3 layer; image borders act as zero padding exactly as in training, so stripes change nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHIFT = 24
ACT_MAX = 127
INPUT_MAX = 64  # features.DC_FEATURE_LIMIT; AC features are <= 15, counts <= 49
_EXACT_LIMIT = 1 << 24
#: Blocks per stripe (rows x columns) that bounds the working set to a few tens of MB.
STRIPE_BLOCKS = 1 << 16


@dataclass(frozen=True)
class ConvLayer:
    weight: np.ndarray  # int8 [3, 3, cin, cout]
    bias: np.ndarray  # int64 [cout], accumulator units
    mult: np.ndarray  # int64 [cout], requantisation multiplier (>> SHIFT)


@dataclass(frozen=True)
class ExactNetwork:
    """One trained network (e.g. for luma or for chroma) in integer form."""

    layers: tuple[ConvLayer, ...]
    emb: np.ndarray  # int64 [n_stages, c1]: first-layer bias per stage (coding pass)
    wq: np.ndarray  # int64 [64, c1]: first-layer bias per unit of quantiser class, per coefficient
    head_weight: np.ndarray  # int8 [c_last, 64]
    head_bias: np.ndarray  # int64 [64]
    thresholds: np.ndarray  # int64 [64, n_hints - 1], ascending: hint = #{j: mu >= thresholds[t, j]}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> "ExactNetwork":
        n = int(arrays[f"{prefix}.n_layers"])
        layers = tuple(ConvLayer(arrays[f"{prefix}.w{i}"].astype(np.int8), arrays[f"{prefix}.b{i}"].astype(np.int64),
                                 arrays[f"{prefix}.m{i}"].astype(np.int64)) for i in range(n))
        net = cls(layers, arrays[f"{prefix}.emb"].astype(np.int64), arrays[f"{prefix}.wq"].astype(np.int64),
                  arrays[f"{prefix}.wh"].astype(np.int8), arrays[f"{prefix}.bh"].astype(np.int64),
                  arrays[f"{prefix}.thr"].astype(np.int64))
        net.check_exact()
        return net

    @property
    def n_hints(self) -> int:
        return self.thresholds.shape[1] + 1

    def check_exact(self) -> None:
        """Refuse weights whose integer sums could leave float32's exact range (2^24)."""
        bounds = [INPUT_MAX] + [ACT_MAX] * len(self.layers)
        weights = [layer.weight.reshape(-1, layer.weight.shape[-1]) for layer in self.layers] + [self.head_weight]
        for i, (w, bound) in enumerate(zip(weights, bounds)):
            worst = int(np.abs(w.astype(np.int64)).sum(axis=0).max()) * bound
            if worst >= _EXACT_LIMIT:
                raise ValueError(f"layer {i}: sums up to {worst} are not exact in float32")
        for layer in self.layers:
            if int(np.abs(layer.mult).max()) >= 1 << 30 or int(np.abs(layer.bias).max()) >= 1 << 30:
                raise ValueError("requantisation constants out of range")

    def predict(self, features: np.ndarray, qclasses: np.ndarray, stage: int, known: np.ndarray,
                targets: np.ndarray) -> np.ndarray:
        """int64 [rows, cols, len(targets)]: ``mu`` for natural coefficient indices ``targets`` at
        ``stage``, from input channels ``known`` of ``features`` (int8 [rows, cols, 65])."""
        rows, cols = features.shape[:2]
        known = np.asarray(known, dtype=np.int64)
        first_bias = self.layers[0].bias + self.emb[stage] + qclasses.astype(np.int64) @ self.wq
        head_w = self.head_weight[:, targets].astype(np.float32)
        head_b = self.head_bias[targets]
        out = np.empty((rows, cols, len(targets)), np.int64)
        stripe = max(1, STRIPE_BLOCKS // max(cols, 1))
        for r0 in range(0, rows, stripe):
            r1 = min(rows, r0 + stripe)
            act = self._trunk(features, known, first_bias, r0, r1)
            acc = act.reshape(-1, act.shape[-1]) @ head_w
            out[r0:r1] = acc.astype(np.int64).reshape(r1 - r0, cols, -1) + head_b
        return out

    def hints(self, mu: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """uint8 hints in [0, n_hints) from ``mu`` of natural indices ``targets``."""
        thr = self.thresholds[targets]  # [t, n_hints - 1]
        return (mu[..., :, None] >= thr).sum(axis=-1).astype(np.uint8)

    def _trunk(self, features: np.ndarray, known: np.ndarray, first_bias: np.ndarray, r0: int, r1: int) -> np.ndarray:
        """Activations [r1 - r0, cols, c] of the last 3x3 layer for block rows r0..r1."""
        rows, cols = features.shape[:2]
        halo = len(self.layers)
        lo, hi = r0 - halo, r1 + halo
        x = np.zeros((hi - lo, cols + 2 * halo, len(known)), np.float32)
        src_lo, src_hi = max(lo, 0), min(hi, rows)
        x[src_lo - lo:src_hi - lo, halo:halo + cols] = features[src_lo:src_hi][:, :, known]
        for i, layer in enumerate(self.layers):
            w = layer.weight[:, :, known] if i == 0 else layer.weight
            bias = first_bias if i == 0 else layer.bias
            acc = _conv3x3_valid(x, w.astype(np.float32))
            y = (acc.astype(np.int64) + bias) * layer.mult + (1 << (SHIFT - 1))
            x = np.clip(y >> SHIFT, 0, ACT_MAX).astype(np.float32)
            # positions outside the image are zero padding for the next layer, as in training
            grow = halo - i - 1
            top, bottom = max(0, -(lo + i + 1)), max(0, (hi - i - 1) - rows)
            if top:
                x[:top] = 0
            if bottom:
                x[x.shape[0] - bottom:] = 0
            if grow:
                x[:, :grow] = 0
                x[:, x.shape[1] - grow:] = 0
        return x


def _conv3x3_valid(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """'valid' 3x3 convolution as three matmuls (the three column shifts side by side as channels);
    exact for integer-valued data whose sums stay below 2^24, in any summation order."""
    h, wd, cin = x.shape
    ho, wo = h - 2, wd - 2
    cols = np.concatenate([x[:, 0:wo], x[:, 1:wo + 1], x[:, 2:wo + 2]], axis=2)  # [h, wo, 3 * cin]
    taps = w.reshape(3, 3 * cin, w.shape[-1])  # [dy, (dx, cin), cout], matching the channel order above
    out = cols[0:ho].reshape(-1, 3 * cin) @ taps[0]
    out += cols[1:ho + 1].reshape(-1, 3 * cin) @ taps[1]
    out += cols[2:ho + 2].reshape(-1, 3 * cin) @ taps[2]
    return out.reshape(ho, wo, -1)
