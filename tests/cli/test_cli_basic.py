"""The command line: help, version, listings, and user errors as one ``Error:`` line."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torchvision
from click.testing import Result
from torchvision.models import get_model, list_models

from reportgen import __version__
from tests.helpers import REPO, invoke


def _one_error_line(result: Result, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.output
    return lines[0]


def test_version_matches_the_package_metadata() -> None:
    result = invoke("--version", catch_exceptions=False)
    assert result.exit_code == 0
    assert result.stdout.strip() == f"reportgen, version {__version__}"
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^version = "([^"]+)"', pyproject, re.M).group(1) == __version__  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), ["run", "layers", "models", "--version", "--quiet", "--verbose"]),
        (("run",), ["INPUTS", "--weights", "--weights-dir", "--layer", "--strategy", "--top-k"]),
        (("layers",), ["MODEL", "--all"]),
        (("models",), ["torchvision"]),
    ],
)
def test_help_everywhere(args: tuple[str, ...], expected: list[str]) -> None:
    for flag in ("--help", "-h"):
        result = invoke(*args, flag, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith("Usage: ")
        for word in expected:
            assert word in result.stdout


def test_run_help_lists_every_choice() -> None:
    text = invoke("run", "--help", catch_exceptions=False).stdout
    for word in ("top_mean", "top_max", "mixed", "interesting", "manual", "channel", "layer"):
        assert word in text
    for option in ("--colormap", "--alpha", "--scale", "--channels", "--interesting-mean"):
        assert option in text


def test_models_lists_torchvisions_classifiers() -> None:
    result = invoke("models", catch_exceptions=False)
    assert result.exit_code == 0
    listed = result.stdout.split()
    assert listed == sorted(list_models(module=torchvision.models))
    assert "resnet18" in listed and "alexnet" in listed


def _layer_rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines()[1:]:
        parts = line.split()
        rows[parts[0]] = parts[1:]
    return rows


def test_layers_of_resnet18() -> None:
    result = invoke("layers", "resnet18", catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = _layer_rows(result.stdout)
    assert rows["conv1"] == ["Conv2d", "64x112x112", "*"]
    assert rows["layer1.0.conv1"] == ["Conv2d", "64x56x56", "*"]
    assert rows["layer4.1.conv2"] == ["Conv2d", "512x7x7", "*"]
    assert rows["fc"] == ["Linear", "1000"]
    assert rows["layer1.0.bn1"] == ["BatchNorm2d", "64x56x56"]
    assert "layer1" not in rows  # containers only with --all
    model = get_model("resnet18", weights=None)
    convs = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    assert [name for name, row in rows.items() if row[-1] == "*"] == convs


def test_layers_all_includes_containers_and_alexnet_shapes() -> None:
    rows = _layer_rows(invoke("layers", "alexnet", "--all", catch_exceptions=False).stdout)
    assert rows["features"] == ["Sequential", "256x6x6"]
    assert rows["features.0"] == ["Conv2d", "64x55x55", "*"]
    assert rows["features.1"] == ["ReLU", "64x55x55"]
    assert rows["classifier.6"] == ["Linear", "1000"]


def test_layers_of_googlenet_print_no_warning() -> None:
    # torchvision warns when GoogLeNet is built without init_weights; `run` builds it
    # with it, and `layers` lists the same network.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = invoke("layers", "googlenet", catch_exceptions=False)
    assert result.exit_code == 0 and result.stderr == ""
    assert [str(w.message) for w in caught if issubclass(w.category, FutureWarning)] == []
    assert _layer_rows(result.stdout)["fc"] == ["Linear", "1000"]


def test_layers_of_an_unknown_model() -> None:
    line = _one_error_line(invoke("layers", "resnet19", catch_exceptions=False), 1)
    assert "resnet18" in line and "reportgen models" in line


# --- errors of `reportgen run` --------------------------------------------------------------


def _run(images: Path, tmp_path: Path, *extra: str) -> Result:
    return invoke(
        "run",
        str(images),
        "-o",
        str(tmp_path / "out"),
        "--weights",
        "none",
        *extra,
        catch_exceptions=False,
    )


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (("--top-k", "0"), "--top-k"),
        (("--alpha", "1.5"), "--alpha"),
        (("--batch-size", "0"), "--batch-size"),
        (("--strategy", "manual"), "--channels"),
        (("--channels", "1,2"), "--strategy manual"),
        (("--colormap", "nosuchmap"), "nosuchmap"),
    ],
)
def test_bad_option_values_are_usage_errors(
    small_images: Path, tmp_path: Path, extra: tuple[str, ...], needle: str
) -> None:
    line = _one_error_line(_run(small_images, tmp_path, *extra), 2)
    assert needle in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "extra",
    [("--strategy", "best"), ("--scale", "global"), ("--device", "tpu"), ("--channels", "a,b")],
)
def test_click_usage_errors_exit_2(
    small_images: Path, tmp_path: Path, extra: tuple[str, ...]
) -> None:
    result = _run(small_images, tmp_path, *extra)
    assert result.exit_code == 2
    assert "Error" in result.stderr and "Traceback" not in result.output


def test_missing_input(tmp_path: Path) -> None:
    line = _one_error_line(_run(tmp_path / "nothing-here", tmp_path), 1)
    assert "nothing-here" in line and "does not exist" in line


def test_folder_without_images(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    line = _one_error_line(_run(empty, tmp_path), 1)
    assert "no image files" in line


def test_unknown_model_in_run(small_images: Path, tmp_path: Path) -> None:
    line = _one_error_line(_run(small_images, tmp_path, "-m", "alexnett"), 1)
    assert "closest:" in line and "alexnet" in line


def test_unknown_layer_in_run(small_images: Path, tmp_path: Path) -> None:
    result = _run(small_images, tmp_path, "-m", "alexnet", "-l", "features.O")
    line = _one_error_line(result, 1)
    assert "features.0" in line and "reportgen layers alexnet" in line


def test_missing_weights_offline(small_images: Path, tmp_path: Path) -> None:
    result = invoke(
        "run", str(small_images), "-o", str(tmp_path / "out"), "-m", "resnet18",
        "--weights-dir", str(tmp_path),
        catch_exceptions=False,
    )  # fmt: skip
    line = _one_error_line(result, 1)
    assert "resnet18-f37072fd.pth" in line and str(tmp_path) in line
    assert "--weights none" in line


def test_output_that_is_not_a_report_is_never_replaced(small_images: Path, tmp_path: Path) -> None:
    precious = tmp_path / "out"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not delete")
    result = _run(small_images, tmp_path, "-m", "alexnet", "-l", "features.0")
    line = _one_error_line(result, 1)
    assert "not a reportgen report" in line
    assert (precious / "thesis.tex").read_text() == "do not delete"


def test_real_process_prints_one_error_line_and_no_traceback(tmp_path: Path) -> None:
    env_python = sys.executable
    result = subprocess.run(
        [env_python, "-m", "reportgen", "run", str(tmp_path / "missing.png"), "-o",
         str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == ""
    assert re.fullmatch(r"Error: [^\n]*missing\.png[^\n]*\n", result.stderr)


def test_verbose_shows_a_traceback_for_errors(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.png")
    quiet = subprocess.run(
        [sys.executable, "-m", "reportgen", "run", missing], capture_output=True, text=True,
        timeout=120, cwd=tmp_path,
    )  # fmt: skip
    verbose = subprocess.run(
        [sys.executable, "-m", "reportgen", "-v", "run", missing], capture_output=True,
        text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert quiet.returncode == verbose.returncode == 1
    assert "Traceback" not in quiet.stderr
    assert "Traceback" in verbose.stderr
    assert verbose.stderr.strip().splitlines()[-1].startswith("Error: ")


@pytest.mark.parametrize("command", ["run", "verify", "layers", "models"])
def test_every_command_takes_quiet_and_verbose(command: str) -> None:
    text = invoke(command, "--help", catch_exceptions=False).stdout
    assert re.search(r"-q, --quiet", text) and re.search(r"-v, --verbose", text), text


def test_quiet_and_verbose_after_the_subcommand(small_images: Path, tmp_path: Path) -> None:
    """``reportgen run ... -q`` is ``reportgen -q run ...`` (README's run options table)."""
    fast = ("--weights", "none", "-m", "alexnet", "-l", "features.0", "--top-k", "2")
    loud = invoke("run", str(small_images), *fast, "-o", str(tmp_path / "a"))
    assert loud.exit_code == 0, loud.output
    assert loud.stdout.startswith("Wrote ")
    quiet = invoke("run", str(small_images), *fast, "-o", str(tmp_path / "b"), "-q")
    assert quiet.exit_code == 0, quiet.output
    assert quiet.stdout == quiet.stderr == ""
    assert (tmp_path / "b" / "index.html").is_file()
    checked = invoke("verify", str(tmp_path / "b"))
    assert checked.exit_code == 0 and checked.stdout.startswith("OK: ")
    assert invoke("verify", str(tmp_path / "b"), "-q").stdout == ""
    missing = str(tmp_path / "missing.png")
    verbose = subprocess.run(
        [sys.executable, "-m", "reportgen", "run", missing, "-v"], capture_output=True,
        text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert verbose.returncode == 1
    assert "Traceback" in verbose.stderr
    assert verbose.stderr.strip().splitlines()[-1].startswith("Error: ")
