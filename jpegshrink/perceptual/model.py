"""The loaded learned codec: the public seam every perceptual decoder (GAN here, diffusion later) builds on.

Stable interface (keep these signatures; add, do not change)::

    from jpegshrink.perceptual import model
    codec = model.load()                      # default weights; model.load("hp1-xxxxxxxx") for a named one
    codec.model_id, codec.rates               # weight id; number of ladder rates (rate is a float in [0, rates-1])
    x = codec.to_tensor(uint8_hwc)            # (1, 3, H64, W64) float in [0, 1], edge-padded to a multiple of 64
    y = codec.analysis(x, rate)               # gained latents (B, M, H/16, W/16), float, differentiable
    y_hat = codec.quantize(y)                 # round(y - mu) + mu, mu from the exact integer h_s of round(h_a(y));
                                              #   straight-through: d y_hat / d y = 1 (for guidance/idempotence)
    x_hat = codec.synthesis(y_hat, rate)      # (B, 3, H, W) float, unclamped, differentiable (faithful decoder)
    feats = codec.latent_features(y_hat, rate)  # rate-independent conditioning: y_hat / gain(rate)
    lat = codec.encode_latents(x, rate)       # Latents: exact integers (z, symbols, means, scale index) + rate
    streams = codec.pack(lat)                 # [ans, escapes] bytes;  codec.unpack(streams, lat_shape, rate) -> Latents
    y_hat = lat.y_hat()                       # torch float (1, M, h, w): symbols + means / MEAN_DENOM, exactly

Everything that reaches the entropy coder is integer and computed by :mod:`.intnet` (numpy), so
``unpack`` returns the same ``Latents`` on every CPU and thread count; ``analysis`` and ``synthesis`` are
float torch modules (their outputs are latents to be rounded, and pixels). Decoders for pixels live in
:mod:`.decoders`; they only ever see ``Latents``.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from pathlib import Path

import numpy as np

from jpegshrink.errors import MissingDependency, UnknownModel
from jpegshrink.perceptual import entropy, intnet

try:
    import torch
except ImportError:  # pragma: no cover - exercised by the missing-dependency test
    torch = None

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
#: Every weight file that ever wrote a container, by id (weights/<id>.npz). Never remove an entry.
REGISTERED = ("hp1-b6e22de7", "hp1-c925b62f", "hp1-ddbabc36")
#: The weights new containers are written with.
DEFAULT_MODEL_ID = REGISTERED[-1]
#: Spatial granularity of the transforms (4 stride-2 layers, then 2 more in the hyperprior).
PAD = 64


def require_torch() -> None:
    if torch is None:
        raise MissingDependency("the perceptual codec needs torch: pip install 'jpegshrink[perceptual]'")


class Rounding(Enum):
    """How the encoder turns mean-removed latents into integers (the decoder reads any integers)."""

    NEAREST = "nearest"  # the distortion-optimal integer
    RD = "rd"  # rate + lambda * distortion per latent (:mod:`.rounding`); codecs with a linear path only


@dataclass
class Latents:
    """One image's coded latents: exact integers plus the rate they were made at."""

    z: np.ndarray  # (NZ, h/4, w/4) int64
    symbols: np.ndarray  # (M, h, w) int64: round(y - mean)
    means: np.ndarray  # (M, h, w) int64, units of 1/MEAN_DENOM
    index: np.ndarray  # (M, h, w) int64 scale-table index
    rate: float

    def y_hat(self) -> "torch.Tensor":
        """The gained, quantised latents as float (exact: integers plus multiples of 1/16)."""
        from jpegshrink.perceptual.network import MEAN_DENOM
        v = self.symbols.astype(np.float64) + self.means.astype(np.float64) / MEAN_DENOM
        return torch.from_numpy(v).float()[None]

    def digest(self) -> str:
        """sha256 of the integer latents: what a decoder must reproduce exactly."""
        h = hashlib.sha256()
        for a in (self.z, self.symbols):
            h.update(str(a.shape).encode())
            h.update(np.ascontiguousarray(a, "<i8").tobytes())
        return h.hexdigest()


