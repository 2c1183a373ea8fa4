"""Issue 26, part 3: feature visualisations are compact files, and a layer page shows
every visualised channel's picture in its card, as a tile of one sheet per layer (the
page pulls one picture, however many channels; the card's CSS draws the tile)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reportgen.imaging import fv_pictures
from tests.helpers import invoke, write_images


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("fv-cards")
    images = write_images(base / "imgs", 4, (36, 40), seed=5)
    out = base / "rep"
    result = invoke(
        "-q", "run", str(images), "-m", "tests.tinynet_factory:build", "--weights", "none",
        "--input-size", "32", "--feature-vis", "--fv-channels", "all", "--fv-steps", "4",
        "--fv-size", "64", "--fv-batch", "5", "--no-cache", "-o", str(out),
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def _pixels(path: Path, kind: str = "WEBP") -> np.ndarray:
    with Image.open(io.BytesIO(path.read_bytes())) as picture:
        assert picture.format == kind
        return np.asarray(picture.convert("RGB"), dtype=np.float64)


def test_each_card_shows_its_channels_picture_from_the_layers_sheet(report: Path) -> None:
    manifest = json.loads((report / "manifest.json").read_text())
    for layer in manifest["models"][0]["layers"]:
        channels = layer["channels"]
        assert all(c.get("feature_vis") for c in channels)  # --fv-channels all
        folder = report / Path(channels[0]["feature_vis"]["image"]).parent.parent
        sheet = _pixels(folder / "featurevis.jpg", "JPEG")
        grid = fv_pictures.sheet_grid(len(channels))
        assert sheet.shape[:2] == (grid.height, grid.width)
        for channel in channels:
            picture = _pixels(report / channel["feature_vis"]["image"])
            assert picture.shape == (64, 64, 3)
            x0, y0, x1, y1 = grid.box(channel["index"])
            # the tile is the picture shrunk (JPEG at the sheet's quality on top)
            expected = fv_pictures.tile(picture.astype(np.uint8)).astype(np.float64)
            assert np.abs(sheet[y0:y1, x0:x1] - expected).mean() < 6
        page = (folder / "index.html").read_text()
        # a card is one link: its pictures are drawn by the report's CSS from the
        # layer's sheets (reportgen/report/cards.py)
        cards = re.findall(r'<a href="[^"]+" data-c="(\d+)" class="card ([^"]*)">', page)
        assert len(cards) == len(channels)
        assert all({"ex", "vis"} <= set(classes.split()) for _, classes in cards)
        assert "<img" not in page[page.index("data-grid>") :]
        grid = re.search(r'<div class="grid cards drawn (k[0-9a-f]+)[^"]*" data-grid>', page)
        assert grid is not None
        css = (report / "assets/style.css").read_text()
        rule = re.search(
            rf"\.{grid[1]} > a\.vis::after {{ background-image: url\(\"([^\"]+)\"\)", css
        )
        assert rule is not None
        assert (report / "assets" / rule[1]).resolve() == (folder / "featurevis.jpg").resolve()
        # no picture of its own per channel on the layer page: one sheet for all
        assert "featurevis/c0" not in page


def test_a_single_file_report_keeps_the_pictures_in_its_gallery(tmp_path: Path) -> None:
    images = write_images(tmp_path / "imgs", 2, (36, 40), seed=5)
    out = tmp_path / "one.html"
    result = invoke(
        "-q", "run", str(images), "-m", "tests.tinynet_factory:build", "--weights", "none",
        "--input-size", "32", "-l", "conv2", "--feature-vis", "--fv-steps", "2",
        "--fv-size", "32", "--no-cache", "--single-file", "-o", str(out),
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "Image optimised to excite channel" in html and "data:image/webp;base64," in html
    assert 'class="fv-first' not in html


def test_a_picture_over_the_budget_is_encoded_again_lower_and_fits() -> None:
    generator = np.random.default_rng(0)
    noise = generator.integers(0, 256, (256, 256, 3), dtype=np.uint8)  # incompressible
    smooth = np.broadcast_to(np.linspace(0, 255, 256, dtype=np.uint8)[None, :, None], noise.shape)
    for pixels in (noise, smooth):
        data = fv_pictures.picture_file(pixels)
        with Image.open(io.BytesIO(data)) as picture:
            assert picture.format == "WEBP" and picture.size == (256, 256)
    at_quality = io.BytesIO()
    Image.fromarray(noise).save(at_quality, format="WEBP", quality=fv_pictures.QUALITY, method=6)
    assert at_quality.tell() > fv_pictures.BUDGET  # the case the budget is for
    assert len(fv_pictures.picture_file(noise)) <= fv_pictures.BUDGET
    # a picture that fits is the plain encoding at QUALITY
    plain = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(smooth)).save(
        plain, format="WEBP", quality=fv_pictures.QUALITY, method=6
    )
    assert fv_pictures.picture_file(smooth) == plain.getvalue()
