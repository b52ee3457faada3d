"""R-D-P and decode time of the issue-15 diffusion decoders against the faithful (MSE) decoder and anchors.

    OMP_NUM_THREADS=1 nice -n 10 python tools/bench_diffusion.py --crop 128 --rates 1,3 --json out.json

Same stored bytes for every decoder of our codec: each reported validation photo of issue 14's
tools/bench_perceptual.py is cut to a centre crop (``--crop``: the diffusion decoders are CPU-slow, so
the images are smaller than issue 14's table), encoded once per ladder rate, and decoded by
``faithful``, ``idempotence``, ``cdc`` and ``corrdiff`` (its codes added by ``add_corrdiff``; their
bytes are counted). Anchors at the same bytes, by issue 14's bisection: libjpeg-turbo, jpegli, JPEG XL,
AVIF, WebP. Metrics are issue 14's functions: fidelity (PSNR, PSNR-Y, MS-SSIM, SSIMULACRA2,
butteraugli 3-norm) and realism without pretrained networks (multi-scale patch SWD x1e3, a fresh
real/fake classifier's held-out accuracy, 50 % = indistinguishable; high-band spectrum ratio, 1 = as
detailed as the original, < 1 blur). Idempotence
checks: fraction of y symbols and z values unchanged when the decode is re-encoded (pure DPS and after
the projection), and MSE over the faithful decoder's MSE (the paper's bound: <= 2). Time: seconds per
megapixel on one thread. Scale: tiny models trained for CPU minutes on ~35 photos.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import jpegshrink  # noqa: E402
from jpegshrink.perceptual import _open  # noqa: E402
from jpegshrink.perceptual import diffusion  # noqa: E402
from jpegshrink.perceptual.decoders import UnknownDecoder  # noqa: E402
from jpegshrink.perceptual.diffusion import idempotence  # noqa: E402
from jpegshrink.perceptual.diffusion.codec_view import CodecView  # noqa: E402

VAL_DIR = Path("/work/cache/perceptual/val")
DECODERS = ("faithful", "gan", "idempotence", "cdc", "corrdiff")


# ---------------------------------------------------------------- metrics and anchors: issue 14's harness
from bench_perceptual import ANCHORS, PHOTOS, _bisect_bytes, c2st, fidelity, load, spectrum_ratio, swd  # noqa: E402


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b) ** 2))


# ---------------------------------------------------------------- run
def crops(size: int, limit: int | None) -> list[tuple[str, np.ndarray]]:
    """Centre crops of issue 14's reported validation photos, in its order."""
    out = []
    for name in PHOTOS[:limit]:
        a = load(name)
        y, x = (a.shape[0] - size) // 2, (a.shape[1] - size) // 2
        out.append((name, np.ascontiguousarray(a[y:y + size, x:x + size])))
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
    tmp = Path(tempfile.mkdtemp(prefix="bench-diffusion-"))
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
            try:   # issue 14's GAN decoder on the same bytes, when one is trained for this codec
                outs["gan"], t_gan = timed(jpegshrink.decode_image, blob, decoder="perceptual", seed=args.seed)
            except UnknownDecoder:
                t_gan = None
            outs["cdc"], t_cdc = timed(jpegshrink.decode_image, blob, decoder="cdc", seed=args.seed)
            blob_cd, t_cd_enc = timed(diffusion.add_corrdiff, blob, img, seed=args.seed)
            outs["corrdiff"], t_cd = timed(jpegshrink.decode_image, blob_cd, decoder="corrdiff", seed=args.seed)
            sizes = {"faithful": len(blob), "idempotence": len(blob), "cdc": len(blob), "corrdiff": len(blob_cd),
                     "gan": len(blob)}
            for anchor in args.anchors.split(","):
                _, data, outs[anchor] = _bisect_bytes(anchor, img, len(blob))
                sizes[anchor] = len(data)
            times = {"faithful": t_f, "idempotence": t_dps + t_proj, "cdc": t_cdc, "corrdiff": t_cd, "gan": t_gan}
            mse_f = mse(img, outs["faithful"])
            by = {}
            for dec, out in outs.items():
                rows.append(by.setdefault(dec, {"image": name, "rate": r, "decoder": dec, "bytes": sizes[dec],
                             "bpp": 8 * sizes[dec] / img.shape[0] / img.shape[1],
                             "stream_bpp": 8 * stream_bytes / img.shape[0] / img.shape[1],
                             **fidelity(img, out, tmp), "spectrum": spectrum_ratio(img, out),
                             "mse_over_faithful": mse(img, out) / mse_f,
                             "s_per_mp": (times.get(dec) or float("nan")) / mp}))
                recon.setdefault((dec, r), []).append(out)
            idem, cd = by["idempotence"], by["corrdiff"]
            idem["y_unchanged"], idem["z_unchanged"] = fy, fz          # with the projection
            idem["y_unchanged_dps"], idem["z_unchanged_dps"] = fy_dps, fz_dps
            idem["dps_mse_over_faithful"] = mse(img, dps_u8) / mse_f
            idem["s_per_mp_dps_only"] = t_dps / mp
            cd["codes"] = jpegshrink.inspect(blob_cd).info.get("corrdiff")
            cd["corrdiff_encode_s_per_mp"] = t_cd_enc / mp
            print(json.dumps({"image": name, "rate": r, **{d: {k: round(v, 3) for k, v in x.items()
                                                                if isinstance(v, float)} for d, x in by.items()},
                              "codes": cd["codes"]}), flush=True)
    originals = [img for _, img in images]
    summary = []
    for (dec, r), outs in recon.items():
        sel = [x for x in rows if x["decoder"] == dec and x["rate"] == r]
        s = {"decoder": dec, "rate": r, "n": len(sel), "swd": swd(originals, outs), "c2st": c2st(originals, outs)}
        for k in ("bpp", "stream_bpp", "psnr", "psnr_y", "ms_ssim", "ssimulacra2", "butteraugli3", "spectrum", "mse_over_faithful", "s_per_mp",
                  "y_unchanged", "z_unchanged", "y_unchanged_dps", "z_unchanged_dps", "dps_mse_over_faithful",
                  "s_per_mp_dps_only", "corrdiff_encode_s_per_mp"):
            v = [x[k] for x in sel if x.get(k) is not None]
            if v:
                s[k] = float(np.mean(v))
                if k == "mse_over_faithful" or k == "dps_mse_over_faithful":
                    s[k + "_max"] = float(np.max(v))
        summary.append(s)
    return {"args": {k: str(v) for k, v in vars(args).items()}, "crop": args.crop, "images": [n for n, _ in images], "rows": rows, "summary": summary,
            "preset": diffusion.preset_info()}


