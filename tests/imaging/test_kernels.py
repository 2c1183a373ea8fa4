"""Filter sheets and weights-view kernel sheets: each tile equals the per-channel
picture (or, for kernels, the symmetric grey scale) computed independently."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from reportgen.analysis.weights import strongest_inputs
from reportgen.imaging import kernels
from reportgen.imaging import pictures as imaging
from reportgen.imaging.sheets import SheetGrid


def _image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _tile(sheet: Image.Image, grid: SheetGrid, index: int) -> np.ndarray:
    return np.asarray(sheet.crop(grid.box(index)))


def test_filter_sheet_tiles_are_the_per_channel_pictures() -> None:
    weight = np.random.default_rng(1).normal(size=(10, 3, 5, 5))
    sheets = kernels.filter_sheet_pngs(weight, ("rgb", "r", "g", "b"))
    grid = kernels.filter_grid(weight)
    assert (grid.columns, grid.rows) == (4, 3)
    for c in range(10):
        alone = {"rgb": imaging.filter_rgb_png(weight[c]), **imaging.filter_channel_pngs(weight[c])}
        for part, data in alone.items():
            sheet = _image(sheets[part])
            np.testing.assert_array_equal(_tile(sheet, grid, c), np.asarray(_image(data)))
    deeper = np.random.default_rng(2).normal(size=(7, 16, 3, 3))
    (mean,) = kernels.filter_sheet_pngs(deeper, ("mean",)).values()
    grid = kernels.filter_grid(deeper)
    for c in range(7):
        expected = np.asarray(_image(imaging.filter_mean_png(deeper[c])))
        np.testing.assert_array_equal(_tile(_image(mean), grid, c), expected)


def test_tile_sheet_pads_each_tile_with_its_own_edge() -> None:
    pixels = np.arange(2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 3)
    grid = SheetGrid.for_layer(2, 2, 3)
    sheet = kernels.tile_sheet(pixels, grid)
    assert sheet.shape == (grid.height, grid.width)
    np.testing.assert_array_equal(sheet[0, 1:4], pixels[0, 0])  # padding row = first row
    np.testing.assert_array_equal(sheet[1:3, 0], pixels[0, :, 0])  # padding column


def test_kernel_sheet_holds_each_channels_shown_slices_symmetric_about_zero() -> None:
    weight = np.random.default_rng(3).normal(size=(5, 9, 3, 3))
    view = strongest_inputs(weight, 1, per_sign=2)
    sheet = _image(kernels.kernel_sheet_png(weight, view))
    grid = kernels.kernel_grid(weight, view)
    assert kernels.kernel_slots(view) == 4 and grid.channels == 20
    for o in range(5):
        shown = [int(s) for s in view.slices[o] if s >= 0]
        largest = np.abs(weight[o, shown]).max()
        for rank, j in enumerate(shown):
            expected = np.rint((weight[o, j] / largest + 1.0) / 2.0 * 255.0)
            tile = _tile(sheet, grid, kernels.kernel_tile(view, o, rank)).astype(int)
            assert np.abs(tile - expected).max() <= 1