class LearnedCodec:
    """A weight file, loaded: float transforms (torch), integer hyper-decoder and coding tables."""

    def __init__(self, model_id: str, arrays: dict) -> None:
        require_torch()
        from jpegshrink.perceptual import network
        self.model_id = model_id
        self.meta = json.loads(bytes(arrays["meta"]).decode())
        n, m, nz = self.meta["n"], self.meta["m"], self.meta["nz"]
        self.n, self.m, self.nz = n, m, nz
        self.rates = len(self.meta["lambdas"])
        self.klt = bool(self.meta.get("klt", False))
        self.g_a, self.g_s = network.Analysis(n, m, self.klt), network.Synthesis(n, m, self.klt)
        self.h_a = network.HyperAnalysis(n, m, nz)
        for prefix, mod in (("g_a", self.g_a), ("g_s", self.g_s), ("h_a", self.h_a)):
            mod.load_state_dict({k[len(prefix) + 1:]: torch.from_numpy(v.astype(np.float32)) for k, v in arrays.items()
                                 if k.startswith(prefix + ".")})
            mod.eval()
            for p in mod.parameters():
                p.requires_grad_(False)
        self.log_gain = torch.from_numpy(arrays["log_gain"])
        self.hyper = intnet.IntHyperDecoder.from_arrays(arrays)
        self.tables = entropy.Tables(arrays["z_freq"], arrays["y_freq"], arrays["y_radius"], self.meta["z_range"])
        #: the integer frequency tables themselves (code lengths for encode-time optimisation, :mod:`.refine`);
        #: z_freq is (NZ, width) or one such set per ladder rate (:meth:`z_freq_at`)
        self.z_freq, self.y_freq = arrays["z_freq"], arrays["y_freq"]
        if self.z_freq.ndim == 3 and self.z_freq.shape[0] != self.rates:
            raise ValueError(f"{model_id}: {self.z_freq.shape[0]} z table sets for {self.rates} ladder rates")
        self.mean_denom = self.meta["mean_denom"]

    # -- float transforms -------------------------------------------------------------------------
    def gain(self, rate) -> "torch.Tensor":
        """(1, M, 1, 1) gain of a (fractional) ladder rate: log-linear between the two nearest rates."""
        rate = float(rate)
        if not 0 <= rate <= self.rates - 1:
            raise ValueError(f"rate must be in [0, {self.rates - 1}], not {rate}")
        lo = min(int(rate), self.rates - 2)
        t = rate - lo
        return torch.exp((1 - t) * self.log_gain[lo] + t * self.log_gain[lo + 1])[None, :, None, None]

    def z_freq_at(self, rate: float) -> np.ndarray:
        """(NZ, width) z frequency tables that code a container made at ``rate``."""
        return self.z_freq[self.tables.z_set(rate)] if self.z_freq.ndim == 3 else self.z_freq

    def lambda_at(self, rate: float) -> float:
        """The training lambda of a (fractional) ladder rate, log-linear between rates like the gains
        (loss = bits per pixel + lambda * 255^2 * MSE on [0, 1] pixels)."""
        lams = [float(v) for v in self.meta["lambdas"]]
        lo = min(int(rate), len(lams) - 2)
        t = rate - lo
        return math.exp((1 - t) * math.log(lams[lo]) + t * math.log(lams[lo + 1]))

    def to_tensor(self, pixels: np.ndarray) -> "torch.Tensor":
        """uint8 (H, W, 3) -> (1, 3, H', W') float in [0, 1], edge-padded up to multiples of 64."""
        h, w = pixels.shape[:2]
        ph, pw = -h % PAD, -w % PAD
        a = np.pad(pixels, ((0, ph), (0, pw), (0, 0)), mode="edge")
        return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float() / 255

    def analysis(self, x: "torch.Tensor", rate) -> "torch.Tensor":
        return self.g_a(x) * self.gain(rate)

    def synthesis(self, y_hat: "torch.Tensor", rate) -> "torch.Tensor":
        return self.g_s(self.latent_features(y_hat, rate))

    def latent_features(self, y_hat: "torch.Tensor", rate) -> "torch.Tensor":
        return y_hat / self.gain(rate)

    def hyper_decode(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact integer h_s: z (NZ, h, w) -> (means in 1/16 steps, scale indices), (M, 4h, 4w) each."""
        return self.hyper(z)

    def _z(self, y: "torch.Tensor") -> np.ndarray:
        with torch.no_grad():
            z = self.h_a(y[:1]).round()[0].double().numpy()
        return np.clip(z, -intnet.Z_LIMIT, intnet.Z_LIMIT).astype(np.int64)

    def quantize(self, y: "torch.Tensor") -> "torch.Tensor":
        """Straight-through quantisation of a batch of gained latents, with the exact coding means."""
        out = []
        for i in range(y.shape[0]):
            means, _ = self.hyper(self._z(y[i:i + 1]))
            mu = torch.from_numpy(means.astype(np.float64) / self.mean_denom).float()[None]
            out.append((y[i:i + 1] - mu).round() + mu)
        q = torch.cat(out)
        return y + (q - y).detach()

    # -- integer latents <-> bytes ----------------------------------------------------------------
    def encode_latents(self, x: "torch.Tensor", rate, rounding: "Rounding | None" = None) -> Latents:
        """The integer latents of ``x`` at ``rate``: z from the analysis, then y's symbols rounded as
        ``rounding`` says (default :data:`Rounding.RD`: rate-distortion optimised, see :mod:`.rounding`)."""
        with torch.no_grad():
            y = self.analysis(x, rate)
        z = self._z(y)
        means, index = self.hyper(z)
        symbols = self.round_latents(y[0].double().numpy() - means / self.mean_denom, index, rate, rounding)
        return Latents(z, symbols, means, index, float(rate))

    def round_latents(self, v: np.ndarray, index: np.ndarray, rate, rounding: "Rounding | None" = None) -> np.ndarray:
        """int64 symbols of mean-removed gained latents ``v`` (coded with scale indices ``index``) by
        ``rounding`` (default :data:`Rounding.RD`; a codec without a linear path always rounds to nearest)."""
        if (rounding or Rounding.RD) is Rounding.RD and self.klt:
            from jpegshrink.perceptual import rounding as rd
            return rd.rd_round(self, v, index, rate)
        return np.round(v).astype(np.int64)

    def pack(self, lat: Latents) -> list[bytes]:
        ans, esc = entropy.encode(self.tables, lat.z, lat.symbols, lat.index, self.tables.z_set(lat.rate))
        return [ans, esc]

    def unpack(self, streams: list[bytes], latent_hw: tuple[int, int], rate) -> Latents:
        h, w = latent_hw
        coder = entropy.open_stream(streams[0])
        escapes = entropy.Escapes(streams[1])
        z = entropy.decode_z(coder, self.tables, (self.nz, -(-h // 4), -(-w // 4)), escapes, self.tables.z_set(rate))
        means, index = self.hyper(z)
        symbols = entropy.decode_y(coder, self.tables, index, escapes)
        escapes.finish()
        return Latents(z, symbols, means, index, float(rate))


@lru_cache(maxsize=None)
def load(model_id: str | None = None) -> LearnedCodec:
    """The codec of ``model_id`` (default: :data:`DEFAULT_MODEL_ID`), loaded once per process."""
    require_torch()
    model_id = model_id or DEFAULT_MODEL_ID
    if model_id not in REGISTERED:
        raise UnknownModel(f"container was written with perceptual model {model_id!r}, which this jpegshrink "
                           f"does not have (known: {', '.join(REGISTERED)}); upgrade jpegshrink")
    with np.load(WEIGHTS_DIR / f"{model_id}.npz") as f:
        arrays = {k: f[k] for k in f.files}
    return LearnedCodec(model_id, arrays)
