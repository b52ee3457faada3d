"""The codec's safety net catches what goes wrong below it, and only that: a caller's mistake fails fast.

The test models are registered with ``model.registered`` for one test each, so the registry every other
test (and tests/test_golden.py) sees is the real one.
"""
from __future__ import annotations

import numpy as np
import pytest

import jpegshrink
from jpegshrink import model


class _LyingModel:
    """Writes a stream that decodes to other coefficients than it was given (all zero)."""

    model_id = "test-liar"

    def encode(self, coefficients, specs):
        return [b"\x00"]

    def decode(self, streams, specs, out=None):
        return [np.zeros((s.block_rows, s.block_cols, 64), np.int16) for s in specs]


class _RaisingModel:
    """An encoder with a bug."""

    model_id = "test-raiser"

    def encode(self, coefficients, specs):
        raise RuntimeError("model bug")

    def decode(self, streams, specs, out=None):
        raise AssertionError("never reached")


class _UndecodableModel(_LyingModel):
    """Encodes fine, but its decoder fails on its own streams."""

    model_id = "test-undecodable"

    def decode(self, streams, specs, out=None):
        raise ValueError("stream does not parse")


@pytest.fixture
def photo(sample_files) -> bytes:
    return next(p for p in sample_files if p.name == "v08_cjpeg-q75-420.jpg").read_bytes()


@pytest.mark.parametrize("double, reason", [(_LyingModel, "verify-mismatch"), (_UndecodableModel, "verify-mismatch"),
                                            (_RaisingModel, "encoder-error:RuntimeError:model bug")])
def test_a_model_that_lies_or_raises_ends_in_a_fallback_that_decodes(photo, double, reason):
    with model.registered(double.model_id, double):
        blob = jpegshrink.compress(photo, model_id=double.model_id)
    info = jpegshrink.inspect(blob)
    assert (info.mode in ("fallback", "stored"), info.model_id, info.reason) == (True, "", reason)
    assert jpegshrink.decompress(blob) == photo
    assert double.model_id not in model.registered_ids()


def test_an_unknown_model_id_is_the_callers_error_not_a_fallback(photo):
    with pytest.raises(jpegshrink.UnknownModel, match="unknown model id 'adaptiv-1'") as e:
        jpegshrink.compress(photo, model_id="adaptiv-1")
    assert "upgrade" not in str(e.value) and "adaptive-1" in str(e.value)  # names the ones it knows
    with pytest.raises(jpegshrink.UnknownModel):
        jpegshrink.store_lossy_jpeg(photo, {}, model_id="adaptiv-1")


@pytest.mark.parametrize("bad", ["a string", 123, None, [255, 216]])
def test_data_that_is_not_bytes_is_a_type_error(bad):
    with pytest.raises(TypeError, match="bytes"):
        jpegshrink.compress(bad)


def test_a_model_id_that_is_not_a_string_is_a_type_error(photo):
    with pytest.raises(TypeError, match="model_id"):
        jpegshrink.compress(photo, model_id=1)


def test_bytes_like_inputs_are_accepted(photo):
    for data in (bytearray(photo), memoryview(photo)):
        assert jpegshrink.decompress(jpegshrink.compress(data)) == photo


def test_registered_is_scoped_and_refuses_a_taken_id():
    with pytest.raises(ValueError, match="registered twice"):
        with model.registered("adaptive-1", _LyingModel):
            pass
    assert "adaptive-1" in model.registered_ids()
