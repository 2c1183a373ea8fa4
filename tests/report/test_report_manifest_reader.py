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


# --- a layer's channels, written compactly -----------------------------------------------

COMPACT_LAYER: dict[str, Any] = {
    "name": "features.0",
    "channel_page": "models/m/layers/features.0/c{channel:04d}.html",
    "channels": [
        {"index": 0, "summary": None, "examples": []},
        {"index": 12, "summary": None, "examples": [], "feature_vis": {"image": "fv.png"}},
        {"index": 1234, "summary": None, "examples": [], "examples_image": "e.jpg"},
    ],
}


def test_layer_channels_give_each_channel_in_full() -> None:
    full = manifest_file.layer_channels(COMPACT_LAYER)
    assert [c["page"] for c in full] == [
        "models/m/layers/features.0/c0000.html",
        "models/m/layers/features.0/c0012.html",
        "models/m/layers/features.0/c1234.html",
    ]
    assert [c["feature_vis"] for c in full] == [None, {"image": "fv.png"}, None]
    assert [c["examples_image"] for c in full] == [None, None, "e.jpg"]
    assert "page" not in COMPACT_LAYER["channels"][0]  # the manifest's own entries stay
    assert manifest_file.channel_page(COMPACT_LAYER, 7) == "models/m/layers/features.0/c0007.html"
    with pytest.raises(KeyError):
        manifest_file.channel_page({"channels": []}, 0)


def test_layer_channels_read_a_format_1_manifest_whose_channels_name_their_pages() -> None:
    old = {"channels": [{"index": 3, "page": "p/c0003.html", "examples_image": None}]}
    assert manifest_file.layer_channels(old)[0]["page"] == "p/c0003.html"


def test_the_writer_leaves_out_what_the_reader_fills_in() -> None:
    from types import SimpleNamespace

    from reportgen.report.manifest import channel_entry, channel_page_pattern
    from reportgen.report.paths import channel_page

    layer = SimpleNamespace(name="features.3")
    pattern = channel_page_pattern("m", layer)  # type: ignore[arg-type]
    assert pattern.replace("{channel:04d}", "0042") == channel_page("m", "features.3", 42)
    channel = SimpleNamespace(
        index=42, label=None, summary=None, examples=[], examples_image=None, feature_vis=None
    )
    entry = channel_entry(channel)
    assert entry == {"index": 42, "summary": None, "examples": []}
    full = manifest_file.layer_channels({"channel_page": pattern, "channels": [entry]})
    assert full[0]["page"] == channel_page("m", "features.3", 42)


@pytest.mark.parametrize(
    "value", [0.0009827186586335301, -1.2345678e-30, 3.0e38, 1.0 / 3.0, 0.1, 7.0, -0.0, 1e-45]
)
def test_float32_numbers_are_short_and_read_back_as_the_same_float32(value: float) -> None:
    import numpy as np

    from reportgen.report.manifest import float32_number

    written = json.dumps(float32_number(value))
    assert np.float32(json.loads(written)) == np.float32(value)
    assert len(written) <= len(repr(value))
    assert len(written.lstrip("-").replace("e-", "").replace(".", "").lstrip("0")) <= 12


def test_float32_numbers_leave_other_values_alone() -> None:
    from reportgen.report.manifest import float32_number

    assert float32_number(None) is None
    assert float32_number(3) == 3 and isinstance(float32_number(3), int)
    assert float32_number(1e300) == 1e300  # beyond float32: as it is, never inf
