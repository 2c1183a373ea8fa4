"""A layer of 2,048 channels (wider than ResNet-18's or MobileNetV2's widest) keeps its page
under 3,000 elements with every card's pictures shown: a card is one link, its strongest
example, filter and feature visualisation drawn by the report's CSS from tiles of the
layer's sheets (reportgen/report/cards.py). A single-file report, which has no sheets,
keeps them as <img>s in the link."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from reportgen.imaging.sheets import SheetGrid
from tests.helpers import invoke, write_images
from tests.widenet_factory import WIDTH

DOM_ELEMENTS = 3000
CARD = re.compile(r'<a href="([^"]+)" data-c="(\d+)" class="card ([^"]*)">([^<]*)</a>')


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One conv over RGB of 2,048 channels (filters on the cards), three tiny inputs, a
    feature visualisation (two steps) for each channel selected for an input."""
    base = tmp_path_factory.mktemp("wide")
    images = write_images(base / "imgs", 3, (36, 40), seed=5)
    out = base / "rep"
    result = invoke(
        "-q", "run", str(images), "-m", "tests.widenet_factory:build", "--weights", "none",
        "--input-size", "32", "--feature-vis", "--fv-steps", "2", "--fv-size", "32",
        "--no-cache", "-o", str(out),
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def _layer(report: Path) -> dict[str, Any]:
    manifest = json.loads((report / "manifest.json").read_text(encoding="utf-8"))
    (layer,) = manifest["models"][0]["layers"]
    return dict(layer)


def _rule(css: str, selector: str) -> str:
    found = re.search(re.escape(selector) + r" \{ ([^}]*) \}", css)
    assert found is not None, selector
    return found[1]


def _urls(declarations: str) -> list[str]:
    return re.findall(r'url\("([^"]+)"\)', declarations)


def _offset(calc: str, cell: int) -> float:
    """The pixels of ``calc(var(--c) * -Apx - Bpx)`` for --c (or --r) = ``cell``."""
    found = re.fullmatch(r"calc\(var\(--[cr]\) \* -([\d.]+)px(?: - ([\d.]+)px)?\)", calc)
    assert found is not None, calc
    return -(cell * float(found[1]) + float(found[2] or 0))


def _positions(declarations: str) -> list[list[str]]:
    """background-position's layers, each [x, y] (a calc() kept whole)."""
    value = re.search(r"background-position: ([^;]+);", declarations)
    assert value is not None, declarations
    layers = re.split(r",\s*(?![^()]*\))", value[1])
    return [re.findall(r"calc\([^()]*\([^()]*\)[^()]*\)|\S+", layer) for layer in layers]


@pytest.mark.slow
def test_a_layer_of_2048_channels_stays_under_3000_elements(report: Path) -> None:
    layer = _layer(report)
    assert layer["output_shape"][0] == WIDTH
    page = report / layer["page"]
    text = page.read_text(encoding="utf-8")
    assert len(re.findall(r"<[a-zA-Z]", text)) < DOM_ELEMENTS
    cards = CARD.findall(text)
    assert [int(c) for _, c, _, _ in cards] == list(range(WIDTH))  # data-c, in order
    selected = {c["index"] for c in layer["channels"] if c["summary"]["selected"]}
    for href, c, classes, words in cards:
        # each card links its channel's page, and its text names it
        target = report / layer["channel_page"].format(channel=int(c))
        assert (page.parent / href).resolve() == target.resolve() and target.is_file()
        assert words.startswith(f"channel {c}\n")
        assert ("sel" in classes.split()) is (int(c) in selected)
    assert (
        sum(" vis" in f" {classes}" for _, _, classes, _ in cards)
        == len([c for c in layer["channels"] if c.get("feature_vis")])
        > 0
    )


@pytest.mark.slow
def test_each_cards_pictures_are_rules_of_the_reports_css(report: Path) -> None:
    """Every picture class of a card has its rule in assets/style.css, whose url() is a file
    of the report (relative to the stylesheet), and whose offsets show the card's own tile
    of each sheet: the same pixels the sheet has at the channel's cell."""
    layer = _layer(report)
    page = report / layer["page"]
    text = page.read_text(encoding="utf-8")
    css = (report / "assets/style.css").read_text(encoding="utf-8")
    grid_tag = re.search(r'<div class="grid cards drawn (k[0-9a-f]+) fi fv" data-grid>', text)
    assert grid_tag is not None
    name = grid_tag[1]
    example = _rule(css, f".{name} > a.ex::before")
    filters = _rule(css, f".{name} > a.card::after")
    vis = _rule(css, f".{name} > a.vis::after")
    assets = report / "assets"
    files = {Path(u).name for u in _urls(example + filters + vis)}
    assert files == {"examples-first.jpg", "filters-rgb.png", "featurevis.jpg"}
    for url in _urls(example + filters + vis):
        assert (assets / url).resolve().is_file(), url
        assert (assets / url).resolve().parent == page.parent.resolve()
    grid = SheetGrid.for_layer(WIDTH, 64, 64, pad=0)
    with Image.open(page.parent / "examples-first.jpg") as sheet:
        assert sheet.size == (grid.width, grid.height)
    assert f"background-size: {grid.width}px {grid.height}px;" in example
    filter_grid = SheetGrid.from_manifest(layer["kernels"]["filter_sheet"])
    ((fx, fy),) = _positions(filters)
    ((ex, ey),) = _positions(example)
    # the visualisation in the content box, the filter in the left border, two covers
    (vx, vy), _, _, (f2x, f2y) = _positions(vis)
    assert (f2x, f2y) == (fx, fy)
    cells = set()
    for _, c, classes, _ in CARD.findall(text):
        names = classes.split()
        column, row = grid.cell(int(c))
        assert f"pc{column}" in names and f"pr{row}" in names
        cells.update({f".pc{column} {{ --c: {column}; }}", f".pr{row} {{ --r: {row}; }}"})
        assert "ex" in names  # every channel has a strongest example here
    assert all(cell in css for cell in cells)
    for c in (0, 47, 1000, WIDTH - 1):
        column, row = grid.cell(c)
        x0, y0, _, _ = grid.box(c)
        assert (_offset(ex, column), _offset(ey, row)) == (-x0, -y0)  # shown at 64 px
        assert (_offset(vx, column), _offset(vy, row)) == (-x0, -y0)
        fx0, fy0, _, _ = filter_grid.box(c)  # shown at 32 px
        scale = 32 / filter_grid.tile_width
        assert _offset(fx, column) == pytest.approx(-fx0 * scale, abs=0.01)
        assert _offset(fy, row) == pytest.approx(-fy0 * scale, abs=0.01)


@pytest.mark.slow
def test_a_single_file_report_keeps_the_cards_pictures_as_images(tmp_path: Path) -> None:
    images = write_images(tmp_path / "imgs", 2, (36, 40), seed=5)
    out = tmp_path / "one.html"
    result = invoke(
        "-q", "run", str(images), "-m", "tests.widenet_factory:build_narrow", "--weights",
        "none", "--input-size", "32", "--no-cache", "--single-file", "-o", str(out),
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert '<div class="grid cards drawn' not in html and "a.ex::before" not in html
    cards = re.findall(
        r'<a href="#[^"]+" data-c="(\d+)" class="card[^"]*"><span class="pics">'
        r'<img class="example-first" src="data:image/[^"]+"[^>]*>'
        r'<img class="filter" src="data:image/[^"]+"[^>]*></span>channel \1\n',
        html,
    )
    assert len(cards) == 64


def _record(**changes: Any) -> Any:
    from types import SimpleNamespace

    channel = SimpleNamespace(
        index=0, examples_sheet=None, examples_image=None, example_views=[], feature_vis=None
    )
    layer = SimpleNamespace(
        page="models/m/layers/l/index.html", spatial=True, cards_filter=False, filter_grid=None,
        filter_sheets={}, filter_rgb=False, feature_vis_sheet=None, feature_vis_grid=None,
        example_first_sheet=None, example_first_grid=None, channels=[channel],
    )  # fmt: skip
    for name, value in changes.items():
        setattr(channel if hasattr(channel, name) else layer, name, value)
    return layer


def test_cards_whose_example_is_a_whole_view_draw_it_from_a_rule_per_view() -> None:
    """Late layers' examples are the input's network view (no crop): one rule a view,
    shared by every card that shows it; a channel's own example strip (a single-file
    report) is not drawn: its cards keep <img>s."""
    from types import SimpleNamespace

    from reportgen.report import cards

    view = "models/m/views/in-1.jpg"
    layer = _record(example_views=[view, "models/m/views/in-2.jpg"])
    assert cards.drawn(layer)
    names = cards.card_classes(layer, layer.channels[0]).split()
    (name,) = names
    css = cards.stylesheet(SimpleNamespace(models=[SimpleNamespace(layers=[layer])]))
    rule = _rule(css, f".{name}::before")
    assert _urls(rule) == [f"../{view}"] and "background-size: cover" in rule
    assert not cards.drawn(_record(examples_image="models/m/layers/l/examples/c0000.jpg"))
    assert not cards.drawn(_record(cards_filter=True))  # no filter sheet: single-file
    assert not cards.drawn(_record(spatial=False))
