"""Rate-distortion benchmark of the lossy high-bitrate mode against real codecs, on real photos.

Photos: high-quality JPEGs of the corpus (/work/corpus, MANIFEST.tsv), decoded and box-downscaled by an
integer factor >= 2 (to about 0.25 MP) so their own JPEG artefacts vanish. Two disjoint sets, split by
source package: TUNING (the only photos the encoder's defaults were chosen on) and HELDOUT (the
numbers we report). Bits per pixel come from the true stored bytes (for jpegshrink: the container).

Codecs (anchors run in the same process, same photos): this mode; libjpeg-turbo (Pillow, 4:2:0,
optimised Huffman); jpegli (pyjpegli); both + jpegshrink lossless; JPEG XL (imagecodecs, effort 7);
AVIF (imagecodecs, speed 4 and 6); WebP (imagecodecs). Metrics: SSIMULACRA2 (PyPI ssimulacra2),
butteraugli 3-norm (butteraugli_main, skipped with a note if absent), PSNR-Y, MS-SSIM (luma, Wang et al.).

    nice python tools/bench_lossy.py --set heldout --out /work/logs/lossy-bench   # table + plots
    nice python tools/bench_lossy.py --set tuning --only ours --ours lam_milli=60  # a tuning probe
    nice python tools/bench_lossy.py --speed                                     # 12 MP, one core
    nice python tools/bench_lossy.py --restore --photos 4                        # decode_image(restore=True)

Results are cached per (photo, codec, setting) in <out>/cache-<set>-<codec>.json, so re-running with
another setting of ours only measures what changed; records of ours name the encoder version
(lossy.ENCODER_ID) and the JPEG layout version, and those of another version are measured again, never
mixed into a report.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CORPUS = Path(os.environ.get("JPEGSHRINK_CORPUS_ROOT", "/work/corpus"))
#: (package, path suffix) of each photo. Split by package: no tuning photo shares a source with a held-out one.
TUNING = [("plasma-workspace-wallpapers", p) for p in (
    "summer_1am/contents/images/2560x1600.jpg", "Path/contents/images/2560x1600.jpg",
    "ColorfulCups/contents/images/2560x1600.jpg", "BytheWater/contents/images/2560x1600.jpg",
    "FallenLeaf/contents/images/2560x1600.jpg", "Autumn/contents/images/2560x1600.jpg")]
HELDOUT = [  # the first four are the reported set (--photos 4: the shared machine allows no more today)
    ("lomiri-wallpapers-16.04", "seeding_by_Clements_Engelhardt.jpg"),
    ("lomiri-wallpapers-16.04", "Dragonfly_by_Bolly.jpg"),
    ("librust-jpeg-decoder-dev", "large_image.jpg"),
    ("libjxl-testdata", "flower.png.im_q85_444.jpg"),
    ("lomiri-wallpapers-16.04", "sunset_by_Aitzol_Berasategi.jpg"),
    ("lomiri-wallpapers-16.04", "Bridge_by_Sander_Klootwijk.jpg"),
    ("lomiri-wallpapers-16.04", "picosdeeuropa_by_Aitzol_Berasategi.jpg"),
    ("lxqt-themes", "after-the-rain.jpg"),
]
TARGET_MP = 0.25

#: Settings swept per codec (chosen to span SSIMULACRA2 ~65..92 and bpp ~0.5..4).
SWEEPS = {
    "ours": [35, 45, 55, 65, 75, 85, 92, 97],   # 35-55 since lossy-3 (its q65 scores ~80)
    "libjpeg-turbo": [65, 78, 88, 94, 98],
    "jpegli": [65, 78, 88, 94, 98],
    "jxl-e7": [2.6, 1.6, 1.0, 0.6, 0.35],
    "avif-s4": [62, 75, 84, 90, 95],
    "avif-s6": [62, 75, 84, 90, 95],
    "webp": [72, 85, 92, 96, 99],
}
#: Reported curves: (name, base codec whose pixels it shares, whether its bytes are jpegshrink-stored).
CURVES = [("ours", "ours", False), ("libjpeg-turbo", "libjpeg-turbo", False),
          ("libjpeg-turbo+jpegshrink", "libjpeg-turbo", True), ("jpegli", "jpegli", False),
          ("jpegli+jpegshrink", "jpegli", True), ("jxl-e7", "jxl-e7", False), ("avif-s4", "avif-s4", False),
          ("avif-s6", "avif-s6", False), ("webp", "webp", False)]
METRICS = ("ssimulacra2", "butteraugli3", "psnr_y", "ms_ssim")


def manifest_path(package: str, suffix: str) -> Path:
    with open(CORPUS / "MANIFEST.tsv") as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            row = dict(zip(header, line.rstrip("\n").split("\t")))
            if row["split"] == "public" and row["source_package"] == package and row["source_path"].endswith(suffix):
                return CORPUS / "public" / row["name"]
    raise SystemExit(f"photo {package}:{suffix} is not in {CORPUS}/MANIFEST.tsv")


def photo_name(package: str, suffix: str) -> str:
    return f"{package}:{suffix.replace('/contents/images/', '/').rsplit('.', 1)[0]}"


def load_photo(package: str, suffix: str) -> tuple[str, np.ndarray]:
    from PIL import Image
    path = manifest_path(package, suffix)
    img = Image.open(path).convert("RGB")
    factor = max(2, round((img.width * img.height / 1e6 / TARGET_MP) ** 0.5))
    img = img.reduce(factor)
    name = photo_name(package, suffix)
    return name, np.ascontiguousarray(np.asarray(img)[: img.height // 2 * 2, : img.width // 2 * 2])


# ---------------------------------------------------------------- codecs: pixels -> (bytes, decoded pixels)

#: The coefficient model our containers are stored with (``--model``; None = the library default).
OURS_MODEL: list[str | None] = [None]


def codec_ours(a, q, options):
    import jpegshrink
    blob = jpegshrink.encode_image(a, quality=int(q), measure=False, model_id=OURS_MODEL[0], **options)
    return blob, jpegshrink.decode_image(blob)


def _pillow_decode(data):
    import io
    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def codec_turbo(a, q, _):
    import io
    from PIL import Image
    b = io.BytesIO()
    Image.fromarray(a).save(b, "JPEG", quality=int(q), optimize=True)
    return b.getvalue(), _pillow_decode(b.getvalue())


def codec_jpegli(a, q, _):
    import pyjpegli
    data = pyjpegli.encode(a.tobytes(), a.shape[1], a.shape[0], int(q))
    return data, _pillow_decode(data)


def codec_jxl(a, d, _):
    import imagecodecs
    data = imagecodecs.jpegxl_encode(a, effort=7, distance=float(d), numthreads=1)
    return data, imagecodecs.jpegxl_decode(data)


def _avif(speed):
    def enc(a, q, _):
        import imagecodecs
        data = imagecodecs.avif_encode(a, level=int(q), speed=speed, numthreads=1)
        return data, imagecodecs.avif_decode(data)
    return enc


def codec_webp(a, q, _):
    import imagecodecs
    data = imagecodecs.webp_encode(a, level=int(q), lossless=False, method=6)
    return data, imagecodecs.webp_decode(data)


CODECS = {"ours": codec_ours, "libjpeg-turbo": codec_turbo, "jpegli": codec_jpegli, "jxl-e7": codec_jxl,
          "avif-s4": _avif(4), "avif-s6": _avif(6), "webp": codec_webp}


# ---------------------------------------------------------------- metrics

def luma(a):
    a = a.astype(np.float64)
    return 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]


def psnr_y(a, b):
    """PSNR of (unrounded, float) BT.601 luma, in dB."""
    return float(10 * np.log10(255.0 ** 2 / max(np.mean((luma(a) - luma(b)) ** 2), 1e-12)))


def ms_ssim(a, b):
    """MS-SSIM of luma (Wang, Simoncelli, Bovik 2003): 5 scales, 11x11 Gaussian sigma 1.5, standard weights."""
    from scipy.ndimage import gaussian_filter
    weights = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]
    x, y = luma(a), luma(b)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for i, w in enumerate(weights):
        f = lambda z: gaussian_filter(z, 1.5, truncate=3.5)  # noqa: E731
        mx, my = f(x), f(y)
        sxx, syy, sxy = f(x * x) - mx * mx, f(y * y) - my * my, f(x * y) - mx * my
        cs = np.mean((2 * sxy + c2) / (sxx + syy + c2))
        if i == len(weights) - 1:
            ssim = np.mean(((2 * mx * my + c1) / (mx * mx + my * my + c1)) * (2 * sxy + c2) / (sxx + syy + c2))
            vals.append(max(ssim, 1e-9) ** w)
        else:
            vals.append(max(cs, 1e-9) ** w)
            h, wd = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
            x = (x[:h:2, :wd:2] + x[1:h:2, :wd:2] + x[:h:2, 1:wd:2] + x[1:h:2, 1:wd:2]) / 4
            y = (y[:h:2, :wd:2] + y[1:h:2, :wd:2] + y[:h:2, 1:wd:2] + y[1:h:2, 1:wd:2]) / 4
    return float(np.prod(vals))


def butteraugli(ref, dist, tmp: Path) -> float | None:
    """Butteraugli 3-norm from libjxl's ``butteraugli_main`` (None where the tool is not installed)."""
    from PIL import Image
    if not shutil.which("butteraugli_main"):
        return None
    Image.fromarray(ref).save(tmp / "ref.png")
    Image.fromarray(dist).save(tmp / "dist.png")
    r = subprocess.run(["butteraugli_main", str(tmp / "ref.png"), str(tmp / "dist.png"), "--pnorm", "3"],
                       capture_output=True, text=True, timeout=600)
    for line in r.stdout.splitlines():
        if line.startswith("3-norm:"):
            return float(line.split(":")[1])
    return None


