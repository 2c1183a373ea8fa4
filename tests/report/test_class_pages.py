"""Class pages in a built report (a tiny custom model, class names from a label file
that holds HTML): a page per class that is some input's top prediction and a classes
index, every prediction linking its class's page, labels escaped, and the manifest's
``models[].classes``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from reportgen.tools.pageweight import page_kind
from tests.helpers import invoke, write_images

LABELS = ['<b>zero</b> & "0"', "one<script>x</script>", "two"]
OPTIONS = (
    "-m", "tests.tinynet_factory:build", "--weights", "none", "--input-size", "32",
    "--top-k", "2", "--examples", "2", "--device", "cpu", "--jobs", "1",
)  # fmt: skip


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("classes")
    images = write_images(base / "imgs", 9, (36, 40), grow=4, seed=5)
    labels = base / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REPORTGEN_CACHE_DIR", "off")
        patch.setenv("REPORTGEN_OFFLINE", "1")
        result = invoke(
            "run", str(images), *OPTIONS, "--labels", str(labels), "-o", str(base / "rep"),
            catch_exceptions=False,
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    return base / "rep"


def _model(report: Path) -> dict[str, Any]:
    manifest = json.loads((report / "manifest.json").read_text(encoding="utf-8"))
    model: dict[str, Any] = manifest["models"][0]
    return model


def test_a_class_page_for_each_top_class_and_an_index_listing_them(report: Path) -> None:
    model = _model(report)
    tops: dict[int, int] = {}
    for predictions in model["predictions"].values():
        tops[predictions[0]["index"]] = tops.get(predictions[0]["index"], 0) + 1
    classes = model["classes"]
    assert [c["index"] for c in classes] == sorted(tops)
    assert {c["index"]: c["inputs"] for c in classes} == tops
    assert [c["label"] for c in classes] == [LABELS[k] for k in sorted(tops)]
    pages = sorted(p.relative_to(report).as_posix() for p in report.rglob("classes/*.html"))
    assert {page_kind(p) for p in pages} == {"class", "classes"}
    assert sorted(c["page"] for c in classes) == [p for p in pages if page_kind(p) == "class"]
    assert model["classes_page"] in pages
    listing = (report / model["classes_page"]).read_text(encoding="utf-8")
    for c in classes:
        assert f'href="{Path(c["page"]).name}"' in listing


def test_labels_from_a_label_file_are_escaped_on_the_class_pages(report: Path) -> None:
    for page in report.rglob("classes/*.html"):
        text = page.read_text(encoding="utf-8")
        assert "<script>x" not in text and "<b>zero" not in text
    shown = [(report / c["page"]).read_text(encoding="utf-8") for c in _model(report)["classes"]]
    escaped = {0: "&lt;b&gt;zero&lt;/b&gt; &amp; &#34;0&#34;", 1: "one&lt;script&gt;x"}
    for c, text in zip(_model(report)["classes"], shown):
        if c["index"] in escaped:
            assert escaped[c["index"]] in text


def test_every_top_prediction_links_its_class_page(report: Path) -> None:
    model = _model(report)
    pages = {c["index"]: c["page"] for c in model["classes"]}
    for input_id, page in model["input_pages"].items():
        text = (report / page).read_text(encoding="utf-8")
        top = model["predictions"][input_id][0]["index"]
        link = re.search(r'<ol class="preds">\s*<li><span class="label"><a href="([^"]+)"', text)
        assert link is not None, page
        target = (report / page).parent / link.group(1)
        assert target.resolve() == (report / pages[top]).resolve()


def test_contributions_give_why_rows_and_no_contributions_class_pages_of_inputs_only(
    report: Path, tmp_path: Path
) -> None:
    model = _model(report)
    assert all(c["channels"] for c in model["classes"])
    some_input = next(iter(model["input_pages"].values()))
    assert 'id="why-h"' in (report / some_input).read_text(encoding="utf-8")
    images = write_images(tmp_path / "imgs", 3, (36, 40), seed=6)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REPORTGEN_CACHE_DIR", "off")
        patch.setenv("REPORTGEN_OFFLINE", "1")
        result = invoke(
            "run", str(images), *OPTIONS, "--no-contributions", "-o", str(tmp_path / "rep"),
            catch_exceptions=False,
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    plain = _model(tmp_path / "rep")
    assert plain["classes"] and all(c["channels"] == {} for c in plain["classes"])
    assert sum(c["inputs"] for c in plain["classes"]) == 3
    for page in (tmp_path / "rep").rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert 'id="why-h"' not in text and 'id="rests-h"' not in text
        assert 'id="drives-h"' not in text


def _why_items(text: str) -> list[tuple[str, str, str]]:
    """(link, item classes, its picture's <img>) of every item of a page's why rows."""
    items = []
    for row in re.findall(r'<div class="why-row">(.*?)</div>', text, re.S):
        items += re.findall(r'<a href="([^"]+)" class="([^"]+)">(<img [^>]*>)', row)
    return items


def test_why_items_show_the_channels_own_card_picture_loaded_when_scrolled_to(
    report: Path,
) -> None:
    """An item of an input page's why rows is one link with one picture: the tile of
    the layer's sheet of strongest examples that the channel's card on its layer page
    draws (the same cell), loaded lazily (an input page has 9 for each layer), placed
    by rules of the report's stylesheet."""
    model = _model(report)
    css = (report / "assets/style.css").read_text(encoding="utf-8")
    page = report / next(iter(model["input_pages"].values()))
    items = _why_items(page.read_text(encoding="utf-8"))
    assert items and {classes for _, classes, _ in items} <= {"up", "down"}
    cards: dict[Path, dict[str, str]] = {}
    for link, _, img in items:
        channel_page = (page.parent / link).resolve()
        assert channel_page.is_file(), link
        layer_page = channel_page.parent / "index.html"
        if layer_page not in cards:
            html = layer_page.read_text(encoding="utf-8")
            cards[layer_page] = dict(
                re.findall(r'<a href="([^"]+)" data-c="\d+" class="card ([^"]+?)(?: sel)?"', html)
            )
        picture = re.fullmatch(
            r'<img class="solo example-first (g\S+) tc(\d+) tr(\d+)" src="([^"]+)" '
            r'alt="Strongest dataset example of [^"]+" width="64" height="64" loading="lazy">',
            img,
        )
        assert picture is not None, img
        grid, column, row, source = picture.groups()
        assert (page.parent / source).resolve() == channel_page.parent / "examples-first.jpg"
        card = cards[layer_page][channel_page.name].split()
        assert f"pc{column}" in card and f"pr{row}" in card, (link, card, img)
        assert f"img.{grid}.tc{column} {{ --tx: " in css and f"img.{grid}.tr{row} {{ --ty: " in css
