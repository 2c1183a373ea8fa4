"""Issue 25, part 1: every page pulls at most 2.5 MB over a link (HTML, CSS, JS and every
picture it references), and its first screen at most 1 MB, whatever the number of inputs;
the pictures that make it so (channel strips, comparison sheets, a layer's strongest
examples) show exactly the sheets' pixels."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from reportgen.imaging.sheets import SheetGrid
from reportgen.report.pages import COMPARE_SIZE
from reportgen.report.strips import COMPARE_TILE, channel_strip, compare_sheet
from reportgen.tools.pageweight import page_kind, page_transfer
from tests.helpers import invoke, write_images

PAGE_BYTES = 2_500_000
FIRST_SCREEN_BYTES = 1_000_000
INPUTS = 36  # more than the 32 detail inputs of the default --detail


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ResNet-18 at default settings but for the layers: its widest maps (conv1, 64 of
    112x112), a 1x1 convolution, its widest layer (512 channels) and the class units."""
    base = tmp_path_factory.mktemp("weight")
    images = write_images(base / "imgs", INPUTS, (48, 64))
    out = base / "rep"
    result = invoke(
        "run", str(images), "-m", "resnet18", "--weights", "none",
        "-l", "conv1", "-l", "layer3.0.downsample.0", "-l", "layer4.1.conv2", "-l", "fc",
        "-o", str(out), "--no-cache",
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def _manifest(report: Path) -> dict[str, Any]:
    return json.loads((report / "manifest.json").read_text())


def _levels(path: Path) -> np.ndarray:
    with Image.open(io.BytesIO(path.read_bytes())) as picture:
        assert picture.mode == "P"
        return np.asarray(picture)


def _tile(levels: np.ndarray, grid: dict[str, Any] | SheetGrid, index: int) -> np.ndarray:
    g = grid if isinstance(grid, SheetGrid) else SheetGrid.from_manifest(grid)
    x0, y0, x1, y1 = g.box(index)
    return levels[y0:y1, x0:x1]


@pytest.mark.slow
def test_no_page_pulls_more_than_the_bounds(report: Path) -> None:
    pages = sorted(p.relative_to(report).as_posix() for p in report.rglob("*.html"))
    kinds = {page_kind(p) for p in pages}
    expected = {"index", "model", "compare", "input", "layer", "channel", "input-layer"}
    assert expected | {"classes", "class"} <= kinds
    over = []
    for page in pages:
        transfer = page_transfer(report, page)
        if transfer.bytes > PAGE_BYTES or transfer.first_screen_bytes > FIRST_SCREEN_BYTES:
            over.append((page, transfer.bytes, transfer.first_screen_bytes))
    assert not over, over[:10]


def test_page_transfer_counts_each_referenced_file_once(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "p.png").write_bytes(b"x" * 1000)
    (tmp_path / "s.css").write_bytes(b"y" * 100)
    (tmp_path / "a" / "page.html").write_text(
        '<link rel="stylesheet" href="../s.css"><img src="p.png"><img src="p.png" '
        'loading="lazy"><img src="data:image/png;base64,AAAA"><a href="../other.html">x</a>'
    )
    size = len((tmp_path / "a" / "page.html").read_bytes())
    transfer = page_transfer(tmp_path, "a/page.html")
    assert (transfer.bytes, transfer.files) == (size + 1100, 3)
    assert transfer.first_screen_bytes == size + 1100  # once eager, always eager
    (tmp_path / "a" / "page.html").write_text('<img src="p.png" loading="lazy">')
    lazy = page_transfer(tmp_path, "a/page.html")
    assert lazy.bytes - lazy.first_screen_bytes == 1000
    # a picture the stylesheet draws counts where a class of the page hangs its rule
    (tmp_path / "s.css").write_text('.k1 > a.ex::before { background-image: url("a/q.jpg"); }\n')
    (tmp_path / "a" / "q.jpg").write_bytes(b"z" * 500)
    for classes, pulled in (("k1 fi", 500), ("k2", 0)):
        html = f'<link rel="stylesheet" href="../s.css"><div class="grid {classes}"></div>'
        (tmp_path / "a" / "page.html").write_text(html)
        drawn = page_transfer(tmp_path, "a/page.html")
        assert (
            drawn.first_screen_bytes == len(html) + len((tmp_path / "s.css").read_bytes()) + pulled
        )


@pytest.mark.slow
def test_channel_strips_hold_each_detail_inputs_map(report: Path) -> None:
    model = _manifest(report)["models"][0]
    for layer in model["layers"]:
        grid = layer["map_sheet"]
        if grid is None:
            continue
        detail = list(layer["detail_pages"])
        assert len(detail) == 32
        strip_grid = SheetGrid.for_layer(
            len(detail), grid["tile_height"], grid["tile_width"], grid["pad"]
        )
        sheets = {i: _levels(report / layer["images"]["map_sheet"].format(input=i)) for i in detail}
        for channel in (0, grid["channels"] // 2, grid["channels"] - 1):
            strip = _levels(report / channel_strip(model["id"], layer["name"], channel))
            for d, input_id in enumerate(detail):
                expected = _tile(sheets[input_id], grid, channel)
                assert np.array_equal(_tile(strip, strip_grid, d), expected)
        page = (report / layer["channel_page"].format(channel=1)).read_text()
        assert "/sheets/" not in page and "strips/c0001.png" in page


@pytest.mark.slow
def test_comparison_sheets_scale_the_top_maps(report: Path) -> None:
    model = _manifest(report)["models"][0]
    map_layers = [x for x in model["layers"] if x["map_sheet"] is not None]
    detail = list(map_layers[0]["detail_pages"])
    compare_grid = SheetGrid(4 * len(map_layers), 4, len(map_layers), COMPARE_TILE, COMPARE_TILE, 0)
    for input_id in detail[:3]:
        sheet = _levels(report / compare_sheet(model["id"], input_id))
        for row, layer in enumerate(map_layers):
            maps = _levels(report / layer["images"]["map_sheet"].format(input=input_id))
            for k, channel in enumerate(layer["selected"][input_id][:4]):
                shown = _tile(sheet, compare_grid, row * 4 + k).astype(int)
                true = _tile(maps, layer["map_sheet"], channel).astype(int)
                side = true.shape[0]
                if side <= COMPARE_TILE and COMPARE_TILE % side == 0:  # enlarged: repeated
                    factor = COMPARE_TILE // side
                    assert np.array_equal(shown, true.repeat(factor, 0).repeat(factor, 1))
                elif side % COMPARE_TILE == 0:  # reduced: the mean of each block, rounded
                    f = side // COMPARE_TILE
                    means = true.reshape(COMPARE_TILE, f, COMPARE_TILE, f).mean(axis=(1, 3))
                    assert np.abs(shown - means).max() <= 1
    pages = [model["compare_page"]] + [
        model["compare_page"].replace(".html", f"-{n}.html")
        for n in range(2, -(-len(detail) // COMPARE_SIZE) + 1)
    ]
    shown_inputs = []
    for page in pages:
        text = (report / page).read_text()
        assert "/sheets/" not in text
        shown_inputs += [i for i in detail if f'id="cmp-{i}"' in text]
    assert shown_inputs == detail  # every detail input, once, in order


@pytest.mark.slow
def test_layer_cards_show_each_channels_strongest_example(report: Path) -> None:
    model = _manifest(report)["models"][0]
    layer = next(x for x in model["layers"] if x["name"] == "layer4.1.conv2")
    page = (report / layer["page"]).read_text()
    # the cards draw it from the report's CSS (reportgen/report/cards.py): the page pulls it
    assert "examples-000.jpg" not in page and "<img" not in page.split("data-grid>")[-1]
    pulled = page_transfer(report, layer["page"])
    firsts_file = (report / layer["page"]).parent / "examples-first.jpg"
    assert pulled.first_screen_bytes >= firsts_file.stat().st_size
    firsts = Image.open(report / layer["page"].replace("index.html", "examples-first.jpg"))
    grid = SheetGrid.for_layer(len(layer["channels"]), 64, 64, pad=0)
    assert firsts.size == (grid.width, grid.height)
    example = layer["example_sheet"]
    for channel in (0, 200, 511):
        sheet = Image.open(
            report / layer["images"]["examples_sheet"].format(sheet=channel // example["channels"])
        )
        row = channel % example["channels"]
        first = np.asarray(sheet.crop((0, row * 64, 64, row * 64 + 64)), float)
        x0, y0, x1, y1 = grid.box(channel)
        card = np.asarray(firsts.crop((x0, y0, x1, y1)), float)
        assert np.abs(first - card).mean() < 6  # the same crop, JPEG-encoded apart


# --- part 2, what can be checked without a browser -------------------------------------------

DOM_ELEMENTS = 3000


def _elements(text: str) -> int:
    return len(re.findall(r"<[a-zA-Z]", text))


@pytest.mark.slow
def test_every_page_has_a_description_an_icon_and_sized_pictures(report: Path) -> None:
    css = (report / "assets/style.css").read_text()
    for path in sorted(report.rglob("*.html")):
        page = path.relative_to(report).as_posix()
        text = path.read_text()
        description = re.search(r'<meta name="description" content="([^"]+)">', text)
        assert description and len(description[1]) > 20, page
        icon = re.search(r'<link rel="icon" href="([^"]+)"', text)
        assert icon and (path.parent / icon[1]).resolve().is_file(), page
        for span, img in re.findall(r'(?:<span class="([^"]*)">)?(<img [^>]*>)', text):
            tile = re.search(r"\btile (g\S+)", span)
            if tile:  # a tile of a sheet: sized by the sheet's rules in the report's CSS
                grid = re.escape(tile[1])
                assert re.search(rf"\.{grid} > img {{ width: [^;]+; height: ", css), (page, img)
            else:
                assert re.search(r' width="\d+" height="\d+"', img), (page, img)


@pytest.mark.slow
def test_pages_stay_under_3000_elements(report: Path) -> None:
    """Every page, the widest layer's detail inputs (512 channels) and the page of a layer
    of 1,000 class units included."""
    over = {}
    for path in sorted(report.rglob("*.html")):
        count = _elements(path.read_text())
        if count > DOM_ELEMENTS:
            over[path.relative_to(report).as_posix()] = count
    assert not over, over
    wide = [*report.glob("models/*/layers/layer4.1.conv2/inputs/*.html")]
    assert len(wide) == 32 and (report / "models/resnet18/layers/fc/index.html").is_file()


def _cell_number(text: str) -> float:
    return float(text[:-1]) / 100 if text.endswith("%") else float(text)


@pytest.mark.slow
def test_a_detail_inputs_page_links_every_channel_over_its_sheet(report: Path) -> None:
    """One picture, the input's own map sheet at its size, under one link per channel in
    sheet order, the selected ones marked; the statistics rows app.js builds the table
    from hold every channel's numbers as the layer's stats.npy has them."""
    manifest = _manifest(report)
    model = manifest["models"][0]
    layer = next(x for x in model["layers"] if x["name"] == "layer4.1.conv2")
    grid = SheetGrid.from_manifest(layer["map_sheet"])
    order = [i["id"] for i in manifest["inputs"]]
    stats = np.load(report / layer["stats_file"]["path"])
    fields = layer["stats_file"]["fields"]
    for input_id in list(layer["detail_pages"])[:3]:
        path = report / layer["detail_pages"][input_id]
        text = path.read_text()
        sheet_tag = r'<img class="sheet" src="([^"]+)"[^>]* width="(\d+)" height="(\d+)"'
        (picture,) = re.findall(sheet_tag, text)
        sheet = (path.parent / picture[0]).resolve()
        assert sheet == (report / layer["images"]["map_sheet"].format(input=input_id)).resolve()
        assert (int(picture[1]), int(picture[2])) == (grid.width, grid.height)
        assert Image.open(sheet).size == (grid.width, grid.height)
        links = re.findall(r'<a href="([^"]+)" data-c="(\d+)"( class="sel")?', text)
        assert [int(c) for _, c, _ in links] == list(range(grid.channels))
        for href, c, _ in links:
            page = report / layer["channel_page"].format(channel=int(c))
            assert (path.parent / href).resolve() == page.resolve()
        assert {int(c) for _, c, sel in links if sel} == set(layer["selected"][input_id])
        data_tag = r'<script type="application/json" class="stats-data">(.*?)</script>'
        data = json.loads(re.search(data_tag, text)[1])
        assert [row[0] for row in data["rows"]] == list(range(grid.channels))
        truth = stats[order.index(input_id)]
        for row in data["rows"]:
            c, cells = row[0], row[4:]
            assert row[3] == int(c in layer["selected"][input_id])
            for name, cell in zip(("mean", "max", "min", "std", "sparsity"), cells):
                expected = float(truth[c, fields.index(name)])
                assert _cell_number(cell) == pytest.approx(expected, rel=5e-3, abs=1e-3), (c, name)
            y, x = (int(truth[c, fields.index(k)]) for k in ("argmax_y", "argmax_x"))
            assert cells[5] == f"({y}, {x})"


def test_page_text_is_at_least_12px() -> None:
    """Every font size in the stylesheet: rem and px at least 12 px (16 px a rem)."""
    css = (Path(__file__).resolve().parents[2] / "templates/style.css").read_text()
    sizes = re.findall(r"font-size:\s*([\d.]+)(rem|px|em)", css)
    assert sizes
    for value, unit in sizes:
        px = float(value) * (16 if unit in ("rem", "em") else 1)
        assert px == 0 or px >= 12, (value, unit)