def scores(ref, dist, tmp: Path, quick: bool = False) -> dict:
    """All metrics (``quick``: SSIMULACRA2 and PSNR-Y only, for tuning probes)."""
    from jpegshrink.lossy import metrics
    return {"ssimulacra2": metrics.ssimulacra2(ref, dist), "psnr_y": psnr_y(ref, dist),
            "ms_ssim": None if quick else ms_ssim(ref, dist),
            "butteraugli3": None if quick else butteraugli(ref, dist, tmp)}


# ---------------------------------------------------------------- runs

def run_set(photos, only, ours_options, out: Path, set_name: str, quick: bool = False) -> None:
    """Measure every (photo, codec, setting) not yet in the codec's cache file (one file per codec, so
    runs of different codecs may go on in parallel)."""
    import jpegshrink
    opt_key = ",".join(f"{k}={v}" for k, v in sorted(ours_options.items()))
    tmp = Path(tempfile.mkdtemp(prefix="bench_lossy_"))
    try:
        for package, suffix in photos:
            name, a = load_photo(package, suffix)
            pixels = a.shape[0] * a.shape[1]
            for codec in only:
                tag = codec + (f"-{opt_key}" if codec == "ours" and opt_key else "")
                cache_path = out / f"cache-{set_name}-{tag}.json"
                cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
                for setting in SWEEPS[codec]:
                    key = f"{name}|{codec}|{setting}|{opt_key if codec == 'ours' else ''}"
                    if key in cache and (quick or cache[key]["ms_ssim"] is not None) and _current(cache[key]):
                        continue
                    t = time.perf_counter()
                    data, dec = CODECS[codec](a, setting, ours_options if codec == "ours" else {})
                    elapsed = time.perf_counter() - t
                    rec = {"photo": name, "codec": codec, "setting": setting, **_encoder_field(codec),
                           "options": opt_key if codec == "ours" else "", "pixels": pixels, "bytes": len(data),
                           "seconds": elapsed, **scores(a, dec, tmp, quick)}
                    if codec in ("libjpeg-turbo", "jpegli"):
                        rec["stored_bytes"] = len(jpegshrink.compress(data))
                    cache[key] = rec
                    print(f"{name:55s} {codec:14s} {setting!s:5s} {8 * len(data) / pixels:6.3f} bpp "
                          f"s2={rec['ssimulacra2']:6.2f} psnr={rec['psnr_y']:6.2f}", flush=True)
                    cache_path.write_text(json.dumps(cache, indent=0))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _encoder_field(codec: str) -> dict:
    """Our records name the encoder version that made the JPEG (lossy.ENCODER_ID) and the newest JPEG
    layout blob version, which decides how the container stores it (version 2 leaves out the Huffman
    tables: the same JPEG, fewer bytes)."""
    from jpegshrink.jpeg import layout
    from jpegshrink.lossy import ENCODER_ID
    # (a jpegshrink from before layout version 2, measured for a before/after, writes version 1)
    if codec != "ours":
        return {}
    field = {"encoder": ENCODER_ID, "layout": getattr(layout, "NEWEST_VERSION", 1)}
    if OURS_MODEL[0]:  # (records of the default model carry no model field)
        field["model"] = OURS_MODEL[0]
    return field


