"""Diffusion decoders of issue 15 (jpegshrink.perceptual.diffusion): fast smoke tests on tiny models.

The registered denoisers are swapped for tiny random ones (a fixture) so these run in seconds; what is
tested is the machinery: seeded reproducibility, the settings recorded in the container, the re-encode
property the idempotence decoder promises, CorrDiff's side information, and callers' mistakes.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import jpegshrink  # noqa: E402
from jpegshrink.perceptual import decoders, model  # noqa: E402
from jpegshrink.perceptual import diffusion  # noqa: E402
from jpegshrink.perceptual.diffusion import (cdc, corrdiff, idempotence, noise, sampler, schedule,  # noqa: E402
                                             weights)
from jpegshrink.perceptual.diffusion.codec_view import CodecView  # noqa: E402
from jpegshrink.perceptual.diffusion.unet import TinyUNet, UNetConfig  # noqa: E402

TINY_STEPS = sampler.SamplerSettings(steps=3)


def _tiny_presets(prior_id: str, cdc_id: str):
    few = sampler.SamplerSettings(steps=3, init_scale=0.8)
    return {"d1": diffusion.Preset(
        prior_id=prior_id, cdc_id=cdc_id,
        idempotence=idempotence.IdempotenceSettings(sampler=TINY_STEPS, project_steps=20),
        cdc=cdc.CDCSettings(sampler=few), corrdiff=corrdiff.CorrDiffSettings(cdc=cdc.CDCSettings(sampler=few)))}


@pytest.fixture
def tiny_models(tmp_path, monkeypatch):
    """Tiny random prior and CDC denoisers registered in place of the shipped ones."""
    torch.manual_seed(0)
    prior = TinyUNet(UNetConfig(channels=8))
    cond = TinyUNet(UNetConfig(channels=8, cond_channels=cdc.COND_CHANNELS))
    for net in (prior, cond):   # the zero-initialised output layer would make every decode identical
        torch.nn.init.normal_(net.out.weight, std=0.05)
    pid = weights.save(prior, weights.Role.PRIOR, schedule.Parameterisation.EPS, {"test": True}, tmp_path)
    cid = weights.save(cond, weights.Role.CDC, schedule.Parameterisation.X_RESIDUAL, {"test": True}, tmp_path)
    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(diffusion, "PRIOR_ID", pid)
    monkeypatch.setattr(diffusion, "CDC_ID", cid)
    monkeypatch.setattr(diffusion, "_presets", lambda: _tiny_presets(pid, cid))
    weights.load.cache_clear()
    yield pid, cid
    weights.load.cache_clear()


@pytest.fixture
def photo():
    """A smooth 70x90 test image (not a multiple of 64: exercises the padding and the crop)."""
    yy, xx = np.mgrid[0:70, 0:90]
    img = np.stack([128 + 60 * np.sin(xx / 9.0), 128 + 60 * np.cos(yy / 7.0), 100 + (xx + yy) % 50], axis=-1)
    return img.clip(0, 255).astype(np.uint8)


@pytest.fixture
def blob(tiny_models, photo):
    return jpegshrink.encode_image(photo, mode="perceptual", quality=40)


def test_noise_is_counter_based():
    a = noise.gaussian(7, noise.Stream.INITIAL, 0, (2, 3, 8, 8))
    assert torch.equal(a, noise.gaussian(7, noise.Stream.INITIAL, 0, (2, 3, 8, 8)))
    assert not torch.equal(a, noise.gaussian(8, noise.Stream.INITIAL, 0, (2, 3, 8, 8)))
    assert not torch.equal(a, noise.gaussian(7, noise.Stream.STEP, 0, (2, 3, 8, 8)))
    assert not torch.equal(a, noise.gaussian(7, noise.Stream.INITIAL, 1, (2, 3, 8, 8)))
    big = noise.gaussian(0, noise.Stream.INITIAL, 0, (200_000,))
    assert abs(big.mean().item()) < 0.01 and abs(big.std().item() - 1) < 0.01
    with pytest.raises(ValueError):
        noise.gaussian(-1, noise.Stream.INITIAL, 0, (4,))


def test_schedule_and_settings():
    t = torch.linspace(0, 1, 11)
    ab = schedule.alpha_bar(t)
    assert ab[0] == pytest.approx(1.0) and ab[-1] == pytest.approx(schedule.ALPHA_BAR_MIN)
    assert bool((ab[1:] <= ab[:-1]).all())
    assert schedule.sample_times(4) == [1.0, 0.75, 0.5, 0.25, 0.0]
    s = sampler.SamplerSettings(steps=7, seed=3, eta=0.5, init_scale=0.8)
    assert sampler.SamplerSettings.from_info(s.to_info()) == s
    for bad in ({"steps": 0}, {"eta": 1.5}, {"seed": -1}):
        with pytest.raises(ValueError):
            sampler.SamplerSettings(**bad)
    st = idempotence.IdempotenceSettings(sampler=s, zeta=0.3)
    assert idempotence.IdempotenceSettings.from_info(st.to_info()) == st
    cs = corrdiff.CorrDiffSettings(groups=3)
    assert corrdiff.CorrDiffSettings.from_info(cs.to_info()) == cs


def test_unet_shapes_and_mistakes():
    net = TinyUNet(UNetConfig(channels=8, cond_channels=3))
    x = torch.zeros(2, 3, 16, 20)
    assert net(x, torch.zeros(2), torch.zeros(2, 3, 16, 20)).shape == x.shape
    with pytest.raises(ValueError, match="multiples of 4"):
        net(torch.zeros(1, 3, 18, 16), torch.zeros(1), torch.zeros(1, 3, 18, 16))
    with pytest.raises(ValueError, match="conditioning"):
        net(x, torch.zeros(2))


def test_weights_are_named_by_hash(tmp_path):
    torch.manual_seed(1)
    net = TinyUNet(UNetConfig(channels=8))
    mid = weights.save(net, weights.Role.PRIOR, schedule.Parameterisation.EPS, {"run": 1}, tmp_path)
    assert mid == weights.save(net, weights.Role.PRIOR, schedule.Parameterisation.EPS, {"run": 2}, tmp_path)
    loaded, param, record = weights.load(mid, tmp_path)
    assert param is schedule.Parameterisation.EPS and record["provenance"] == {"run": 2}
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(loaded(x, torch.zeros(1)), net.half().float()(x, torch.zeros(1)), atol=1e-3)
    with pytest.raises(weights.UnknownDiffusionModel, match="not installed"):
        weights.load("prior-00000000", tmp_path)
    with np.load(tmp_path / f"{mid}.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["inp.bias"] = arrays["inp.bias"] + np.float16(1)
    np.savez(tmp_path / "prior-deadbeef.npz", **arrays)
    with pytest.raises(weights.UnknownDiffusionModel, match="does not match"):
        weights.load("prior-deadbeef", tmp_path)


def test_shipped_preset_names_installed_models():
    """The released preset must name weight files that are in the package (or containers cannot decode)."""
    info = diffusion.preset_info()
    for key in ("prior", "cdc"):
        assert info[key] in weights.available(), f"{info[key]} is not in {weights.WEIGHTS_DIR}"


def test_container_records_the_diffusion_settings(blob, tiny_models):
    assert "diffusion" not in jpegshrink.inspect(blob).info     # absent = preset d1, no bytes spent
    assert diffusion.container_info("d1") == {}
    d = diffusion.preset_info("d1")
    assert (d["prior"], d["cdc"]) == tiny_models
    assert d["idempotence"]["sampler"]["steps"] == TINY_STEPS.steps
    with pytest.raises(ValueError):
        diffusion.container_info("d0")


@pytest.mark.parametrize("name", ["idempotence", "cdc"])
def test_decode_reproducible_and_seeded(blob, photo, name):
    a = jpegshrink.decode_image(blob, decoder=name, seed=5)
    assert a.shape == photo.shape and a.dtype == np.uint8
    assert np.array_equal(a, jpegshrink.decode_image(blob, decoder=name, seed=5))
    assert not np.array_equal(a, jpegshrink.decode_image(blob, decoder=name, seed=6))


def test_decoders_never_change_the_stored_latents(blob, photo):
    faithful = jpegshrink.decode_image(blob, decoder="faithful")
    for name in ("idempotence", "cdc"):
        jpegshrink.decode_image(blob, decoder=name)
    assert np.array_equal(faithful, jpegshrink.decode_image(blob, decoder="faithful"))


def test_idempotence_output_reencodes_to_the_stored_code(tiny_models, photo):
    codec = model.load()
    x = codec.to_tensor(photo)
    lat = codec.encode_latents(x, 2.0)
    view = CodecView(codec, lat.rate)
    prior = diffusion.denoiser(tiny_models[0])
    st = idempotence.IdempotenceSettings(sampler=TINY_STEPS, backproject_steps=0, project_steps=0)
    raw = idempotence.decode(view, lat, prior, tuple(x.shape), st)
    projected = idempotence.project(view, lat, raw, dataclasses.replace(st, backproject_steps=3, project_steps=150,
                                                                        project_lr=0.003))
    as_uint8 = (projected * 255).round() / 255          # what a caller gets back is uint8
    fy, fz = view.unchanged_fraction(as_uint8, lat)
    assert (fy, fz) == (1.0, 1.0)
    assert view.unchanged_fraction(raw, lat)[0] < 1.0   # a random prior alone does not satisfy the code


def test_corrdiff_adds_codes_only(blob, photo):
    with pytest.raises(diffusion.DiffusionError, match="no CorrDiff correction"):
        jpegshrink.decode_image(blob, decoder="corrdiff")
    with_codes = diffusion.add_corrdiff(blob, photo)
    before, after = jpegshrink.inspect(blob).info, jpegshrink.inspect(with_codes).info
    assert after["latents_sha256"] == before["latents_sha256"]
    codes = after["corrdiff"]
    assert len(codes) == 2 and all(0 <= int(c) < len(corrdiff.LEVELS) for c in codes)
    assert len(with_codes) - len(blob) < 24
    out = jpegshrink.decode_image(with_codes, decoder="corrdiff")
    assert out.shape == photo.shape
    with pytest.raises(diffusion.DiffusionError, match="seed"):
        jpegshrink.decode_image(with_codes, decoder="corrdiff", seed=9)
    # all-zero codes are exactly CDC with the same seed
    p = diffusion.preset_info()
    zero = corrdiff.decode(*_view_lat(blob), diffusion.denoiser(p["cdc"]), _shape(blob),
                           corrdiff.CorrDiffSettings.from_info(p["corrdiff_settings"]), (0, 0))
    plain = cdc.decode(*_view_lat(blob), diffusion.denoiser(p["cdc"]), _shape(blob),
                       cdc.CDCSettings.from_info(p["cdc_settings"]))
    assert torch.equal(zero, plain)
    with pytest.raises(ValueError, match="original"):
        diffusion.add_corrdiff(blob, photo[:10])


def _view_lat(blob):
    from jpegshrink.perceptual import _open
    _, codec, lat = _open(blob)
    return CodecView(codec, lat.rate), lat


def _shape(blob):
    lat = _view_lat(blob)[1]
    return (1, 3, 16 * lat.symbols.shape[1], 16 * lat.symbols.shape[2])


def test_untrained_residual_cdc_is_the_faithful_decoder(blob, photo, tmp_path):
    """X_RESIDUAL: with a zero output layer the conditional denoiser returns its conditioning, g_s(y_hat)."""
    net = TinyUNet(UNetConfig(channels=8, cond_channels=cdc.COND_CHANNELS))   # output layer zero-initialised
    den = sampler.Denoiser(net, schedule.Parameterisation.X_RESIDUAL)
    view, lat = _view_lat(blob)
    out = cdc.decode(view, lat, den, _shape(blob), cdc.CDCSettings(sampler.SamplerSettings(steps=2)))
    assert torch.allclose(out, view.decode(lat), atol=1e-6)
    plain = sampler.Denoiser(net, schedule.Parameterisation.X)   # plain X-prediction starts from grey instead
    assert not torch.allclose(cdc.decode(view, lat, plain, _shape(blob), cdc.CDCSettings()), view.decode(lat), atol=0.05)


def test_unknown_preset_is_refused(blob):
    from jpegshrink.coding import container
    c = container.unpack(blob)
    other = container.pack(dataclasses.replace(c, info={**c.info, "diffusion": {"preset": "d9"}}))
    with pytest.raises(diffusion.DiffusionError, match="upgrade"):
        jpegshrink.decode_image(other, decoder="cdc")


def test_callers_mistakes(blob):
    with pytest.raises(decoders.UnknownDecoder, match="idempotence, cdc, corrdiff"):
        jpegshrink.decode_image(blob, decoder="diffusion")
    with pytest.raises(ValueError, match="time_budget_s"):
        jpegshrink.decode_image(blob, decoder="cdc", time_budget_s=0)
    with pytest.raises(ValueError, match="unknown diffusion decoder"):
        diffusion.decode(None, None, "ddpm", 0, {})


def test_time_budget_returns_an_early_estimate(blob, photo):
    out = jpegshrink.decode_image(blob, decoder="idempotence", time_budget_s=1e-6)
    assert out.shape == photo.shape and out.dtype == np.uint8
