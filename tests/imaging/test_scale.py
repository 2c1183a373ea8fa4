"""Functional checks of the fast paths (no timings here: speed lives in benchmarks/)."""

from __future__ import annotations

import filecmp
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from reportgen import api as pipeline
from reportgen.imaging import pictures as imaging
from reportgen.report import site
from reportgen.settings import RunSettings


def _decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_layer_levels_equal_to_levels_per_channel() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(6, 5, 7)).astype(np.float32)
    values[2] = 1.5  # flat
    values[3, 0, 0] = np.nan
    lows = values.reshape(6, -1)
    low = np.nan_to_num(np.nanmin(lows, axis=1))
    high = np.nan_to_num(np.nanmax(lows, axis=1))
    high[4] = np.inf  # unusable range: level 0, like to_levels
    levels = imaging.layer_levels(values, low, high)
    for c in range(6):
        expected = imaging.to_levels(values[c], float(low[c]), float(high[c]))
        np.testing.assert_array_equal(levels[c], expected)


def test_map_pngs_are_the_single_map_pngs_and_decode_to_the_palette() -> None:
    table = imaging.colormap_table("viridis")
    rng = np.random.default_rng(1)
    values = rng.normal(size=(4, 9, 11)).astype(np.float32)
    low = values.reshape(4, -1).min(axis=1)
    high = values.reshape(4, -1).max(axis=1)
    many = imaging.map_pngs(values, low, high, table)
    for c in range(4):
        assert many[c] == imaging.map_png(values[c], float(low[c]), float(high[c]), table)
        image = _decode(many[c])
        assert image.mode == "P" and image.size == (11, 9)
        indices = np.asarray(image)
        np.testing.assert_array_equal(
            indices, imaging.to_levels(values[c], float(low[c]), float(high[c]))
        )
        np.testing.assert_array_equal(np.asarray(image.convert("RGB")), table[indices])


def test_palette_png_has_no_metadata_chunks() -> None:
    data = imaging.palette_png(np.zeros((2, 3), np.uint8), imaging.colormap_table("gray"))
    chunks = []
    offset = 8
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + 4], "big")
        chunks.append(data[offset + 4 : offset + 8])
        offset += 12 + length
    assert chunks == [b"IHDR", b"PLTE", b"IDAT", b"IEND"]


def test_overlay_alpha_extremes_and_size() -> None:
    table = imaging.colormap_table("gray")
    view = np.random.default_rng(2).integers(0, 256, size=(30, 20, 3), dtype=np.uint8)
    values = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(
        np.asarray(imaging.overlay_image(view, values, 0.0, 1.0, table, 0.0)), view
    )
    only = np.asarray(imaging.overlay_image(view, values, 0.0, 1.0, table, 1.0))
    assert only.shape == (30, 20, 3)
    assert only[0, 0, 0] <= 1 and only[-1, -1, 0] >= 254  # low corner dark, high corner bright


def _settings(images: Path, out: Path, **runtime: Any) -> RunSettings:
    return RunSettings(
        inputs=(str(images),),
        output=str(out),
        models=("alexnet",),
        weights="none",
        layers=("features.0",),
        batch_size=2,
        gradcam=False,
        no_cache=True,
        **runtime,
    )


def test_inputs_stream_in_batches(
    small_images: Path, tmp_path: Path, forward_passes: list[int]
) -> None:
    pipeline.build_report(settings=_settings(small_images, tmp_path / "r"))
    assert forward_passes == [2, 1]  # 3 inputs, --batch-size 2


def test_pages_rendered_by_several_processes_are_the_same(
    small_images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    one = tmp_path / "one"
    pipeline.build_report(settings=_settings(small_images, one, jobs=1))
    monkeypatch.setattr(site, "_PARALLEL_PAGES", 1)  # fork even for this small report
    calls: list[int] = []
    original = site.render_in_processes

    def spy(data: Any, staged: Any, csp: str, workers: int) -> int:
        calls.append(workers)
        return original(data, staged, csp, workers)

    monkeypatch.setattr(site, "render_in_processes", spy)
    two = tmp_path / "two"
    summary = pipeline.build_report(settings=_settings(small_images, two, jobs=2))
    assert calls == [2]
    files = sorted(str(p.relative_to(one)) for p in one.rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(two)) for p in two.rglob("*") if p.is_file())
    _, mismatch, errors = filecmp.cmpfiles(one, two, files, shallow=False)
    assert mismatch == [] and errors == []
    assert summary.pages == sum(1 for f in files if f.endswith(".html"))


def test_a_run_leaves_the_warning_filters_as_it_found_them(tmp_path: Path) -> None:
    """Decoding sets warning filters for its duration, and those are process-wide: a run
    with worker threads must never decode on two at once, or an interleaved restore
    would leave "ignore every warning" behind for the API user's whole process."""
    import warnings

    import reportgen

    images = tmp_path / "in"
    images.mkdir()
    rng = np.random.default_rng(2)
    for i in range(16):  # big enough that decodes on two threads would overlap
        pixels = rng.integers(0, 256, size=(600, 500 + i, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / f"p{i:02d}.png")
    options: dict[str, Any] = dict(
        models=["alexnet"], weights="none", layers=["features.0"], gradcam=False, cache_dir="off"
    )
    # A first run imports torch and the rest, which add filters of their own.
    reportgen.build_report([str(images / "p00.png")], str(tmp_path / "warm"), **options)
    before = list(warnings.filters)
    reportgen.build_report([str(images)], str(tmp_path / "out"), jobs=2, **options)
    assert list(warnings.filters) == before
