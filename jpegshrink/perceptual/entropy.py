"""Latents <-> bytes with constriction's ANS coder and the integer tables of the weight file.

Why constriction (PyPI ``constriction``, pinned to 0.5.0 in the ``perceptual`` extra): a maintained,
compiled (Rust) range/ANS coder with a Python API that codes a whole numpy array per call, so a 12 MP
image's ~4.6 M latents code in well under a second without a Python loop and without numba. Its
``Categorical`` model receives our integer frequency tables (exactly representable as float64, summing
to 2^16); constriction rescales them to its 24-bit precision with a deterministic integer-valued
procedure, identically in encoder and decoder. The pin matters: the ANS word format and that rescaling
are part of our bitstream, so a new constriction version is adopted only with a new container format
check (the golden files in tests/golden/perceptual/ catch a change).

Order: symbols are grouped by table (y: by scale index, in index order; z: by channel), in raster order
inside a group; the decoder knows every symbol's table before decoding (z's from its channel, y's from
the integer hyper-decoder), so it can decode group after group. Values outside a table's range code as
the escape symbol (the last one); their true values follow in a separate stream of little-endian int32.
"""
from __future__ import annotations

import numpy as np

from jpegshrink.errors import CorruptContainer, MissingDependency

try:
    import constriction
except ImportError:  # pragma: no cover - exercised by the missing-dependency test
    constriction = None


def _require() -> None:
    if constriction is None:
        raise MissingDependency("the perceptual codec needs constriction: pip install 'jpegshrink[perceptual]'")


class Tables:
    """The coding tables of one weight file: constriction models built once per table.

    ``z_freq`` is (NZ, width): one table per z channel for every rate; or (rungs, NZ, width): a set per
    ladder rate (the z of a low rate are far more concentrated than a high one's), the set of a
    container's rate chosen by :meth:`z_set` (its nearest rung).
    """

    def __init__(self, z_freq: np.ndarray, y_freq: np.ndarray, y_radius: np.ndarray, z_range: int) -> None:
        _require()
        self.z_range = int(z_range)
        self.y_radius = y_radius.astype(np.int64)
        cat = constriction.stream.model.Categorical
        sets = z_freq if z_freq.ndim == 3 else z_freq[None]
        self.z_sets = [[cat(f.astype(np.float64), perfect=False) for f in one] for one in sets]
        self.y_models = [cat(f[:2 * r + 2].astype(np.float64), perfect=False) for f, r in zip(y_freq, self.y_radius)]

    def z_set(self, rate: float) -> int:
        """Which z table set codes a container made at (fractional) ladder ``rate``: the nearest rung
        (0 when the weight file has one set). Integer arithmetic on the recorded rate, so encoder and
        decoder agree."""
        if len(self.z_sets) == 1:
            return 0
        return min(len(self.z_sets) - 1, max(0, int(np.floor(rate + 0.5))))


#: Bits an escaped value costs besides its escape symbol (its int32 in the escape stream).
ESCAPE_BITS = 32


def code_lengths(freq: np.ndarray, radius: np.ndarray, table: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Ideal code length (bits) of each integer in ``values`` under the 16-bit frequency tables ``freq``
    ([table, symbol]; symbols -radius..radius, then the escape), ``table`` giving each value's table:
    what the ANS stream spends on it, within the stream's few bytes of overhead."""
    r = radius[table]
    esc = np.abs(values) > r
    col = np.where(esc, 2 * r + 1, values + r)
    return -np.log2(freq[table, col].astype(np.float64) / 65536.0) + ESCAPE_BITS * esc


def _to_symbols(values: np.ndarray, radius: int, escapes: list) -> np.ndarray:
    sym = values + radius
    out = (sym < 0) | (sym > 2 * radius)
    if out.any():
        escapes.append(values[out])
        sym = np.where(out, 2 * radius + 1, sym)
    return sym.astype(np.int32)


def encode(tables: Tables, z: np.ndarray, y_sym: np.ndarray, y_index: np.ndarray, z_set: int = 0) -> tuple[bytes, bytes]:
    """z (NZ, h, w) ints coded with table set ``z_set``, y symbols and scale indices (M, H, W) ints ->
    (ANS stream, escape stream)."""
    _require()
    groups = []  # (model, radius, values) in decode order
    for c in range(z.shape[0]):
        groups.append((tables.z_sets[z_set][c], tables.z_range, z[c].ravel()))
    flat_sym, flat_idx = y_sym.ravel(), y_index.ravel()
    order = np.argsort(flat_idx, kind="stable")
    bounds = np.searchsorted(flat_idx[order], np.arange(len(tables.y_models) + 1))
    for k in range(len(tables.y_models)):
        vals = flat_sym[order[bounds[k]:bounds[k + 1]]]
        if len(vals):
            groups.append((tables.y_models[k], int(tables.y_radius[k]), vals))
    escapes: list = []
    symbols = [_to_symbols(v.astype(np.int64), r, escapes) for _, r, v in groups]
    coder = constriction.stream.stack.AnsCoder()
    for (model, _, _), s in zip(reversed(groups), reversed(symbols)):
        coder.encode_reverse(s, model)
    esc = np.concatenate(escapes).astype("<i4").tobytes() if escapes else b""
    return coder.get_compressed().astype("<u4").tobytes(), esc


def decode_z(coder, tables: Tables, shape: tuple[int, int, int], escapes: "_Escapes", z_set: int = 0) -> np.ndarray:
    nz, h, w = shape
    out = np.empty((nz, h * w), np.int64)
    for c in range(nz):
        out[c] = escapes.resolve(coder.decode(tables.z_sets[z_set][c], h * w).astype(np.int64), tables.z_range)
    return out.reshape(shape)


def decode_y(coder, tables: Tables, y_index: np.ndarray, escapes: "_Escapes") -> np.ndarray:
    flat_idx = y_index.ravel()
    order = np.argsort(flat_idx, kind="stable")
    bounds = np.searchsorted(flat_idx[order], np.arange(len(tables.y_models) + 1))
    out = np.empty(flat_idx.shape, np.int64)
    for k in range(len(tables.y_models)):
        n = int(bounds[k + 1] - bounds[k])
        if n:
            r = int(tables.y_radius[k])
            out[order[bounds[k]:bounds[k + 1]]] = escapes.resolve(
                coder.decode(tables.y_models[k], n).astype(np.int64), r)
    return out.reshape(y_index.shape)


def open_stream(stream: bytes):
    _require()
    if len(stream) % 4:
        raise CorruptContainer("perceptual latent stream is not a whole number of 32-bit words")
    return constriction.stream.stack.AnsCoder(np.frombuffer(stream, "<u4").astype(np.uint32))


class _Escapes:
    """Hands out escaped values in order; damage (too few, too many) is reported, not guessed around."""

    def __init__(self, raw: bytes) -> None:
        if len(raw) % 4:
            raise CorruptContainer("perceptual escape stream is not a whole number of int32 values")
        self.values = np.frombuffer(raw, "<i4").astype(np.int64)
        self.pos = 0

    def resolve(self, sym: np.ndarray, radius: int) -> np.ndarray:
        esc = sym == 2 * radius + 1
        n = int(esc.sum())
        vals = sym - radius
        if n:
            if self.pos + n > len(self.values):
                raise CorruptContainer("perceptual escape stream is shorter than its escapes")
            vals[esc] = self.values[self.pos:self.pos + n]
            self.pos += n
        return vals

    def finish(self) -> None:
        if self.pos != len(self.values):
            raise CorruptContainer("perceptual escape stream has values no escape asked for")


Escapes = _Escapes
