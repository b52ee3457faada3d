"""Rate-distortion optimised rounding of the latents (encoder only): fewer bits, the same decoder.

Rounding each mean-removed latent to the nearest integer minimises the distortion, not the rate +
lambda x distortion the codec was trained for. A latent whose fraction is near one half costs a whole
step of a more expensive symbol for little distortion, and the integer one step towards zero (towards
the mean, the most probable symbol) is often the better buy. For every latent the encoder compares the
two: the exact code length of each under the weight file's integer tables (:func:`.entropy.code_lengths`,
what the ANS stream will spend) plus lambda (the rate's training lambda) times its estimated distortion,
and keeps the cheaper one. This is the classic rate-distortion optimised quantisation of video coders
(RDOQ), applied per latent; the gradient-based ``optimize_steps`` (:mod:`.refine`) goes further at
~1000x the cost and starts from these latents.

The distortion estimate uses the synthesis' linear (KLT) path: a rounding error ``e`` (in quantisation
steps) of channel ``c`` moves the block's pixels by ``e / g_c`` times that channel's synthesis filter,
so its squared error is ``e^2 |filter_c|^2 / g_c^2``. The nonlinear path adds to that: the estimate is
scaled by :data:`DISTORTION_WEIGHT`, chosen with ``tools/tune_rd_rounding.py`` on crops of the
*training* images, never the validation photos (BENCHMARKS.md, "Rate-distortion optimised rounding").
Codecs without a linear path round to nearest.

Only which integers are stored changes: the container, the decoder and every coding table are the same,
and any integers decode exactly on every machine. The choice itself is float arithmetic on the encoder
side, like the analysis transform before it.
"""
from __future__ import annotations

import numpy as np

from jpegshrink.perceptual import entropy

#: Scale of the linear path's distortion estimate (see the module docstring for how it was chosen).
DISTORTION_WEIGHT = 2.5


def rd_round(codec, v: np.ndarray, index: np.ndarray, rate: float, weight: float = DISTORTION_WEIGHT) -> np.ndarray:
    """int64 symbols for the mean-removed gained latents ``v`` (M, H, W) coded with scale-table indices
    ``index`` (M, H, W) at ladder ``rate``: per latent, nearest or one step towards zero, whichever has
    the lower code length + lambda x estimated distortion (the linear path's, times ``weight``)."""
    filters = codec.g_s.linear.weight.detach().double().reshape(codec.m, -1)
    gain = codec.gain(rate)[0, :, 0, 0].double().numpy()
    # objective in bits for the image: code length + lambda * 255^2 * (squared error summed over the
    # 3 colour planes) / 3, as the training loss per pixel times the pixels
    per_step = codec.lambda_at(rate) * 255 ** 2 * weight / 3 * (filters ** 2).sum(1).numpy() / gain ** 2
    per_step = per_step[:, None, None]
    near = np.round(v).astype(np.int64)
    toward = near - np.sign(near)
    freq, radius = codec.y_freq, codec.tables.y_radius
    cost_near = entropy.code_lengths(freq, radius, index, near) + per_step * (v - near) ** 2
    cost_toward = entropy.code_lengths(freq, radius, index, toward) + per_step * (v - toward) ** 2
    return np.where((near != 0) & (cost_toward < cost_near), toward, near)