def table(result: dict) -> str:
    cols = ("decoder", "rate", "bpp", "stream_bpp", "psnr", "ms_ssim", "ssimulacra2", "butteraugli3", "swd", "c2st",
            "spectrum", "mse_over_faithful", "s_per_mp")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for s in sorted(result["summary"], key=lambda s: (s["rate"], DECODERS.index(s["decoder"])
                                                      if s["decoder"] in DECODERS else 9)):
        cells = []
        for c in cols:
            v = s.get(c, "")
            if isinstance(v, float) and v != v:
                v = ""
            cells.append(f"{v:.3f}" if isinstance(v, float) and c not in ("psnr", "ssimulacra2", "s_per_mp", "swd")
                         else f"{v:.1f}" if isinstance(v, float) else str(v) if v != "" else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--images", type=int, default=None, help="first N validation photos (default: all)")
    ap.add_argument("--rates", default="1,3", help="ladder rates (comma-separated)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--anchors", default=",".join(ANCHORS), help=f"comma-separated, of {', '.join(ANCHORS)}")
    ap.add_argument("--check", action="store_true", help="also check decode_image reproduces the bench's decode")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--report", type=Path, nargs="+", default=None,
                    help="no run: print the tables of these --json results together (e.g. one per rate)")
    args = ap.parse_args(argv)
    if args.report:
        parts = [json.loads(p.read_text()) for p in args.report]
        result = {**parts[0], "summary": [s for p in parts for s in p["summary"]]}
    else:
        result = run(args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print(table(result))
    for s in sorted(result["summary"], key=lambda s: s["rate"]):
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
