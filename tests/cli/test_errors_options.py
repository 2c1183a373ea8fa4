"""Issue 4, part 4: option values out of range or in conflict.

Usage errors exit 2 with one ``Error:`` line and leave an existing report exactly as
it was. ``--top-k`` above a layer's channel count is not an error: it is clamped,
and the warnings (stderr and the report) say so.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import Result
from PIL import Image

from tests.helpers import error_line, invoke, snapshot

FAST = ("-m", "alexnet", "-l", "features.0", "--weights", "none", "--device", "cpu", "--jobs", "2")


@pytest.fixture(scope="module")
def clamped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Result]:
    """A report made with --top-k 100 on a 64-channel layer; later tests reuse it as
    the 'existing report' that bad options must leave alone."""
    root = tmp_path_factory.mktemp("options")
    image = root / "in.png"
    Image.new("RGB", (48, 40), (90, 140, 200)).save(image)
    result = invoke("run", str(image), "-o", str(root / "report"), "--top-k", "100", *FAST)
    return image, root / "report", result


def test_top_k_above_channel_count_is_clamped_with_a_note(
    clamped: tuple[Path, Path, Result],
) -> None:
    _, report, result = clamped
    assert result.exit_code == 0, (result.stderr, result.exception)
    note = "alexnet: layer features.0 has 64 channels; --top-k 100 clamped to 64"
    assert f"Warning: {note}" in result.stderr
    assert note in (report / "index.html").read_text(encoding="utf-8")
    manifest = json.loads((report / "manifest.json").read_text(encoding="utf-8"))
    layer = manifest["models"][0]["layers"][0]
    (selected,) = layer["selected"].values()
    assert sorted(selected) == list(range(64))
    assert manifest["settings"]["top_k"] == 100


BAD_OPTIONS = {
    "top-k zero": (("--top-k", "0"), ["--top-k must be at least 1, got 0"]),
    "top-k negative": (("--top-k", "-3"), ["--top-k must be at least 1, got -3"]),
    "manual channel out of range": (
        ("--strategy", "manual", "--channels", "0,64"),
        ["--channels 64 is out of range for layer features.0", "64 channels (0-63)"],
    ),
    "negative channel": (
        ("--strategy", "manual", "--channels", "3,-1"),
        ["--channels must be non-negative"],
    ),
    "unknown colormap": (
        ("--colormap", "jett"),
        ["unknown colormap 'jett'", "viridis", "jet"],
    ),
    "alpha above 1": (("--alpha", "1.5"), ["--alpha must be between 0 and 1, got 1.5"]),
    "alpha below 0": (("--alpha", "-0.1"), ["--alpha must be between 0 and 1, got -0.1"]),
    "alpha nan": (("--alpha", "nan"), ["--alpha must be between 0 and 1"]),
    "channels without manual": (
        ("--channels", "1,2"),
        ["--channels is only used with --strategy manual"],
    ),
    "manual without channels": (
        ("--strategy", "manual"),
        ["--strategy manual needs --channels"],
    ),
    "batch size zero": (("--batch-size", "0"), ["--batch-size must be at least 1"]),
}


@pytest.mark.parametrize("case", list(BAD_OPTIONS), ids=list(BAD_OPTIONS))
def test_bad_option_is_a_usage_error_and_the_report_survives(
    clamped: tuple[Path, Path, Result], case: str
) -> None:
    image, report, first = clamped
    assert first.exit_code == 0
    before = snapshot(report)
    options, needles = BAD_OPTIONS[case]
    line = error_line(invoke("run", str(image), "-o", str(report), *FAST, *options), 2)
    for needle in needles:
        assert needle in line, line
    assert snapshot(report) == before
    assert not [p for p in report.parent.iterdir() if ".reportgen-" in p.name]


def test_output_inside_an_input_folder_conflicts(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (40, 30)).save(folder / "a.png")
    line = error_line(invoke("run", str(folder), "-o", str(folder / "report"), *FAST), 2)
    assert "inside the input folder" in line and "choose another -o" in line
    assert not (folder / "report").exists()


def test_input_inside_the_output_folder_conflicts(
    clamped: tuple[Path, Path, Result],
) -> None:
    _, report, _ = clamped
    before = snapshot(report)
    thumbnail = next((report / "inputs").iterdir())
    line = error_line(invoke("run", str(thumbnail), "-o", str(report), *FAST), 2)
    assert "is inside the output folder" in line and "replaces" in line
    assert snapshot(report) == before
