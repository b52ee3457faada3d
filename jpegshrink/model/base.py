"""The contract between the codec and a coefficient model.

A model turns the quantised DCT coefficients of one image into one or more independent byte streams
and back. It sees only arrays and the per-component facts the decoder also has (block grid, sampling
factors, quantisation table): never JPEG bytes, containers or storage. A model must reproduce the
coefficients exactly on any machine, so everything that reaches its entropy coder is integer-exact.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np


@dataclass(frozen=True)
class ComponentSpec:
    """What the decoder knows about one component before it decodes any coefficient.

    ``quant_table`` is uint16[64] in natural (row-major) order; ``h_samp``/``v_samp`` are the frame's
    sampling factors; ``block_rows``/``block_cols`` include the padding blocks of the MCU grid.
    """

    block_rows: int
    block_cols: int
    h_samp: int
    v_samp: int
    quant_table: np.ndarray


def checked_coefficients(c: np.ndarray, spec: ComponentSpec, index: int) -> np.ndarray:
    """``c`` as the C-contiguous int16 [block_rows, block_cols, 64] array ``spec`` describes.

    Every model checks its input with this before a compiled kernel sees it: a wrong shape or dtype is
    the caller's mistake (``ValueError`` naming the component), never something to coerce silently.
    """
    c = np.asarray(c)
    if c.shape != (spec.block_rows, spec.block_cols, 64):
        raise ValueError(f"component {index}: coefficients of shape {c.shape}, spec says "
                         f"({spec.block_rows}, {spec.block_cols}, 64)")
    if c.dtype != np.int16:
        raise ValueError(f"component {index}: coefficients must be int16, got {c.dtype}")
    return np.ascontiguousarray(c)


def checked_output(out: Sequence[np.ndarray] | None, specs: Sequence[ComponentSpec]) -> list[np.ndarray] | None:
    """The arrays a decoder was asked to decode into, checked: one zero-filled, writable, C-contiguous
    int16 [block_rows, block_cols, 64] array per component (the JPEG layer's buffers, so that rebuilding
    the file needs no copy). ``None`` stays ``None``: the model allocates its own."""
    if out is None:
        return None
    out = list(out)
    if len(out) != len(specs):
        raise ValueError(f"{len(out)} output arrays for {len(specs)} components")
    for i, (a, s) in enumerate(zip(out, specs)):
        if not isinstance(a, np.ndarray) or a.dtype != np.int16 or a.shape != (s.block_rows, s.block_cols, 64):
            raise ValueError(f"component {i}: output must be int16 ({s.block_rows}, {s.block_cols}, 64), got "
                             f"{getattr(a, 'dtype', type(a).__name__)} {getattr(a, 'shape', '')}")
        if not (a.flags.c_contiguous and a.flags.writeable):
            raise ValueError(f"component {i}: output must be a writable C-contiguous array")
    return out


class CoefficientModel(Protocol):
    """Codes the coefficient arrays of one image (int16 [block_rows, block_cols, 64], natural order)."""

    #: Stable identifier written into every container; never reused for different behaviour.
    model_id: str

    def encode(self, coefficients: Sequence[np.ndarray], specs: Sequence[ComponentSpec]) -> list[bytes]:
        """Return independent streams (e.g. one per component or unit) that :meth:`decode` inverts."""
        ...

    def decode(self, streams: Sequence[bytes], specs: Sequence[ComponentSpec],
               out: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
        """Rebuild the coefficient arrays exactly; raise ``ValueError`` on a stream that is not valid.

        With ``out`` (zero-filled arrays, see :func:`checked_output`) decode into them and return them."""
        ...
