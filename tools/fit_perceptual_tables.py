"""Fit a perceptual codec's coding tables to the symbols its encoder really writes; a new weight file.

Why: export.py builds y's table per scale level from the Gaussian the codec was trained with, and z's
per channel from the factorised prior trained beside it (the same for every rate). The symbols the
encoder writes on whole photos are not quite that: the hyperprior's Gaussian is an approximation, the
rate-distortion optimised rounding (jpegshrink/perceptual/rounding.py) puts more of them on zero, z's
prior was trained on 128 px patches (where every z is an edge one), and a low rate's z are far more
concentrated than a high one's. So y's tables are refitted, and z gets **one table set per ladder rate**
(the decoder picks the set of a container's rate, its nearest rung: ``entropy.Tables.z_set``).

What it does: encodes the training photos (``tools/image_data.py``'s train split, downscaled as for
training, at most ``--max-side`` pixels square from the centre; never the validation photos) at every
ladder rate with the codec's default encoder, counts each scale level's y symbols and each (rate,
channel)'s z symbols, and makes each table ``(counts + PRIOR x old table) / (n + PRIOR)`` (the old table
carries the levels and tails the photos rarely reach), quantised to 16-bit frequencies exactly as
export.py does. The rounding reads the tables, so the fit is repeated ``--rounds`` times with the fitted
tables. Everything else in the file (transforms, integer hyper-decoder) is copied unchanged; the meta
records the fit. The result is a new id (``hp1-<sha8>``), registered like any codec.

Its output for hp1-c925b62f (-> hp1-ddbabc36; in-sample, 78 photos x 6 rates): y 26.02 M bits under
the Gaussian tables, 23.82 M fitted, 23.49 M once the rounding re-chose with them; z 5.29 M -> 2.92 M. On
the validation photos (tools/bench_perceptual.py, BENCHMARKS.md) the BD-rate against libjpeg-turbo on
PSNR went -17.3 -> -25.3 % (whole range), -21.7 -> -27.6 % at 0.05-0.5 bpp. (A first version fitted on
128 px training crops gained only 3 points there, and its per-rate z tables lost against one z set:
crops misrepresent z.)

    OMP_NUM_THREADS=1 python tools/fit_perceptual_tables.py --model hp1-c925b62f
"""
from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jpegshrink.perceptual import export, model  # noqa: E402

#: Pseudo-counts of the old table in each fitted table.
PRIOR = 500


def training_photos(max_side: int) -> list[np.ndarray]:
    """The training split of tools/image_data.py, each downscaled photo cut to at most max_side^2 from its
    centre. Whole photos, not the 136 px training crops: z sits at 1/64 resolution, and in a crop every
    z is an edge one (fitted on crops, per-rate z tables came out worse on whole photos)."""
    import image_data
    out = []
    for photo in image_data.PHOTOS:
        if photo.split != "train":
            continue
        for _, a in image_data.downscaled(photo, image_data.source_bytes(photo)):
            h, w = a.shape[:2]
            y, x = max(0, (h - max_side) // 2), max(0, (w - max_side) // 2)
            out.append(np.ascontiguousarray(a[y:y + max_side, x:x + max_side]))
    return out


def count_symbols(codec: model.LearnedCodec, images, size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Counts of the symbols the encoder writes for ``images`` (uint8 HxWx3; cut to ``size`` square if given)
    at every ladder rate (escape column 2R+1):
    y's as (levels, width) over all rates, z's as (rates, channels, 2 z_range + 2)."""
    radius, zr = codec.tables.y_radius, codec.tables.z_range
    counts = np.zeros(codec.y_freq.shape, np.int64)
    z_counts = np.zeros((codec.rates, *codec.z_freq.shape[-2:]), np.int64)
    for img in images:
        x = codec.to_tensor(np.ascontiguousarray(img[:size, :size] if size else img))
        for rate in range(codec.rates):
            lat = codec.encode_latents(x, rate)
            r = radius[lat.index]
            col = np.where(np.abs(lat.symbols) > r, 2 * r + 1, lat.symbols + r)
            np.add.at(counts, (lat.index.ravel(), col.ravel()), 1)
            zcol = np.where(np.abs(lat.z) > zr, 2 * zr + 1, lat.z + zr)
            chan = np.broadcast_to(np.arange(lat.z.shape[0])[:, None, None], lat.z.shape)
            np.add.at(z_counts[rate], (chan.ravel(), zcol.ravel()), 1)
    return counts, z_counts


def fitted_tables(old: np.ndarray, radius: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Each table k (its first 2 radius[k] + 2 entries): counts plus PRIOR pseudo-counts of the old one."""
    out = np.zeros_like(old)
    for k, r in enumerate(radius):
        n = 2 * int(r) + 2
        g = old[k, :n].astype(np.float64) / (1 << export.TABLE_BITS)
        c = counts[k, :n].astype(np.float64)
        out[k, :n] = export.quantise_pmf((c + PRIOR * g) / (c.sum() + PRIOR))
    return out


def _bits(freq: np.ndarray, counts: np.ndarray) -> float:
    return float(-(counts * np.log2(np.maximum(freq, 1) / (1 << export.TABLE_BITS))).sum())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="registered codec id whose tables are fitted")
    ap.add_argument("--max-side", type=int, default=768, help="centre crop of each training photo (px)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=model.WEIGHTS_DIR)
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    with np.load(model.WEIGHTS_DIR / f"{args.model}.npz") as f:
        arrays = {k: f[k] for k in f.files}
    photos = training_photos(args.max_side)
    codec = model.LearnedCodec(args.model, arrays)
    z_old = arrays["z_freq"] if arrays["z_freq"].ndim == 3 else np.stack([arrays["z_freq"]] * codec.rates)
    z_radius = np.full(z_old.shape[1], int(codec.tables.z_range))
    for i in range(args.rounds):
        counts, z_counts = count_symbols(codec, photos)
        tables = fitted_tables(arrays["y_freq"], arrays["y_radius"], counts)
        z_tables = np.stack([fitted_tables(z_old[r], z_radius, z_counts[r]) for r in range(codec.rates)])
        print(json.dumps({"round": i, "y_symbols": int(counts.sum()), "y_bits_before": round(_bits(codec.y_freq, counts)),
                          "y_bits_fitted": round(_bits(tables, counts)), "z_symbols": int(z_counts.sum()),
                          "z_bits_before": round(sum(_bits(codec.z_freq_at(r), z_counts[r]) for r in range(codec.rates))),
                          "z_bits_fitted": round(_bits(z_tables, z_counts))}), flush=True)
        codec = model.LearnedCodec(args.model, {**arrays, "y_freq": tables, "z_freq": z_tables})
    meta = json.loads(bytes(arrays["meta"]).decode())
    meta["fitted_tables"] = {"fitted_from": args.model, "images": "image_data train split", "count": len(photos),
                             "max_side": args.max_side, "rounds": args.rounds, "prior": PRIOR}
    out = {**arrays, "y_freq": tables.astype(arrays["y_freq"].dtype), "z_freq": z_tables.astype(arrays["z_freq"].dtype),
           "meta": np.frombuffer(json.dumps(meta, sort_keys=True).encode(), np.uint8)}
    model_id = export.weights_id(out)
    args.out.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, **out)
    target = args.out / f"{model_id}.npz"
    target.write_bytes(buf.getvalue())
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
