"""Train the zstd dictionaries of the container format: JPEG layout blobs (v2) and info JSON (v3).

``layout``: a layout blob is everything of a JPEG that is not coefficients: marker segments, quantisation and
Huffman tables, the scan script. Most JPEGs share much of it (libjpeg's standard Huffman tables, its
quality-scaled quantisation tables, JFIF/Exif boilerplate), and on a small file those bytes are a large
part of the container: zstd alone has nothing to match them against, a dictionary has. Trained on the
public corpus without the validation packages, so the held-out figure it prints is honest.

``lossy-layout``: the layout blobs of our own lossy encoder's JPEGs (their quantisation tables, frame
and scan headers; no Huffman tables, which layout version 2 derives), for random crops of the lossy
benchmark's *tuning* photos (tools/bench_lossy.py TUNING; never a photo any benchmark reports as held
out) at random qualities.

``info``: the info JSON of lossy and perceptual containers (~250 bytes of the same keys, encoder
names and settings, and a few numbers). Samples are the infos the real encoders write for small crops
of the same tuning photos, at random qualities and targets, from arrays, PNG and JPEG bytes. Needs
torch (the perceptual encoder).

For both, the "held-out" figure printed is from crops drawn with another seed (of the same photos: the
dictionaries hold headers, keys and settings, not pixels).

The file it writes is part of the format: once a container uses it, it never changes. A better
dictionary is a new id (``--dict-id``, unique across kinds), registered next to the old one in
jpegshrink/coding/dictionary.py.

    PYTHONPATH=. python3 tools/train_dictionary.py layout --corpus /work/corpus [--dict-id 1] [--size 16384]
    PYTHONPATH=. python3 tools/train_dictionary.py info [--dict-id 2] [--size 2048] [--samples 300]
    PYTHONPATH=. python3 tools/train_dictionary.py lossy-layout [--dict-id 3] [--size 16384] [--samples 600]
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import sys
from pathlib import Path

import zstandard

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from jpegshrink import jpeg  # noqa: E402
from jpegshrink.codec import ZSTD_LEVEL  # noqa: E402
from jpegshrink.errors import JpegShrinkError  # noqa: E402
from train_priors import VAL_PACKAGES  # noqa: E402


def layouts(corpus: Path) -> tuple[list[bytes], list[bytes]]:
    """(training, held-out) layout blobs of the public corpus, in name order."""
    with open(corpus / "MANIFEST.tsv", newline="") as f:
        rows = sorted((r for r in csv.DictReader(f, delimiter="\t") if r["split"] == "public"),
                      key=lambda r: r["name"])
    train, held_out = [], []
    for r in rows:
        try:
            blob = jpeg.parse((corpus / "public" / r["name"]).read_bytes()).layout.to_bytes()
        except JpegShrinkError:
            continue
        (held_out if r["source_package"] in VAL_PACKAGES else train).append(blob)
    return train, held_out


class _TuningCrops:
    """Random 136 x 136 crops of the lossy benchmark's TUNING photos (tools/bench_lossy.py, decoded and
    downscaled as the benchmark does): never of a photo any benchmark reports as held out."""

    SIZE = 136

    def __init__(self) -> None:
        from bench_lossy import TUNING, load_photo
        self.photos = [load_photo(package, suffix)[1] for package, suffix in TUNING]

    def sample(self, rng):
        import numpy as np
        a = self.photos[rng.integers(len(self.photos))]
        y, x = rng.integers(0, a.shape[0] - self.SIZE + 1), rng.integers(0, a.shape[1] - self.SIZE + 1)
        return np.ascontiguousarray(a[y:y + self.SIZE, x:x + self.SIZE])


def infos(crops: _TuningCrops, n: int, seed: int) -> list[bytes]:
    """The info JSON (as containers store it) of ``n`` small encodes, half lossy, half perceptual."""
    import dataclasses

    import numpy as np

    from jpegshrink.coding import container

    rng = np.random.default_rng(seed)
    out = []
    # The info as the encoder hands it to the container, taken before it is packed (packing compresses it
    # with the dictionary being made, which may not exist yet); the container is packed without it.
    real_pack = container.pack

    def capture(c):
        out.append(container.info_json(c.info))
        return real_pack(dataclasses.replace(c, info={}))

    container.pack = capture
    try:
        _encode_for_infos(n, crops, rng)
    finally:
        container.pack = real_pack
    return out


def _encode_for_infos(n, crops, rng) -> None:
    import io

    from PIL import Image

    import jpegshrink
    for i in range(n):
        crop = crops.sample(rng)
        h, w = rng.integers(40, crop.shape[0] + 1, 2)
        img = crop[:h, :w]
        kind = rng.integers(3)  # an array, PNG bytes or JPEG bytes: the source_format field varies
        if kind:
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, "PNG" if kind == 1 else "JPEG", quality=95)
            img = buf.getvalue()
        if i % 2 == 0:
            kw = ({"quality": int(rng.integers(20, 100))} if rng.random() < 0.8
                  else {"target": {"ssimulacra2": int(rng.integers(70, 92))}})
            jpegshrink.encode_image(img, mode="high-bitrate", **kw)
        else:
            kw = ({"quality": int(rng.integers(0, 101))} if rng.random() < 0.8
                  else {"target": {"bpp": round(float(rng.uniform(0.05, 0.6)), 2)}})
            jpegshrink.encode_image(img, mode="perceptual", **kw)


def lossy_layouts(crops: _TuningCrops, n: int, seed: int) -> list[bytes]:
    """The layout blobs (before zstd) that the lossy containers of ``n`` small encodes store: our
    encoder's JPEGs at random qualities, as :func:`jpegshrink.store_lossy_jpeg` hands them to zstd."""
    import numpy as np

    import jpegshrink
    from jpegshrink.coding import dictionary

    rng = np.random.default_rng(seed)
    out = []
    real = dictionary.compress_layout

    def capture(blob, level, dict_id=dictionary.LAYOUT_DICTIONARY_ID):
        if dict_id == dictionary.LOSSY_LAYOUT_DICTIONARY_ID:  # (the writer also tries the generic one)
            out.append(blob)
        # compressed with the generic dictionary: the one being made may not exist yet
        return real(blob, level, dictionary.LAYOUT_DICTIONARY_ID)

    dictionary.compress_layout = capture
    try:
        for _ in range(n):
            crop = crops.sample(rng)
            h, w = rng.integers(40, crop.shape[0] + 1, 2)
            jpegshrink.encode_image(crop[:h, :w], mode="high-bitrate", quality=int(rng.integers(20, 100)),
                                    measure=False)
    finally:
        dictionary.compress_layout = real
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("kind", choices=("layout", "info", "lossy-layout"))
    ap.add_argument("--corpus", type=Path, help="(layout) the corpus built by tools/corpus")
    ap.add_argument("--dict-id", type=int, help="default: 1 (layout), 2 (info), 3 (lossy-layout)")
    ap.add_argument("--size", type=int, help="dictionary bytes; default: 16384 (layout, lossy-layout), 2048 (info)")
    ap.add_argument("--samples", type=int, help="(info, lossy-layout) encodes to train on; default 300, 600")
    ap.add_argument("--out", type=Path, default=ROOT / "jpegshrink" / "coding" / "dictionaries")
    args = ap.parse_args()
    if args.kind == "layout":
        if args.corpus is None:
            ap.error("layout needs --corpus")
        dict_id, size = args.dict_id or 1, args.size or 16384
        train, held_out = layouts(args.corpus)
    elif args.kind == "info":
        dict_id, size, n = args.dict_id or 2, args.size or 2048, args.samples or 300
        crops = _TuningCrops()
        train, held_out = infos(crops, n, seed=1), infos(crops, max(20, n // 5), seed=7)
    else:
        dict_id, size, n = args.dict_id or 3, args.size or 16384, args.samples or 600
        crops = _TuningCrops()
        train, held_out = lossy_layouts(crops, n, seed=1), lossy_layouts(crops, max(20, n // 6), seed=7)
    # Fixed cover parameters and one thread: the same samples give the same dictionary.
    d = zstandard.train_dictionary(size, train, k=64, d=8, dict_id=dict_id, threads=1, level=ZSTD_LEVEL)
    raw = d.as_bytes()
    path = args.out / f"{args.kind}-{dict_id}.zdict"
    path.write_bytes(raw)
    plain = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    with_dict = zstandard.ZstdCompressor(level=ZSTD_LEVEL, dict_data=d)
    before = sum(len(plain.compress(b)) for b in held_out)
    after = sum(len(with_dict.compress(b)) for b in held_out)
    print(f"wrote {path}: {len(raw)} bytes, sha256 {hashlib.sha256(raw).hexdigest()}, from {len(train)} {args.kind}s")
    print(f"held-out {args.kind}s ({len(held_out)}, {sum(map(len, held_out)) / len(held_out):.0f} B each raw): "
          f"zstd {before / len(held_out):.1f} -> with the dictionary {after / len(held_out):.1f} B each")


if __name__ == "__main__":
    main()
