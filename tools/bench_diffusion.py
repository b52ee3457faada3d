"""R-D-P and decode time of the issue-15 diffusion decoders against the faithful (MSE) decoder and anchors.

    OMP_NUM_THREADS=1 nice -n 10 python tools/bench_diffusion.py --crop 128 --rates 1,3 --json out.json

Same stored bytes for every decoder of our codec: each validation photo of tools/image_data.py is cut
to a centre crop (``--crop``; the diffusion decoders are CPU-slow), encoded once per ladder rate, and
decoded by ``faithful``, ``idempotence``, ``cdc`` and ``corrdiff`` (its codes added by
``add_corrdiff``; their bytes are counted). Anchors at the same bytes (quality bisected to at most
the container's size): JPEG (libjpeg-turbo via Pillow) and JPEG XL (imagecodecs).

Fidelity: PSNR (RGB), MS-SSIM (3 scales, 7x7 window: the crops are small), SSIMULACRA2. Realism
without pretrained networks: patch sliced-Wasserstein distance (Laplacian pyramid, 7x7 patches, pooled
over the images; x1e3, lower = closer to the originals' patch statistics) and the high-band spectrum
ratio (power in 0.25-0.5 cycles/px over the original's; 1 = as detailed, < 1 = blur). Idempotence
checks: fraction of y symbols and z values unchanged when the decode is re-encoded (pure DPS and after
the projection), and MSE over the faithful decoder's MSE (the paper's bound: <= 2). Time: seconds per
megapixel on one thread. Scale: tiny models trained for CPU minutes on ~35 photos.
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jpegshrink  # noqa: E402
from jpegshrink.perceptual import _open  # noqa: E402
from jpegshrink.perceptual import diffusion  # noqa: E402
from jpegshrink.perceptual.diffusion import idempotence  # noqa: E402
from jpegshrink.perceptual.diffusion.codec_view import CodecView  # noqa: E402

VAL_DIR = Path("/work/cache/perceptual/val")
DECODERS = ("faithful", "idempotence", "cdc", "corrdiff")


# ---------------------------------------------------------------- metrics
def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return float(10 * np.log10(255 ** 2 / max(mse, 1e-10)))


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b) ** 2))


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    from pytorch_msssim import ms_ssim as f
    t = [torch.from_numpy(x).permute(2, 0, 1)[None].double() for x in (a, b)]
    return float(f(t[0], t[1], data_range=255, win_size=7, weights=[0.3, 0.4, 0.3]))


def ssimulacra2(a: np.ndarray, b: np.ndarray) -> float:
    from PIL import Image
    from ssimulacra2 import compute_ssimulacra2
    files = []
    for x in (a, b):
        buf = io.BytesIO()
        Image.fromarray(x).save(buf, "PNG", compress_level=0)
        buf.seek(0)
        files.append(buf)
    return float(compute_ssimulacra2(*files))


def high_band_ratio(ref: np.ndarray, x: np.ndarray) -> float:
    def band(a):
        g = a.astype(np.float64).mean(axis=2)
        p = np.abs(np.fft.fft2(g - g.mean())) ** 2
        fy, fx = np.meshgrid(np.fft.fftfreq(g.shape[0]), np.fft.fftfreq(g.shape[1]), indexing="ij")
        r = np.hypot(fy, fx)
        return p[(r >= 0.25) & (r <= 0.5)].sum()
    return float(band(x) / max(band(ref), 1e-9))


def _patches(a: np.ndarray, rng: np.random.Generator, per_level: int = 256, levels: int = 3) -> list[np.ndarray]:
    x = torch.from_numpy(a).permute(2, 0, 1)[None].double() / 255
    out = []
    for _ in range(levels):
        low = F.avg_pool2d(x, 2)
        lap = x - F.interpolate(low, scale_factor=2, mode="nearest")
        u = F.unfold(lap, 7)[0].T.numpy()           # (positions, 147)
        out.append(u[rng.choice(len(u), min(per_level, len(u)), replace=False)])
        x = low
    return out


def swd(refs: list[np.ndarray], outs: list[np.ndarray], seed: int = 0, dirs: int = 128) -> float:
    """Sliced Wasserstein distance of Laplacian 7x7 patches, mean over pyramid levels, x1e3."""
    res = []
    per = [[_patches(a, np.random.default_rng(seed + i)) for i, a in enumerate(s)] for s in (refs, outs)]
    for level in range(len(per[0][0])):
        A = np.concatenate([p[level] for p in per[0]])
        B = np.concatenate([p[level] for p in per[1]])
        mu, sd = A.mean(0), A.std(0) + 1e-8
        A, B = (A - mu) / sd, (B - mu) / sd
        d = np.random.default_rng(seed).standard_normal((A.shape[1], dirs))
        d /= np.linalg.norm(d, axis=0)
        pa, pb = np.sort(A @ d, axis=0), np.sort(B @ d, axis=0)
        res.append(np.abs(pa - pb).mean())
    return float(np.mean(res) * 1e3)


# ---------------------------------------------------------------- anchors
def jpeg_at(img: np.ndarray, budget: int) -> tuple[int, np.ndarray]:
    from PIL import Image

    def enc(q):
        b = io.BytesIO()
        Image.fromarray(img).save(b, "JPEG", quality=q, subsampling="4:2:0")
        return b.getvalue()
    best = enc(1)
    for q in range(2, 96):
        data = enc(q)
        if len(data) > budget:
            break
        best = data
    return len(best), np.asarray(Image.open(io.BytesIO(best)).convert("RGB"))


def jxl_at(img: np.ndarray, budget: int) -> tuple[int, np.ndarray]:
    import imagecodecs
    lo, hi = 0.1, 25.0
    best = imagecodecs.jpegxl_encode(img, distance=hi, effort=7)
    for _ in range(12):
        mid = (lo * hi) ** 0.5
        data = imagecodecs.jpegxl_encode(img, distance=mid, effort=7)
        if len(data) <= budget:
            best, hi = data, mid
        else:
            lo = mid
    return len(best), np.asarray(imagecodecs.jpegxl_decode(best))[..., :3]


# ---------------------------------------------------------------- run
def crops(size: int, limit: int | None) -> list[tuple[str, np.ndarray]]:
    from PIL import Image
    out = []
    for p in sorted(VAL_DIR.glob("*.png"))[:limit]:
        a = np.asarray(Image.open(p).convert("RGB"))
        y, x = (a.shape[0] - size) // 2, (a.shape[1] - size) // 2
        out.append((p.stem, np.ascontiguousarray(a[y:y + size, x:x + size])))
    return out


def timed(f, *args, **kw):
    t = time.process_time()
    out = f(*args, **kw)
    return out, time.process_time() - t


def run(args) -> dict:
    torch.set_num_threads(1)
    images = crops(args.crop, args.images)
    mp = args.crop * args.crop / 1e6
    rows = []
    recon: dict[tuple[str, float], list[np.ndarray]] = {}
    for r in [float(v) for v in args.rates.split(",")]:
        for name, img in images:
            quality = None
            from jpegshrink.perceptual import model
            codec = model.load()
            quality = round(100 * r / (codec.rates - 1))
            blob = jpegshrink.encode_image(img, mode="perceptual", quality=quality)
            c, codec, lat = _open(blob)
            stream_bytes = sum(len(s) for s in c.streams)
            outs = {}
            outs["faithful"], t_f = timed(jpegshrink.decode_image, blob, decoder="faithful")
            # idempotence: pure DPS (paper) and with the projection, one sampling run
            view = CodecView(codec, lat.rate)
            p = diffusion._settings({})
            st = dataclasses.replace(p[diffusion.Decoder.IDEMPOTENCE], sampler=dataclasses.replace(
                p[diffusion.Decoder.IDEMPOTENCE].sampler, seed=args.seed))
            shape = (1, 3, 16 * lat.symbols.shape[1], 16 * lat.symbols.shape[2])
            raw, t_dps = timed(lambda: idempotence._to01(idempotence.guided_sample(
                view, lat, diffusion.denoiser(p["prior"]), shape, st)))
            proj, t_proj = timed(idempotence.project, view, lat, raw, st)
            u8 = lambda x: (x[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()[:img.shape[0], :img.shape[1]]
            dps_u8, outs["idempotence"] = u8(raw), u8(proj)
            assert np.array_equal(outs["idempotence"], jpegshrink.decode_image(blob, decoder="idempotence",
                                                                              seed=args.seed)) or not args.check
            back = lambda a: torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1)[None]
            fy_dps, fz_dps = view.unchanged_fraction(back(dps_u8), lat)
            fy, fz = view.unchanged_fraction(back(outs["idempotence"]), lat)
            outs["cdc"], t_cdc = timed(jpegshrink.decode_image, blob, decoder="cdc", seed=args.seed)
            blob_cd, t_cd_enc = timed(diffusion.add_corrdiff, blob, img, seed=args.seed)
            outs["corrdiff"], t_cd = timed(jpegshrink.decode_image, blob_cd, decoder="corrdiff", seed=args.seed)
            n_jpeg, outs["jpeg"] = jpeg_at(img, len(blob))
            n_jxl, outs["jxl"] = jxl_at(img, len(blob))
            sizes = {"faithful": len(blob), "idempotence": len(blob), "cdc": len(blob), "corrdiff": len(blob_cd),
                     "jpeg": n_jpeg, "jxl": n_jxl}
            times = {"faithful": t_f, "idempotence": t_dps + t_proj, "cdc": t_cdc, "corrdiff": t_cd}
            mse_f = mse(img, outs["faithful"])
            by = {}
            for dec, out in outs.items():
                rows.append(by.setdefault(dec, {"image": name, "rate": r, "decoder": dec, "bytes": sizes[dec],
                             "bpp": 8 * sizes[dec] / img.shape[0] / img.shape[1],
                             "stream_bpp": 8 * stream_bytes / img.shape[0] / img.shape[1],
                             "psnr": psnr(img, out), "ms_ssim": ms_ssim(img, out), "ssimulacra2": ssimulacra2(img, out),
                             "hf_ratio": high_band_ratio(img, out), "mse_over_faithful": mse(img, out) / mse_f,
                             "s_per_mp": times.get(dec, float("nan")) / mp}))
                recon.setdefault((dec, r), []).append(out)
            idem, cd = by["idempotence"], by["corrdiff"]
            idem["y_unchanged"], idem["z_unchanged"] = fy, fz          # with the projection
            idem["y_unchanged_dps"], idem["z_unchanged_dps"] = fy_dps, fz_dps
            idem["dps_mse_over_faithful"] = mse(img, dps_u8) / mse_f
            idem["s_per_mp_dps_only"] = t_dps / mp
            cd["codes"] = jpegshrink.inspect(blob_cd).info["diffusion"].get("corrdiff")
            cd["corrdiff_encode_s_per_mp"] = t_cd_enc / mp
            print(json.dumps({"image": name, "rate": r, **{d: {k: round(v, 3) for k, v in x.items()
                                                                if isinstance(v, float)} for d, x in by.items()},
                              "codes": cd["codes"]}), flush=True)
    originals = [img for _, img in images]
    summary = []
    for (dec, r), outs in recon.items():
        sel = [x for x in rows if x["decoder"] == dec and x["rate"] == r]
        s = {"decoder": dec, "rate": r, "n": len(sel), "swd": swd(originals, outs)}
        for k in ("bpp", "stream_bpp", "psnr", "ms_ssim", "ssimulacra2", "hf_ratio", "mse_over_faithful", "s_per_mp",
                  "y_unchanged", "z_unchanged", "y_unchanged_dps", "z_unchanged_dps", "dps_mse_over_faithful",
                  "s_per_mp_dps_only", "corrdiff_encode_s_per_mp"):
            v = [x[k] for x in sel if k in x]
            if v:
                s[k] = float(np.mean(v))
                if k == "mse_over_faithful" or k == "dps_mse_over_faithful":
                    s[k + "_max"] = float(np.max(v))
        summary.append(s)
    return {"args": {k: str(v) for k, v in vars(args).items()}, "crop": args.crop, "images": [n for n, _ in images], "rows": rows, "summary": summary,
            "preset": diffusion.preset_info()}


def table(result: dict) -> str:
    cols = ("decoder", "rate", "bpp", "psnr", "ms_ssim", "ssimulacra2", "swd", "hf_ratio", "mse_over_faithful",
            "s_per_mp")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for s in sorted(result["summary"], key=lambda s: (s["rate"], DECODERS.index(s["decoder"])
                                                      if s["decoder"] in DECODERS else 9)):
        cells = []
        for c in cols:
            v = s.get(c, "")
            cells.append(f"{v:.3f}" if isinstance(v, float) and c not in ("psnr", "ssimulacra2", "s_per_mp", "swd")
                         else f"{v:.1f}" if isinstance(v, float) and v == v else str(v) if v != "" else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--images", type=int, default=None, help="first N validation photos (default: all)")
    ap.add_argument("--rates", default="1,3", help="ladder rates (comma-separated)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check", action="store_true", help="also check decode_image reproduces the bench's decode")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    result = run(args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print(table(result))
    for s in result["summary"]:
        if s["decoder"] == "idempotence":
            print(f"rate {s['rate']}: idempotence re-encode: y unchanged {s['y_unchanged']:.4f} "
                  f"(pure DPS {s['y_unchanged_dps']:.4f}), z unchanged {s['z_unchanged']:.4f} "
                  f"(pure DPS {s['z_unchanged_dps']:.4f}); MSE / faithful MSE mean {s['mse_over_faithful']:.2f} "
                  f"max {s['mse_over_faithful_max']:.2f} (pure DPS mean {s['dps_mse_over_faithful']:.2f} "
                  f"max {s['dps_mse_over_faithful_max']:.2f}); sampling alone {s['s_per_mp_dps_only']:.0f} s/MP")
        if s["decoder"] == "corrdiff":
            print(f"rate {s['rate']}: corrdiff codes search at the encoder {s['corrdiff_encode_s_per_mp']:.0f} s/MP")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
