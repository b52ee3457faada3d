"""Diffusion networks stored by content hash, so a container that names a model decodes forever.

A model file ``weights/<role>-<hash8>.npz`` holds float16 parameters plus a JSON record (architecture,
parameterisation, training provenance). The id is the hash of the stored parameters and architecture,
so retraining gives a new id and old ids keep loading; files are never edited or removed once a
container may name them.
"""
from __future__ import annotations

import enum
import functools
import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from jpegshrink.perceptual.diffusion.schedule import Parameterisation
from jpegshrink.perceptual.diffusion.unet import TinyUNet, UNetConfig

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


class Role(enum.Enum):
    """What a stored denoiser is for (the file-name prefix)."""

    PRIOR = "prior"   # unconditional patch prior (idempotence decoder)
    CDC = "cdc"       # conditional X-parameterised denoiser on the frozen codec's decode


class UnknownDiffusionModel(LookupError):
    """A container names a diffusion model this installation does not have."""


def _digest(arrays: dict[str, np.ndarray], record: dict) -> str:
    h = hashlib.sha256(json.dumps({k: record[k] for k in ("config", "parameterisation")}, sort_keys=True).encode())
    for name in sorted(arrays):
        h.update(name.encode())
        h.update(np.ascontiguousarray(arrays[name]).tobytes())
    return h.hexdigest()[:8]


def save(model: TinyUNet, role: Role, parameterisation: Parameterisation, provenance: dict,
         directory: Path = WEIGHTS_DIR) -> str:
    """Store ``model`` (float16) and return its id ``<role>-<hash8>``."""
    arrays = {k: v.detach().cpu().numpy().astype(np.float16) for k, v in model.state_dict().items()}
    record = {"config": model.config.to_info(), "parameterisation": parameterisation.value,
              "role": role.value, "provenance": provenance}
    model_id = f"{role.value}-{_digest(arrays, record)}"
    directory.mkdir(parents=True, exist_ok=True)
    np.savez(directory / f"{model_id}.npz", __record__=np.frombuffer(json.dumps(record).encode(), np.uint8), **arrays)
    return model_id


def available(directory: Path | None = None) -> list[str]:
    """Ids of every stored model."""
    return sorted(p.stem for p in (directory or WEIGHTS_DIR).glob("*.npz"))


@functools.lru_cache(maxsize=8)
def load(model_id: str, directory: Path | None = None) -> tuple[TinyUNet, Parameterisation, dict]:
    """(network in eval mode with frozen parameters, its parameterisation, its record); checks the hash."""
    directory = directory or WEIGHTS_DIR
    path = directory / f"{model_id}.npz"
    if not path.exists():
        raise UnknownDiffusionModel(f"diffusion model {model_id!r} is not installed (have: {', '.join(available(directory)) or 'none'}); "
                                    "upgrade jpegshrink")
    with np.load(path) as z:
        record = json.loads(bytes(z["__record__"]).decode())
        arrays = {k: z[k] for k in z.files if k != "__record__"}
    if f"{record['role']}-{_digest(arrays, record)}" != model_id:
        raise UnknownDiffusionModel(f"{path} does not match its id (damaged file?)")
    net = TinyUNet(UNetConfig.from_info(record["config"]))
    net.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in arrays.items()})
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net, Parameterisation(record["parameterisation"]), record
