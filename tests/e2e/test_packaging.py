"""The wheel carries the templates: a non-editable install works from any directory."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot build a wheel here (no hatchling?): {result.stderr[-300:]}")
    (built,) = out.glob("reportgen-*.whl")
    return built


def test_wheel_holds_package_and_every_template(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in (REPO / "templates").iterdir():
        assert f"reportgen/templates/{template.name}" in names
    assert "reportgen/cli/commands.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "reportgen = reportgen.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


@pytest.mark.slow
def test_installed_wheel_builds_a_report_from_another_directory(
    wheel: Path, tmp_path: Path
) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).save(work / "grey.png")
    env = {**os.environ, "PYTHONPATH": str(target), "REPORTGEN_OFFLINE": "1"}
    probe = subprocess.run(
        [sys.executable, "-c", "import reportgen.report.render as r; print(r.templates_dir())"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(probe.stdout.strip()).is_relative_to(target)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "reportgen",
            "run",
            "grey.png",
            "-m",
            "alexnet",
            "--weights",
            "none",
            "-l",
            "features.0",
            "--examples",
            "0",
            "--no-gradcam",
            "-o",
            "out",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert (work / "out" / "index.html").is_file()
    assert (work / "out" / "assets" / "style.css").is_file()
