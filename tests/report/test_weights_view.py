"""The weights view and filter sheets of a report, on a small custom model whose layers
cover the cases (tests/weightsnet_factory.py): a stem over RGB, a depthwise 3x3, a 1x1,
a grouped 3x3 and a 1x1 that reads a sum made outside modules. Every number is checked
against the saved state_dict, computed here one input channel at a time."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from reportgen.report.text import format_number
from tests.helpers import invoke, map_tile, weights_view_of, write_images

TESTS = Path(__file__).resolve().parent.parent
PER_SIGN = 6
LAYERS = ("stem", "depthwise", "pointwise", "grouped", "after_sum")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    base = tmp_path_factory.mktemp("weights-view")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(TESTS))
        sys.modules.pop("weightsnet_factory", None)
        import weightsnet_factory

        torch.manual_seed(3)
        model = weightsnet_factory.build()
        torch.save(model.state_dict(), base / "net.pth")
        images = write_images(base / "in", 2, (40, 40), seed=2)
        patch.setenv("REPORTGEN_CACHE_DIR", "off")
        result = invoke(
            "run",
            str(images),
            "-m",
            "weightsnet_factory:build",
            "--weights",
            str(base / "net.pth"),
            "--input-size",
            "32",
            "--examples",
            "2",
            "-o",
            str(base / "report"),
            catch_exceptions=False,
        )
    assert result.exit_code == 0, result.output
    root = base / "report"
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    weights = {k: v.double().numpy() for k, v in model.state_dict().items()}
    return root, manifest, weights


def _layers(manifest: dict[str, Any]) -> dict[str, Any]:
    return {layer["name"]: layer for layer in manifest["models"][0]["layers"]}


def _expected(kernel: np.ndarray, inputs: list[int]) -> dict[str, list[tuple[int, float]]]:
    """Brute force: each input's slice scored by its L2 norm, signed by its sum; the
    strongest PER_SIGN of each sign, ties to the lower input channel."""
    scored = []
    for slot, i in enumerate(inputs):
        norm = math.sqrt(float((kernel[slot] ** 2).sum()))
        scored.append((norm if kernel[slot].sum() >= 0 else -norm, i))
    positive = sorted((s for s in scored if s[0] > 0), key=lambda s: (-s[0], s[1]))
    negative = sorted((s for s in scored if s[0] < 0), key=lambda s: (s[0], s[1]))
    return {
        "positive": [(i, v) for v, i in positive[:PER_SIGN]],
        "negative": [(i, v) for v, i in negative[:PER_SIGN]],
    }


def _check_view(
    folder: Path, channel: int, expected: dict[str, list[tuple[int, float]]], source: str | None
) -> None:
    shown = weights_view_of(folder / f"c{channel:04d}.html")
    for sign in ("Positive", "Negative"):
        want = [
            (i, format_number(v), f"../{source}/c{i:04d}.html" if source else None)
            for i, v in expected[sign.lower()]
        ]
        assert shown.get(sign, []) == want, (channel, sign)
        for _, _, link in shown.get(sign, []):
            if link is not None:
                assert (folder / link).is_file()


def test_filter_sheets_replace_per_channel_filter_files(built: Any) -> None:
    root, manifest, _ = built
    files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert not [f for f in files if "/filters/" in f]
    layers = root / "models/weightsnet_factory-build/layers"
    kernels = sorted(
        p.relative_to(layers).as_posix()
        for p in layers.glob("*/*.png")
        if p.name.startswith(("filters-", "weights-"))
    )
    # One sheet per layer and part; none for 1x1 kernels (a mid-grey pixel says nothing).
    assert kernels == [
        "depthwise/filters-mean.png",
        "depthwise/weights-kernels.png",
        "grouped/filters-mean.png",
        "grouped/weights-kernels.png",
        "stem/filters-b.png",
        "stem/filters-g.png",
        "stem/filters-r.png",
        "stem/filters-rgb.png",
    ]
    entries = _layers(manifest)
    assert entries["pointwise"]["kernels"]["filter_sheet"] is None
    assert entries["pointwise"]["kernels"]["weights_view"]["kernel_sheet"] is None


def test_one_by_one_layers_show_their_weights_not_a_grey_square(built: Any) -> None:
    root, manifest, weights = built
    folder = root / "models/weightsnet_factory-build/layers/pointwise"
    kernel = weights["pointwise.weight"]  # [16, 32, 1, 1]
    for o in (0, 9, 15):
        _check_view(folder, o, _expected(kernel[o], list(range(32))), "depthwise")
        text = (folder / f"c{o:04d}.html").read_text(encoding="utf-8")
        assert 'id="filter-h"' not in text and "filters-" not in text
        # A 1x1 slice is one weight: the view shows that weight itself.
        for i, value, _ in weights_view_of(folder / f"c{o:04d}.html")["Positive"]:
            assert value == format_number(kernel[o, i, 0, 0])
    cards = (folder / "index.html").read_text(encoding="utf-8")
    assert 'class="filter' not in cards
    assert _layers(manifest)["pointwise"]["kernels"]["weights_view"]["through"] == ["ReLU6"]


def test_a_depthwise_channel_reads_exactly_one_input_channel(built: Any) -> None:
    root, manifest, weights = built
    folder = root / "models/weightsnet_factory-build/layers/depthwise"
    kernel = weights["depthwise.weight"]  # [32, 1, 3, 3]
    for o in (0, 5, 31):
        expected = _expected(kernel[o], [o])
        assert len(expected["positive"]) + len(expected["negative"]) == 1
        _check_view(folder, o, expected, "stem")
        tile = map_tile(
            folder / "weights-kernels.png",
            _layers(manifest)["depthwise"]["kernels"]["weights_view"]["kernel_grid"],
            o,  # one tile per channel
        )
        largest = np.abs(kernel[o, 0]).max()
        want = np.rint((kernel[o, 0] / largest + 1.0) / 2.0 * 255.0)
        assert np.abs(np.asarray(tile).astype(int) - want).max() <= 1
    # Its filter is the one kernel it has: worth a picture on the cards too (drawn by the
    # report's CSS from the layer's filter sheet: reportgen/report/cards.py).
    page = (folder / "index.html").read_text(encoding="utf-8")
    grid = re.search(r'<div class="grid cards drawn (k[0-9a-f]+) fi[ "]', page)
    assert grid is not None
    css = (root / "assets/style.css").read_text(encoding="utf-8")
    rule = re.search(rf"\.{grid[1]} > a\.card::after {{ background-image: url\(\"([^\"]+)\"\)", css)
    assert rule is not None and (root / "assets" / rule[1]).resolve() == folder / "filters-mean.png"
    assert _layers(manifest)["depthwise"]["kernels"]["weights_view"]["through"] == [
        "BatchNorm2d",
        "ReLU",
    ]


def test_a_grouped_channel_reads_only_its_group(built: Any) -> None:
    root, _, weights = built
    folder = root / "models/weightsnet_factory-build/layers/grouped"
    kernel = weights["grouped.weight"]  # [8, 4, 3, 3]: 4 groups of 4 inputs, 2 outputs each
    for o in range(8):
        group = list(range((o // 2) * 4, (o // 2) * 4 + 4))
        _check_view(folder, o, _expected(kernel[o], group), "pointwise")


def test_an_input_made_outside_modules_is_named_not_linked(built: Any) -> None:
    root, manifest, weights = built
    folder = root / "models/weightsnet_factory-build/layers/after_sum"
    kernel = weights["after_sum.weight"]
    _check_view(folder, 1, _expected(kernel[1], list(range(8))), None)
    # said once, on the layer page (the channel pages link to it)
    about = (folder / "index.html").read_text(encoding="utf-8")
    assert "a sum or function outside any module" in about
    assert 'id="about-wv"' in about
    assert "a sum or function" not in (folder / "c0001.html").read_text(encoding="utf-8")
    assert _layers(manifest)["after_sum"]["kernels"]["weights_view"]["input_layer"] is None


def test_the_first_layer_keeps_its_rgb_filters_and_no_weights_view(built: Any) -> None:
    root, manifest, _ = built
    page = root / "models/weightsnet_factory-build/layers/stem/c0000.html"
    text = page.read_text(encoding="utf-8")
    assert "Weights from its input" not in text
    assert all(f"filters-{part}.png" in text for part in ("rgb", "r", "g", "b"))
    assert "weights_view" not in _layers(manifest)["stem"]["kernels"]


def test_the_weights_view_markup_is_bounded(built: Any) -> None:
    """At most 2 x PER_SIGN items whatever the layer's width, and small."""
    root, _, _ = built
    page = root / "models/weightsnet_factory-build/layers/pointwise/c0003.html"
    text = page.read_text(encoding="utf-8")
    section = text[text.index('<section aria-labelledby="wv-h">') :]
    section = section[: section.index("</section>")]
    assert section.count("<li>") == 2 * PER_SIGN
    assert len(section.encode()) < 2500