def _current(rec: dict) -> bool:
    """False for a cached record of ours made by another encoder or layout version (re-measured, never reported)."""
    want = _encoder_field("ours")
    return rec["codec"] != "ours" or (all(rec.get(k) == v for k, v in want.items())
                                      and rec.get("model") == want.get("model"))


def load_cache(out: Path, set_name: str) -> dict:
    cache = {}
    for path in sorted(out.glob(f"cache-{set_name}-*.json")):
        cache.update(json.loads(path.read_text()))
    return cache


def curves(cache: dict, photos: list[str], opt_key: str) -> dict:
    """{curve: {photo: [(bpp, metrics...)]}} from the cache."""
    out = {c: {p: [] for p in photos} for c, _, _ in CURVES}
    for rec in cache.values():
        if rec["photo"] not in photos or (rec["codec"] == "ours" and (rec.get("options", "") != opt_key
                                                                      or not _current(rec))):
            continue
        for name, base, stored in CURVES:
            if base != rec["codec"]:
                continue
            size = rec["stored_bytes"] if stored else rec["bytes"]
            point = {"bpp": 8 * size / rec["pixels"], **{m: rec[m] for m in METRICS}}
            # BD-rate needs "higher is better": negated butteraugli, MS-SSIM in dB
            point["neg_butteraugli3"] = None if rec["butteraugli3"] is None else -rec["butteraugli3"]
            point["ms_ssim_db"] = None if rec["ms_ssim"] is None else -10 * np.log10(max(1 - rec["ms_ssim"], 1e-9))
            out[name][rec["photo"]].append(point)
    return out


