"""Issue 15, class 4 (the notebook view): a report's manifest is data.

``notebook.Report`` embeds only files the manifest lists, below the report folder,
regular, and with the listed sha256 and size: a tampered manifest cannot make it embed
a file from elsewhere (``..``, an absolute path, a symbolic link inside the folder), a
changed file, or one it does not list; path patterns are filled without ``str.format``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from reportgen.tools.notebook import Report
from tests.helpers import invoke

FAST = ("-m", "alexnet", "-l", "features.0", "--weights", "none", "--device", "cpu", "--jobs", "1")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("notebook-data")
    image = root / "in.png"
    Image.new("RGB", (40, 32), (90, 140, 200)).save(image)
    result = invoke("run", str(image), "-o", str(root / "report"), *FAST)
    assert result.exit_code == 0, result.stderr
    return root / "report"


@pytest.fixture
def report(built: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "report"
    shutil.copytree(built, copy)
    return copy


@pytest.fixture
def secret(tmp_path: Path) -> bytes:
    """A picture outside the report, which nothing may embed."""
    path = tmp_path / "secret.png"
    Image.new("RGB", (9, 7), (1, 2, 3)).save(path)
    return path.read_bytes()


def manifest_of(report: Path) -> dict[str, Any]:
    return json.loads((report / "manifest.json").read_text(encoding="utf-8"))


def rewrite(report: Path, manifest: dict[str, Any]) -> None:
    (report / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def listing(relpath: str, data: bytes) -> dict[str, Any]:
    return {"path": relpath, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def embedded(text: str, data: bytes) -> bool:
    return base64.b64encode(data).decode("ascii") in text


def test_an_intact_report_shows_its_thumbnails(report: Path) -> None:
    manifest = manifest_of(report)
    thumbnail = (report / manifest["inputs"][0]["thumbnail"]).read_bytes()
    assert embedded(Report(report)._repr_html_(), thumbnail)


@pytest.mark.parametrize("where", ["parent", "absolute", "dot-dot-inside", "backslash"])
def test_a_thumbnail_outside_the_report_is_not_embedded(
    report: Path, secret: bytes, tmp_path: Path, where: str
) -> None:
    relpath = {
        "parent": "../secret.png",
        "absolute": str(tmp_path / "secret.png"),
        "dot-dot-inside": "inputs/../../secret.png",
        "backslash": "..\\secret.png",
    }[where]
    if where == "backslash":
        (report / "..\\secret.png").write_bytes(secret)  # a name, on POSIX
    manifest = manifest_of(report)
    manifest["inputs"][0]["thumbnail"] = relpath
    manifest["files"].append(listing(relpath, secret))  # the attacker lists it, hash and all
    rewrite(report, manifest)
    shown = Report(report)
    assert not embedded(shown._repr_html_(), secret)
    assert shown.file_bytes(relpath) is None


def test_a_symbolic_link_inside_the_report_is_not_followed(report: Path, secret: bytes) -> None:
    link = report / "inputs" / "planted.png"
    os.symlink(report.parent / "secret.png", link)
    manifest = manifest_of(report)
    manifest["inputs"][0]["thumbnail"] = "inputs/planted.png"
    manifest["files"].append(listing("inputs/planted.png", secret))
    rewrite(report, manifest)
    assert not embedded(Report(report)._repr_html_(), secret)


def test_a_folder_link_on_the_way_is_not_followed(report: Path, secret: bytes) -> None:
    outside = report.parent / "outside"
    outside.mkdir()
    (outside / "x.png").write_bytes(secret)
    os.symlink(outside, report / "linked")
    manifest = manifest_of(report)
    manifest["inputs"][0]["thumbnail"] = "linked/x.png"
    manifest["files"].append(listing("linked/x.png", secret))
    rewrite(report, manifest)
    assert not embedded(Report(report)._repr_html_(), secret)


def test_an_unlisted_file_is_not_read(report: Path, secret: bytes) -> None:
    (report / "inputs" / "extra.png").write_bytes(secret)
    manifest = manifest_of(report)
    manifest["inputs"][0]["thumbnail"] = "inputs/extra.png"
    rewrite(report, manifest)
    assert not embedded(Report(report)._repr_html_(), secret)


def test_a_changed_file_is_not_shown(report: Path, secret: bytes) -> None:
    manifest = manifest_of(report)
    thumbnail = manifest["inputs"][0]["thumbnail"]
    (report / thumbnail).write_bytes(secret)  # listed, but not with these bytes
    assert not embedded(Report(report)._repr_html_(), secret)


def test_a_listed_fifo_is_not_read(report: Path) -> None:
    manifest = manifest_of(report)
    fifo = report / "inputs" / "pipe.png"
    os.mkfifo(fifo)
    manifest["inputs"][0]["thumbnail"] = "inputs/pipe.png"
    manifest["files"].append({"path": "inputs/pipe.png", "sha256": "0" * 64, "bytes": 10})
    rewrite(report, manifest)
    done = threading.Event()

    def release() -> None:  # a reader blocked on the FIFO is let go after 5 s
        if not done.wait(5):
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    threading.Thread(target=release, daemon=True).start()
    started = time.monotonic()
    try:
        text = Report(report)._repr_html_()
    finally:
        done.set()
    assert "missing" in text and time.monotonic() - started < 4


def test_path_patterns_are_not_format_strings(report: Path) -> None:
    manifest = manifest_of(report)
    layer = manifest["models"][0]["layers"][0]
    planted = {"map_sheet": "{input.__class__.__mro__}", "map": "{channel:>99999}"}
    layer["images"] = {**layer.get("images", {}), **planted}
    rewrite(report, manifest)
    view = Report(report).layer(layer["name"])
    input_id = manifest["inputs"][0]["id"]
    assert view._pattern("map_sheet", input_id, 3) is None
    assert view._pattern("map", input_id, 3) is None
    text = view._repr_html_()
    assert "__mro__" not in text and "class 'str'" not in text


def test_the_report_patterns_are_filled_as_before(report: Path) -> None:
    manifest = manifest_of(report)
    layer = manifest["models"][0]["layers"][0]
    view = Report(report).layer(layer["name"])
    layer["images"] = {"map": "m/{input}/c{channel:04d}.png", "x": "{channel}"}
    view.info = layer
    assert view._pattern("map", "cat-1", 7) == "m/cat-1/c0007.png"
    assert view._pattern("x", "cat-1", 12) == "12"
