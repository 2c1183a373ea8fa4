"""Dataset examples of a folder report: the strips of 64 channels in one JPEG sheet per
block, laid out as the manifest says (issue 13, per-channel cost)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from reportgen.imaging.pictures import crop_tile
from reportgen.imaging.sheets import EXAMPLE_SHEET_CHANNELS, SheetGrid
from reportgen.report.manifest_file import layer_channels
from tests.helpers import build_small_report


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_small_report(tmp_path_factory)


def _layers(report: Path) -> list[dict[str, Any]]:
    manifest = json.loads((report / "manifest.json").read_text(encoding="utf-8"))
    return list(manifest["models"][0]["layers"])


def _tile(sheet: Image.Image, grid: SheetGrid, row: int, k: int) -> np.ndarray:
    x0, y0, _, y1 = grid.box(row)
    side = y1 - y0
    return np.asarray(sheet.crop((x0 + k * side, y0, x0 + (k + 1) * side, y1)), np.float64)


def test_each_channels_row_holds_its_own_crops(report: Path) -> None:
    for layer in _layers(report):
        if layer["units"]:
            assert layer["example_sheet"] is None
            continue
        grid = SheetGrid.from_manifest(layer["example_sheet"])
        folder = (report / layer["page"]).parent
        sheets = sorted(p.name for p in folder.glob("examples-[0-9]*.jpg"))
        expected = -(-len(layer["channels"]) // EXAMPLE_SHEET_CHANNELS)
        assert sheets == [f"examples-{i:03d}.jpg" for i in range(expected)]
        assert not (folder / "examples").exists()  # no file per channel
        pattern = layer["images"]["examples_sheet"]
        for c in (0, 5, len(layer["channels"]) - 1):
            channel = layer["channels"][c]
            path = report / pattern.format(sheet=c // EXAMPLE_SHEET_CHANNELS)
            with Image.open(path) as sheet:
                sheet = sheet.convert("RGB")
                for k, example in enumerate(channel["examples"]):
                    view_path = report / f"models/alexnet/views/{example['input']}.jpg"
                    with Image.open(view_path) as view:
                        crop = np.asarray(crop_tile(view.convert("RGB"), example["box"]))
                    shown = _tile(sheet, grid, c % EXAMPLE_SHEET_CHANNELS, k)
                    # two JPEG encodings apart; a wrong row or place differs by far more
                    own = np.abs(shown - crop).mean()
                    assert own < 6, (layer["name"], c, k, own)
                    flipped = np.abs(shown - crop[::-1, ::-1]).mean()
                    assert flipped > own, (layer["name"], c, k)


def test_pages_show_the_row_of_their_channel(report: Path) -> None:
    layer = next(x for x in _layers(report) if not x["units"])
    grid = SheetGrid.from_manifest(layer["example_sheet"])
    channel = layer_channels(layer)[5]
    page = (report / channel["page"]).read_text(encoding="utf-8")
    column, row = grid.cell(5 % EXAMPLE_SHEET_CHANNELS)
    assert f"examples own-size tile g{grid.columns}x{grid.rows}-" in page
    assert f' tc{column} tr{row}"><img src="examples-000.jpg"' in page
    css = (report / "assets" / "style.css").read_text(encoding="utf-8")
    name = f"g{grid.columns}x{grid.rows}-{grid.tile_width}x{grid.tile_height}p0"
    assert (
        f".{name}.own-size {{ width: {grid.tile_width}px; height: {grid.tile_height}px; }}" in css
    )


def test_a_field_that_covers_the_view_shows_the_views_not_crops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Layers whose every cell sees the whole view (a brute force over every cell's box
    decides which) link the inputs' views as their examples and write no sheet; the
    others keep their sheets of crops."""
    import sys

    import torch

    from reportgen.nn.receptive import receptive_fields
    from tests.helpers import TESTS, invoke_reproducible, write_images

    monkeypatch.syspath_prepend(str(TESTS))
    sys.modules.pop("fieldnet_factory", None)
    import fieldnet_factory

    images = write_images(tmp_path / "in", 3, (16, 16))
    out = tmp_path / "report"
    args = ["run", str(images), "-m", "fieldnet_factory:dilated", "--weights", "none"]
    result = invoke_reproducible(*args, "--input-size", "16", "--jobs", "1", "-o", str(out))
    assert result.exit_code == 0, result.output
    layers = _layers(out)
    names = [layer["name"] for layer in layers]
    fields = receptive_fields(fieldnet_factory.dilated().eval(), names, 16, torch.device("cpu"))
    covering = {
        name
        for name in names
        if all(
            fields[name].box(y, x, (16, 16)) == [0, 0, 16, 16] for y in range(16) for x in range(16)
        )
    }
    assert covering and covering != set(names)  # both kinds are tested
    for layer in layers:
        folder = (out / layer["page"]).parent
        sheets = list(folder.glob("examples-*.jpg"))
        channel_page = (out / layer_channels(layer)[0]["page"]).read_text(encoding="utf-8")
        assert layer["examples_are_views"] == (layer["name"] in covering)
        if layer["examples_are_views"]:
            assert not sheets and layer["example_sheet"] is None
            assert 'class="example-views"' in channel_page and "../../views/" in channel_page
        else:
            assert sheets and layer["example_sheet"] is not None
            assert 'class="example-views"' not in channel_page
