"""Arrays to image bytes: colormap tables, activation maps, overlays, filters.

numpy and Pillow do the pixels; matplotlib only supplies colormap tables. No torch
here.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from collections.abc import Callable
from functools import lru_cache

import numpy as np
from PIL import Image

from reportgen.errors import UsageError
from reportgen.imaging.sheets import SheetGrid

PNG_COMPRESS_LEVEL = 6
JPEG_QUALITY = 88
# Dataset-example tiles are crops of the network's view enlarged from their receptive
# field (smooth, few edges): at 70 they look the same as at 88 and take ~40% less (an
# efficientnet_b0 report has ~21,000 of them); optimised Huffman tables take ~3% more.
EXAMPLES_JPEG_QUALITY = 70


def colormap_names() -> list[str]:
    import matplotlib

    return sorted(matplotlib.colormaps)


@lru_cache(maxsize=16)
def colormap_table(name: str) -> np.ndarray:
    """A matplotlib colormap sampled at 256 levels, as uint8 [256, 3]."""
    import matplotlib

    try:
        cmap = matplotlib.colormaps[name]
    except KeyError:
        import difflib

        names = [n for n in colormap_names() if not n.endswith("_r")]
        close = difflib.get_close_matches(name, colormap_names(), n=4, cutoff=0.6)
        hint = f"closest: {', '.join(close)}; " if close else ""
        common = ("jet", "viridis", "plasma", "inferno", "magma", "hot", "gray", "coolwarm")
        listed = list(dict.fromkeys([*common, *names]))[:40]
        raise UsageError(
            f"unknown colormap {name!r}; {hint}valid names include {', '.join(listed)}, ..."
            " (any matplotlib colormap, '_r' reverses it)"
        ) from None
    table = cmap(np.linspace(0.0, 1.0, 256))[:, :3]
    table = np.round(table * 255.0).astype(np.uint8)
    table.setflags(write=False)
    return table


def to_levels(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map values onto 0..255 between ``low`` and ``high``.

    A flat range (high == low) gives level 0 everywhere, never NaN; NaN values
    are drawn at level 0 too.
    """
    values = np.asarray(values, dtype=np.float32)
    span = high - low
    if not np.isfinite(span) or span <= 0:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (values - np.float32(low)) * np.float32(255.0 / span)
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def encode_png(image: Image.Image) -> bytes:
    """PNG bytes with no time or software metadata (Pillow writes none by default)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def encode_jpeg(image: Image.Image, quality: int = JPEG_QUALITY, optimize: bool = False) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality, optimize=optimize)
    return buffer.getvalue()


def map_image(values: np.ndarray, low: float, high: float, table: np.ndarray) -> Image.Image:
    """A 2-D map as a palette image at its true resolution (no resampling)."""
    image = Image.fromarray(to_levels(values, low, high), mode="L")
    image.putpalette(_palette_bytes(table))  # turns the L image into a P image
    return image


def _palette_bytes(table: np.ndarray) -> bytes:
    return np.ascontiguousarray(table, dtype=np.uint8).tobytes()


def map_png(values: np.ndarray, low: float, high: float, table: np.ndarray) -> bytes:
    return palette_png(to_levels(values, low, high), table)


def layer_levels(values: np.ndarray, lows: np.ndarray, highs: np.ndarray) -> np.ndarray:
    """``to_levels`` for every channel of a [C, H, W] array at once, each channel with
    its own range: the same numbers as calling ``to_levels`` per channel."""
    values = np.asarray(values, dtype=np.float32)
    lows = np.asarray(lows, dtype=np.float64)
    span = np.asarray(highs, dtype=np.float64) - lows
    usable = np.isfinite(span) & (span > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(usable, 255.0 / np.where(usable, span, 1.0), 0.0)
    shape = (-1,) + (1,) * (values.ndim - 1)
    offsets = lows.astype(np.float32).reshape(shape)
    with np.errstate(over="ignore", invalid="ignore"):
        # Finite values a float32 apart by more than its largest number: inf, then 255.
        scaled = (values - offsets) * factor.astype(np.float32).reshape(shape)
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
    levels = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    levels[~usable] = 0
    return levels


def map_pngs(
    values: np.ndarray, lows: np.ndarray, highs: np.ndarray, table: np.ndarray
) -> list[bytes]:
    """PNG bytes of every channel of a [C, H, W] layer output (see ``map_png``)."""
    levels = layer_levels(values, lows, highs)
    return [palette_png(levels[c], table) for c in range(levels.shape[0])]


def sheet_levels(levels: np.ndarray, grid: SheetGrid) -> np.ndarray:
    """Every channel's levels [C, H, W] tiled into one [rows, columns] picture, each
    tile padded with its own edge pixels (see reportgen.imaging.sheets); cells past the last
    channel are level 0."""
    channels, height, width = levels.shape
    if (channels, height, width) != (grid.channels, grid.tile_height, grid.tile_width):
        raise ValueError(f"levels of shape {levels.shape} do not fit {grid}")
    pad = grid.pad
    cells = np.zeros((grid.rows * grid.columns, grid.cell_height, grid.cell_width), np.uint8)
    cells[:channels] = np.pad(levels, ((0, 0), (pad, pad), (pad, pad)), mode="edge")
    by_row = cells.reshape(grid.rows, grid.columns, grid.cell_height, grid.cell_width)
    return by_row.transpose(0, 2, 1, 3).reshape(grid.height, grid.width)


def map_sheet_png(
    values: np.ndarray, lows: np.ndarray, highs: np.ndarray, table: np.ndarray, grid: SheetGrid
) -> bytes:
    """One palette PNG holding every channel's map of a [C, H, W] layer output, each on
    its own range (``lows``/``highs``): the same levels as ``map_pngs``, one file."""
    return palette_png(sheet_levels(layer_levels(values, lows, highs), grid), table)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


_PNG_END = _png_chunk(b"IEND", b"")


@lru_cache(maxsize=16)
def _plte_chunk(palette: bytes) -> bytes:
    return _png_chunk(b"PLTE", palette)


def palette_png(levels: np.ndarray, table: np.ndarray) -> bytes:
    """An 8-bit palette PNG of a [H, W] uint8 array, written directly with zlib.

    The same pixels as Pillow's palette PNG, without Pillow's per-image overhead (a
    report has thousands of small maps): no filter (the PNG advice for palette images),
    no time or software metadata.
    """
    height, width = levels.shape
    rows = np.zeros((height, width + 1), dtype=np.uint8)  # a 0 (no filter) byte per row
    rows[:, 1:] = levels
    header = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)
    return b"".join(
        (
            _PNG_SIGNATURE,
            _png_chunk(b"IHDR", header),
            _plte_chunk(_palette_bytes(table)),
            _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), PNG_COMPRESS_LEVEL)),
            _PNG_END,
        )
    )


def overlay_image(
    view: np.ndarray, values: np.ndarray, low: float, high: float, table: np.ndarray, alpha: float
) -> Image.Image:
    """The map upsampled bilinearly to the view, coloured, blended with ``alpha``."""
    height, width = view.shape[:2]
    span = high - low
    normalised = (
        np.zeros(values.shape, dtype=np.float32)
        if not np.isfinite(span) or span <= 0
        else np.nan_to_num((np.asarray(values, np.float32) - low) / span, nan=0.0)
    )
    # Levels 0..255 (+0.5: Pillow's F-to-L conversion truncates), upsampled bilinearly,
    # coloured through the palette and blended, all in Pillow's C code: a report has
    # many overlays and numpy's fancy indexing of a 224x224x3 table lookup is slow.
    scaled = normalised.astype(np.float32) * np.float32(255.0) + np.float32(0.5)
    levels = Image.fromarray(scaled, mode="F").resize((width, height), Image.Resampling.BILINEAR)
    coloured = levels.convert("L")
    coloured.putpalette(_palette_bytes(table))
    base = Image.fromarray(np.ascontiguousarray(view, dtype=np.uint8), mode="RGB")
    return Image.blend(base, coloured.convert("RGB"), float(alpha))


def overlay_jpeg(
    view: np.ndarray, values: np.ndarray, low: float, high: float, table: np.ndarray, alpha: float
) -> bytes:
    return encode_jpeg(overlay_image(view, values, low, high, table, alpha))


def _normalise(array: np.ndarray) -> np.ndarray:
    """Min-max scale to 0..1; a flat array becomes mid-grey instead of NaN."""
    array = np.asarray(array, dtype=np.float64)
    low, high = float(array.min()), float(array.max())
    if high <= low:
        return np.full(array.shape, 0.5)
    return (array - low) / (high - low)


def filter_rgb_png(kernel: np.ndarray) -> bytes:
    """A first-layer filter [3, kh, kw] as one RGB picture, scaled over the filter."""
    rgb = np.rint(_normalise(kernel).transpose(1, 2, 0) * 255.0).astype(np.uint8)
    return encode_png(Image.fromarray(rgb, mode="RGB"))


def filter_channel_pngs(kernel: np.ndarray) -> dict[str, bytes]:
    """R, G and B of a first-layer filter apart, each tinted its colour, on a shared scale."""
    scaled = _normalise(kernel)
    pictures = {}
    for index, colour in enumerate("rgb"):
        tinted = np.zeros((*scaled.shape[1:], 3), dtype=np.uint8)
        tinted[..., index] = np.rint(scaled[index] * 255.0).astype(np.uint8)
        pictures[colour] = encode_png(Image.fromarray(tinted, mode="RGB"))
    return pictures


def filter_mean_png(kernel: np.ndarray) -> bytes:
    """A deeper filter [in, kh, kw] as the mean over its input channels, in grey."""
    mean = np.asarray(kernel, dtype=np.float64).mean(axis=0)
    grey = np.rint(_normalise(mean) * 255.0).astype(np.uint8)
    return encode_png(Image.fromarray(grey, mode="L"))


def view_jpeg(view: Image.Image) -> bytes:
    return encode_jpeg(view, quality=92)


THUMBNAIL_SIZE = 160


def thumbnail_size(width: int, height: int, size: int = THUMBNAIL_SIZE) -> tuple[int, int]:
    """The (width, height) ``thumbnail_jpeg`` gives an image of that size, computed as
    Pillow's ``Image.thumbnail`` does (pages write it on the <img>: no layout shift)."""
    if width <= size and height <= size:
        return width, height
    aspect = width / height

    def rounded(number: float, key: Callable[[int], float]) -> int:
        return max(min(math.floor(number), math.ceil(number), key=key), 1)

    if size / size >= aspect:  # the height is the bound
        return rounded(size * aspect, key=lambda n: abs(aspect - n / size)), size
    return size, rounded(size / aspect, key=lambda n: 0 if n == 0 else abs(aspect - size / n))


