"""Feature visualisations as files: each picture a lossy WebP, and per layer one sheet
of small tiles that the layer page's cards show (as dataset examples are shown). No torch.

A feature visualisation is fine, saturated texture over the whole picture, which PNG
keeps at about 180 KB for 256 px (the former format). At the same size as a JPEG of
quality 75 (about 31 KB), WebP at ``QUALITY`` keeps far more of the fine detail the
channels respond to: measured through the photos' view, the JPEG lost a fifth of
some channels' activation, the WebP a twelfth (docs/feature-vis.md, "Compact
pictures"). The numbers the report gives are measured on the file as decoded
(``compute.featurevis``; WebP's lossy decoding is exactly specified, so a browser
shows those pixels), so they are the numbers of the picture shown.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from reportgen.imaging.pictures import encode_jpeg
from reportgen.imaging.sheets import SheetGrid

# Measured on the 12 target channels of docs/feature-vis.md at 256 px; method 6: libwebp's
# slowest and smallest encoding (tens of milliseconds, against seconds of optimisation).
QUALITY = 80
METHOD = 6
# A 256 px picture's bytes at most (scaled with the area at other sizes): with its card's
# tile (about 1.6 KB) a channel stays under 40 KB. A picture over it is encoded again,
# 5 quality steps lower each time, down to MIN_QUALITY.
BUDGET = 38_000
MIN_QUALITY = 40
# A card's tile (CSS px), and the sheet's quality: tiles are looked at small.
TILE = 64
SHEET_QUALITY = 70


def picture_file(pixels: np.ndarray) -> bytes:
    """One picture (uint8 [H, W, 3]) as its file: a lossy WebP, no metadata, at
    ``QUALITY`` or the highest quality below it that fits the budget."""
    image = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8), mode="RGB")
    budget = BUDGET * image.width * image.height / (256 * 256)
    for quality in range(QUALITY, MIN_QUALITY - 1, -5):
        buffer = io.BytesIO()
        image.save(buffer, format="WEBP", quality=quality, method=METHOD)
        if buffer.tell() <= budget:
            break
    return buffer.getvalue()


def decoded(data: bytes) -> np.ndarray:
    """A picture file's pixels, uint8 [H, W, 3], as a browser shows them."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def saved(pixels: np.ndarray) -> tuple[bytes, np.ndarray]:
    """A picture's file and what it decodes to (``nn.featurevis.Recipe.saved``)."""
    data = picture_file(pixels)
    return data, decoded(data)


def tile(pixels: np.ndarray, size: int = TILE) -> np.ndarray:
    """A picture shrunk to a card's tile (Pillow's antialiased reduction)."""
    image = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8), mode="RGB")
    return np.asarray(image.resize((size, size), Image.Resampling.LANCZOS), dtype=np.uint8)


def sheet_grid(channels: int) -> SheetGrid:
    """A layer's sheet: one tile per channel, in channel order, no padding."""
    return SheetGrid.for_layer(channels, TILE, TILE, pad=0)


def sheet_jpeg(tiles: dict[int, np.ndarray], grid: SheetGrid) -> bytes:
    """The tiles of the channels that have a picture, at their places; the others grey."""
    sheet = Image.new("RGB", (grid.width, grid.height), (128, 128, 128))
    for channel, pixels in sorted(tiles.items()):
        x0, y0, _, _ = grid.box(channel)
        sheet.paste(Image.fromarray(pixels, mode="RGB"), (x0, y0))
    return encode_jpeg(sheet, quality=SHEET_QUALITY, optimize=True)
