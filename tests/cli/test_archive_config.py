"""``--config`` (TOML), ``--from-manifest`` and ``--json``: re-runnable reports for CI."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from reportgen.errors import UsageError
from tests.helpers import invoke_reproducible, snapshot, write_images

CONFIG = """
# options of `reportgen run`, long names
[run]
inputs = ["images"]
model = "alexnet"
layer = ["features.0"]
weights = "none"
top-k = 5
strategy = "top_max"
colormap = "viridis"
output = "from-config"
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run from a config file (one option overridden on the command line), and a
    rebuild of it from its manifest into another folder."""
    root = tmp_path_factory.mktemp("config")
    write_images(root / "images", 2, (40, 40), seed=11, prefix="p")
    (root / "reportgen.toml").write_text(CONFIG)
    here = os.getcwd()
    os.chdir(root)
    try:
        first = invoke_reproducible(
            "run", "--config", "reportgen.toml", "--top-k", "2", "--json", catch_exceptions=False
        )
        assert first.exit_code == 0, first.output
        again = invoke_reproducible(
            "run",
            "--from-manifest",
            "from-config/manifest.json",
            "-o",
            "rebuilt",
            "--json",
            catch_exceptions=False,
        )
        assert again.exit_code == 0, again.output
    finally:
        os.chdir(here)
    return {"root": root, "first": first, "again": again}


def test_config_file_with_command_line_winning(runs: dict[str, Any]) -> None:
    manifest = json.loads((runs["root"] / "from-config" / "manifest.json").read_text())
    settings = manifest["settings"]
    assert settings["top_k"] == 2  # the command line wins over the file's 5
    assert settings["strategy"] == "top_max"
    assert settings["colormap"] == "viridis"
    assert settings["models"] == ["alexnet"] and settings["layers"] == ["features.0"]
    assert settings["weights"] == "none" and settings["inputs"] == ["images"]
    selected = manifest["models"][0]["layers"][0]["selected"]
    assert all(len(channels) == 2 for channels in selected.values())


def test_rebuild_from_manifest_gives_the_same_report(runs: dict[str, Any]) -> None:
    root = runs["root"]
    assert snapshot(root / "from-config") == snapshot(root / "rebuilt")
    assert "Warning" not in runs["again"].stderr  # same inputs and library versions


def test_json_summary_on_stdout(runs: dict[str, Any]) -> None:
    summary = json.loads(runs["first"].stdout)  # stdout holds the JSON and nothing else
    assert summary["report"] == "from-config"
    assert summary["inputs"] == ["images/p0.png", "images/p1.png"]
    assert summary["models"] == ["alexnet"]
    assert summary["layers"] == {"alexnet": ["features.0"]}
    assert summary["warnings"] == []
    assert isinstance(summary["seconds"], float)
    # Not a terminal: no progress bar, no colour.
    assert "analysing" not in runs["first"].stderr
    assert "\x1b[" not in runs["first"].output


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('top-k = 3\ncolour = "red"\n')
    result = invoke_reproducible("run", "--config", str(bad), "x.png", catch_exceptions=False)
    assert result.exit_code == 2
    assert "unknown option 'colour'" in result.output and "top-k" in result.output
    bad.write_text("top-k = ")
    result = invoke_reproducible("run", "--config", str(bad), "x.png", catch_exceptions=False)
    assert result.exit_code == 2 and "not valid TOML" in result.output
    bad.write_text("top-k = 'many'\n")
    result = invoke_reproducible("run", "--config", str(bad), "x.png", catch_exceptions=False)
    assert result.exit_code == 2
    result = invoke_reproducible(
        "run", "--from-manifest", str(tmp_path / "none.json"), "x.png", catch_exceptions=False
    )
    assert result.exit_code == 2 and "cannot read --from-manifest" in result.output


def test_missing_input_fails_with_exit_1(tmp_path: Path) -> None:
    result = invoke_reproducible(
        "run", str(tmp_path / "nothing-here"), "--weights", "none", catch_exceptions=False
    )
    assert result.exit_code == 1
    assert result.output.startswith("Error: ")


def test_normalise_names_and_shapes() -> None:
    import click

    from reportgen.cli.commands import run
    from reportgen.cli.config import normalise

    params = {p.name: p for p in run.params if p.name}
    values = normalise(
        {
            "model": "resnet18",
            "layer": ["conv1"],
            "top-k": 3,
            "channels": [0, 5],
            "offline": True,
            "mean": [],
            "weights_dir": None,
        },
        params,
        "test",
    )
    assert values == {
        "models": ["resnet18"],
        "layers": ["conv1"],
        "top_k": 3,
        "channels": "0,5",
        "offline": True,
    }
    # Long option names whose parameter is named otherwise.
    assert normalise({"json": True, "label": "a", "labels": "l.txt"}, params, "test") == {
        "as_json": True,
        "model_labels": ["a"],
        "labels_file": "l.txt",
    }
    with pytest.raises(UsageError, match="takes one value"):
        normalise({"seed": [1, 2]}, params, "test")
    assert isinstance(run, click.Command)
