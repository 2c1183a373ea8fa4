"""Colormap tables, maps, overlays and filters: pixels checked against independent maths."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from reportgen.errors import UsageError
from reportgen.imaging import pictures as imaging


def _decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _rgb(data: bytes) -> np.ndarray:
    return np.asarray(_decode(data).convert("RGB"))


@pytest.mark.parametrize("name", ["jet", "viridis", "gray", "coolwarm", "hot"])
def test_colormap_table_matches_matplotlib_lookup_table(name: str) -> None:
    cmap = matplotlib.colormaps[name].resampled(256)
    # Integer indices read matplotlib's own lookup table entries directly.
    expected = np.round(cmap(np.arange(256))[:, :3] * 255.0).astype(np.uint8)
    table = imaging.colormap_table(name)
    assert table.shape == (256, 3) and table.dtype == np.uint8
    np.testing.assert_array_equal(table, expected)


def test_jet_ends_are_dark_blue_and_dark_red() -> None:
    table = imaging.colormap_table("jet")
    assert tuple(table[0]) == (0, 0, 128)
    assert tuple(table[-1]) == (128, 0, 0)


def test_reversed_colormap_is_the_table_backwards() -> None:
    np.testing.assert_array_equal(
        imaging.colormap_table("viridis_r"), imaging.colormap_table("viridis")[::-1]
    )


def test_unknown_colormap_is_a_usage_error_naming_valid_ones() -> None:
    with pytest.raises(UsageError, match=r"unknown colormap .jett.; closest: jet\b.*viridis"):
        imaging.colormap_table("jett")


def test_to_levels_maps_the_range_linearly_onto_0_255() -> None:
    values = np.array([[-1.0, 0.0, 1.0], [3.0, -5.0, 0.5]])
    levels = imaging.to_levels(values, -1.0, 3.0)
    expected = np.clip(np.rint((values + 1.0) / 4.0 * 255.0), 0, 255)
    np.testing.assert_array_equal(levels, expected)
    assert levels.dtype == np.uint8


def test_flat_and_nan_maps_give_level_zero_not_nan() -> None:
    flat = np.full((4, 4), 2.5)
    np.testing.assert_array_equal(imaging.to_levels(flat, 2.5, 2.5), np.zeros((4, 4)))
    with_nan = np.array([[np.nan, 1.0]])
    np.testing.assert_array_equal(imaging.to_levels(with_nan, 0.0, 1.0), [[0, 255]])


def test_map_png_keeps_true_resolution_and_colours() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(13, 27)).astype(np.float32)
    low, high = float(values.min()), float(values.max())
    table = imaging.colormap_table("jet")
    image = _decode(imaging.map_png(values, low, high, table))
    assert image.format == "PNG"
    assert image.size == (27, 13)  # no resampling: one pixel per map cell
    levels = np.rint((values.astype(np.float64) - low) / (high - low) * 255.0)
    pixels = np.asarray(image.convert("RGB")).astype(int)
    # Each pixel is the table's colour of its level (float32 rounding: at most one level off).
    got_levels = np.asarray(image)  # palette indices
    assert np.abs(got_levels.astype(int) - levels).max() <= 1
    np.testing.assert_array_equal(pixels, table[got_levels].astype(int))
    assert got_levels.min() == 0 and got_levels.max() == 255


def test_flat_map_renders_without_nan() -> None:
    table = imaging.colormap_table("jet")
    values = np.full((7, 7), 0.25, dtype=np.float32)
    with np.errstate(all="raise"):  # a 0/0 would raise here
        data = imaging.map_png(values, 0.25, 0.25, table)
        overlay = imaging.overlay_image(
            np.zeros((14, 14, 3), np.uint8), values, 0.25, 0.25, table, 1.0
        )
    pixels = _rgb(data)
    assert pixels.shape == (7, 7, 3)
    assert (pixels == table[0]).all()
    assert (np.asarray(overlay) == table[0]).all()


def test_layer_scale_uses_the_given_range_not_the_map_range() -> None:
    table = imaging.colormap_table("gray")
    values = np.array([[0.0, 1.0]], dtype=np.float32)
    own = np.asarray(_decode(imaging.map_png(values, 0.0, 1.0, table)))
    wider = np.asarray(_decode(imaging.map_png(values, 0.0, 2.0, table)))
    assert own.tolist() == [[0, 255]]
    assert wider.tolist() == [[0, 128]]


def test_overlay_is_bilinear_upsampling_blended_with_alpha() -> None:
    rng = np.random.default_rng(1)
    values = rng.uniform(0.0, 1.0, size=(5, 6)).astype(np.float32)
    view = rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
    gray = imaging.colormap_table("gray")  # colour == level: easy to check
    # alpha 1: the coloured map alone, upsampled like torch's bilinear (half-pixel centres).
    only_map = np.asarray(imaging.overlay_image(view, values, 0.0, 1.0, gray, 1.0)).astype(float)
    assert only_map.shape == (40, 48, 3)
    upsampled = torch.nn.functional.interpolate(
        torch.from_numpy(values)[None, None], size=(40, 48), mode="bilinear", align_corners=False
    )[0, 0].numpy()
    assert np.abs(only_map[..., 0] - upsampled * 255.0).max() <= 1.01
    # Smooth, not blocky: many more distinct levels than map cells.
    assert len(np.unique(only_map[..., 0])) > values.size * 3
    # alpha 0: the view unchanged; alpha 0.5: the average of the two.
    unchanged = np.asarray(imaging.overlay_image(view, values, 0.0, 1.0, gray, 0.0))
    np.testing.assert_array_equal(unchanged, view)
    half = np.asarray(imaging.overlay_image(view, values, 0.0, 1.0, gray, 0.5)).astype(float)
    assert np.abs(half - (0.5 * view + 0.5 * only_map)).max() <= 1.0


def test_overlay_jpeg_has_the_view_size() -> None:
    table = imaging.colormap_table("jet")
    view = np.zeros((224, 224, 3), np.uint8)
    image = _decode(imaging.overlay_jpeg(view, np.eye(7), 0.0, 1.0, table, 0.5))
    assert image.format == "JPEG" and image.size == (224, 224)


def _minmax(array: np.ndarray) -> np.ndarray:
    return (array - array.min()) / (array.max() - array.min())


def test_first_layer_filter_as_rgb_and_its_channels_apart() -> None:
    rng = np.random.default_rng(2)
    kernel = rng.normal(size=(3, 11, 11))
    scaled = np.rint(_minmax(kernel) * 255.0)
    rgb = _rgb(imaging.filter_rgb_png(kernel)).astype(int)
    assert rgb.shape == (11, 11, 3)
    np.testing.assert_array_equal(rgb, scaled.transpose(1, 2, 0))
    parts = imaging.filter_channel_pngs(kernel)
    assert sorted(parts) == ["b", "g", "r"]
    for index, colour in enumerate("rgb"):
        pixels = _rgb(parts[colour]).astype(int)
        assert pixels.shape == (11, 11, 3)
        # Only its own colour is lit, on the scale shared by the three channels.
        np.testing.assert_array_equal(pixels[..., index], scaled[index])
        others = [i for i in range(3) if i != index]
        assert (pixels[..., others] == 0).all()


def test_deeper_filter_is_the_channel_mean_in_grey() -> None:
    kernel = np.random.default_rng(3).normal(size=(64, 3, 3))
    image = _decode(imaging.filter_mean_png(kernel))
    assert image.mode == "L" and image.size == (3, 3)
    np.testing.assert_array_equal(np.asarray(image), np.rint(_minmax(kernel.mean(axis=0)) * 255.0))


def test_flat_filter_is_mid_grey() -> None:
    pixels = _rgb(imaging.filter_rgb_png(np.zeros((3, 5, 5))))
    assert (pixels == 128).all()
    assert (np.asarray(_decode(imaging.filter_mean_png(np.ones((4, 3, 3))))) == 128).all()


def test_colorbar_runs_from_low_to_high() -> None:
    table = imaging.colormap_table("viridis")
    strip = _rgb(imaging.colorbar_png(table, width=256, height=5))
    assert strip.shape == (5, 256, 3)
    np.testing.assert_array_equal(strip[0], table)
    np.testing.assert_array_equal(strip[4], table)


def test_thumbnail_keeps_aspect_within_size() -> None:
    picture = Image.new("RGB", (640, 320), (10, 200, 30))
    thumb = _decode(imaging.thumbnail_jpeg(picture, size=160))
    assert thumb.size == (160, 80)


def test_png_bytes_are_deterministic() -> None:
    table = imaging.colormap_table("jet")
    values = np.random.default_rng(4).normal(size=(9, 9))
    assert imaging.map_png(values, -1, 1, table) == imaging.map_png(values, -1, 1, table)
