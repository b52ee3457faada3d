"""Quality scores the encoder reports and aims at: SSIMULACRA2 (optional package) and PSNR of luma.

Scores only *choose* settings and are recorded in the container's info; they never feed a coefficient
of the final file directly, so their floating point does not touch decoding.
"""
from __future__ import annotations

import io
import math

import numpy as np

from jpegshrink.errors import MissingDependency


def _rgb(a: np.ndarray) -> np.ndarray:
    return np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a


def ssimulacra2(reference: np.ndarray, distorted: np.ndarray) -> float:
    """SSIMULACRA2 (100 = identical, 90 = visually lossless at a normal distance, 70 = high quality)."""
    try:
        from ssimulacra2 import compute_ssimulacra2
        from PIL import Image
    except ImportError:
        raise MissingDependency("SSIMULACRA2 targets need the ssimulacra2 package: pip install ssimulacra2") \
            from None
    files = []
    for a in (reference, distorted):
        b = io.BytesIO()
        Image.fromarray(_rgb(a)).save(b, "PNG", compress_level=0)
        b.seek(0)
        files.append(b)
    return float(compute_ssimulacra2(*files))


def psnr_y(reference: np.ndarray, distorted: np.ndarray) -> float:
    """PSNR of BT.601 luma in dB (inf for identical images), from integer luma and an exact integer
    error sum, so the value recorded in a container is the same on every CPU."""
    def y(a):
        a = _rgb(a).astype(np.int64)
        return (19595 * a[..., 0] + 38470 * a[..., 1] + 7471 * a[..., 2] + 32768) >> 16
    sse = int(np.sum((y(reference) - y(distorted)) ** 2))
    n = int(reference.shape[0]) * int(reference.shape[1])
    return float("inf") if sse == 0 else 10 * math.log10(255 ** 2 * n / sse)


def available(name: str) -> bool:
    if name == "ssimulacra2":
        try:
            import ssimulacra2  # noqa: F401
        except ImportError:
            return False
    return True
