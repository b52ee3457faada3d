"""The image a lossy encode starts from: pixels plus the metadata that must survive, read safely.

Accepted: a uint8 array (H x W x 3 RGB or H x W grey) or the bytes of a file Pillow decodes (PNG,
TIFF, PPM/PGM, WebP, JPEG, ...). Size limits are checked from the *header* before any pixel is
decoded, so a 200-byte file claiming 100 000 x 100 000 pixels costs nothing.

Conversions (documented in docs/lossy.md, recorded in the container's info):

* palette, 1-bit and grey+alpha/RGBA with an alpha channel that is fully opaque -> RGB/grey, exactly;
* 16-bit grey/RGB -> 8-bit by rounding (``value * 255 / 65535``): JPEG holds 8-bit samples;
* CMYK / YCbCr / LAB files -> RGB through Pillow's conversion (no colour management);
* files with several frames (animated PNG/GIF/WebP, multi-page TIFF) are refused: keeping the first
  frame would silently drop the rest;
* transparency that is actually used is refused (:class:`BadImage`) unless ``alpha="flatten"``
  composites the image over white; JPEG has no alpha channel and silently dropping it would change
  what the picture shows.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

import numpy as np

from jpegshrink.errors import BadImage, MissingDependency

#: Largest width x height a lossy encode accepts (a 12 MP photo is 12e6; 100 MP panoramas pass).
MAX_PIXELS = 200_000_000
#: Largest side: a baseline JPEG frame stores width and height in 16 bits.
MAX_SIDE = 65535
#: Alpha policies.
ALPHA_POLICIES = ("refuse", "flatten")


@dataclass
class SourceImage:
    """Decoded pixels (uint8, H x W x 3 or H x W) and what the encoder writes back into the JPEG."""

    pixels: np.ndarray
    source_format: str                 # "array", "PNG", "JPEG", "TIFF", ...
    exif: bytes = b""                  # TIFF-header EXIF payload (without the "Exif\\0\\0" prefix)
    icc: bytes = b""
    xmp: bytes = b""
    conversions: list[str] = field(default_factory=list)

    @property
    def grey(self) -> bool:
        return self.pixels.ndim == 2

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])


def check_size(width: int, height: int) -> None:
    """Refuse a frame that is empty or larger than a JPEG (or this machine) should hold."""
    if width <= 0 or height <= 0:
        raise BadImage(f"image is {width}x{height}: nothing to encode")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise BadImage(f"image is {width}x{height}; a JPEG side is at most {MAX_SIDE} pixels")
    if width * height > MAX_PIXELS:
        raise BadImage(f"image is {width}x{height} = {width * height} pixels, over the limit of {MAX_PIXELS}")


def load(image, *, alpha: str = "refuse", keep_metadata: bool = True) -> SourceImage:
    """Pixels and metadata from an array or encoded file bytes; :class:`BadImage` for anything unusable."""
    if alpha not in ALPHA_POLICIES:
        raise ValueError(f"alpha must be one of {ALPHA_POLICIES}, not {alpha!r}")
    if isinstance(image, np.ndarray):
        return SourceImage(_from_array(image), "array")
    if isinstance(image, (bytes, bytearray, memoryview)):
        return _from_file(bytes(image), alpha, keep_metadata)
    raise TypeError(f"image must be a numpy uint8 array or encoded image bytes, not {type(image).__name__}")


def _from_array(a: np.ndarray) -> np.ndarray:
    if a.dtype != np.uint8:
        raise BadImage(f"pixel array must be uint8, not {a.dtype} (scale 16-bit data to 8 bits first)")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)):
        raise BadImage(f"pixel array must be H x W (grey) or H x W x 3 (RGB), not {a.shape}")
    check_size(int(a.shape[1]), int(a.shape[0]))
    return np.ascontiguousarray(a)


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise MissingDependency("decoding image files needs Pillow: pip install 'jpegshrink[image]'") from None
    return Image


def _from_file(data: bytes, alpha: str, keep_metadata: bool) -> SourceImage:
    Image = _pillow()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))  # reads the header only
            check_size(*img.size)               # before a single pixel is decoded
            frames = getattr(img, "n_frames", 1)
            if frames > 1:                      # animations, multi-page TIFFs: a JPEG holds one picture
                raise BadImage(f"image file has {frames} frames; a JPEG holds one (store it losslessly)")
            img.load()
    except BadImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise BadImage(f"image refused as a decompression bomb: {e}") from None
    except Exception as e:  # Pillow raises many types (OSError, SyntaxError, ValueError...) for bad files
        raise BadImage(f"cannot decode the image file: {type(e).__name__}: {e}") from None
    fmt = img.format or "unknown"
    src = SourceImage(np.zeros((1, 1), np.uint8), fmt)
    if keep_metadata:
        src.exif, src.icc, src.xmp = _metadata(img)
    src.pixels = _to_uint8(img, alpha, src.conversions)
    return src


def _metadata(img) -> tuple[bytes, bytes, bytes]:
    exif = img.info.get("exif") or b""
    if isinstance(exif, str):
        exif = b""
    if exif.startswith(b"Exif\x00\x00"):
        exif = exif[6:]
    icc = img.info.get("icc_profile") or b""
    xmp = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp") or b""
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    return bytes(exif), bytes(icc), bytes(xmp)


def _to_uint8(img, alpha: str, conversions: list[str]) -> np.ndarray:
    mode = img.mode
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        conversions.append("palette->rgb")
    elif mode == "1":
        img = img.convert("L")
        conversions.append("1-bit->grey")
    elif mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(img).astype(np.int64)
        if mode == "I" and (a.min() < 0 or a.max() > 65535):
            raise BadImage(f"{mode} image with values outside 0..65535 cannot become an 8-bit JPEG")
        conversions.append("16-bit->8-bit")
        return ((a * 255 + 32767) // 65535).astype(np.uint8)
    elif mode == "F":
        raise BadImage("floating-point images cannot become an 8-bit JPEG")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        img = img.convert("RGB")
        conversions.append(f"{mode.lower()}->rgb")
    elif mode in ("RGB;16", "RGBA;16"):
        img = img.convert("RGB")
        conversions.append("16-bit->8-bit")
    a = np.asarray(img)
    if a.dtype != np.uint8:
        if a.dtype == np.uint16:
            conversions.append("16-bit->8-bit")
            a = ((a.astype(np.int64) * 255 + 32767) // 65535).astype(np.uint8)
        else:
            raise BadImage(f"image mode {mode} ({a.dtype}) is not supported")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        colour, a_ch = a[..., :-1], a[..., -1]
        if colour.shape[-1] == 1:
            colour = colour[..., 0]
        if np.all(a_ch == 255):
            conversions.append("opaque-alpha-dropped")
        elif alpha == "flatten":
            w = a_ch.astype(np.int32)[..., None] if colour.ndim == 3 else a_ch.astype(np.int32)
            colour = ((colour.astype(np.int32) * w + 255 * (255 - w) + 127) // 255).astype(np.uint8)
            conversions.append("alpha-flattened-on-white")
        else:
            raise BadImage("image has transparency, which a JPEG cannot hold; pass alpha='flatten' to "
                           "composite it over white")
        a = colour
    if a.ndim == 3 and a.shape[2] not in (1, 3):
        raise BadImage(f"image mode {img.mode} with {a.shape[2]} channels is not supported")
    return _from_array(np.ascontiguousarray(a))


def decode_file(data: bytes) -> np.ndarray:
    """uint8 pixels (H x W x 3, or H x W for grey) of an image file, limits checked before decoding.

    Used to read back stored JPEGs: no metadata handling, no orientation applied (EXIF stays in the file).
    """
    Image = _pillow()
    try:
        img = Image.open(io.BytesIO(data))
        check_size(*img.size)
        img.load()
    except BadImage:
        raise
    except Exception as e:
        raise BadImage(f"stored bytes are not an image Pillow can decode: {type(e).__name__}: {e}") from None
    if img.mode not in ("L", "RGB"):
        img = img.convert("RGB")
    return np.asarray(img)