def _monotone(points, metric):
    """(metric values, log bpp) of a curve, keeping points where the metric strictly rises with the rate."""
    xs, ys = [], []
    for x, y in sorted((p[metric], np.log(p["bpp"])) for p in points if p[metric] is not None):
        if not xs or (x > xs[-1] and y > ys[-1]):
            xs.append(x)
            ys.append(y)
    return xs, ys


def _log_rate_at(points, metric, lo, hi, n=64):
    """log(bpp) at n metric values in [lo, hi] (monotone piecewise-cubic in metric), or None if not covered."""
    from scipy.interpolate import PchipInterpolator
    xs, ys = _monotone(points, metric)
    if len(xs) < 2 or xs[0] > lo or xs[-1] < hi:
        return None
    return PchipInterpolator(xs, ys)(np.linspace(lo, hi, n))


#: Narrowest metric interval a per-photo BD-rate is computed over, per metric.
MIN_OVERLAP = {"ssimulacra2": 3.0, "psnr_y": 1.0, "neg_butteraugli3": 0.2, "ms_ssim_db": 1.0}


def bd_rate(test, anchor, metric, lo, hi):
    """Mean over photos of the Bjontegaard rate difference (percent) of ``test`` against ``anchor``, each
    photo over the part of [lo, hi] that both of its curves cover (at least MIN_OVERLAP wide)."""
    diffs = []
    for photo in test:
        tx, _ = _monotone(test[photo], metric)
        ax, _ = _monotone(anchor[photo], metric)
        if len(tx) < 2 or len(ax) < 2:
            continue
        a, b = max(lo, tx[0], ax[0]), min(hi, tx[-1], ax[-1])
        if b - a < MIN_OVERLAP[metric]:
            continue
        t = _log_rate_at(test[photo], metric, a, b)
        r = _log_rate_at(anchor[photo], metric, a, b)
        diffs.append(np.exp(np.mean(t - r)) - 1)
    return (100 * float(np.mean(diffs)), len(diffs)) if diffs else (None, 0)


def psnr_range_above(points_by_curve, photo, bpp_min):
    """PSNR-Y range over which every curve of the comparison spends more than ``bpp_min``."""
    lo, hi = -np.inf, np.inf
    for pts in points_by_curve:
        p = sorted(pts[photo], key=lambda r: r["bpp"])
        if not p:
            return None
        xs = [r["bpp"] for r in p]
        ys = [r["psnr_y"] for r in p]
        lo = max(lo, float(np.interp(bpp_min, xs, ys)))
        hi = min(hi, max(ys))
    return (lo, hi) if hi > lo + 0.25 else None


