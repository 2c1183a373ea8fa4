"""Map sheets: one picture per layer and input holding every channel's map.

The layout (reportgen.imaging.sheets), the pixels (imaging.sheet_levels / map_sheet_png against
the one-map-per-file encoder), and the CSS that shows one tile (report.tiles), checked
by working out with plain arithmetic which sheet pixels a browser puts in the box.
"""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from reportgen.imaging import pictures as imaging
from reportgen.imaging.sheets import SheetGrid
from reportgen.report import tiles

shapes = st.tuples(st.integers(1, 70), st.integers(1, 9), st.integers(1, 9))


@given(shapes, st.integers(0, 2))
@settings(max_examples=60, deadline=None)
def test_every_tile_lies_inside_the_sheet_alone_and_in_reading_order(
    shape: tuple[int, int, int], pad: int
) -> None:
    channels, height, width = shape
    grid = SheetGrid.for_layer(channels, height, width, pad)
    assert grid.columns * grid.rows >= channels > (grid.rows - 1) * grid.columns
    owner = np.full((grid.height, grid.width), -1)
    for c in range(channels):
        x0, y0, x1, y1 = grid.box(c)
        assert (x1 - x0, y1 - y0) == (width, height)
        # the padding ring is inside the sheet too
        assert min(x0, y0) >= pad
        assert x1 + pad <= grid.width and y1 + pad <= grid.height
        assert (owner[y0 - pad : y1 + pad, x0 - pad : x1 + pad] == -1).all(), "tiles overlap"
        owner[y0 - pad : y1 + pad, x0 - pad : x1 + pad] = c
    order = [grid.box(c)[1::-1] for c in range(channels)]  # (y0, x0)
    assert order == sorted(order), "channels go row by row, left to right"
    with pytest.raises(IndexError):
        grid.box(channels)


def test_manifest_description_round_trips() -> None:
    grid = SheetGrid.for_layer(192, 27, 27)
    described = grid.describe()
    assert (described["columns"], described["rows"], described["pad"]) == (14, 14, 1)
    assert SheetGrid.from_manifest(described) == grid


