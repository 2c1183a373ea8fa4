"""One reader of manifest.json (reportgen.report.manifest_file): every part of reportgen
that reads a manifest goes through it, and a bad manifest is told the same one line
whoever reads it: ``reportgen verify``, ``run --from-manifest``, the notebook view."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

import reportgen
from reportgen.report import manifest_file
from reportgen.report.manifest_file import (
    MANIFEST,
    Manifest,
    ManifestError,
    ManifestUnreadable,
    read_manifest,
)
from tests.helpers import error_line, invoke

PACKAGE = Path(reportgen.__file__).resolve().parent

GOOD: dict[str, Any] = {
    "format": "reportgen-manifest/1",
    "generator": {"name": "reportgen", "version": "0"},
    "settings": {"models": ["alexnet"], "weights": "none"},
    "inputs": [],
    "models": [],
    "files": [],
}
GOOD_TEXT = json.dumps(GOOD)

BAD_MANIFESTS = {
    "truncated": GOOD_TEXT[: len(GOOD_TEXT) // 2],
    "empty": "",
    "not utf-8": b"\xff\xfe{}",
    "a list": "[1, 2]",
    "another program's": json.dumps({**GOOD, "generator": {"name": "other"}}),
    "no generator": json.dumps({"settings": {}, "files": []}),
}


def report_folder(root: Path, content: str | bytes) -> Path:
    folder = root / "report"
    folder.mkdir()
    data = content.encode("utf-8") if isinstance(content, str) else content
    (folder / MANIFEST).write_bytes(data)
    return folder


def the_error(path: Path) -> str:
    with pytest.raises(ManifestError) as caught:
        read_manifest(path)
    return str(caught.value)


def notebook_error(path: Path) -> str:
    from reportgen.tools.notebook import Report

    with pytest.raises(ManifestError) as caught:
        Report(path)
    return str(caught.value)


@pytest.mark.parametrize("case", sorted(BAD_MANIFESTS))
def test_a_bad_manifest_is_told_the_same_everywhere(tmp_path: Path, case: str) -> None:
    folder = report_folder(tmp_path, BAD_MANIFESTS[case])
    expected = the_error(folder)
    assert "\n" not in expected and repr(str(folder / MANIFEST)) in expected
    # reportgen verify: the subject of the command (exit 1)
    assert error_line(invoke("verify", str(folder)), 1) == f"Error: {expected}"
    # run --from-manifest, given the folder or the file: an option's value (exit 2)
    for given in (folder, folder / MANIFEST):
        result = invoke("run", "x.png", "--from-manifest", str(given), "-o", str(tmp_path / "o"))
        assert error_line(result, 2) == f"Error: {expected}"
    # the notebook view
    assert notebook_error(folder) == expected
    assert notebook_error(folder / MANIFEST) == expected
    # the writer's check before replacing a folder: not a report
    from reportgen.report.output import is_report

    assert not is_report(folder)


def test_the_reasons(tmp_path: Path) -> None:
    reasons = {}
    for case, content in BAD_MANIFESTS.items():
        root = tmp_path / case.replace(" ", "-").replace("'", "")
        root.mkdir()
        reasons[case] = the_error(report_folder(root, content))
    assert "is not valid JSON (" in reasons["truncated"]
    assert "is not valid JSON (" in reasons["empty"]
    assert "not UTF-8" in reasons["not utf-8"]
    assert reasons["a list"].endswith("was not written by reportgen (not a JSON object)")
    assert reasons["another program's"].endswith("was not written by reportgen")
    assert reasons["no generator"].endswith("was not written by reportgen")


def test_a_good_manifest_from_folder_file_and_single_file(tmp_path: Path) -> None:
    folder = report_folder(tmp_path, GOOD_TEXT)
    by_folder, by_file = read_manifest(folder), read_manifest(folder / MANIFEST)
    assert isinstance(by_folder, Manifest) and by_folder == by_file
    assert by_folder.data == GOOD and by_folder.folder == folder and not by_folder.single_file
    assert by_folder.sha256 == manifest_file.hashlib.sha256(GOOD_TEXT.encode()).hexdigest()

    embedded = base64.b64encode(GOOD_TEXT.encode()).decode()
    page = tmp_path / "analysis.html"
    page.write_text(
        f'<!DOCTYPE html><p><a href="data:application/json;base64,{embedded}" '
        'download="manifest.json">Save manifest.json</a></p>',
        encoding="utf-8",
    )
    single = read_manifest(page)
    assert single.single_file and single.folder is None and single.data == GOOD
    assert single.sha256 == by_folder.sha256  # the same manifest bytes

    from reportgen.cli.config import read_manifest_settings

    assert read_manifest_settings(page) == (GOOD["settings"], GOOD)
    assert read_manifest_settings(folder) == (GOOD["settings"], GOOD)


def test_single_file_without_a_manifest(tmp_path: Path) -> None:
    page = tmp_path / "notes.html"
    page.write_text("<!DOCTYPE html><p>my notes</p>", encoding="utf-8")
    expected = the_error(page)
    assert "is not a reportgen single-file report" in expected
    result = invoke("run", "x.png", "--from-manifest", str(page), "-o", str(tmp_path / "o"))
    assert error_line(result, 2) == f"Error: {expected}"


def test_what_each_reader_needs_is_asked_of_the_manifest(tmp_path: Path) -> None:
    """verify needs the file list, --from-manifest the settings: said in the same form."""
    folder = report_folder(tmp_path, json.dumps({"generator": {"name": "reportgen"}}))
    line = error_line(invoke("verify", str(folder)), 1)
    assert line.endswith("has no 'files' list to check against")
    line = error_line(invoke("run", "x.png", "--from-manifest", str(folder)), 2)
    assert line.endswith("has no 'settings' table to rebuild a report from")
    assert repr(str(folder / MANIFEST)) in line


def test_no_manifest(tmp_path: Path) -> None:
    empty = tmp_path / "photos"
    empty.mkdir()
    with pytest.raises(ManifestUnreadable) as caught:
        read_manifest(empty)
    assert caught.value.detail and "has no readable manifest.json" in str(caught.value)
    line = error_line(invoke("verify", str(empty)), 1)
    assert line == f"Error: {caught.value}"
    line = error_line(invoke("run", "x.png", "--from-manifest", str(empty)), 2)
    assert "cannot read --from-manifest" in line
    from reportgen.tools.notebook import Report

    with pytest.raises(FileNotFoundError, match="not a report folder"):
        Report(empty)


def test_every_reader_calls_the_one_parser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = report_folder(tmp_path, GOOD_TEXT)
    calls: list[str] = []
    real = manifest_file.parse_manifest

    def spy(raw: bytes, where: Any) -> dict[str, Any]:
        calls.append(str(where))
        return real(raw, where)

    monkeypatch.setattr(manifest_file, "parse_manifest", spy)
    from reportgen.cli.config import read_manifest_settings
    from reportgen.report.output import check_target, is_report
    from reportgen.tools.notebook import Report
    from reportgen.tools.verify import verify_report

    readers = {
        "verify": lambda: verify_report(folder),
        "--from-manifest": lambda: read_manifest_settings(folder),
        "notebook": lambda: Report(folder),
        "is_report": lambda: is_report(folder),
        "check_target": lambda: check_target(folder),
    }
    for name, read in readers.items():
        calls.clear()
        read()
        assert calls == [str(folder / MANIFEST)], name


def test_no_other_manifest_reader_in_the_report_tools_and_cli() -> None:
    """No json.load of a manifest, nor a search for the embedded one, outside the reader
    in these stages."""
    offenders = []
    for stage in ("report", "tools", "cli"):
        for path in sorted((PACKAGE / stage).rglob("*.py")):
            if path.name == "manifest_file.py":
                continue
            for line in path.read_text(encoding="utf-8").splitlines():
                if re.search(
                    r"manifest.*json\.loads?\(|json\.loads?\(.*manifest|download=\"manifest\.json\"",
                    line,
                    re.I,
                ):
                    offenders.append(f"{path.relative_to(PACKAGE)}: {line.strip()}")
    assert not offenders
