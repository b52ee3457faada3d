"""The learned model decodes bit-exactly across CPU configurations (the exactness rule).

Encoding runs in a subprocess pinned to the most conservative kernels (no AVX, one thread); decoding
and hint computation run in another subprocess with the defaults and two threads. Streams, hints and
decoded coefficients must be identical, on real sample photos.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jpegshrink import model as registry

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ["scikit-learn__china.jpg", "scratch__brick-wall1.jpg", "v08_cjpeg-q50-420.jpg", "v08_cjpeg-q95-444.jpg"]
LEARNED = [m for m in registry.registered_ids() if m.startswith("learned-")]

CONSERVATIVE = {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
                "OPENBLAS_CORETYPE": "Prescott", "NPY_DISABLE_CPU_FEATURES": "AVX512F AVX512_SKX AVX2 FMA3 AVX",
                "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                "OPENBLAS_NUM_THREADS": "1"}
DEFAULTS = {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}

# Runs in a child process: (encode and) compute the hints of every hinted pass; prints streams + hint digests.
CHILD = r"""
import hashlib, json, sys
import numpy as np
from jpegshrink import jpeg, model as registry
from jpegshrink.codec import component_specs
mode, model_id, folder = sys.argv[1], sys.argv[2], sys.argv[3]
names = sys.argv[4:]
m = registry.get(model_id)
out = {}
for name in names:
    parts = jpeg.parse(open(f"{folder}/{name}", "rb").read())
    specs = component_specs(parts.layout)
    if mode == "encode":
        out[name] = [s.hex() for s in m.encode(parts.coefficients, specs)]
    # hints of every hinted pass, from the true coefficients (what the decoder reconstructs pass by pass)
    h = hashlib.sha256()
    fn = m.hint_function(specs)
    for ci, (co, spec) in enumerate(zip(parts.coefficients, specs)):
        counts = (co[:, :, m.interior] != 0).sum(-1)
        so_far = np.zeros_like(co)
        for p in sorted(m.passes):
            so_far[:, :, m.known_before(p)] = co[:, :, m.known_before(p)]
            hint = fn(ci, p, so_far, counts)
            h.update(np.ascontiguousarray(hint).tobytes())
    out[name + "#hints"] = h.hexdigest()
print(json.dumps(out))
"""

DECODE_CHILD = r"""
import hashlib, json, sys
import numpy as np
from jpegshrink import jpeg, model as registry
from jpegshrink.codec import component_specs
model_id, folder, streams_file = sys.argv[1], sys.argv[2], sys.argv[3]
m = registry.get(model_id)
encoded = json.load(open(streams_file))
out = {}
for name, hexes in encoded.items():
    if name.endswith("#hints"):
        continue
    parts = jpeg.parse(open(f"{folder}/{name}", "rb").read())
    decoded = m.decode([bytes.fromhex(s) for s in hexes], component_specs(parts.layout))
    out[name] = all(np.array_equal(a, b) for a, b in zip(decoded, parts.coefficients))
print(json.dumps(out))
"""


def _run(code: str, args: list[str], env_extra: dict[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    env.update(env_extra)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "plugins"), env.get("PYTHONPATH", "")])
    res = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not LEARNED, reason="no learned model registered")
@pytest.mark.parametrize("model_id", LEARNED)
def test_encode_conservative_decode_default(model_id: str, tmp_path: Path, sample_files) -> None:
    folder = str(sample_files[0].parent)
    enc = _run(CHILD, ["encode", model_id, folder, *PHOTOS], CONSERVATIVE)
    again = _run(CHILD, ["hints", model_id, folder, *PHOTOS], DEFAULTS)
    for name in PHOTOS:  # the network outputs (hints) agree bit for bit
        assert enc[name + "#hints"] == again[name + "#hints"], name
    streams_file = tmp_path / "streams.json"
    streams_file.write_text(json.dumps(enc))
    dec = _run(DECODE_CHILD, [model_id, folder, str(streams_file)], DEFAULTS)
    assert dec == {name: True for name in PHOTOS}


@pytest.mark.skipif(not LEARNED, reason="no learned model registered")
def test_hints_depend_on_the_network(sample_files) -> None:
    """Guard against a vacuous determinism test: the hints vary across blocks and passes."""
    from jpegshrink import jpeg
    from jpegshrink.codec import component_specs
    m = registry.get(LEARNED[0])
    parts = jpeg.parse((sample_files[0].parent / PHOTOS[0]).read_bytes())
    co, spec = parts.coefficients[0], component_specs(parts.layout)[0]
    counts = (co[:, :, m.interior] != 0).sum(-1)
    p = max(m.passes)
    hint = m.pass_hints(0, p, co, counts, spec.quant_table)
    assert hint.dtype == np.uint8 and hint.shape[:2] == co.shape[:2]
    assert len(np.unique(hint)) == m.nets[0].n_hints
    assert hashlib.sha256(hint.tobytes()).hexdigest() != hashlib.sha256(np.zeros_like(hint).tobytes()).hexdigest()


FLOAT_CHILD = r"""
import hashlib, json, numpy as np
r = np.random.default_rng(0)
x, w = r.standard_normal((2000, 576)).astype(np.float32), r.standard_normal((576, 64)).astype(np.float32)
xi = r.integers(0, 128, (2000, 576)).astype(np.float32)
wi = r.integers(-127, 128, (576, 64)).astype(np.float32)
print(json.dumps({"float": hashlib.sha256((x @ w).tobytes()).hexdigest(),
                  "integer": hashlib.sha256((xi @ wi).tobytes()).hexdigest()}))
"""


def test_integer_valued_matmul_is_exact_where_float_is_not() -> None:
    """The premise of network.py: float32 matmuls of integer-valued int8-range data agree across the two
    settings, while plain float32 ones differ (evidence that the settings really change the kernels)."""
    a = _run(FLOAT_CHILD, [], CONSERVATIVE)
    b = _run(FLOAT_CHILD, [], DEFAULTS)
    assert a["integer"] == b["integer"]
    if a["float"] == b["float"]:
        pytest.skip("this BLAS gives identical float32 bits under both settings; nothing to contrast")