def _levels(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


@pytest.mark.parametrize("shape", [(64, 55, 55), (10, 3, 7), (1, 4, 4), (5, 1, 1)])
def test_sheet_holds_each_map_with_its_own_edge_around_it(shape: tuple[int, int, int]) -> None:
    levels = _levels(np.random.default_rng(0), shape)
    grid = SheetGrid.for_layer(*shape)
    sheet = imaging.sheet_levels(levels, grid)
    assert sheet.shape == (grid.height, grid.width)
    used = np.zeros(sheet.shape, bool)
    for c in range(shape[0]):
        x0, y0, x1, y1 = grid.box(c)
        np.testing.assert_array_equal(sheet[y0:y1, x0:x1], levels[c])
        cell = sheet[y0 - 1 : y1 + 1, x0 - 1 : x1 + 1]
        # The ring repeats the nearest map pixel (so smoothing never reaches a neighbour).
        np.testing.assert_array_equal(cell[0, 1:-1], levels[c][0])
        np.testing.assert_array_equal(cell[-1, 1:-1], levels[c][-1])
        np.testing.assert_array_equal(cell[1:-1, 0], levels[c][:, 0])
        np.testing.assert_array_equal(cell[1:-1, -1], levels[c][:, -1])
        assert cell[0, 0] == levels[c][0, 0] and cell[-1, -1] == levels[c][-1, -1]
        used[y0 - 1 : y1 + 1, x0 - 1 : x1 + 1] = True
    assert not sheet[~used].any(), "cells past the last channel are empty (level 0)"


def test_sheet_refuses_maps_of_another_shape() -> None:
    grid = SheetGrid.for_layer(4, 5, 5)
    with pytest.raises(ValueError, match="do not fit"):
        imaging.sheet_levels(np.zeros((4, 5, 6), np.uint8), grid)


def test_sheet_png_tiles_equal_the_single_map_pngs() -> None:
    """Each tile of the sheet decodes to the same palette and pixels as the map encoded
    on its own (the single-file report's pictures), ranges per channel included."""
    rng = np.random.default_rng(3)
    values = rng.normal(size=(12, 9, 11)).astype(np.float32)
    values[4] = 2.5  # a flat map
    lows, highs = values.min(axis=(1, 2)), values.max(axis=(1, 2))
    table = imaging.colormap_table("viridis")
    grid = SheetGrid.for_layer(12, 9, 11)
    with Image.open(io.BytesIO(imaging.map_sheet_png(values, lows, highs, table, grid))) as sheet:
        sheet.load()
    assert sheet.mode == "P" and sheet.size == (grid.width, grid.height)
    for c, single in enumerate(imaging.map_pngs(values, lows, highs, table)):
        with Image.open(io.BytesIO(single)) as alone:
            expected = np.asarray(alone.convert("RGB"))
        tile = np.asarray(sheet.crop(grid.box(c)).convert("RGB"))
        np.testing.assert_array_equal(tile, expected)


# --- the CSS that shows one tile -------------------------------------------------------------

RULE = re.compile(r"\.([\w-]+)((?:\.[\w-]+)*) > img \{ ([^}]*) \}")


def _rules(css: str) -> dict[tuple[str, ...], dict[str, float]]:
    """{classes: {property: percent}} of the generated sheet rules."""
    rules: dict[tuple[str, ...], dict[str, float]] = {}
    for first, more, body in RULE.findall(css):
        key = (first, *[c for c in more.split(".") if c])
        for declaration in body.split(";"):
            if declaration.strip():
                name, value = declaration.split(":")
                assert value.strip().endswith("%")
                rules.setdefault(key, {})[name.strip()] = float(value.strip()[:-1])
    return rules


def _shown_region(css: str, classes: str, box_width: float, box_height: float) -> tuple[float, ...]:
    """Which sheet pixels a box of the given size shows, working out the layout the rules
    give the <img> (absolutely placed; percentages of the box)."""
    names = classes.split()
    rules = _rules(css)
    found: dict[str, float] = {}
    for key, declarations in rules.items():
        if all(name in names for name in key):
            found.update(declarations)
    image_width = found["width"] / 100 * box_width
    image_height = found["height"] / 100 * box_height
    left, top = found["left"] / 100 * box_width, found["top"] / 100 * box_height
    return image_width, image_height, left, top


@pytest.mark.parametrize("shape", [(64, 55, 55), (192, 27, 27), (10, 3, 7), (1, 13, 13)])
@pytest.mark.parametrize("box", [(64.0, 64.0), (168.0, 168.0), (96.0, 40.0)])
def test_tile_css_puts_exactly_the_channels_map_in_the_box(
    shape: tuple[int, int, int], box: tuple[float, float]
) -> None:
    grid = SheetGrid.for_layer(*shape)
    css = tiles.stylesheet([grid, SheetGrid.for_layer(3, 2, 2)])
    for c in sorted({0, 1, shape[0] // 2, shape[0] - 1} & set(range(shape[0]))):
        classes = tiles.tile_classes(grid, c)
        assert classes.split()[0] == "tile"
        image_width, image_height, left, top = _shown_region(css, classes, *box)
        scale_x, scale_y = image_width / grid.width, image_height / grid.height
        # The box, mapped back onto the sheet: from -left/scale, one box wide.
        x0, y0 = -left / scale_x, -top / scale_y
        x1, y1 = x0 + box[0] / scale_x, y0 + box[1] / scale_y
        expected = grid.box(c)
        assert (x0, y0, x1, y1) == pytest.approx(expected, abs=2e-3), (c, classes)


def test_stylesheet_has_one_set_of_rules_per_geometry() -> None:
    a, b = SheetGrid.for_layer(64, 55, 55), SheetGrid.for_layer(384, 13, 13)
    css = tiles.stylesheet([a, b, a, SheetGrid.for_layer(256, 13, 13)])
    for grid in (a, b):
        name = tiles.grid_class(grid)
        assert css.count(f".{name} > img") == 1
        assert css.count(f".{name}.tc") == grid.columns
        assert css.count(f".{name}.tr") == grid.rows
    assert tiles.stylesheet([a, b]) == tiles.stylesheet([b, a]), "stable order"


class _Layer:
    def __init__(self, grid: SheetGrid | None) -> None:
        self.sheet_grid = grid
        self.sheets = {"x": "models/m/layers/l/sheets/x.png"}


class _Channel:
    index = 5
    maps = {"x": "models/m/layers/l/maps/x/c0005.png"}


def test_map_picture_is_a_tile_or_a_file_and_escapes_its_text() -> None:
    alt = 'Map on <img src=x onerror="alert(1)">'
    grid = SheetGrid.for_layer(8, 4, 4)
    layer, channel = _Layer(grid), _Channel()
    tile = str(tiles.map_picture(lambda p: f"../{p}", layer, channel, "x", "map big", alt))
    assert tile.startswith(f'<span class="map big {tiles.tile_classes(grid, 5)}">')
    assert 'src="../models/m/layers/l/sheets/x.png"' in tile
    assert "<img src=x" not in tile and "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in tile
    single = str(tiles.map_picture(lambda p: p, _Layer(None), _Channel(), "x", "map", alt))
    assert single.startswith('<img class="map" src="models/m/layers/l/maps/x/c0005.png"')
    sized = str(tiles.map_picture(lambda p: p, _Layer(None), _Channel(), "x", "map", alt, 64))
    assert ' width="64" height="64" loading="lazy">' in sized  # no layout shift while loading
    tile = str(tiles.map_picture(lambda p: p, layer, channel, "x", "map", alt, 64))
    assert "width=" not in tile  # a tile's <img> is the whole sheet: its box sizes it
    assert "<img src=x" not in single


@given(st.text())
def test_fast_escape_matches_markupsafe(text: str) -> None:
    """The pages' Python-built parts escape exactly as Jinja's autoescape does."""
    from markupsafe import escape

    from reportgen.report.render import escape_text

    assert escape_text(text) == str(escape(text))


def test_example_tiles_resample_the_box_like_a_crop_then_resize() -> None:
    """Dataset-example tiles are taken from the view without copying the crop out; the
    pixels are those of cropping, then resizing (but for the outermost pixels, which may
    now blend in the view just outside the box), and the strip puts them side by side."""
    rng = np.random.default_rng(5)
    noise = Image.fromarray(rng.integers(0, 256, size=(224, 224, 3), dtype=np.uint8), "RGB")
    boxes = [[0, 0, 11, 11], [100, 37, 151, 88], [29, 29, 224, 224], [213, 0, 224, 40]]
    for box in boxes:
        tile = imaging.crop_tile(noise, box)
        expected = noise.crop(tuple(box)).resize((64, 64), Image.Resampling.BILINEAR)
        assert tile.size == (64, 64)
        inner = np.asarray(tile, int)[4:-4, 4:-4] - np.asarray(expected, int)[4:-4, 4:-4]
        assert np.abs(inner).max() <= 1, box
    y, x = np.mgrid[0:224, 0:224]
    smooth = np.stack([x, y, 128 + 100 * np.sin(x / 9.0) * np.cos(y / 13.0)], axis=-1)
    view = Image.fromarray(np.clip(smooth, 0, 255).astype(np.uint8), "RGB")
    tiles = [imaging.crop_tile(view, box) for box in boxes]
    # Large boxes come from a reduced copy of the view: the same picture within rounding.
    cropper = imaging.ExampleCropper(view)
    for box, tile in zip([*boxes, [10, 20, 205, 215], [0, 0, 224, 224]], tiles + [None, None]):
        fast = np.asarray(cropper.tile(box), int)
        direct = np.asarray(tile or imaging.crop_tile(view, box), int)
        assert np.abs(fast - direct).mean() < 1.0 and np.abs(fast - direct).max() <= 12, box
    with Image.open(io.BytesIO(imaging.tiles_strip_jpeg(tiles))) as strip:
        assert strip.size == (64 * len(boxes), 64)
        for k, tile in enumerate(tiles):
            part = np.asarray(strip.crop((64 * k, 0, 64 * (k + 1), 64)), int)
            # JPEG at quality 70: about 3.5 on noise-free tiles; a wrong tile is tens off
            assert np.abs(part - np.asarray(tile, int)).mean() < 6
