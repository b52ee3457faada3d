"""Add golden containers for the current format and every registered model to tests/golden/.

Golden files pin decoder behaviour: once written they are never regenerated, so a change that breaks
decoding of old archives fails tests/test_golden.py. Run this when a new model or format version is
added; existing files are left alone (the script refuses to overwrite).

    PYTHONPATH=. python3 tools/make_golden.py [--out tests/golden]
    PYTHONPATH=. python3 tools/make_golden.py --perceptual   # tests/golden/perceptual/: every perceptual codec

Perceptual containers decode to pixels, not to an original's bytes: their index records the decoder and
seed, and a PNG of the decode made here, which tests/test_perceptual.py compares against (latents exactly,
pixels to within float synthesis' reach).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import random
from pathlib import Path

import jpegshrink
from jpegshrink import model
from jpegshrink.coding import container, dictionary

ROOT = Path(__file__).resolve().parent.parent
#: Small sample files that cover the layout cases: baseline 4:2:0, progressive, restart markers, grey,
#: odd sampling, truncated, trailing data, and an arithmetic file (always a fallback).
SOURCES = ["v08_cjpeg-q75-420.jpg", "v08_jpegtran-progressive.jpg", "v08_jpegtran-restart1.jpg",
           "v08_cjpeg-q50-gray.jpg", "crop-flower.png.im_q85_asymmetric.jpg", "x01_truncated-70pct.jpg",
           "x01_trailing-garbage.jpg", "v08_jpegtran-arithmetic.jpg"]
#: What a lossy JPEG container records about its source (the shape the lossy encoder writes).
LOSSY_INFO = {"source_format": "png", "source_length": 123456, "quality": 80}


def _cases() -> list[tuple[str, str, bytes, str | None]]:
    """(tag, source name, input, model id) for every mode this version writes and every model."""
    sample = ROOT / "tests" / "data" / "sample"
    cases = []
    first = SOURCES[0]
    for model_id in model.registered_ids():
        # Every layout case with the default and the dense model; one file each for the others, whose
        # decoders the golden files of the format version they were current in already pin case by case
        # (and a retired model's decoder is slow: CI time goes where it finds something).
        names = SOURCES if model_id in (model.DEFAULT_MODEL_ID, model.DENSE_MODEL_ID) else [first]
        cases += [(model_id, name, (sample / name).read_bytes(), model_id) for name in names]
        # The sample files are one stripe each, and too small for pass streams: pin those layouts too.
        if model_id.startswith(("mix3-", "learned2p-", "learned3-")):
            cases.append((model_id, STRIPED_SOURCE, _striped_jpeg(), model_id))
    # One per remaining mode is enough: they do not depend on the model.
    cases.append(("fallback", first, b"not a jpeg: " + (sample / first).read_bytes() * 2, None))
    cases.append(("stored", "seeded-random-100", random.Random(0).randbytes(100), None))
    # Lossy containers: their layout blobs name the lossy layout dictionary (in the tag: files made before
    # it existed keep their names); a JPEG of our own encoder also leaves its Huffman tables out (layout
    # version 2).
    d = f"layoutdict{dictionary.LOSSY_LAYOUT_DICTIONARY_ID}-"
    cases.append((f"lossy-{d}{model.DEFAULT_MODEL_ID}", first, (sample / first).read_bytes(), "lossy"))
    cases.append((f"lossy-derived-tables-{d}{model.DEFAULT_MODEL_ID}", OURS_SOURCE, _our_jpeg(sample / OURS_SOURCE),
                  "lossy"))
    return cases


#: A smooth synthetic 6.8 MP image (4:2:0, quality 40): large enough for mix3 to cut it into stripes (and for
#: a seeded profile to code a seed band first), small once stored.
STRIPED_SOURCE = "synthetic-3328x2048-q40.jpg"


def _striped_jpeg() -> bytes:
    import io
    import numpy as np
    from PIL import Image
    y, x = np.mgrid[0:2048, 0:3328].astype(np.float32)
    img = np.stack([128 + 90 * np.sin(x / 300) * np.cos(y / 200), 128 + 80 * np.cos((x + y) / 400),
                    128 + 60 * np.sin(y / 150)], -1) + np.random.default_rng(0).normal(0, 1.5, (2048, 3328, 3))
    out = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=40, subsampling=2)
    return out.getvalue()


#: The photo (a 48 x 40 crop of it, 4:2:0 at quality 75) whose JPEG our lossy encoder writes for the golden files.
OURS_SOURCE = "scikit-learn__china.jpg"


def _our_jpeg(path: Path) -> bytes:
    import numpy as np
    from PIL import Image
    from jpegshrink.lossy import encoder
    from jpegshrink.lossy.source import load
    a = np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB").reduce(4))[40:80, 60:108])
    return encoder.encode(load(a), encoder.Settings(quality=75, subsampling="420")).jpeg


def _perceptual(out: Path) -> None:
    """One small container per registered perceptual codec (faithful) and per generator (perceptual, seed 7)."""
    import numpy as np
    from PIL import Image
    from jpegshrink.perceptual import decoders, gan, model as pmodel
    out.mkdir(parents=True, exist_ok=True)
    index_path = out / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    img = Image.open(ROOT / "tests" / "data" / "sample" / "scikit-learn__china.jpg").convert("RGB").reduce(4)
    pixels = np.ascontiguousarray(np.asarray(img)[20:90, 10:140])
    cases = [(codec_id, "faithful", 0) for codec_id in pmodel.REGISTERED]
    cases += [(gan.codec_of(g), g, 7) for g in decoders.GENERATORS]
    version = container.FORMAT_VERSION  # perceptual containers always have info
    for codec_id, decoder, seed in cases:
        # (the files of format v2, the first of this mode, were named without the version)
        name = f"{codec_id}-{decoder}-q60.jsk" if version == 2 else f"v{version}-{codec_id}-{decoder}-q60.jsk"
        if name in index:
            continue
        blob = jpegshrink.encode_image(pixels, mode="perceptual", quality=60, model_id=codec_id, decoder=decoder,
                                       seed=seed)
        png = name.replace(".jsk", ".png")
        Image.fromarray(jpegshrink.decode_image(blob)).save(out / png)
        (out / name).write_bytes(blob)
        index[name] = {"decoder": decoder, "seed": seed, "png": png,
                       "container_sha256": hashlib.sha256(blob).hexdigest()}
        print(f"wrote {name}: {len(blob)} bytes")
    index_path.write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "golden")
    ap.add_argument("--perceptual", action="store_true", help="write tests/golden/perceptual/ instead")
    args = ap.parse_args()
    if args.perceptual:
        _perceptual(args.out / "perceptual")
        return
    args.out.mkdir(parents=True, exist_ok=True)
    index_path = args.out / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else []
    have = {row["file"] for row in index}
    written = {row["container_sha256"] for row in index}
    for tag, name, data, model_id in _cases():
        if model_id == "lossy":  # as the lossy encoder stores its output: the JPEG plus what made it
            blob = jpegshrink.store_lossy_jpeg(data, LOSSY_INFO)
        else:
            blob = jpegshrink.compress(data, model_id=model_id)
        # Named by the version the writer chose (v3 for containers with info, v2 for the others)
        version = container.read_header(blob).version
        target = f"v{version}-{tag}-{Path(name).stem}.jsk"
        if target in have:
            continue
        info = jpegshrink.inspect(blob)
        if hashlib.sha256(blob).hexdigest() in written:  # e.g. the arithmetic file: the same fallback
            continue                                    # for every model, pinned once is enough
        written.add(hashlib.sha256(blob).hexdigest())
        (args.out / target).write_bytes(blob)
        index.append({"file": target, "format_version": version, "model_id": info.model_id,
                      "mode": info.mode, "lossy": info.lossy, "original_sha256": info.original_sha256,
                      "container_sha256": hashlib.sha256(blob).hexdigest(), "source": name})
        print(f"wrote {target}: {info.mode} {info.model_id} {len(blob)} bytes")
    index_path.write_text(json.dumps(index, indent=1) + "\n")


if __name__ == "__main__":
    main()
