"""Why the coffee photo is espresso, with the real MobileNetV2 ImageNet weights: its input
page names the channels that pushed espresso most at ``features.18`` (the layer pooled
into the classifier, where contributions are exact), as the statistics file ranks them,
and the espresso class page lists the same top channel there."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers import invoke

pytestmark = pytest.mark.slow

LAYER = "features.18"
ESPRESSO = 967


@pytest.fixture(scope="module")
def report(
    mobilenet_weights_dir: Path, sample_images: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("why") / "report"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REPORTGEN_OFFLINE", "1")
        patch.setenv("REPORTGEN_CACHE_DIR", "off")
        patch.setenv("TORCH_HOME", str(out.parent / "torch-home"))
        result = invoke(
            "run", str(sample_images), "-m", "mobilenet_v2",
            "--weights-dir", str(mobilenet_weights_dir),
            "-l", "features.14.conv.0.0", "-l", LAYER, "--top-k", "2", "--examples", "2",
            "-o", str(out), catch_exceptions=False,
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def _why_channels(page: Path, layer: str) -> list[int]:
    """The channels a page's why rows name at ``layer``, in order (up, then down)."""
    text = page.read_text(encoding="utf-8")
    row = re.search(
        r"<dt><a href=\"[^\"]*\">" + re.escape(layer) + r"</a>.*?</dt>\s*<dd>(.*?)</dd>",
        text,
        re.S,
    )
    assert row is not None, f"no why row for {layer} on {page.name}"
    return [
        int(c)
        for c in re.findall(r'<a href="[^"]*c(\d{4})\.html" class="(?:up|down)\b', row.group(1))
    ]


def _manifest(report: Path) -> dict[str, Any]:
    return json.loads((report / "manifest.json").read_text(encoding="utf-8"))


def test_the_coffee_page_names_espressos_channels_and_the_class_page_the_same_top_one(
    report: Path,
) -> None:
    manifest = _manifest(report)
    (coffee,) = [i for i in manifest["inputs"] if i["source"].endswith("coffee.png")]
    model = manifest["models"][0]
    assert model["predictions"][coffee["id"]][0]["index"] == ESPRESSO
    layer = next(x for x in model["layers"] if x["name"] == LAYER)
    stats = np.load(report / layer["stats_file"]["path"])
    row = manifest["inputs"].index(coffee)
    contribution = stats[row, :, layer["stats_file"]["fields"].index("contribution")]
    order = np.argsort(-contribution, kind="stable")
    expected = [int(c) for c in order if contribution[c] > 0][:6]

    named = _why_channels(report / model["input_pages"][coffee["id"]], LAYER)
    assert named[:6] == expected
    (espresso,) = [c for c in model["classes"] if c["index"] == ESPRESSO]
    on_class_page = _why_channels(report / espresso["page"], LAYER)
    assert on_class_page[0] == named[0] == espresso["channels"][LAYER][0][0]


def test_features_18_is_marked_exact_and_its_channels_say_what_they_raise(report: Path) -> None:
    model = _manifest(report)["models"][0]
    layer = next(x for x in model["layers"] if x["name"] == LAYER)
    (espresso,) = [c for c in model["classes"] if c["index"] == ESPRESSO]
    top = espresso["channels"][LAYER][0][0]
    page = (report / layer["channel_page"].replace("{channel:04d}", f"{top:04d}")).read_text()
    assert "What it drives" in page and "Direct effect on the classes (exact)" in page
    assert "espresso</a>" in page
