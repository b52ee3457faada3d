"""Decode-time split of the learned model on one photo: JPEG layer, network (hints), entropy coding.

    python3 tools/time_learned.py /work/corpus/public/plasma-workspace-wallpapers__5120x2880.jpg

Single-threaded (one component at a time); wall-clock seconds of each part of a decode.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jpegshrink import jpeg, model as registry  # noqa: E402
from jpegshrink.codec import component_specs  # noqa: E402
from jpegshrink.model.adaptive import AdaptiveModel  # noqa: E402


def main() -> None:
    path = Path(sys.argv[1])
    model_id = sys.argv[2] if len(sys.argv) > 2 else "learned-6165e90d"
    data = path.read_bytes()
    t0 = time.perf_counter()
    parts = jpeg.parse(data)
    t_parse = time.perf_counter() - t0
    specs = component_specs(parts.layout)
    learned = registry.get(model_id)
    base = AdaptiveModel(threads=1)
    plain = base.encode(parts.coefficients, specs)
    base.decode(plain, specs)  # warm-up
    fn = learned.hint_function(specs)
    net_seconds = []

    def timed_hints(c, p, so_far, counts):
        t = time.perf_counter()
        h = fn(c, p, so_far, counts)
        net_seconds.append(time.perf_counter() - t)
        return h
    hinted = base.encode(parts.coefficients, specs, hints=fn)
    t0 = time.perf_counter()
    base.decode(plain, specs)
    t_adaptive = time.perf_counter() - t0
    net_seconds.clear()
    t0 = time.perf_counter()
    coefs = base.decode(hinted, specs, hints=timed_hints)
    t_learned = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = jpeg.rebuild(jpeg.JpegParts(parts.layout, coefs))
    t_rebuild = time.perf_counter() - t0
    assert out == data and all(np.array_equal(a, b) for a, b in zip(coefs, parts.coefficients))
    mp = sum(s.block_rows * s.block_cols for s in specs[:1]) * 64 / 1e6
    t_net = sum(net_seconds)
    print(f"{path.name}: {len(data)} B, luma {mp:.1f} MP; streams adaptive {sum(map(len, plain))} B, "
          f"learned {sum(map(len, hinted))} B")
    print(f"decode with {model_id}: {t_learned:.2f} s = network {t_net:.2f} s ({len(net_seconds)} calls) + "
          f"entropy decoding {t_learned - t_net:.2f} s; adaptive-1 alone {t_adaptive:.2f} s; "
          f"JPEG layer: parse {t_parse:.2f} s, rebuild {t_rebuild:.2f} s")


if __name__ == "__main__":
    main()
