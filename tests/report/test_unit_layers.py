"""Issue 16, part 2: layers of units (Linear, 1x1 outputs) show one value per input and
its rank, named by class where the units are the model's classes; no page opens
thousands of rows."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reportgen.analysis.stats import unit_ranks
from reportgen.nn.channel_stats import ChannelStats
from reportgen.report.manifest_file import channel_page, layer_channels
from reportgen.report.summary import TOP_UNITS
from reportgen.results.run import ChannelTotals
from tests.helpers import invoke, write_images

LABELS = ["cat <b>", "dog & co", "bird"]  # markup in names: pages must escape it


def _stats(values: np.ndarray) -> ChannelStats:
    zeros = np.zeros_like(values)
    return ChannelStats(
        mean=values,
        max=values,
        min=values,
        std=zeros,
        sparsity=(values <= 0).astype(np.float64),
        argmax_y=zeros.astype(np.int64),
        argmax_x=zeros.astype(np.int64),
        map_size=(1, 1),
    )


def test_unit_ranks_equal_a_brute_force_ranking() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=50).round(1)  # ties on purpose
    values[[3, 17]] = np.nan
    ranks = unit_ranks(values)
    for unit, value in enumerate(values):
        if np.isnan(value):
            expected = 1 + int(np.sum(~np.isnan(values))) + int(np.sum(np.isnan(values[:unit])))
        else:
            higher = np.sum(values > value)
            tied_before = np.sum(values[:unit] == value)
            expected = 1 + int(higher) + int(tied_before)
        assert ranks[unit] == expected, unit


def test_best_rank_and_firsts_merge_like_one_pass() -> None:
    rng = np.random.default_rng(1)
    table = rng.normal(size=(40, 12))
    whole, left, right = (ChannelTotals.empty(12) for _ in range(3))
    for row, values in enumerate(table):
        whole.add(_stats(values), [])
        (left if row < 17 else right).add(_stats(values), [])
    left.merge(right)
    ranks = np.array([unit_ranks(values) for values in table])
    assert whole.best_rank.tolist() == ranks.min(axis=0).tolist() == left.best_rank.tolist()
    firsts = np.bincount(table.argmax(axis=1), minlength=12)
    assert whole.first.tolist() == firsts.tolist() == left.first.tolist()


@pytest.mark.parametrize(
    ("model", "at_logits", "not_at_logits"),
    [
        ("resnet18", {"fc"}, {"layer4", "avgpool", "layer4.1.conv2"}),
        ("squeezenet1_0", {"classifier.1", "classifier.2", "classifier"}, {"features.12"}),
        ("mobilenet_v2", {"classifier.1", "classifier"}, {"classifier.0", "features.18"}),
    ],
)
def test_the_layers_at_the_logits_are_found(
    model: str, at_logits: set[str], not_at_logits: set[str]
) -> None:
    import torchvision

    from reportgen.nn.layers import trace_layers

    module = torchvision.models.get_model(model, weights=None).eval()
    found = {info.name for info in trace_layers(module, 64) if info.at_logits}
    assert at_logits <= found
    assert not (not_at_logits & found)


def test_a_1x1_output_is_units_without_a_receptive_field() -> None:
    from reportgen.compute.model_run import has_maps

    assert has_maps((8, 2, 1)) and has_maps((8, 7, 7))
    assert not has_maps((8, 1, 1)) and not has_maps((8,))


@pytest.fixture(scope="module")
def unit_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("units")
    images = write_images(base / "images", 5, (32, 32), seed=3)
    labels = base / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    out = base / "report"
    result = invoke(
        "run",
        str(images),
        "-m",
        "tests.tinynet_factory:build",
        "--weights",
        "none",
        "--labels",
        str(labels),
        "--input-size",
        "32",
        "-l",
        "conv2",
        "-l",
        "head",
        "--no-gradcam",
        "-o",
        str(out),
        env={"REPORTGEN_CACHE_DIR": "off"},
    )
    assert result.exit_code == 0, result.output + result.stderr
    return out


def _layer(report: Path, name: str) -> dict[str, Any]:
    manifest = json.loads((report / "manifest.json").read_text())
    return next(layer for layer in manifest["models"][0]["layers"] if layer["name"] == name)


def test_class_units_are_named_and_escaped(unit_report: Path) -> None:
    head, conv = _layer(unit_report, "head"), _layer(unit_report, "conv2")
    assert head["units"] and head["class_units"] and not conv["class_units"]
    assert [c["label"] for c in head["channels"]] == LABELS
    layer_page = (unit_report / head["page"]).read_text()
    assert "unit 0: cat &lt;b&gt;" in layer_page and "cat <b>" not in layer_page
    assert "unit 1: dog &amp; co" in layer_page
    page_text = (unit_report / channel_page(head, 2)).read_text()
    assert "unit 2: bird</h1>" in page_text


def test_unit_pages_show_value_and_rank_from_the_statistics(unit_report: Path) -> None:
    head = _layer(unit_report, "head")
    fields = head["stats_file"]["fields"]
    table = np.load(unit_report / head["stats_file"]["path"])
    values = table[:, :, fields.index("mean")]
    manifest = json.loads((unit_report / "manifest.json").read_text())
    ids = [i["id"] for i in manifest["inputs"]]
    for unit, channel in enumerate(layer_channels(head)):
        page = (unit_report / channel["page"]).read_text()
        head_row = re.search(r"<thead>(.*?)</thead>", page, re.S)
        assert head_row is not None
        assert re.findall(r'<th scope="col">(.*?)</th>', head_row.group(1)) == [
            "input",
            "value",
            "rank",
        ]
        row_pattern = r'<tr[^>]*><th scope="row">.*?</th><td>([^<]*)</td><td>(\d+)</td>'
        rows = re.findall(row_pattern, page)
        assert len(rows) == len(ids)
        for row, (shown, rank) in enumerate(rows):
            assert float(shown) == pytest.approx(values[row, unit], rel=5e-3, abs=1e-4)  # 3 digits
            assert int(rank) == unit_ranks(values[row])[unit]
        summary = channel["summary"]
        assert summary["best_rank"] == min(unit_ranks(v)[unit] for v in values)
        assert summary["first"] == int(np.sum(values.argmax(axis=1) == unit))


def test_no_unit_page_opens_thousands_of_rows(unit_report: Path) -> None:
    head = _layer(unit_report, "head")
    for page in head["detail_pages"].values():
        text = (unit_report / page).read_text()
        opened, _, folded = text.partition('<details class="stats-rows">')
        assert "</details>" in folded  # the full table is folded, closed
        # and its rows are data until it is opened (app.js builds them)
        assert "<tbody></tbody>" in folded and "<tr data-c" not in text
        top = re.search(r'<table class="data units-top">(.*?)</table>', opened, re.S)
        assert top is not None
        assert top.group(1).count("<tr") - 1 <= TOP_UNITS  # one header row
        assert "img" not in top.group(1)  # bars are drawn in the page, no chart picture


def test_unit_examples_are_the_inputs_views_not_new_crops(unit_report: Path) -> None:
    head, conv = _layer(unit_report, "head"), _layer(unit_report, "conv2")
    head_dir = (unit_report / head["page"]).parent
    assert not (head_dir / "examples").exists()
    assert list((unit_report / conv["page"]).parent.glob("examples-*.jpg"))  # map layers
    channel = layer_channels(head)[0]
    page = (unit_report / channel["page"]).read_text()
    shown = re.findall(r'<p class="example-views">(.*?)</p>', page, re.S)
    assert len(shown) == 1
    sources = re.findall(r'src="([^"]+)"', shown[0])
    expected = [
        f"models/{head['page'].split('/')[1]}/views/{e['input']}.jpg" for e in channel["examples"]
    ]
    resolved = [
        str(
            (unit_report / channel["page"])
            .parent.joinpath(s)
            .resolve()
            .relative_to(unit_report.resolve())
        )
        for s in sources
    ]
    assert resolved == expected
