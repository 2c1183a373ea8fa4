"""Issue 15, class 7 (verify): ``reportgen verify`` prints names escaped, so a file name
with a newline cannot forge an ``OK:`` line in a CI log; a listed file that is a FIFO
(or any other non-regular file) is a difference, never read."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers import invoke

FAST = ("-m", "alexnet", "-l", "features.0", "--weights", "none", "--device", "cpu", "--jobs", "1")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("verify-data")
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


def add_listing(report: Path, entry: dict[str, object]) -> None:
    manifest = json.loads((report / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"].append(entry)
    (report / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


@pytest.mark.parametrize(
    "forged, shown",
    [
        ("\nOK: all good", "\\nOK: all good"),
        ("\rOK: all good", "\\rOK: all good"),
        ("\x1b[2KOK: fine", "\\x1b[2KOK: fine"),
    ],
    ids=["newline", "carriage return", "escape code"],
)
def test_a_name_cannot_forge_a_line(report: Path, forged: str, shown: str) -> None:
    (report / f"x{forged}.txt").write_text("extra")
    result = invoke("verify", str(report))
    assert result.exit_code == 1
    lines = result.stdout.splitlines() + result.stderr.splitlines()
    assert not any(line.startswith("OK") for line in lines), lines
    assert f"extra: x{shown}.txt (not in the manifest)" in lines, lines


def test_a_listed_fifo_is_reported_not_read(report: Path) -> None:
    fifo = report / "inputs" / "pipe.jpg"
    os.mkfifo(fifo)
    add_listing(
        report, {"path": "inputs/pipe.jpg", "sha256": hashlib.sha256(b"").hexdigest(), "bytes": 0}
    )
    done = threading.Event()

    def release() -> None:  # a reader blocked on the FIFO is let go after 5 s
        if not done.wait(5):
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    threading.Thread(target=release, daemon=True).start()
    started = time.monotonic()
    try:
        result = invoke("verify", str(report))
    finally:
        done.set()
    assert time.monotonic() - started < 4
    assert result.exit_code == 1
    assert "changed: inputs/pipe.jpg (not a regular file (a FIFO (named pipe)))" in result.stdout
