"""``reportgen verify``: intact, changed, missing and extra files; no torch needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import Result

import reportgen
from reportgen.report.output import StagedReport
from reportgen.tools.verify import verify_report
from tests.helpers import invoke

FILES = {
    "index.html": "<!DOCTYPE html><title>r</title>",
    "assets/style.css": "body{}",
    "models/m/layers/conv1/maps/img-1/c0000.png": b"\x89PNG fake",
    "models/m/layers/conv1/c0000.html": "<p>channel</p>",
}


@pytest.fixture
def report(tmp_path: Path) -> Path:
    """A report as StagedReport writes it: files, then manifest.json listing them."""
    target = tmp_path / "report"
    with StagedReport(target) as staged:
        for path, data in FILES.items():
            staged.write(path, data)
        staged.commit(
            {
                "format": "reportgen-manifest/1",
                "generator": {"name": "reportgen", "version": reportgen.__version__},
                "files": staged.file_list(),
            }
        )
    return target


def verify_cli(*args: str) -> Result:
    return invoke("verify", *args, catch_exceptions=False)


def test_intact_report(report: Path) -> None:
    result = verify_report(report)
    assert result.ok and result.checked == len(FILES)
    cli = verify_cli(str(report))
    assert cli.exit_code == 0
    assert cli.output.startswith(f"OK: {report}: {len(FILES)} files")
    assert result.manifest_sha256 in cli.output


def test_changed_file(report: Path) -> None:
    path = report / "models/m/layers/conv1/c0000.html"
    path.write_text("<p>channel</p>".replace("channel", "CHANNEL"))  # same size, new bytes
    cli = verify_cli(str(report))
    assert cli.exit_code == 1
    assert "changed: models/m/layers/conv1/c0000.html (sha256 differs)" in cli.output
    (report / "index.html").write_text("longer than before, surely")
    lines = verify_cli(str(report)).output.splitlines()
    assert lines[0].startswith("changed: index.html (")


def test_missing_file(report: Path) -> None:
    (report / "assets/style.css").unlink()
    cli = verify_cli(str(report))
    assert cli.exit_code == 1
    assert "missing: assets/style.css" in cli.output


def test_extra_file(report: Path) -> None:
    (report / "models/m/notes.txt").write_text("added later")
    cli = verify_cli(str(report))
    assert cli.exit_code == 1
    assert "extra: models/m/notes.txt (not in the manifest)" in cli.output


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlink_is_a_difference(report: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.css"
    outside.write_text("body{}")
    (report / "assets/style.css").unlink()
    os.symlink(outside, report / "assets/style.css")
    result = verify_report(report)
    assert [(d.kind, d.path) for d in result.differences] == [("missing", "assets/style.css")]


def test_all_differences_listed_in_order_and_as_json(report: Path) -> None:
    (report / "assets/style.css").unlink()
    (report / "index.html").write_text("changed")
    (report / "extra.txt").write_text("x")
    cli = verify_cli(str(report))
    assert cli.exit_code == 1
    kinds = [line.split(":")[0] for line in cli.stdout.splitlines()]
    assert kinds == ["missing", "changed", "extra"]
    data = json.loads(verify_cli("--json", str(report)).stdout)
    assert data["ok"] is False and data["checked"] == len(FILES)
    assert {d["kind"] for d in data["differences"]} == {"missing", "changed", "extra"}


def test_manifest_paths_cannot_leave_the_report(report: Path) -> None:
    manifest = json.loads((report / "manifest.json").read_text())
    manifest["files"].append({"path": "../outside", "sha256": "0" * 64, "bytes": 1})
    (report / "manifest.json").write_text(json.dumps(manifest))
    result = verify_report(report)
    assert [d.kind for d in result.differences] == ["invalid"]


def test_not_a_report(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    cli = verify_cli(str(tmp_path / "photos"))
    assert cli.exit_code == 1
    assert cli.output.startswith("Error: ") and "manifest.json" in cli.output
    assert verify_cli(str(tmp_path / "nowhere")).exit_code == 2
    (tmp_path / "analysis.html").write_text("<!DOCTYPE html>")
    cli = verify_cli(str(tmp_path / "analysis.html"))
    assert cli.exit_code == 2 and "is not a folder" in cli.output


def test_archive_modules_do_not_import_torch() -> None:
    """verify, config, the report writer and the single-file renderer stay torch-free."""
    code = (
        "import sys, reportgen.tools.verify, reportgen.cli.config, reportgen.report.output, "
        "reportgen.report.singlefile, reportgen.report.render, reportgen.cli.commands; "
        "sys.exit('torch' in sys.modules)"
    )
    source = str(Path(reportgen.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=source)
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0
