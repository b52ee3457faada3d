"""The integer hyper-decoder: z_hat (integers) -> y's mean (in 1/16 steps) and scale-table index, exactly.

Why integer: the index picks the table the entropy coder uses for each latent, so encoder and decoder
must compute it bit for bit alike on every CPU, thread count and BLAS. This follows Ballé, Johnston &
Minnen, "Integer networks for data compression" (ICLR 2019): int8 weights (per output channel scale),
uint8 activations with fixed scales, integer biases, and a fixed-point multiplier + shift in place of
each float rescale. Every value below is an integer:

- a convolution sums int8 x uint8 (or x z_hat, clamped to |z| <= Z_LIMIT) products over a fan-in of at
  most 9 * 256, so every partial sum is below 2^53; it is computed as a float64 matrix product, which is
  therefore *exact in any summation order* (BLAS blocking, FMA, threads), then turned back into int64;
- requantisation is ``(acc * mult + 2^(SHIFT-1)) >> SHIFT`` clamped to [0, 255] in int64;
- the mean is ``(acc * mult_mean + 2^(SHIFT-1)) >> SHIFT`` (units of 1/MEAN_DENOM step), and the scale
  index is the number of per-channel integer thresholds at or below ``acc`` (the float boundaries between
  table scales, divided by the accumulator's scale and rounded up once, at export).

All constants come from the weight file (:mod:`jpegshrink.perceptual.export` makes them); nothing here
uses a float that could round differently elsewhere.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Fixed-point shift of every requantisation multiplier.
SHIFT = 24
#: Largest |z_hat| the hyper-decoder accepts (the encoder clamps; larger values in a container are damage).
Z_LIMIT = 1 << 15
#: Output rows computed per block, to bound the im2col memory on large images.
_ROWS_PER_BLOCK = 64


@dataclass(frozen=True)
class IntLayer:
    """One 3x3 'same' convolution: int8 weights (out, in, 3, 3), int64 bias in accumulator units."""

    weight: np.ndarray
    bias: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """x: int64 (in, H, W) -> int64 accumulators (out, H, W), exactly."""
        c, h, w = x.shape
        out_ch = self.weight.shape[0]
        wmat = self.weight.reshape(out_ch, -1).astype(np.float64)
        padded = np.pad(x, ((0, 0), (1, 1), (1, 1))).astype(np.float64)
        out = np.empty((out_ch, h, w), np.int64)
        for r0 in range(0, h, _ROWS_PER_BLOCK):
            r1 = min(h, r0 + _ROWS_PER_BLOCK)
            win = np.lib.stride_tricks.sliding_window_view(padded[:, r0:r1 + 2], (3, 3), axis=(1, 2))
            cols = win.transpose(0, 3, 4, 1, 2).reshape(c * 9, -1)  # (in*3*3, rows*W), matches wmat's order
            out[:, r0:r1] = (wmat @ cols).reshape(out_ch, r1 - r0, w).astype(np.int64)
        return out + self.bias[:, None, None]


def requantise(acc: np.ndarray, mult: np.ndarray) -> np.ndarray:
    """ReLU + rescale to uint8 activations: clamp((acc * mult + half) >> SHIFT, 0, 255), per channel."""
    v = (acc * mult[:, None, None] + (1 << (SHIFT - 1))) >> SHIFT
    return np.clip(v, 0, 255)


def pixel_shuffle(x: np.ndarray, r: int = 2) -> np.ndarray:
    """(C*r*r, H, W) -> (C, H*r, W*r), torch's channel order."""
    c, h, w = x.shape
    return x.reshape(c // (r * r), r, r, h, w).transpose(0, 3, 1, 4, 2).reshape(c // (r * r), h * r, w * r)


@dataclass(frozen=True)
class IntHyperDecoder:
    """The exported h_s. ``thresholds``: (M, levels-1) int64, ascending per channel."""

    l1: IntLayer
    mult1: np.ndarray
    l2: IntLayer
    mult2: np.ndarray
    l3: IntLayer
    mult_mean: np.ndarray
    thresholds: np.ndarray

    def __call__(self, z_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """z_hat (NZ, h, w) integers -> (means in 1/MEAN_DENOM steps, scale indices), each (M, 4h, 4w) int64."""
        z = np.asarray(z_hat, np.int64)
        if z.size and np.abs(z).max() > Z_LIMIT:
            raise ValueError(f"|z_hat| over {Z_LIMIT}")
        a = pixel_shuffle(requantise(self.l1(z), self.mult1))
        a = pixel_shuffle(requantise(self.l2(a), self.mult2))
        acc = self.l3(a)
        m = self.mult_mean.shape[0]
        means = (acc[:m] * self.mult_mean[:, None, None] + (1 << (SHIFT - 1))) >> SHIFT
        logits = acc[m:]
        index = np.zeros(logits.shape, np.int64)
        for k in range(self.thresholds.shape[1]):  # count thresholds <= acc (levels is small: 63 passes)
            index += logits >= self.thresholds[:, k, None, None]
        return means, index

    @classmethod
    def from_arrays(cls, a: dict) -> "IntHyperDecoder":
        return cls(IntLayer(a["hs_w1"], a["hs_b1"]), a["hs_mult1"], IntLayer(a["hs_w2"], a["hs_b2"]), a["hs_mult2"],
                   IntLayer(a["hs_w3"], a["hs_b3"]), a["hs_mult_mean"], a["hs_thresholds"])
