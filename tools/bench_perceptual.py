"""Rate-distortion-perception benchmark of the perceptual mode against real codecs, on the validation photos.

Photos: the validation split of tools/image_data.py (``/work/cache/perceptual/val``, split by source
package from everything the codec and the generator were trained on). Bits per pixel come from the
true stored bytes (for jpegshrink: the whole container, header and info included).

Codecs, all run in this process on the same photos: ours (faithful MSE decoder), ours-gan (the
perceptual decoder on *the same containers*), libjpeg-turbo (Pillow, optimised Huffman), jpegli
(pyjpegli), JPEG XL (imagecodecs, effort 7), AVIF (imagecodecs, speed 6), WebP (imagecodecs, method 6).

Phases (results cached in ``--out``; each phase reuses what is there):

- ``sweep``: each codec over its settings; fidelity per point: PSNR (RGB), PSNR-Y, MS-SSIM (luma),
  SSIMULACRA2. BD-rate (PSNR-RGB, per photo over the common range, then averaged) against
  libjpeg-turbo and JPEG XL.
- ``matched``: at each of ours' rates, libjpeg-turbo, JPEG XL and AVIF are bisected per photo to the
  largest setting whose bytes do not exceed ours'; then fidelity (+ butteraugli 3-norm) and realism, pooled over photos:
  multi-scale patch sliced-Wasserstein distance (Laplacian pyramid, 7x7 patches, x1e3), accuracy of a
  fresh real/fake CNN classifier (trained on half the photos' patches, tested on the other half;
  50 % = indistinguishable), high-band (> 0.25 cycles/px) power-spectrum ratio to the original (1 =
  same; < 1 blur), idempotence drift (re-encode the decode at the same setting: PSNR between the two
  decodes, and the byte change). Writes side-by-side crops to docs/perceptual/.
- ``ablate-d``: the shipped generator (conditional discriminator) against one trained with ``--uncond``,
  at one rate: PSNR, SSIMULACRA2, spectrum, SWD, C2ST.
- ``ablate``: the integer vs float hyper-decoder: bits (the float path's ideal code length from the
  exact Gaussian bins vs the integer tables' true ANS bytes) and hyper-decoder time.
- ``speed``: encode / faithful / perceptual decode seconds per megapixel on one thread, and peak memory
  (ru_maxrss of a fresh process) for a 12 MP image.
- ``report``: markdown tables (stdout and ``<out>/report.md``) and an R-D plot.

    OMP_NUM_THREADS=1 nice -n 10 python tools/bench_perceptual.py sweep matched report --out /work/logs/perceptual-bench
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from bench_lossy import (_avif, butteraugli, _log_rate_at, _monotone, codec_jpegli, codec_jxl, codec_turbo,  # noqa: E402
                         codec_webp, ms_ssim, psnr_y)

VAL = Path("/work/cache/perceptual/val")
#: Training checkpoint the default weights were exported from (for the float-vs-integer ablation).
CHECKPOINT = Path("/work/cache/perceptual/klt/last.pt")
DOCS = ROOT / "docs" / "perceptual"
#: Reported photos, in order (--photos N takes the first N): the 5 Kodak, then scikit-image, then lxqt.
PHOTOS = ["pyiqa__I03", "pyiqa__I04", "pyiqa__I06", "pyiqa__I08", "pyiqa__I19", "python3-skimage__astronaut",
          "python3-skimage__coffee", "lxqt-themes__after-the-rain", "python3-skimage__chelsea",
          "python3-skimage__motorcycle_left", "lxqt-themes__fog", "lxqt-themes__Butterfly-Kenneth-Wimer"]
#: Ours: rates on the ladder (0..5); anchors: settings spanning ~0.05..0.8 bpp on these photos.
SWEEPS = {
    "ours": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
    "libjpeg-turbo": [3, 6, 10, 16, 25, 40, 60],
    "jpegli": [3, 6, 10, 16, 25, 40, 60],
    "jxl-e7": [20.0, 12.0, 8.0, 5.5, 4.0, 2.8, 2.0, 1.4],
    "avif-s6": [5, 12, 20, 30, 40, 50, 60, 70],
    "webp": [0, 5, 15, 30, 50, 70, 85],
}
#: For bisection to a byte budget: (low, high) setting, int or float, True when larger settings cost more bytes.
RANGES = {"libjpeg-turbo": (1, 95, int, True), "jpegli": (1, 95, int, True), "jxl-e7": (0.5, 25.0, float, False),
          "avif-s6": (0, 95, int, True), "webp": (0, 95, int, True)}
ANCHORS = {"libjpeg-turbo": codec_turbo, "jpegli": codec_jpegli, "jxl-e7": codec_jxl, "avif-s6": _avif(6),
           "webp": codec_webp}
MATCHED_RATES = [1.0, 4.0]
#: Anchors of the matched-bytes table (the sweeps have all five; the shared 2-core machine allows no more).
MATCHED_ANCHORS = ("libjpeg-turbo", "jxl-e7", "avif-s6")


def load(name: str) -> np.ndarray:
    from PIL import Image
    return np.asarray(Image.open(VAL / f"{name}.png").convert("RGB"))


#: The perceptual codec ``ours`` runs (``--model``; None = the library's default).
OURS_MODEL: list[str | None] = [None]


def ours(a, rate, _=None):
    import jpegshrink
    blob = jpegshrink.encode_image(a, mode="perceptual", quality=rate / 5 * 100, model_id=OURS_MODEL[0])
    return blob, jpegshrink.decode_image(blob, decoder="faithful")


def ours_gan(blob):
    import jpegshrink
    return jpegshrink.decode_image(blob, decoder="perceptual", seed=0)


def psnr_rgb(a, b):
    return float(10 * np.log10(255.0 ** 2 / max(np.mean((a.astype(np.float64) - b) ** 2), 1e-12)))


def ssimulacra2(a, b):
    from PIL import Image
    from ssimulacra2 import compute_ssimulacra2
    files = []
    for x in (a, b):
        buf = io.BytesIO()
        Image.fromarray(x).save(buf, "PNG", compress_level=0)
        buf.seek(0)
        files.append(buf)
    return float(compute_ssimulacra2(*files))


def fidelity(a, b, tmp=None):
    out = {"psnr": psnr_rgb(a, b), "psnr_y": psnr_y(a, b), "ms_ssim": ms_ssim(a, b), "ssimulacra2": ssimulacra2(a, b)}
    if tmp is not None:
        out["butteraugli3"] = butteraugli(a, b, tmp)
    return out


# ---------------------------------------------------------------- realism measures

def _pyramid(a: np.ndarray, levels: int = 3) -> list[np.ndarray]:
    """Laplacian pyramid of float RGB (finest first; the last level is the low-pass)."""
    from scipy.ndimage import gaussian_filter, zoom
    out, cur = [], a.astype(np.float64)
    for i in range(levels):
        if i == levels - 1:
            out.append(cur)
            break
        low = gaussian_filter(cur, (1.0, 1.0, 0))[::2, ::2]
        up = zoom(low, (cur.shape[0] / low.shape[0], cur.shape[1] / low.shape[1], 1), order=1)
        out.append(cur - up)
        cur = low
    return out


def _patches(a: np.ndarray, n: int, rng, size: int = 7) -> np.ndarray:
    h, w = a.shape[:2]
    ys, xs = rng.integers(0, h - size + 1, n), rng.integers(0, w - size + 1, n)
    return np.stack([a[y:y + size, x:x + size].ravel() for y, x in zip(ys, xs)])


def swd(reals: list, fakes: list, per_image: int = 1024, projections: int = 256, seed: int = 0) -> float:
    """Multi-scale sliced-Wasserstein distance (Karras et al. 2018 protocol, our sizes), x1e3."""
    rng = np.random.default_rng(seed)
    pr = [_pyramid(r) for r in reals]
    pf = [_pyramid(f) for f in fakes]
    dists = []
    for level in range(len(pr[0])):
        state = rng.bit_generator.state
        r = np.concatenate([_patches(p[level], per_image, rng) for p in pr])
        rng.bit_generator.state = state  # same patch positions in the fakes
        f = np.concatenate([_patches(p[level], per_image, rng) for p in pf])
        mu, sd = r.mean(0), r.std(0) + 1e-8
        r, f = (r - mu) / sd, (f - mu) / sd
        proj = rng.standard_normal((r.shape[1], projections))
        proj /= np.linalg.norm(proj, axis=0)
        pr_, pf_ = np.sort(r @ proj, 0), np.sort(f @ proj, 0)
        dists.append(np.abs(pr_ - pf_).mean())
    return float(np.mean(dists) * 1e3)


def c2st(reals: list, fakes: list, seed: int = 0, steps: int = 300, size: int = 32) -> float:
    """Held-out accuracy of a fresh small CNN telling original from decoded patches (50 % = can't tell)."""
    import torch
    from torch import nn
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    half = max(1, len(reals) // 2)

    def sample(idx, n):
        xs, ys = [], []
        for _ in range(n):
            i = idx[rng.integers(len(idx))]
            a, b = reals[i], fakes[i]
            y0, x0 = rng.integers(0, a.shape[0] - size + 1), rng.integers(0, a.shape[1] - size + 1)
            label = rng.integers(2)
            xs.append((b if label else a)[y0:y0 + size, x0:x0 + size])
            ys.append(label)
        x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float() / 255
        return x, torch.tensor(ys).float()
    net = nn.Sequential(nn.Conv2d(3, 24, 3, 1, 1), nn.ReLU(), nn.Conv2d(24, 32, 3, 2, 1), nn.ReLU(),
                        nn.Conv2d(32, 48, 3, 2, 1), nn.ReLU(), nn.Conv2d(48, 48, 3, 2, 1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(48, 1))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    train_idx, test_idx = list(range(half)), list(range(half, len(reals))) or list(range(half))
    for _ in range(steps):
        x, y = sample(train_idx, 64)
        loss = nn.functional.binary_cross_entropy_with_logits(net(x)[:, 0], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        x, y = sample(test_idx, 2000)
        return float(((net(x)[:, 0] > 0).float() == y).float().mean())


def spectrum_ratio(ref: np.ndarray, dist: np.ndarray, band: float = 0.25) -> float:
    """Power of luma above ``band`` cycles/pixel, decoded / original (Hann-windowed FFT)."""
    def power(a):
        y = 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]
        y = y - y.mean()
        win = np.outer(np.hanning(y.shape[0]), np.hanning(y.shape[1]))
        return np.abs(np.fft.fft2(y * win)) ** 2
    fy = np.fft.fftfreq(ref.shape[0])[:, None]
    fx = np.fft.fftfreq(ref.shape[1])[None, :]
    mask = np.sqrt(fy ** 2 + fx ** 2) > band
    return float(power(dist.astype(np.float64))[mask].sum() / power(ref.astype(np.float64))[mask].sum())


# ---------------------------------------------------------------- phases

def _cache(out: Path, name: str) -> tuple[dict, Path]:
    p = out / f"{name}.json"
    return (json.loads(p.read_text()) if p.exists() else {}), p


def phase_sweep(photos, codecs, out: Path) -> None:
    for codec in codecs:
        cache, path = _cache(out, f"sweep-{codec}")
        if codec in ("ours", "ours-gan"):
            stale = {r.get("model", "hp1-b6e22de7") for r in cache.values()} - {_ours_model_id()}
            if stale:  # (records made before the field existed are hp1's, the only codec then)
                raise SystemExit(f"{path} holds records of {', '.join(sorted(stale))}, not of {_ours_model_id()}: "
                                 "use another --out")
        for name in photos:
            a = load(name)
            pixels = a.shape[0] * a.shape[1]
            for s in SWEEPS["ours" if codec == "ours-gan" else codec]:
                key = f"{name}|{s}"
                if key in cache:
                    continue
                t = time.perf_counter()
                if codec in ("ours", "ours-gan"):
                    blob, dec = ours(a, s)
                    if codec == "ours-gan":
                        dec = ours_gan(blob)
                else:
                    blob, dec = ANCHORS[codec](a, s, None)
                cache[key] = {"photo": name, "setting": s, "bpp": 8 * len(blob) / pixels,
                              "seconds": time.perf_counter() - t, **fidelity(a, dec)}
                if codec in ("ours", "ours-gan"):
                    cache[key]["model"] = _ours_model_id()
                print(f"{name:40s} {codec:14s} {s!s:5s} {cache[key]['bpp']:6.3f} bpp psnr={cache[key]['psnr']:6.2f} "
                      f"s2={cache[key]['ssimulacra2']:6.2f}", flush=True)
                path.write_text(json.dumps(cache, indent=0))


def _ours_model_id() -> str:
    from jpegshrink.perceptual import model
    return OURS_MODEL[0] or model.DEFAULT_MODEL_ID


def _bisect_bytes(codec, a, budget):
    lo, hi, kind, rising = RANGES[codec]
    best = None
    for _ in range(9):
        mid = kind((lo + hi) / 2) if kind is float else (lo + hi + 1) // 2
        blob, dec = ANCHORS[codec](a, mid, None)
        fits = len(blob) <= budget
        if fits:
            best = (mid, blob, dec)
        if kind is int and hi - lo <= 1:
            if not fits:
                hi = lo
            break
        if fits == rising:
            lo = mid
        else:
            hi = mid
    if best is None:  # even the cheapest setting is over budget: report that setting, marked
        s = RANGES[codec][0] if rising else RANGES[codec][1]
        blob, dec = ANCHORS[codec](a, s, None)
        best = (s, blob, dec)
    return best


def phase_matched(photos, out: Path, crops: bool) -> None:
    cache, path = _cache(out, "matched")
    tmp = Path(tempfile.mkdtemp(prefix="bench_perc_"))
    try:
        for rate in MATCHED_RATES:
            rk = f"rate{rate}"
            if rk in cache and cache[rk].get("photos") == photos:
                continue
            recs = {c: [] for c in ["ours", "ours-gan", *MATCHED_ANCHORS]}
            decoded = {c: [] for c in recs}
            reals = []
            for name in photos:
                a = load(name)
                reals.append(a)
                pixels = a.shape[0] * a.shape[1]
                blob, dec = ours(a, rate)
                gdec = ours_gan(blob)
                budget = len(blob)
                for c, (b, d) in {"ours": (blob, dec), "ours-gan": (blob, gdec)}.items():
                    rec = {"photo": name, "bpp": 8 * len(b) / pixels, **fidelity(a, d, tmp),
                           "spectrum": spectrum_ratio(a, d)}
                    # idempotence: encode the decode again at the same rate, decode with the same decoder
                    b2, d2 = ours(d, rate)
                    if c == "ours-gan":
                        d2 = ours_gan(b2)
                    rec["drift_psnr"], rec["drift_bytes"] = psnr_rgb(d, d2), len(b2) / len(b) - 1
                    recs[c].append(rec)
                    decoded[c].append(d)
                for c in MATCHED_ANCHORS:
                    s, b, d = _bisect_bytes(c, a, budget)
                    rec = {"photo": name, "setting": s, "bpp": 8 * len(b) / pixels, **fidelity(a, d, tmp),
                           "spectrum": spectrum_ratio(a, d)}
                    b2, d2 = ANCHORS[c](d, s, None)
                    rec["drift_psnr"], rec["drift_bytes"] = psnr_rgb(d, d2), len(b2) / len(b) - 1
                    recs[c].append(rec)
                    decoded[c].append(d)
                print(f"rate {rate} {name}: " + " ".join(f"{c}={recs[c][-1]['bpp']:.3f}/{recs[c][-1]['psnr']:.2f}"
                                                         for c in recs), flush=True)
            summary = {}
            for c in recs:
                summary[c] = {k: float(np.mean([r[k] for r in recs[c] if r.get(k) is not None]))
                              for k in ("bpp", "psnr", "psnr_y", "ms_ssim", "ssimulacra2", "butteraugli3", "spectrum",
                                        "drift_psnr", "drift_bytes")}
                summary[c]["swd"] = swd(reals, decoded[c])
                summary[c]["c2st"] = c2st(reals, decoded[c])
                print(f"rate {rate} {c:14s} " + json.dumps({k: round(v, 4) for k, v in summary[c].items()}), flush=True)
            cache[rk] = {"photos": photos, "summary": summary, "per_photo": recs}
            path.write_text(json.dumps(cache, indent=0))
            if crops:
                save_crops(photos, reals, decoded, recs, rate)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def save_crops(photos, reals, decoded, recs, rate, size=128) -> None:
    """Side-by-side PNG crops: original | ours | ours-gan | jxl | avif | libjpeg-turbo at the same bytes."""
    from PIL import Image, ImageDraw
    DOCS.mkdir(parents=True, exist_ok=True)
    order = ["original", "ours", "ours-gan", "jxl-e7", "avif-s6", "libjpeg-turbo"]  # labels: codec and bpp
    for i in (0, 5):  # one Kodak, one scikit-image photo
        if i >= len(photos):
            continue
        a = reals[i]
        y0, x0 = (a.shape[0] - size) // 2, (a.shape[1] - size) // 2
        tiles = []
        for c in order:
            img = a if c == "original" else decoded[c][i]
            tiles.append(img[y0:y0 + size, x0:x0 + size])
        strip = np.concatenate([np.pad(t, ((18, 2), (2, 2), (0, 0)), constant_values=255) for t in tiles], 1)
        im = Image.fromarray(strip)
        draw = ImageDraw.Draw(im)
        for j, c in enumerate(order):
            label = c if c == "original" else f"{c.replace('libjpeg-turbo', 'jpeg')} {recs[c][i]['bpp']:.2f}"
            draw.text((j * (size + 4) + 3, 3), label, fill=(0, 0, 0))
        im.save(DOCS / f"{photos[i]}-rate{int(rate)}.png", optimize=True)


def phase_ablate(photos, out: Path) -> None:
    """Integer vs float hyper-decoder: code length and time."""
    import torch
    from jpegshrink.perceptual import model, network
    from jpegshrink.perceptual.export import Z_RANGE  # noqa: F401
    codec = model.load()
    ck = torch.load(CHECKPOINT, weights_only=False)  # the float h_s before export (same training run)
    net = network.HyperpriorCodec(codec.n, codec.m, codec.nz, codec.rates, klt=codec.klt)
    net.load_state_dict(ck["model"])
    # the h_s that was trained (int8 weights and uint8 activations, fake-quantised) but with float outputs:
    # continuous means and scales instead of 1/16-step means and 64 table scales, and ideal code lengths
    # instead of 16-bit tables and ANS. (Without fake quantisation it would be another network than trained.)
    net.h_s.fake_quant = True
    res = {"int_bytes": 0, "float_bits": 0.0, "int_seconds": 0.0, "float_seconds": 0.0, "pixels": 0}
    for name in photos:
        a = load(name)
        x = codec.to_tensor(a)
        for rate in (1.0, 3.0, 5.0):
            lat = codec.encode_latents(x, rate)
            res["int_bytes"] += sum(len(s) for s in codec.pack(lat))
            t = time.perf_counter()
            codec.hyper_decode(lat.z)
            res["int_seconds"] += time.perf_counter() - t
            with torch.no_grad():
                y = codec.analysis(x, rate)
                z = torch.from_numpy(lat.z).float()[None]
                t = time.perf_counter()
                means, logits = net.h_s(z)
                res["float_seconds"] += time.perf_counter() - t
                scales = network.scales_from_logits(logits)
                q = (y - means).round()
                bits_y = -network.gaussian_likelihood(q, scales).log2().sum().item()
                bits_z = -net.prior_z.likelihood(z).log2().sum().item()
            res["float_bits"] += bits_y + bits_z
            res["pixels"] += a.shape[0] * a.shape[1]
    res["int_bpp"] = 8 * res["int_bytes"] / res["pixels"]
    res["float_bpp_ideal"] = res["float_bits"] / res["pixels"]
    res["int_overhead_percent"] = 100 * (res["int_bpp"] / res["float_bpp_ideal"] - 1)
    print(json.dumps(res), flush=True)
    (out / "ablate-int8.json").write_text(json.dumps(res, indent=1))


def phase_ablate_d(photos, out: Path, uncond_ckpt: Path, rate: float = 4.0) -> None:
    """Conditional vs unconditional discriminator: the shipped generator against one trained with --uncond."""
    import torch
    from jpegshrink.perceptual import decoders, gan, model
    codec = model.load()
    ck = torch.load(uncond_ckpt, weights_only=False)
    other = gan.Generator(ck["n"], ck["m"], ck.get("klt", False))
    other.load_state_dict(ck["model"])
    other = other.double().eval()
    shipped = gan.load_generator(decoders.GENERATORS[-1])
    reals, fakes = [], {"conditional": [], "unconditional": []}
    for name in photos:
        a = load(name)
        lat = codec.encode_latents(codec.to_tensor(a), rate)
        feats = lat.y_hat().double() / codec.gain(rate).double()
        with torch.no_grad():
            for key, net in (("conditional", shipped.net), ("unconditional", other)):
                x = net(feats, 0)[0].clamp(0, 1)
                fakes[key].append((x * 255).round().byte().permute(1, 2, 0).numpy()[:a.shape[0], :a.shape[1]].copy())
        reals.append(a)
    res = {"rate": rate, "photos": photos, "iterations": {"conditional": shipped.meta["iterations"],
                                                          "unconditional": ck["iteration"]}}
    for key, dec in fakes.items():
        res[key] = {"psnr": float(np.mean([psnr_rgb(a, d) for a, d in zip(reals, dec)])),
                    "ssimulacra2": float(np.mean([ssimulacra2(a, d) for a, d in zip(reals, dec)])),
                    "spectrum": float(np.mean([spectrum_ratio(a, d) for a, d in zip(reals, dec)])),
                    "swd": swd(reals, dec), "c2st": c2st(reals, dec)}
    print(json.dumps(res), flush=True)
    (out / "ablate-d.json").write_text(json.dumps(res, indent=1))


SPEED_CHILD = r"""
import sys, time, resource, json, numpy as np, torch
torch.set_num_threads(1)
import jpegshrink
from PIL import Image
a = np.asarray(Image.open(sys.argv[1]).convert("RGB"))
reps = (-(-3000 // a.shape[0]), -(-4000 // a.shape[1]), 1)
big = np.ascontiguousarray(np.tile(a, reps)[:3000, :4000])
which = sys.argv[2]
t = time.perf_counter()
if which == "encode":
    blob = jpegshrink.encode_image(big, mode="perceptual", quality=60, decoder="faithful")
    open(sys.argv[3], "wb").write(blob)
else:
    blob = open(sys.argv[3], "rb").read()
    jpegshrink.decode_image(blob, decoder=which)
print(json.dumps({"what": which, "seconds": time.perf_counter() - t,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _center(a: np.ndarray, size: int) -> np.ndarray:
    h, w = a.shape[:2]
    y, x = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return np.ascontiguousarray(a[y:y + size, x:x + size])


#: Code Editing variants: name -> (rates, gain rate of each, lambda rate of each, steps or None = amortised)
def _code_edit_variants(steps: int) -> dict:
    ladder = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    half = [0.5, 1.5, 2.5, 3.5, 4.5]
    return {
        "amortised": (ladder, ladder, ladder, None),
        f"optimised-{steps}": (ladder, ladder, ladder, steps),
        "amortised-frac": (half, half, half, None),  # gain interpolated between ladder rates (the product's way)
        f"optimised-{steps}-frac": (half, half, half, steps),
        # the ladder rate's gain below, lambda between two ladder rates: a rate reached by lambda alone
        f"optimised-{steps}-lambda-only": (half, [float(int(r)) for r in half], half, steps),
        # Code Editing's extreme: one quantiser (the top rate's gain) for every lambda
        f"optimised-{steps}-one-gain": ([1.0, 3.0], [5.0, 5.0], [1.0, 3.0], steps),
    }


def phase_code_edit(photos, out: Path, steps: int, crop: int, variants: list[str] | None = None) -> None:
    """Encode-time latent optimisation (jpegshrink.perceptual.refine) against the amortised encoder.

    Per photo (centre crop ``crop``^2; the optimisation costs seconds per step per megapixel) and variant:
    bpp = the latent streams plus the header/info bytes of the amortised container of the same photo
    (what the container would be: the decoder and format do not change), PSNR of the faithful float64
    decode. Every optimised latent set is checked to decode from its own bytes exactly.
    """
    import jpegshrink
    from jpegshrink.perceptual import decoders, model, refine
    codec = model.load()
    cache, path = _cache(out, "code-edit")
    table = _code_edit_variants(steps)
    for name in photos:
        a = _center(load(name), crop)
        h, w = a.shape[:2]
        x = codec.to_tensor(a)
        for variant, (rates, gains, lams, n) in table.items():
            if variants and variant not in variants:
                continue
            for r, g, lr in zip(rates, gains, lams):
                key = f"{name}|{variant}|{r}"
                if key in cache:
                    continue
                t = time.process_time()
                res = refine.optimise(codec, x, g, (h, w), n or 0, lam=codec.lambda_at(lr))
                lat = res.latents
                streams = codec.pack(lat)
                back = codec.unpack(streams, lat.symbols.shape[1:], g)
                assert back.digest() == lat.digest(), "optimised latents did not decode to themselves"
                blob = jpegshrink.encode_image(a, mode="perceptual", quality=g / (codec.rates - 1) * 100)
                overhead = len(blob) - sum(len(s) for s in codec.pack(codec.encode_latents(x, g)))
                dec = decoders.decode(codec, lat, decoders.FAITHFUL, 0, (w, h))
                cache[key] = {"photo": name, "variant": variant, "setting": r, "gain_rate": g, "lambda_rate": lr,
                              "steps": n or 0, "bpp": 8 * (sum(len(s) for s in streams) + overhead) / (h * w),
                              "stream_bpp": 8 * sum(len(s) for s in streams) / (h * w),
                              "psnr": psnr_rgb(a, dec), "objective": res.objective,
                              "objective_amortised": res.objective_amortised, "improved": res.improved,
                              "cpu_s": time.process_time() - t}
                print(f"{name:36s} {variant:28s} {r:4.1f} {cache[key]['bpp']:6.3f} bpp psnr={cache[key]['psnr']:6.2f} "
                      f"obj {res.objective_amortised:.4f}->{res.objective:.4f} {cache[key]['cpu_s']:.1f}s", flush=True)
                path.write_text(json.dumps(cache, indent=0))


def _by_variant(cache: dict, photos, row=lambda r: r) -> dict:
    """Cached records of ``photos`` as {variant: {photo: [row(record), ...]}}, the shape bd_rate takes."""
    by = {}
    for r in cache.values():
        if r["photo"] in photos:
            by.setdefault(r["variant"], {}).setdefault(r["photo"], []).append(row(r))
    return by


def report_code_edit(photos, out: Path) -> list[str]:
    cache, _ = _cache(out, "code-edit")
    if not cache:
        return []
    # BD-rate on the latent streams (what the optimisation changes; the header is equal)
    by = _by_variant(cache, photos, lambda r: {**r, "bpp": r["stream_bpp"], "container_bpp": r["bpp"]})
    lines = ["", "Code Editing (encode-time latent optimisation): mean stream bpp (container bpp) / PSNR per "
             "setting; BD-rate (PSNR) on the stream bytes", "",
             "| variant | settings | mean stream bpp | (container bpp) | mean PSNR | CPU s / encode | "
             "BD-rate vs amortised | vs amortised (ladder + frac) | photos |",
             "|---|---|---|---|---|---|---|---|---|"]
    both = {p: by.get("amortised", {}).get(p, []) + by.get("amortised-frac", {}).get(p, []) for p in photos}
    for variant, cv in by.items():
        pts = [r for p in cv.values() for r in p]
        settings = sorted({r["setting"] for r in pts})
        bpp = " ".join(f"{np.mean([r['bpp'] for r in pts if r['setting'] == s]):.3f}" for s in settings)
        cb = " ".join(f"{np.mean([r['container_bpp'] for r in pts if r['setting'] == s]):.3f}" for s in settings)
        ps = " ".join(f"{np.mean([r['psnr'] for r in pts if r['setting'] == s]):.2f}" for s in settings)
        v1, n = bd_rate(cv, by["amortised"], "psnr", 0.3) if "amortised" in by and variant != "amortised" else (None, 0)
        v2, _ = bd_rate(cv, both, "psnr", 0.3) if variant not in ("amortised", "amortised-frac") else (None, 0)
        lines.append(f"| {variant} | {' '.join(f'{s:g}' for s in settings)} | {bpp} | ({cb}) | {ps} | "
                     f"{np.mean([r['cpu_s'] for r in pts]):.1f} | {'-' if v1 is None else f'{v1:+.1f} %'} | "
                     f"{'-' if v2 is None else f'{v2:+.1f} %'} | {len(cv)} |")
    return lines


def phase_ablate_train(photos, out: Path, ckpts: list[tuple[str, Path]]) -> None:
    """Codecs fine-tuned from one start (e.g. ELBO vs MS-NIC), each exported in memory (not registered).

    Per photo (whole validation photos) and ladder rate: bpp of the true latent streams (the header is
    the same for every model), PSNR of the float32 synthesis (rounded to uint8).
    """
    import torch
    from jpegshrink.perceptual import export, model
    cache, path = _cache(out, "ablate-train")
    for label, ck in ckpts:
        arrays = export.arrays_from_checkpoint(torch.load(ck, weights_only=False))
        codec = model.LearnedCodec(export.weights_id(arrays), arrays)
        for name in photos:
            a = load(name)
            h, w = a.shape[:2]
            x = codec.to_tensor(a)
            for rate in SWEEPS["ours"]:
                key = f"{name}|{label}|{rate}"
                if key in cache:
                    continue
                lat = codec.encode_latents(x, rate)
                streams = codec.pack(lat)
                with torch.no_grad():
                    dec = codec.synthesis(lat.y_hat(), rate)[0, :, :h, :w].clamp(0, 1)
                dec = (dec * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
                cache[key] = {"photo": name, "variant": label, "model_id": codec.model_id, "setting": rate,
                              "bpp": 8 * sum(len(s) for s in streams) / (h * w), "psnr": psnr_rgb(a, dec)}
                print(f"{name:36s} {label:12s} {rate:3.1f} {cache[key]['bpp']:6.3f} bpp psnr={cache[key]['psnr']:6.2f}",
                      flush=True)
            path.write_text(json.dumps(cache, indent=0))


def report_ablate_train(photos, out: Path) -> list[str]:
    cache, _ = _cache(out, "ablate-train")
    if not cache:
        return []
    by = _by_variant(cache, photos)
    labels = list(by)
    lines = ["", "Training-objective ablation (stream bpp, PSNR of the float32 synthesis; BD-rate on PSNR, "
             "row vs column)",
             "", "| model | id | mean bpp (rates 0..5) | mean PSNR | " + " | ".join(f"vs {c}" for c in labels) + " |",
             "|---|---|---|---|" + "---|" * len(labels)]
    for lab in labels:
        pts = [r for p in by[lab].values() for r in p]
        settings = sorted({r["setting"] for r in pts})
        bpp = " ".join(f"{np.mean([r['bpp'] for r in pts if r['setting'] == s]):.3f}" for s in settings)
        ps = " ".join(f"{np.mean([r['psnr'] for r in pts if r['setting'] == s]):.2f}" for s in settings)
        cells = []
        for other in labels:
            v, n = bd_rate(by[lab], by[other], "psnr", 0.5) if other != lab else (None, 0)
            cells.append("-" if v is None else f"{v:+.2f} % ({n})")
        lines.append(f"| {lab} | {pts[0]['model_id']} | {bpp} | {ps} | " + " | ".join(cells) + " |")
    return lines


def phase_speed(out: Path, which_steps=("encode", "faithful", "perceptual")) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    blob = out / "speed-12mp.jsk"
    res = json.loads((out / "speed.json").read_text()) if (out / "speed.json").exists() else []
    res = [r for r in res if r["what"] not in which_steps]
    for which in which_steps:
        r = subprocess.run([sys.executable, "-c", SPEED_CHILD, str(VAL / "python3-skimage__astronaut.png"), which,
                            str(blob)], env=env, capture_output=True, text=True, timeout=3600)
        if r.returncode:
            print(r.stderr[-2000:])
            continue
        rec = json.loads(r.stdout.strip().splitlines()[-1])
        rec["seconds_per_mp"] = rec["seconds"] / 12
        res.append(rec)
        print(json.dumps(rec), flush=True)
    (out / "speed.json").write_text(json.dumps(res, indent=1))


# ---------------------------------------------------------------- report

#: The rates perceptual mode is for (bpp): the report gives BD-rates over this range too, beside the
#: whole range the curves share (ours reaches ~1.1 bpp on detailed photos, beyond what the mode is for).
MODE_RANGE = (0.05, 0.5)


def _metric_at(points, metric: str, bpp: float) -> float:
    """The metric a curve reaches at ``bpp`` (linear in log rate; clamped to the curve's ends)."""
    xs, ys = _monotone(points, metric)
    return float(np.interp(np.log(bpp), ys, xs))


def bd_rate(test: dict, anchor: dict, metric: str = "psnr", min_overlap: float = 0.5, bpp_range=None):
    """Mean over photos of the Bjontegaard rate difference (percent), each over the common metric range;
    with ``bpp_range`` = (lo, hi), only over the part of it where both curves stay within those rates."""
    diffs = []
    for photo in test:
        if photo not in anchor:
            continue
        tx, _ = _monotone(test[photo], metric)
        ax, _ = _monotone(anchor[photo], metric)
        if len(tx) < 2 or len(ax) < 2:
            continue
        lo, hi = max(tx[0], ax[0]), min(tx[-1], ax[-1])
        if bpp_range is not None:
            lo = max(lo, *(_metric_at(c[photo], metric, bpp_range[0]) for c in (test, anchor)))
            hi = min(hi, *(_metric_at(c[photo], metric, bpp_range[1]) for c in (test, anchor)))
        if hi - lo < min_overlap:
            continue
        t = _log_rate_at(test[photo], metric, lo, hi)
        r = _log_rate_at(anchor[photo], metric, lo, hi)
        diffs.append(np.exp(np.mean(t - r)) - 1)
    return (100 * float(np.mean(diffs)), len(diffs)) if diffs else (None, 0)


def phase_report(photos, out: Path) -> str:
    curves = {}
    for path in sorted(out.glob("sweep-*.json")):
        codec = path.stem[len("sweep-"):]
        cache = json.loads(path.read_text())
        curves[codec] = {p: [r for r in cache.values() if r["photo"] == p] for p in photos}
    lines = [f"Validation photos: {len(photos)} ({', '.join(photos)})", ""]
    if curves:
        span = f"{MODE_RANGE[0]}-{MODE_RANGE[1]} bpp"
        lines += ["| codec | mean bpp range | BD-rate vs libjpeg-turbo (PSNR) | vs JPEG XL (PSNR) | "
                  f"vs libjpeg-turbo (PSNR, {span}) | vs JPEG XL (PSNR, {span}) | "
                  "vs libjpeg-turbo (SSIMULACRA2) | photos |", "|---|---|---|---|---|---|---|---|"]
        for codec, cv in curves.items():
            bpps = [r["bpp"] for pts in cv.values() for r in pts]
            row = [codec, f"{min(bpps):.3f}-{max(bpps):.3f}" if bpps else "-"]
            n = 0
            for anchor, metric, rng in (("libjpeg-turbo", "psnr", None), ("jxl-e7", "psnr", None),
                                        ("libjpeg-turbo", "psnr", MODE_RANGE), ("jxl-e7", "psnr", MODE_RANGE),
                                        ("libjpeg-turbo", "ssimulacra2", None)):
                if anchor in curves and anchor != codec:
                    v, n = bd_rate(cv, curves[anchor], metric, 0.5 if metric == "psnr" else 3.0, rng)
                    row.append("-" if v is None else f"{v:+.1f} %")
                else:
                    row.append("-")
            row.append(str(n))
            lines.append("| " + " | ".join(row) + " |")
        plot(curves, out)
    matched = json.loads((out / "matched.json").read_text()) if (out / "matched.json").exists() else {}
    for rk, m in matched.items():
        lines += ["", f"Matched bytes at our {rk} (anchors bisected per photo to <= our container bytes):", "",
                  "| codec | bpp | PSNR | PSNR-Y | MS-SSIM | SSIMULACRA2 | butteraugli-3 | SWD x1e3 | C2ST acc | "
                  "HF spectrum | drift PSNR | drift bytes |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for c, s in m["summary"].items():
            lines.append(f"| {c} | {s['bpp']:.3f} | {s['psnr']:.2f} | {s['psnr_y']:.2f} | {s['ms_ssim']:.4f} | "
                         f"{s['ssimulacra2']:.1f} | {s['butteraugli3']:.2f} | {s['swd']:.1f} | "
                         f"{100 * s['c2st']:.0f} % | "
                         f"{s['spectrum']:.2f} | {s['drift_psnr']:.1f} | {100 * s['drift_bytes']:+.1f} % |")
    lines += report_code_edit(photos, out)
    lines += report_ablate_train(photos, out)
    for name in ("ablate-int8.json", "speed.json"):
        if (out / name).exists():
            lines += ["", f"{name}: `{(out / name).read_text().strip()}`"]
    text = "\n".join(lines) + "\n"
    (out / "report.md").write_text(text)
    print(text)
    return text


def plot(curves, out: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for codec, cv in curves.items():
        settings = sorted({r["setting"] for pts in cv.values() for r in pts})
        for ax, metric in zip(axes, ("psnr", "ssimulacra2")):
            xs, ys = [], []
            for s in settings:
                pts = [r for p in cv.values() for r in p if r["setting"] == s]
                if len(pts) == sum(1 for p in cv.values() if p):
                    xs.append(np.mean([r["bpp"] for r in pts]))
                    ys.append(np.mean([r[metric] for r in pts]))
            ax.plot(xs, ys, "o-", label=codec, ms=3)
            ax.set_xlabel("bpp (true bytes)")
            ax.set_ylabel(metric)
            ax.set_xlim(0, 0.8)
            ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    DOCS.mkdir(parents=True, exist_ok=True)
    fig.savefig(DOCS / "rd-curves.png", dpi=90)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("phases", nargs="+", choices=["sweep", "matched", "ablate", "ablate-d", "code-edit",
                                                    "ablate-train", "speed", "report"])
    ap.add_argument("--uncond-ckpt", default="/work/cache/perceptual/gan-uncond/last.pt",
                    help="generator trained with train_perceptual_gan.py --uncond (for ablate-d)")
    ap.add_argument("--out", default="/work/logs/perceptual-bench")
    ap.add_argument("--photos", type=int, default=8, help="first N validation photos (the machine is shared)")
    ap.add_argument("--codecs", default="ours,ours-gan,libjpeg-turbo,jpegli,jxl-e7,avif-s6,webp")
    ap.add_argument("--model", help="perceptual codec id that 'ours' runs in 'sweep' (default: the library's)")
    ap.add_argument("--no-crops", action="store_true")
    ap.add_argument("--speed-steps", default="encode,faithful,perceptual", help="which 12 MP timings to (re)measure")
    ap.add_argument("--rates", default=",".join(str(r) for r in MATCHED_RATES), help="ours' rates for 'matched'")
    ap.add_argument("--steps", type=int, default=100, help="optimisation steps of 'code-edit'")
    ap.add_argument("--crop", type=int, default=256, help="centre crop (px) of each photo for 'code-edit'")
    ap.add_argument("--variants", default="", help="comma-separated subset of the 'code-edit' variants")
    ap.add_argument("--ckpts", default="", help="'ablate-train': label=checkpoint,... (first = the start)")
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    photos = PHOTOS[:args.photos]
    OURS_MODEL[0] = args.model
    for phase in args.phases:
        if phase == "sweep":
            phase_sweep(photos, args.codecs.split(","), out)
        elif phase == "matched":
            MATCHED_RATES[:] = [float(r) for r in args.rates.split(",")]
            phase_matched(photos, out, not args.no_crops)
        elif phase == "ablate":
            phase_ablate(photos, out)
        elif phase == "ablate-d":
            phase_ablate_d(photos, out, Path(args.uncond_ckpt))
        elif phase == "code-edit":
            phase_code_edit(photos, out, args.steps, args.crop, [v for v in args.variants.split(",") if v])
        elif phase == "ablate-train":
            phase_ablate_train(photos, out, [(c.split("=", 1)[0], Path(c.split("=", 1)[1]))
                                             for c in args.ckpts.split(",") if c])
        elif phase == "speed":
            phase_speed(out, tuple(args.speed_steps.split(",")))
        else:
            phase_report(photos, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
