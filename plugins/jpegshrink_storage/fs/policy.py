"""What the ``jpegshrink::`` layer does with new image uploads: the ``new_uploads=`` option.

The default stays lossless: every byte written is given back. ``new_uploads="high-bitrate:ssimulacra2=85"``
opts in to the lossy high-bitrate mode (docs/lossy.md) for *new images*: data written through the
layer whose content is a PNG, TIFF, WebP, BMP or PPM/PGM/PBM file is stored as a lossy JPEG container
and reads back as that JPEG (under the name it was written to; docs/storage.md says why). An existing
JPEG is never re-encoded lossily unless ``lossy_jpegs=True`` says so (the CLI's ``--lossy-jpegs``): the
archive promised to keep its bytes.

Why content and not names: a name says what a file claims to be; only the bytes say what the encoder
would get. Why this short list of formats: they hold single photos or scans; GIF (graphics, animation),
ICO, PDF and anything else Pillow happens to read are stored as they are.

The spelling is parsed once, into :class:`UploadPolicy`, when the filesystem is built, so a typo fails
there (``ValueError``) and not at the first upload.
"""
from __future__ import annotations

import enum
import importlib.util
import math
from dataclasses import dataclass

from jpegshrink_storage.errors import MissingDependency


class UploadMode(enum.Enum):
    """How new image uploads are stored."""

    LOSSLESS = "lossless"          #: as every other write: JPEGs compressed losslessly, the rest as it is
    HIGH_BITRATE = "high-bitrate"  #: jpegshrink.encode_image(mode="high-bitrate"): a standard JPEG, source gone
    PERCEPTUAL = "perceptual"      #: jpegshrink.encode_image(mode="perceptual"): learned codec, read back as PNG


#: Goals each lossy mode's encoder can aim at (the perceptual codec has no SSIMULACRA2 bisection: its
#: scores at its rates are far below any useful SSIMULACRA2 target).
MODE_GOALS = {UploadMode.HIGH_BITRATE: frozenset({"quality", "ssimulacra2", "bpp"}),
              UploadMode.PERCEPTUAL: frozenset({"quality", "bpp"})}


class Goal(enum.Enum):
    """What the lossy encoder aims at (``encode_image``'s ``quality`` or ``target``)."""

    QUALITY = "quality"            #: encoder quality 1..100
    SSIMULACRA2 = "ssimulacra2"    #: the lowest quality whose SSIMULACRA2 score reaches the value
    BPP = "bpp"                    #: the highest quality whose container fits the bits per pixel


class Upload(enum.Enum):
    """What written data is, from its first bytes."""

    JPEG = "jpeg"
    IMAGE = "image"                #: PNG, TIFF, WebP, BMP, PNM: a new image the policy may encode lossily
    OTHER = "other"


#: Signatures of the image formats a lossy policy encodes (``Upload.IMAGE``).
IMAGE_SIGNATURES = (
    b"\x89PNG\r\n\x1a\n",          # PNG
    b"II*\x00", b"MM\x00*",        # TIFF, little and big endian
    b"BM",                         # BMP
)
#: PNM magic numbers (P1..P6, then whitespace).
PNM_KINDS = b"123456"
#: Default encoder quality when a lossy spelling names no goal (the codec's own default).
DEFAULT_QUALITY = 90

_SPELLING = ("'lossless', 'high-bitrate[:ssimulacra2=85 | bpp=1.2 | quality=90]' or "
             "'perceptual[:bpp=0.2 | quality=50]'")