def bd_rate_psnr(test, anchor, bpp_min=0.9):
    diffs = []
    for photo in test:
        rng = psnr_range_above([test, anchor], photo, bpp_min)
        if rng is None:
            continue
        t = _log_rate_at(test[photo], "psnr_y", *rng)
        a = _log_rate_at(anchor[photo], "psnr_y", *rng)
        if t is not None and a is not None:
            diffs.append(np.exp(np.mean(t - a)) - 1)
    return (100 * float(np.mean(diffs)), len(diffs)) if diffs else (None, 0)


def report(cache, photos, opt_key, out: Path, s2_range: tuple[int, int] = (70, 90)) -> str:
    cv = curves(cache, photos, opt_key)
    lo, hi = s2_range
    lines = [f"| ours vs | BD-rate SSIMULACRA2 {lo}-{hi} | photos | BD-rate PSNR-Y where bpp > 0.9 | photos "
             "| BD-rate butteraugli 3-norm 0.6-2.0 | photos | BD-rate MS-SSIM 20-35 dB | photos |",
             "|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda v: "n/a" if v is None else f"{v:+.1f} %"  # noqa: E731
    for name, _, _ in CURVES[1:]:
        s, ns = bd_rate(cv["ours"], cv[name], "ssimulacra2", lo, hi)
        p, np_ = bd_rate_psnr(cv["ours"], cv[name])
        b, nb = bd_rate(cv["ours"], cv[name], "neg_butteraugli3", -2.0, -0.6)
        m, nm = bd_rate(cv["ours"], cv[name], "ms_ssim_db", 20, 35)
        lines.append(f"| {name} | {fmt(s)} | {ns} | {fmt(p)} | {np_} | {fmt(b)} | {nb} | {fmt(m)} | {nm} |")
    lines += ["", "Mean bpp at equal SSIMULACRA2 (per-photo interpolation, photos covering the value):", "",
              "| SSIMULACRA2 | " + " | ".join(n for n, _, _ in CURVES) + " |", "|---" * (len(CURVES) + 1) + "|"]
    for target in (70, 80, 85, 90):
        row = []
        for name, _, _ in CURVES:
            vals = [np.exp(v[0]) for v in (_log_rate_at(cv[name][p], "ssimulacra2", target, target, 1)
                                           for p in photos) if v is not None]
            row.append(f"{np.mean(vals):.2f} ({len(vals)})" if vals else "n/a")
        lines.append(f"| {target} | " + " | ".join(row) + " |")
    if not shutil.which("butteraugli_main"):
        lines.append("\nbutteraugli_main not installed: butteraugli 3-norm not measured.")
    plot(cv, photos, out)
    return "\n".join(lines)


def plot(cv, photos, out: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: pip install matplotlib for the plots", file=sys.stderr)
        return
    for metric in METRICS:
        fig, ax = plt.subplots(figsize=(7, 5))
        for name, _, _ in CURVES:
            grid = np.linspace(0.4, 4.0, 40)
            ys = []
            for p in photos:
                pts = sorted((r["bpp"], r[metric]) for r in cv[name][p] if r[metric] is not None)
                if len(pts) >= 2:
                    ys.append(np.interp(np.log(grid), np.log([x for x, _ in pts]), [y for _, y in pts],
                                        left=np.nan, right=np.nan))
            if ys:
                ax.plot(grid, np.nanmean(np.array(ys), axis=0), label=name,
                        lw=2.5 if name == "ours" else 1.2)
        ax.set_xscale("log")
        ax.set_xlabel("bits per pixel (true bytes)")
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} vs rate, {len(photos)} held-out photos (mean over photos)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.savefig(out / f"rd_{metric}.png", dpi=100, bbox_inches="tight")
        plt.close(fig)


def speed(out: Path, repeat: int = 1, only: tuple[str, ...] = ("ours", "jpegli", "jxl-e7", "avif-s4", "avif-s6"),
          options: dict | None = None) -> str:
    """Encode/decode MP/s on one core for a 12 MP photo (4000 x 3000 crop of a held-out photo).

    Each timing is the best of ``repeat`` runs (after one small warm-up encode); MP/s are from wall time,
    and our encoder's CPU seconds are printed too (on a shared machine they are the figure to compare).
    ``only``: the anchors to time besides ours (names of SWEEPS; webp and libjpeg-turbo are not timed).
    ``options``: Settings fields for ours (``--ours``), e.g. an older encoder's settings to compare with.
    """
    options = options or {}
    os.environ.setdefault("JPEGSHRINK_THREADS", "1")
    import imagecodecs
    import pyjpegli
    from PIL import Image
    import jpegshrink
    img = Image.open(manifest_path(*HELDOUT[0])).convert("RGB")
    a = np.ascontiguousarray(np.asarray(img)[:3000, :4000])
    mp = a.shape[0] * a.shape[1] / 1e6
    rows = []

    cpu = {}

    def timed(f, key=None):
        best = None
        for _ in range(repeat):
            t, c = time.perf_counter(), time.process_time()
            r = f()
            t, c = time.perf_counter() - t, time.process_time() - c
            best = min(best or (t, c), (t, c))
        if key:
            cpu[key] = best[1]
        return r, best[0]

    jpegshrink.encode_image(a[:64, :64], quality=91, measure=False)  # warm-up: imports, any JIT compilation
    blob, te = timed(lambda: jpegshrink.encode_image(a, quality=91, measure=False, **options), "encode")
    _, td = timed(lambda: jpegshrink.decompress(blob))
    _, tp = timed(lambda: jpegshrink.decode_image(blob))
    rows.append(("ours q91 (container)", len(blob), te, td, tp))
    if "jpegli" in only:
        data, te = timed(lambda: pyjpegli.encode(a.tobytes(), a.shape[1], a.shape[0], 90))
        _, tp = timed(lambda: _pillow_decode(data))
        rows.append(("jpegli q90 (JPEG)", len(data), te, None, tp))
    if "jxl-e7" in only:
        data, te = timed(lambda: imagecodecs.jpegxl_encode(a, effort=7, distance=1.0, numthreads=1))
        _, tp = timed(lambda: imagecodecs.jpegxl_decode(data, numthreads=1))
        rows.append(("JPEG XL e7 d1.0", len(data), te, None, tp))
    for s in (4, 6):
        if f"avif-s{s}" not in only:
            continue
        data, te = timed(lambda: imagecodecs.avif_encode(a, level=86, speed=s, numthreads=1))
        _, tp = timed(lambda: imagecodecs.avif_decode(data, numthreads=1))
        rows.append((f"AVIF s{s} q86", len(data), te, None, tp))
    lines = [f"{a.shape[1]}x{a.shape[0]} = {mp:.1f} MP, one thread (JPEGSHRINK_THREADS=1, numthreads=1), best of "
             f"{repeat}; ours{' ' + str(options) if options else ''}: encode {cpu['encode']:.2f} CPU s, container sha256 "
             f"{hashlib.sha256(blob).hexdigest()[:16]}", "",
             "| codec | bpp | encode MP/s | decode to JPEG bytes MP/s | decode to pixels MP/s |",
             "|---|---|---|---|---|"]
    for name, size, te, td, tp in rows:
        lines.append(f"| {name} | {8 * size / (mp * 1e6):.2f} | {mp / te:.2f} | "
                     f"{'-' if td is None else f'{mp / td:.2f}'} | {mp / tp:.2f} |")
    return "\n".join(lines)


def restore_gain(photos, qualities=(65, 75, 85, 92), model: str | bool = True) -> str:
    """What ``decode_image(blob, restore=...)`` buys on ``photos``: PSNR-Y, PSNR (RGB) and SSIMULACRA2 of
    our lossy mode's pixels without and with the filter, mean over photos per quality; filter speed."""
    os.environ.setdefault("JPEGSHRINK_THREADS", "1")
    import torch

    import jpegshrink
    from jpegshrink.lossy import metrics, restore
    torch.set_num_threads(1)
    rows: dict[int, list] = {q: [] for q in qualities}
    seconds = pixels = 0.0
    for package, suffix in photos:
        _, a = load_photo(package, suffix)
        for q in qualities:
            blob = jpegshrink.encode_image(a, quality=q, measure=False)
            plain = jpegshrink.decode_image(blob)
            t = time.perf_counter()
            fixed = jpegshrink.decode_image(blob, restore=model)
            seconds += time.perf_counter() - t
            pixels += a.shape[0] * a.shape[1]
            rgb_psnr = [10 * np.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - d) ** 2)) for d in (plain, fixed)]
            rows[q].append((8 * len(blob) / (a.shape[0] * a.shape[1]), psnr_y(a, plain), psnr_y(a, fixed), *rgb_psnr,
                            metrics.ssimulacra2(a, plain), metrics.ssimulacra2(a, fixed)))
    name = restore.DEFAULT if model is True else model
    lines = [f"restoration model {name}, {len(photos)} photos ({', '.join(photo_name(*p) for p in photos)}); "
             f"filter (decode_image with minus without restore, 1 thread): {pixels / 1e6 / seconds:.2f} MP/s", "",
             "| quality | bpp | PSNR-Y | PSNR-Y restored | PSNR RGB | PSNR RGB restored | SSIMULACRA2 | SSIMULACRA2 restored |",
             "|---|---|---|---|---|---|---|---|"]
    for q in qualities:
        m = np.mean(np.array(rows[q]), axis=0)
        lines.append(f"| {q} | {m[0]:.2f} | {m[1]:.2f} | {m[2]:.2f} ({m[2] - m[1]:+.2f}) | {m[3]:.2f} | "
                     f"{m[4]:.2f} ({m[4] - m[3]:+.2f}) | {m[5]:.2f} | {m[6]:.2f} ({m[6] - m[5]:+.2f}) |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", choices=("heldout", "tuning"), default="heldout")
    ap.add_argument("--only", default=",".join(SWEEPS), help="comma-separated codecs to run")
    ap.add_argument("--ours", action="append", default=[], help="Settings field=value for ours (tuning)")
    ap.add_argument("--photos", type=int, default=0, help="first N photos of the set only (0 = all)")
    ap.add_argument("--out", type=Path, default=Path("/work/logs/lossy-bench"))
    ap.add_argument("--quick", action="store_true", help="SSIMULACRA2 and PSNR only (tuning probes)")
    ap.add_argument("--s2-range", default="70,90", metavar="LO,HI",
                    help="SSIMULACRA2 range of the BD-rate column (e.g. 70,80: the low end, where a container's "
                         "fixed bytes weigh most); other than 70,90 the report is report-<set>-s2-LO-HI.md")
    ap.add_argument("--model", help="coefficient model id our containers are stored with (default: the library's; "
                                    "the +jpegshrink anchors keep theirs)")
    ap.add_argument("--speed", action="store_true", help="12 MP one-core speed table instead")
    ap.add_argument("--repeat", type=int, default=1, help="--speed: best of this many runs per timing")
    ap.add_argument("--restore", nargs="?", const=True, default=None, metavar="MODEL",
                    help="measure decode_image(restore=True or MODEL) on the set instead (held-out by default)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    OURS_MODEL[0] = args.model
    options = {}
    for kv in args.ours:
        k, v = kv.split("=", 1)
        options[k] = v if k in ("subsampling", "tables") else int(v)
    if args.speed:
        print(speed(args.out, args.repeat, tuple(args.only.split(",")), options))
        return 0
    if args.restore is not None:
        photos = (HELDOUT if args.set == "heldout" else TUNING)[:args.photos or None]
        text = restore_gain(photos, model=args.restore)
        (args.out / f"restore-{args.set}.md").write_text(text + "\n")
        print(text)
        return 0
    photos = (HELDOUT if args.set == "heldout" else TUNING)
    if args.photos:
        photos = photos[:args.photos]
    only = [c for c in args.only.split(",") if c]
    run_set(photos, only, options, args.out, args.set, args.quick)
    cache = load_cache(args.out, args.set)
    names = [photo_name(p, s) for p, s in photos]
    opt_key = ",".join(f"{k}={v}" for k, v in sorted(options.items()))
    lo, hi = (int(v) for v in args.s2_range.split(","))
    text = report(cache, names, opt_key, args.out, (lo, hi))
    suffix = "" if (lo, hi) == (70, 90) else f"-s2-{lo}-{hi}"
    (args.out / f"report-{args.set}{suffix}.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
