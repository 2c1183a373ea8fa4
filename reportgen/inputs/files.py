"""A run's input files and reading them as upright RGB pictures (found by
``inputs.discovery``, read safely by ``inputs.safe_read``).

No torch here: this stage turns paths into Pillow images and says which
inputs could not be used and why.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageOps

from reportgen.errors import ReportgenError
from reportgen.inputs.safe_read import MAX_FILE_BYTES, read_input_bytes

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)
# Pixels (not bytes) above which an image is refused before it is decoded. Pillow's
# own default warns at about 89 Mpx; a report has no use for pictures that large.
MAX_PIXELS = 64_000_000
# Pixels any picture made from an input may have: the network's view and the picture
# the preprocessing resizes it to before cropping (a 30000x1 strip resized to 256 px on
# its short side would be 7,680,000x256). Checked on the header, before decoding, and
# again before resizing.
MAX_VIEW_PIXELS = 16_000_000
# Background that transparent pixels are composited on.
BACKGROUND_RGB = (255, 255, 255)
EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class InputFile:
    """One image file to analyse: where it is and the stable id the report uses."""

    path: Path
    source: str  # as the user would recognise it (relative to the argument given)
    id: str


@dataclass
class LoadedImage:
    file: InputFile
    image: Image.Image  # RGB, upright
    sha256: str
    notes: list[str] = field(default_factory=list)

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height


@dataclass(frozen=True)
class SkippedInput:
    source: str
    reason: str


# Sizes of a preprocessing: torchvision's resize (one number: the short side; two: height
# and width) and centre crop (one number: a square; two: height and width).
ViewSizes = tuple[Sequence[int], Sequence[int]]


def resized_size(width: int, height: int, resize: Sequence[int]) -> tuple[int, int]:
    """(width, height) of a ``width`` x ``height`` picture after torchvision's resize to
    ``resize`` (the rule of ``torchvision.transforms.functional.resize``)."""
    if len(resize) >= 2:
        return int(resize[1]), int(resize[0])
    short, long = (width, height) if width <= height else (height, width)
    new_short = int(resize[0])
    new_long = int(new_short * long / max(short, 1))
    return (new_short, new_long) if width <= height else (new_long, new_short)


def check_view_size(source: str, width: int, height: int, sizes: ViewSizes) -> None:
    """Raise ReportgenError when the preprocessing ``sizes`` (resize, crop) would make a
    picture of more than ``MAX_VIEW_PIXELS`` from a ``width`` x ``height`` input."""
    resize, crop = sizes
    pictures = [("resize", resized_size(width, height, resize))]
    crop_pair = (int(crop[-1]), int(crop[0])) if crop else (0, 0)
    pictures.append(("crop", crop_pair))
    for step, (new_width, new_height) in pictures:
        if new_width * new_height > MAX_VIEW_PIXELS:
            what = (
                f"resizing it to {'x'.join(map(str, resize))} would make "
                if step == "resize"
                else "its centre crop would be "
            )
            raise ReportgenError(
                f"{source!r} is {width}x{height} pixels: {what}{new_width}x{new_height} "
                f"({new_width * new_height:,} pixels), more than the limit of "
                f"{MAX_VIEW_PIXELS:,} for one view; refusing it"
            )


def load_image(file: InputFile, views: Sequence[ViewSizes] = ()) -> LoadedImage:
    """Read one file as an upright RGB image, or raise ReportgenError saying why not.

    Only a regular file is read, at most ``MAX_FILE_BYTES`` of it. ``views``: the
    (resize, crop) sizes of each preprocessing the image will go through; one that would
    make a picture of more than ``MAX_VIEW_PIXELS`` refuses the image before it is decoded.
    """
    data = read_input_bytes(file.path, file.source, MAX_FILE_BYTES)
    if not data:
        raise ReportgenError(f"{file.source!r} is empty (0 bytes)")
    notes: list[str] = []

    def check(width: int, height: int) -> None:
        for sizes in views:
            check_view_size(file.source, width, height, sizes)

    try:
        rgb = decode_rgb(data, notes, check)
    except ReportgenError as exc:
        message = str(exc)
        raise ReportgenError(
            message if message.startswith(repr(file.source)) else f"{file.source!r}: {message}"
        ) from exc
    return LoadedImage(file, rgb, hashlib.sha256(data).hexdigest(), notes)


def decode_rgb(
    data: bytes,
    notes: list[str],
    check_size: Callable[[int, int], None] | None = None,
) -> Image.Image:
    """Decode image bytes to an upright 8-bit RGB image; ``notes`` collects what was done.
    ``check_size(width, height)`` sees the size the header declares before anything is
    decoded (turning it upright swaps the sides, which no pixel count depends on), and
    may raise ReportgenError to refuse the image."""
    import io

    with warnings.catch_warnings():
        # Pillow's complaints about damaged metadata (EXIF, TIFF tags) are not news
        # for the user: the image either decodes or is skipped with a reason.
        warnings.simplefilter("ignore")
        # Pillow only warns for sizes between its two limits; make any bomb an error.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as opened:
                width, height = opened.size
                if width * height > MAX_PIXELS:
                    raise ReportgenError(
                        f"image declares {width}x{height} pixels, more than the limit of "
                        f"{MAX_PIXELS:,}; refusing to decode it"
                    )
                if check_size is not None:
                    check_size(width, height)
                frames = getattr(opened, "n_frames", 1)
                if frames > 1:
                    opened.seek(0)
                    notes.append(f"first of {frames} frames used")
                opened.load()
                orientation = opened.getexif().get(EXIF_ORIENTATION, 1)
                upright = ImageOps.exif_transpose(opened)
                if orientation not in (None, 1):
                    notes.append(f"turned upright as its EXIF orientation ({orientation}) says")
                return to_rgb(upright, notes)
        except ReportgenError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ReportgenError(f"refusing a decompression bomb ({exc})") from exc
        except Image.UnidentifiedImageError as exc:
            raise ReportgenError("not an image Pillow can read") from exc
        except MemoryError as exc:
            raise ReportgenError("not enough memory to decode this image") from exc
        except Exception as exc:  # noqa: BLE001 - Pillow's decoders raise many kinds
            # (OSError, ValueError, SyntaxError, EOFError, but also TypeError, KeyError,
            # struct.error... on damaged files): all mean the file cannot be used.
            detail = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise ReportgenError(f"broken or truncated image ({detail})") from exc


def to_rgb(image: Image.Image, notes: list[str]) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB, compositing transparency on white."""
    mode = image.mode
    if mode == "RGB":
        return image.copy()
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        import numpy as np

        values = np.asarray(image, dtype=np.float64)
        if mode.startswith("I;16"):
            top = 65535.0
        else:
            top = float(values.max()) if values.size and values.max() > 255 else 255.0
        scaled = np.clip(values / max(top, 1e-12) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        notes.append(f"{mode} pixels scaled to 8 bits")
        return Image.fromarray(scaled, "L").convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND_RGB, 255))
        notes.append("transparent pixels composited on white")
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "CMYK":
        notes.append("CMYK converted to RGB")
    return image.convert("RGB")
