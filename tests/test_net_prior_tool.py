"""tools/net_prior_mix3.py: the network's input for a block row reads only what a decoder has when it
starts that row (earlier rows of the same stripe, and luma for chroma), never the row itself."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("jpegshrink.model._mix3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))

import net_prior_mix3 as tool  # noqa: E402
from jpegshrink.model.base import ComponentSpec  # noqa: E402


def _image(rng, rows=12, cols=10):
    cos = [rng.integers(-40, 40, (rows, cols, 64)).astype(np.int16),
           rng.integers(-20, 20, (rows // 2, cols // 2, 64)).astype(np.int16)]
    q = np.arange(1, 65, dtype=np.uint16)
    specs = [ComponentSpec(rows, cols, 2, 2, q), ComponentSpec(rows // 2, cols // 2, 1, 1, q)]
    return cos, specs


@pytest.mark.parametrize("ci", [0, 1])
def test_features_of_a_row_do_not_read_that_row_or_later_ones(ci):
    rng = np.random.default_rng(0)
    cos, specs = _image(rng)
    start = np.array([0] * 3 + [3] * (specs[ci].block_rows - 3))  # two stripes: rows 0-2 and 3-
    before = tool.component_features(cos, specs, ci, start)
    for r in range(specs[ci].block_rows):
        changed = [c.copy() for c in cos]
        changed[ci][r:] = rng.integers(-40, 40, changed[ci][r:].shape)
        after = tool.component_features(changed, specs, ci, start)
        np.testing.assert_array_equal(after[:r + 1], before[:r + 1], err_msg=f"row {r}")
    # the first row of the second stripe has no north neighbours, whatever the first stripe holds
    changed = [c.copy() for c in cos]
    changed[ci][:3] = 0
    np.testing.assert_array_equal(tool.component_features(changed, specs, ci, start)[3:], before[3:])
    assert not before[3, :, :4 * 64].any() and before[4, :, :64].any()