def classify(data: bytes) -> Upload:
    """JPEG, one of the image formats of :data:`IMAGE_SIGNATURES` (or WebP, PNM), or anything else."""
    head = bytes(data[:16])
    if head.startswith(b"\xff\xd8\xff"):
        return Upload.JPEG
    if head.startswith(IMAGE_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return Upload.IMAGE
    if len(head) >= 3 and head[0:1] == b"P" and head[1] in PNM_KINDS and head[2:3].isspace():
        return Upload.IMAGE
    return Upload.OTHER


@dataclass(frozen=True)
class UploadPolicy:
    """A parsed ``new_uploads=`` option (build it with :meth:`parse`, or directly).

    ``goal``/``value`` say what the lossy encoder aims at (``None``: quality :data:`DEFAULT_QUALITY`);
    ``lossy_jpegs`` re-encodes JPEG uploads lossily too (otherwise they stay lossless).
    """

    mode: UploadMode = UploadMode.LOSSLESS
    goal: Goal | None = None
    value: float | None = None
    lossy_jpegs: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.mode, UploadMode):
            raise TypeError(f"mode must be an UploadMode, not {self.mode!r}")
        if self.mode is UploadMode.LOSSLESS:
            if self.goal is not None or self.value is not None:
                raise ValueError("a lossless upload policy takes no quality goal")
            if self.lossy_jpegs:
                raise ValueError("lossy_jpegs=True needs a lossy new_uploads policy, e.g. "
                                 "new_uploads='high-bitrate:ssimulacra2=85'")
            return
        if (self.goal is None) != (self.value is None):
            raise ValueError("give a goal and its value together, or neither")
        if self.goal is not None:
            if self.goal.value not in MODE_GOALS[self.mode]:
                raise ValueError(f"the {self.mode.value} mode aims at "
                                 f"{' or '.join(sorted(MODE_GOALS[self.mode]))}, not {self.goal.value}")
            _check_value(self.goal, self.value)

    @classmethod
    def parse(cls, spec: str | UploadPolicy | None, *, lossy_jpegs: bool = False) -> UploadPolicy:
        """``None``/``"lossless"``, ``"high-bitrate"`` or ``"high-bitrate:METRIC=VALUE"`` -> a policy.

        METRIC is ``ssimulacra2``, ``bpp`` or ``quality``. Anything else raises ``ValueError`` naming
        what was wrong and how to write it.
        """
        if isinstance(spec, UploadPolicy):
            if lossy_jpegs and not spec.lossy_jpegs:
                return cls(spec.mode, spec.goal, spec.value, True)
            return spec
        if spec is None:
            return cls(lossy_jpegs=lossy_jpegs)
        if not isinstance(spec, str):
            raise TypeError(f"new_uploads must be a string such as {_SPELLING}, not {type(spec).__name__}")
        mode_text, sep, goal_text = spec.strip().partition(":")
        try:
            mode = UploadMode(mode_text.strip().lower())
        except ValueError:
            raise ValueError(f"new_uploads={spec!r}: unknown mode {mode_text!r}; write {_SPELLING}") from None
        if not sep:
            return cls(mode, lossy_jpegs=lossy_jpegs)
        if mode is UploadMode.LOSSLESS:
            raise ValueError(f"new_uploads={spec!r}: 'lossless' takes no goal; write {_SPELLING}")
        metric, eq, value_text = goal_text.partition("=")
        try:
            goal = Goal(metric.strip().lower())
        except ValueError:
            raise ValueError(f"new_uploads={spec!r}: unknown goal {metric!r} (ssimulacra2, bpp or quality); "
                             f"write {_SPELLING}") from None
        if not eq or not value_text.strip():
            raise ValueError(f"new_uploads={spec!r}: {goal.value} needs a value, e.g. {goal.value}=85")
        try:
            value = float(value_text)
        except ValueError:
            raise ValueError(f"new_uploads={spec!r}: {value_text!r} is not a number") from None
        try:
            return cls(mode, goal, value, lossy_jpegs)
        except ValueError as e:
            raise ValueError(f"new_uploads={spec!r}: {e}") from None

    @property
    def lossy(self) -> bool:
        return self.mode is not UploadMode.LOSSLESS

    def encodes_lossily(self, kind: Upload) -> bool:
        """Whether data of this kind, newly written, is stored in the lossy mode."""
        return self.lossy and (kind is Upload.IMAGE or (kind is Upload.JPEG and self.lossy_jpegs))

    def encode_options(self) -> dict:
        """Keyword arguments of ``jpegshrink.encode_image`` for this policy."""
        if not self.lossy:
            raise ValueError("a lossless policy encodes nothing lossily")
        if self.goal is None:  # each mode's own default (the perceptual one has its own quality scale)
            return {"mode": self.mode.value} if self.mode is UploadMode.PERCEPTUAL else \
                {"mode": self.mode.value, "quality": DEFAULT_QUALITY}
        if self.goal is Goal.QUALITY:
            return {"mode": self.mode.value, "quality": int(self.value)}
        return {"mode": self.mode.value, "target": {self.goal.value: self.value}}

    def check_dependencies(self) -> None:
        """Fail now, not at the first upload, when the lossy mode cannot run here."""
        if not self.lossy:
            return
        if importlib.util.find_spec("PIL") is None:
            raise MissingDependency("new_uploads (decoding uploaded images)", "image")
        if self.goal is Goal.SSIMULACRA2 and importlib.util.find_spec("ssimulacra2") is None:
            raise MissingDependency("new_uploads with an ssimulacra2 goal", "image")
        if self.mode is UploadMode.PERCEPTUAL and any(
                importlib.util.find_spec(m) is None for m in ("torch", "constriction")):
            raise MissingDependency("new_uploads='perceptual' (the learned codec)", "perceptual")

    def __str__(self) -> str:
        text = self.mode.value
        if self.goal is not None:
            value = int(self.value) if self.goal is Goal.QUALITY else f"{self.value:g}"
            text += f":{self.goal.value}={value}"
        return text


def _check_value(goal: Goal, value: float) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{goal.value} must be a finite number, not {value!r}")
    if goal is Goal.QUALITY and not (value == int(value) and 1 <= value <= 100):
        raise ValueError(f"quality must be an integer 1..100, not {value:g}")
    if goal is Goal.SSIMULACRA2 and not 0 < value <= 100:
        raise ValueError(f"ssimulacra2 must be in (0, 100], not {value:g}")
    if goal is Goal.BPP and not value > 0:
        raise ValueError(f"bpp must be > 0, not {value:g}")


LOSSLESS = UploadPolicy()