def thumbnail_jpeg(image: Image.Image, size: int = THUMBNAIL_SIZE) -> bytes:
    thumb = image.copy()
    thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
    return encode_jpeg(thumb)


def colorbar_png(table: np.ndarray, width: int = 256, height: int = 12) -> bytes:
    """The colormap as a horizontal strip, low values on the left."""
    levels = np.linspace(0, 255, width).round().astype(np.uint8)
    strip = np.broadcast_to(table[levels][None, :, :], (height, width, 3))
    return encode_png(Image.fromarray(np.ascontiguousarray(strip), mode="RGB"))


EXAMPLE_TILE = 64


def crop_tile(view: Image.Image, box: list[int], size: int = EXAMPLE_TILE) -> Image.Image:
    """The view inside ``box`` [x0, y0, x1, y1], resized to a square tile. Pillow resamples
    the box straight from the view (no crop copied out and back: a report makes
    thousands of these)."""
    x0, y0, x1, y1 = box
    return view.resize((size, size), Image.Resampling.BILINEAR, box=(x0, y0, x1, y1))


class ExampleCropper:
    """Example tiles of one view. A box at least twice the tile is taken from a copy of
    the view reduced once by an integer factor (Pillow's box filter), so each tile reads
    about a tile's worth of pixels: deep layers' fields are most of the view, and a
    report crops thousands of them. Same pixels as ``crop_tile`` to within rounding."""

    def __init__(self, view: Image.Image, size: int = EXAMPLE_TILE) -> None:
        self.view = view
        self.size = size
        self._reduced: dict[int, Image.Image] = {}

    def tile(self, box: list[int]) -> Image.Image:
        x0, y0, x1, y1 = box
        factor = min(x1 - x0, y1 - y0) // self.size
        if factor < 2:
            return crop_tile(self.view, box, self.size)
        reduced = self._reduced.get(factor)
        if reduced is None:
            reduced = self._reduced[factor] = self.view.reduce(factor)
        scaled = (x0 / factor, y0 / factor, x1 / factor, y1 / factor)
        return reduced.resize((self.size, self.size), Image.Resampling.BILINEAR, box=scaled)


def example_sheet_jpeg(strips: list[list[Image.Image]], grid: SheetGrid) -> bytes:
    """Channels' strips of dataset examples, one row each, in one picture laid out by
    ``grid`` (``example_grid``: one tile per strip). Rows and places without an example
    stay a neutral grey."""
    sheet = Image.new("RGB", (grid.width, grid.height), (128, 128, 128))
    for row, tiles in enumerate(strips):
        x0, y0, _, _ = grid.box(row)
        for k, tile in enumerate(tiles):
            sheet.paste(tile, (x0 + k * tile.width, y0))
    return encode_jpeg(sheet, quality=EXAMPLES_JPEG_QUALITY, optimize=True)


def tiles_strip_jpeg(tiles: list[Image.Image]) -> bytes:
    """Tiles side by side in one picture, in the order given (dataset examples, as in
    ``example_sheet_jpeg``)."""
    strip = Image.new("RGB", (sum(t.width for t in tiles), max(t.height for t in tiles)))
    left = 0
    for tile in tiles:
        strip.paste(tile, (left, 0))
        left += tile.width
    return encode_jpeg(strip, quality=EXAMPLES_JPEG_QUALITY, optimize=True)
