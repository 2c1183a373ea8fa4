"""reportgen.tools.notebook: a report, or one of its layers, inline in Jupyter (_repr_html_)."""

from __future__ import annotations

import html
import json
import subprocess
import sys
from pathlib import Path

import html5lib
import numpy as np
import pytest

from reportgen.tools.notebook import LayerView, Report
from tests.helpers import build_small_report


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_small_report(tmp_path_factory)


def valid_fragment(text: str) -> None:
    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
    parser.parseFragment(text)


def test_report_displays_inputs_predictions_and_layers(report: Path) -> None:
    shown = Report(report)
    text = shown._repr_html_()
    valid_fragment(text)
    manifest = json.loads((report / "manifest.json").read_text(encoding="utf-8"))
    assert text.count('<img class="rg-thumb" src="data:image/') == len(manifest["inputs"])
    for layer in ("features.0", "features.3", "classifier.6"):
        assert f">{layer}</a>" in text
    top = manifest["models"][0]["predictions"][manifest["inputs"][0]["id"]][0]
    assert top["label"] in text
    # The input named '<b>odd & "q".png' is text, never markup.
    assert "&lt;b&gt;odd &amp; &quot;q&quot;.png" in text
    assert "<b>odd" not in text
    assert shown.layers() == ["features.0", "features.3", "classifier.6"]
    assert "2 inputs" in repr(shown)


def test_layer_displays_selected_channels(report: Path) -> None:
    shown = Report(report)
    view = shown.layer("features.3")
    assert isinstance(view, LayerView)
    text = view._repr_html_()
    valid_fragment(text)
    manifest = json.loads((report / "manifest.json").read_text(encoding="utf-8"))
    layer = next(x for x in manifest["models"][0]["layers"] if x["name"] == "features.3")
    selected = layer["selected"]
    assert text.count('class="rg-map" src="data:image/png;base64,') == sum(
        len(v) for v in selected.values()
    )
    assert text.count('class="rg-overlay" src="data:image/jpeg;base64,') == sum(
        len(v) for v in selected.values()
    )
    input_id, chosen = next(iter(selected.items()))
    table = np.load(report / layer["stats_file"]["path"])
    row = [i["id"] for i in manifest["inputs"]].index(input_id)
    mean = float(table[row, chosen[0], layer["stats_file"]["fields"].index("mean")])
    assert f"channel {chosen[0]}: mean {mean:#.3g}" in text  # 3 significant digits
    assert view.stats(chosen[0], input_id)["mean"] == mean
    assert view.selected(input_id) == chosen


def test_unit_layer_shows_values_named_by_class(report: Path) -> None:
    view = Report(report).layer("classifier.6", model="alexnet")
    text = view._repr_html_()
    valid_fragment(text)
    assert 'class="rg-map"' not in text and "<th>min</th>" not in text
    input_id, chosen = next(iter(view.info["selected"].items()))
    labels = [c.get("label") for c in view.info["channels"]]
    value = view.stats(chosen[0], input_id)["mean"]
    # named as every page names it (issue 25), the value to 3 significant digits
    name = f"unit {chosen[0]}: {labels[chosen[0]]}" if labels[chosen[0]] else f"unit {chosen[0]}"
    assert f"<tr><td>{html.escape(name)}</td><td class=num>{value:#.3g}</td></tr>" in text


def test_limits_and_clear_errors(report: Path, tmp_path: Path) -> None:
    view = Report(report / "manifest.json").layer("features.0", max_channels=1)
    assert view._repr_html_().count('class="rg-map"') == 2  # one per input
    with pytest.raises(KeyError, match="features.0, features.3, classifier.6"):
        Report(report).layer("features.99")
    with pytest.raises(KeyError, match="alexnet"):
        Report(report).model("resnet18")
    with pytest.raises(FileNotFoundError, match="not a report folder"):
        Report(tmp_path)
    single = tmp_path / "report.html"
    single.write_text("<!DOCTYPE html>", encoding="utf-8")
    with pytest.raises(FileNotFoundError, match="single-file"):
        Report(single)


def test_missing_picture_is_said_not_broken(report: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(report, copy)
    for thumb in (copy / "inputs").iterdir():
        thumb.unlink()
    text = Report(copy)._repr_html_()
    valid_fragment(text)
    assert "missing)" in text and 'class="rg-thumb"' not in text


def test_importing_it_does_not_import_torch() -> None:
    code = "import sys, reportgen.tools.notebook; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
