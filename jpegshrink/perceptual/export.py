"""Turn a training checkpoint into a package weight file ``weights/<family>-<sha8>.npz`` (tools only).

The file holds the float transforms (g_a, g_s, h_a) as float16 and the gains as float32, and everything that decides
entropy coding as integers fixed here once: the int8 hyper-decoder with its fixed-point multipliers and
scale thresholds (:mod:`.intnet`), and the coding tables (16-bit frequencies, every symbol >= 1, an escape
symbol last) of z's factorised prior per channel and of y's Gaussian per scale level. Computing tables
at export, not at load, is what keeps libm's erf/exp out of the decoder's coding path.

The id hashes the arrays (names, dtypes, shapes, bytes), so one set of weights has one id everywhere.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
from pathlib import Path

import numpy as np
import torch

from jpegshrink.perceptual import intnet, network

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
#: Total of every coding table's frequencies.
TABLE_BITS = 16
#: z symbols code z in [-Z_RANGE, Z_RANGE]; others escape.
Z_RANGE = 64
#: y half-width per scale level: ceil(Y_TAIL * scale) + 1, at most Y_RANGE_MAX.
Y_TAIL, Y_RANGE_MAX = 8, 1100


def quantise_pmf(p: np.ndarray) -> np.ndarray:
    """Float probabilities (summing to <= 1; escape last) -> int frequencies summing to 2^TABLE_BITS, all >= 1."""
    total = 1 << TABLE_BITS
    p = np.maximum(p, 0) / max(p.sum(), 1e-300)
    f = np.floor(p * (total - len(p))).astype(np.int64) + 1
    f[np.argmax(f)] += total - f.sum()
    assert f.min() >= 1 and f.sum() == total
    return f


def y_tables() -> tuple[np.ndarray, np.ndarray]:
    """(levels, width) int32 frequencies (symbol s + R at index s + R, escape at 2R+1) and the R per level."""
    scales = network.scale_table().numpy()
    radii = np.minimum(np.ceil(Y_TAIL * scales).astype(np.int64) + 1, Y_RANGE_MAX)
    width = int(2 * radii.max() + 2)
    out = np.zeros((len(scales), width), np.int32)
    for k, (s, r) in enumerate(zip(scales, radii)):
        v = np.arange(-r, r + 1, dtype=np.float64)
        cdf = lambda t: 0.5 * np.array([math.erfc(-x / math.sqrt(2)) for x in t])  # noqa: E731
        p = cdf((v + 0.5) / s) - cdf((v - 0.5) / s)
        tail = 2 * 0.5 * math.erfc((r + 0.5) / s / math.sqrt(2))
        out[k, :2 * r + 2] = quantise_pmf(np.append(p, tail))
    return out, radii


def z_tables(prior: network.FactorizedPrior, nz: int) -> np.ndarray:
    """(NZ, 2*Z_RANGE+2) int32 frequencies of z's factorised prior (escape last)."""
    v = torch.arange(-Z_RANGE, Z_RANGE + 1, dtype=torch.float32)
    with torch.no_grad():
        lik = prior.likelihood(v.view(1, 1, -1, 1).expand(1, nz, -1, 1).contiguous())[0, :, :, 0].double().numpy()
    out = np.zeros((nz, 2 * Z_RANGE + 2), np.int32)
    for c in range(nz):
        out[c] = quantise_pmf(np.append(lik[c], max(1 - lik[c].sum(), 1e-9)))
    return out


def int_hyper_decoder(hs: network.QuantHyperSynthesis, m: int) -> dict:
    """The integer arrays of :class:`.intnet.IntHyperDecoder` from a trained (fake-quantised) h_s."""
    act = [float(a) for a in hs.act_scale]
    out = {}
    in_scale = np.ones(1)  # z_hat is an integer: scale 1
    layers = [hs.c1, hs.c2, hs.c3]
    for i, conv in enumerate(layers, 1):
        w = conv.weight.detach().double().numpy()
        b = conv.bias.detach().double().numpy()
        sw = np.maximum(np.abs(w).max(axis=(1, 2, 3)), 1e-8) / 127
        out[f"hs_w{i}"] = np.clip(np.round(w / sw[:, None, None, None]), -127, 127).astype(np.int8)
        acc_scale = in_scale * sw  # real value of one accumulator unit, per output channel
        out[f"hs_b{i}"] = np.round(b / acc_scale).astype(np.int64)
        if i < 3:
            out[f"hs_mult{i}"] = np.round(acc_scale / act[i - 1] * (1 << intnet.SHIFT)).astype(np.int64)
            in_scale = np.ones(1) * act[i - 1]
        else:
            out["hs_mult_mean"] = np.round(acc_scale[:m] * network.MEAN_DENOM * (1 << intnet.SHIFT)).astype(np.int64)
            logs = np.log(network.scale_table().numpy())
            bounds = (logs[:-1] + logs[1:]) / 2  # logit boundary between table levels k and k+1
            out["hs_thresholds"] = np.ceil(bounds[None, :] / acc_scale[m:, None]).astype(np.int64)
    return out


def arrays_from_checkpoint(ck: dict) -> dict:
    cfg = ck["config"]
    net = network.HyperpriorCodec(cfg["n"], cfg["m"], cfg["nz"], len(ck["lambdas"]), klt=cfg.get("klt", False))
    net.load_state_dict(ck["model"])
    if not ck.get("fake_quant"):
        raise ValueError("checkpoint's h_s was never calibrated/fake-quantised: train through the quant phase")
    arrays = {}
    for prefix, mod in (("g_a", net.g_a), ("g_s", net.g_s), ("h_a", net.h_a)):
        for k, v in mod.state_dict().items():
            arrays[f"{prefix}.{k}"] = v.detach().numpy().astype(np.float16)  # halves the file
    arrays["log_gain"] = net.log_gain.detach().float().numpy()
    arrays.update(int_hyper_decoder(net.h_s, cfg["m"]))
    arrays["z_freq"] = z_tables(net.prior_z, cfg["nz"])
    arrays["y_freq"], arrays["y_radius"] = y_tables()
    meta = {"family": "hp1", "n": cfg["n"], "m": cfg["m"], "nz": cfg["nz"], "klt": cfg.get("klt", False),
            "lambdas": list(ck["lambdas"]),
            "iterations": ck["iteration"], "z_range": Z_RANGE, "table_bits": TABLE_BITS,
            "mean_denom": network.MEAN_DENOM, "shift": intnet.SHIFT}
    arrays["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), np.uint8)
    return arrays


def weights_id(arrays: dict, family: str = "hp1") -> str:
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return f"{family}-{h.hexdigest()[:8]}"


def export_checkpoint(path: Path, out_dir: Path = WEIGHTS_DIR) -> Path:
    arrays = arrays_from_checkpoint(torch.load(path, weights_only=False))
    model_id = weights_id(arrays)
    out_dir.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    target = out_dir / f"{model_id}.npz"
    target.write_bytes(buf.getvalue())
    return target
