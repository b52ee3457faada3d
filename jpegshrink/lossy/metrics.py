"""Quality scores the encoder reports and aims at: SSIMULACRA2 (optional package) and PSNR of luma.

Scores only *choose* settings and are recorded in the container's info; they never feed a coefficient
of the final file directly, so their floating point does not touch decoding.
"""
from __future__ import annotations

import io

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
    """PSNR of BT.601 luma, in dB (inf for identical images)."""
    def y(a):
        a = _rgb(a).astype(np.float64)
        return 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]
    mse = float(np.mean((y(reference) - y(distorted)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def available(name: str) -> bool:
    if name == "ssimulacra2":
        try:
            import ssimulacra2  # noqa: F401
        except ImportError:
            return False
    return True
