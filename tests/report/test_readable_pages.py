"""Issue 25, part 3: a report a newcomer reads without stumbling. One number format, one
naming of units, link targets on the index, labelled charts and histograms, the 1x1
filter note, the rebuild command built from what the run used, and help that imports
nothing heavy."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from reportgen.imaging.pictures import thumbnail_size
from reportgen.report.rebuild import pinned_settings, rebuild
from reportgen.report.text import format_number, plural
from tests.helpers import REPO, invoke, write_images

# --- one number format -------------------------------------------------------------------


@given(st.floats(-1e300, 1e300).filter(lambda v: v != 0))  # float32 statistics, and more
@settings(max_examples=400, deadline=None)
def test_every_number_reads_back_to_three_significant_digits(value: float) -> None:
    text = format_number(value)
    back = float(text.replace(",", ""))
    if "e" in text or abs(float(f"{value:.3g}")) < 1000:  # 3 significant digits
        assert back == float(f"{value:.3g}"), (value, text)
    else:  # from 1,000 up, whole: "1,001", "12,345"
        assert text == f"{value:,.0f}", (value, text)
    assert math.isclose(back, value, rel_tol=5e-3), (value, text)
    mantissa = text.replace(",", "").split("e")[0].lstrip("-")
    digits = mantissa.replace(".", "").lstrip("0")
    if "e" in text or abs(back) < 1000:  # trailing zeros kept: "1.40" beside "1.29"
        assert len(digits) == 3, (value, text)
    if "e" in text:  # short exponents only: "2.43e-4", never "2.43e-04"
        assert re.fullmatch(r"-?\d\.\d\de-?[1-9]\d*", text), text
        assert not 1e-3 <= abs(back) < 1e5, text


def test_number_examples_from_the_issue() -> None:
    assert [format_number(v) for v in (2.43e-4, 0.09, 1.4, 1.29, 9.66)] == [
        "2.43e-4", "0.0900", "1.40", "1.29", "9.66",
    ]  # fmt: skip
    assert format_number(np.float32(0.5)) == "0.500"
    assert format_number(np.int64(1234)) == format_number(1234) == "1,234"
    assert format_number(float("nan")) == format_number(None) == "\u2014"
    assert format_number(0.0) == "0"


def test_plurals() -> None:
    assert plural(1, "model") == "1 model"
    assert plural(2, "model") == "2 models"
    assert plural(0, "input") == "0 inputs"
    assert plural(1200, "page") == "1,200 pages"


# --- pictures sized in the page ------------------------------------------------------------


@given(st.integers(1, 4000), st.integers(1, 4000))
@settings(max_examples=300, deadline=None)
def test_thumbnail_size_is_pillows(width: int, height: int) -> None:
    picture = Image.new("L", (width, height))
    picture.thumbnail((160, 160))
    assert thumbnail_size(width, height) == picture.size


# --- the rebuild command -------------------------------------------------------------------


class _Used:
    def __init__(self, weights: str, detail: str = "") -> None:
        self.weights = weights
        self.weights_detail = detail or weights


def test_rebuild_names_the_entry_each_model_used() -> None:
    typed: dict[str, Any] = {
        "inputs": ["photos"],
        "models": ["mobilenet_v2"],
        "weights": "imagenet",
    }
    pinned = pinned_settings(typed, [_Used("IMAGENET1K_V1")])
    assert pinned["weights"] == "IMAGENET1K_V1" and pinned["models"] == ["mobilenet_v2"]
    # two models that used different entries: each named on its -m
    typed = {"models": ["a", "b"], "weights": "imagenet"}
    pinned = pinned_settings(typed, [_Used("IMAGENET1K_V1"), _Used("IMAGENET1K_V2")])
    assert pinned["models"] == ["a=IMAGENET1K_V1", "b=IMAGENET1K_V2"]
    # weights given exactly are kept as given
    typed = {"models": ["a=none", "b=my.pth"], "weights": "imagenet"}
    used = [_Used("none (random, seed 0)"), _Used("my.pth")]
    assert pinned_settings(typed, used)["models"] == ["a=none", "b=my.pth"]


def test_rebuild_says_what_to_supply() -> None:
    typed: dict[str, Any] = {
        "inputs": ["photos"],
        "models": ["mobilenet_v2", "resnet18=tuned.pth"],
        "weights": "imagenet",
        "weights_dir": "weights",
        "labels_file": "names.txt",
    }
    used = [
        _Used("IMAGENET1K_V1", "IMAGENET1K_V1 from mobilenet_v2-b0353104.pth"),
        _Used("tuned.pth"),
    ]
    again = rebuild(typed, used)
    assert "--weights IMAGENET1K_V1" in again.command
    text = " | ".join(again.supply)
    assert "photos" in text and "weights holding mobilenet_v2-b0353104.pth" in text
    assert "tuned.pth" in text and "names.txt" in text


# --- help imports nothing heavy -------------------------------------------------------------


@pytest.mark.parametrize("words", [["--help"], ["run", "--help"], ["shard", "--help"]])
def test_help_imports_nothing_heavy(words: list[str]) -> None:
    """Help in a fresh interpreter: numpy, torch, jinja2, Pillow and the report stage cost
    most of a second to import; none is needed to print options."""
    code = (
        "import sys\n"
        "from reportgen.cli.commands import main\n"
        f"try:\n    main({words!r})\nexcept SystemExit:\n    pass\n"
        "heavy = ('numpy', 'torch', 'jinja2', 'PIL', 'reportgen.report.output')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert "Usage:" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout[-300:]


# --- a report with a 1x1 convolution and class units -----------------------------------------


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("readable")
    images = write_images(base / "imgs", 3, (40, 56))
    out = base / "rep"
    result = invoke(
        "run", str(images), "-m", "resnet18", "--weights", "none",
        "-l", "conv1", "-l", "layer2.0.downsample.0", "-l", "fc", "--top-k", "5",
        "-o", str(out), "--no-cache", "--jobs", "1",
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "1 model," in result.stdout  # not "1 models"
    return out


def _manifest(report: Path) -> dict[str, Any]:
    return json.loads((report / "manifest.json").read_text())


def _layer(report: Path, name: str) -> dict[str, Any]:
    return next(x for x in _manifest(report)["models"][0]["layers"] if x["name"] == name)


@pytest.mark.slow
def test_index_thumbnails_and_names_link_the_input_page(report: Path) -> None:
    index = (report / "index.html").read_text()
    model = _manifest(report)["models"][0]
    for input_id, page in model["input_pages"].items():
        card = index[index.index(f'id="input-{input_id}"') :].split("</article>")[0]
        thumb = re.search(r'<a href="([^"]+)"><img src="inputs/[^"]+" alt="Input', card)
        name = re.search(r'<h3><a href="([^"]+)">', card)
        assert thumb and name, card[:400]
        assert thumb[1] == name[1] == page
        assert (report / page).is_file()


@pytest.mark.slow
def test_a_1x1_layer_says_no_filter_is_drawn(report: Path) -> None:
    page = (report / _layer(report, "layer2.0.downsample.0")["page"]).read_text()
    note = re.search(r'<dd id="about-filter">(.*?)</dd>', page, re.S)[1]
    assert "no filter picture is drawn" in note and "mean over" not in note
    channel = (report / "models/resnet18/layers/layer2.0.downsample.0/c0003.html").read_text()
    assert "filters-" not in channel  # and indeed none is drawn
    weights = re.search(r'<section aria-labelledby="wv-h">(.*?)</section>', channel, re.S)[1]
    items = re.findall(r"<li>(.*?)</li>", weights)
    assert len(items) == 12
    assert all(
        re.match(r'(<a [^>]*>)?channel \d+(</a>)? <span class="meta">weight</span> ', i)
        for i in items
    )


@pytest.mark.slow
def test_the_layer_comparison_names_units_as_every_page_does(report: Path) -> None:
    fc = _layer(report, "fc")
    model = _manifest(report)["models"][0]
    compare = (report / model["compare_page"]).read_text()
    for input_id, chosen in fc["selected"].items():
        section = compare[compare.index(f'id="cmp-{input_id}"') :].split("</section>")[0]
        row = re.search(r"<tr>\s*<th scope=\"row\"><a [^>]*>fc</a>.*?</tr>", section, re.S)[0]
        for unit in chosen[:4]:
            label = fc["channels"][unit]["label"]
            name = f"unit {unit}: {label}"
            assert name in row, (name, row[:300])
            # the same words as the unit's own page
            assert name in (report / fc["channel_page"].format(channel=unit)).read_text()
        assert "channel " not in row


@pytest.mark.slow
def test_histograms_have_axes_from_the_statistics(report: Path) -> None:
    conv1 = _layer(report, "conv1")
    stats = np.load(report / conv1["stats_file"]["path"])  # [inputs, channels, 7]
    page = (report / conv1["channel_page"].format(channel=7)).read_text()
    figures = re.findall(r'<figure class="histogram">(.*?)</figure>', page, re.S)
    assert len(figures) == 2
    for figure, column in zip(figures, (1, 0)):  # per-input max, then mean
        values = stats[:, 7, column]
        texts = re.findall(r'<text class="axis"[^>]*>([^<]*)</text>', figure)
        assert texts[1:] == [format_number(values.min()), format_number(values.max())]
        assert re.fullmatch(r"\d+ inputs?", texts[0])


@pytest.mark.slow
def test_summary_charts_name_every_layer_and_numbers_share_one_format(report: Path) -> None:
    index = (report / "index.html").read_text()
    names = re.findall(r'<text class="name"[^>]*>([^<]*)</text>', index)
    assert names == ["conv1", "layer2.0.downsample.0", "fc"] * 2  # mean, then sparsity
    for page in report.rglob("*.html"):
        # what people read: not the tags, nor the data a page's script sorts by
        text = re.sub(r"<script.*?</script>|<[^>]+>", " ", page.read_text(), flags=re.S)
        assert not re.search(r"\d\.\d+e[-+]0\d", text), page  # no "2.43e-04"
        assert " 1 models" not in text and " 1 inputs" not in text, page


@pytest.mark.slow
def test_input_pages_list_selected_channels_per_layer(report: Path) -> None:
    model = _manifest(report)["models"][0]
    layers = model["layers"]
    for input_id, page in model["input_pages"].items():
        text = (report / page).read_text()
        chosen = re.search(r'<dl class="chosen">(.*?)</dl>', text, re.S)[1]
        blocks = re.findall(r"<dd><ul class=\"chips\">(.*?)</ul></dd>", chosen)
        assert len(blocks) == len(layers)
        for layer, block in zip(layers, blocks):
            linked = [int(c) for c in re.findall(r"/c(\d{4})\.html", block)]
            assert linked == layer["selected"][input_id]


@pytest.mark.slow
def test_the_notebook_says_how_many_channels_it_leaves_out(report: Path) -> None:
    from reportgen.notebook import Report

    view = Report(report).layer("conv1", max_channels=3)
    shown = view._repr_html_()
    assert shown.count("Showing 3 of 5 selected channels; 2 left out.") == 3  # per input
    assert "left out" not in Report(report).layer("conv1", max_channels=8)._repr_html_()
