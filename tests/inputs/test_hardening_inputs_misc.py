"""Issue 15, class 7 (inputs): one file named twice (``imgs/../imgs imgs``, a link, a
folder and a file in it) is one input; the download folder of a killed run is removed by
the next run, a live run's never."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from reportgen.inputs import discovery as files
from reportgen.inputs.discovery import discover_inputs

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def imgs(tmp_path: Path) -> Path:
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    for name in ("a.png", "sub/b.png"):
        Image.new("RGB", (20, 20)).save(folder / name)
    return folder


@pytest.mark.parametrize(
    "spelling",
    [
        lambda f: [str(f / ".." / f.name), str(f)],
        lambda f: [str(f), str(f / "sub"), str(f / "a.png")],
        lambda f: [str(f), f"{f}/./sub/../a.png"],
        lambda f: [str(f), str(f.parent / "link")],
    ],
    ids=["imgs/../imgs imgs", "folder, subfolder, file", "dot segments", "a link to it"],
)
def test_each_file_is_one_input(imgs: Path, spelling: object) -> None:
    os.symlink(imgs, imgs.parent / "link")
    found, skipped = discover_inputs(spelling(imgs))  # type: ignore[operator]
    assert sorted(os.path.realpath(f.path) for f in found) == sorted(
        os.path.realpath(imgs / n) for n in ("a.png", "sub/b.png")
    )
    assert skipped == []


HOLD_DOWNLOADS = """
import sys, time
import tempfile
tempfile.tempdir = sys.argv[1]
from reportgen.inputs import discovery as files
print(files._downloads(), flush=True)
time.sleep(60)
"""


def test_a_killed_runs_download_folder_is_swept(tmp_path: Path) -> None:
    base = tmp_path / "tmp"
    base.mkdir()

    def holder() -> tuple[subprocess.Popen[str], Path]:
        process = subprocess.Popen(
            [sys.executable, "-c", HOLD_DOWNLOADS, str(base)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        assert process.stdout is not None
        return process, Path(process.stdout.readline().strip())

    killed, left = holder()
    killed.send_signal(signal.SIGKILL)
    killed.wait(10)
    (left / "x.download").write_bytes(b"a downloaded picture")
    assert left.is_dir()
    alive, live = holder()  # the next run's first download folder sweeps the old one
    try:
        assert not left.exists() and live.is_dir()
        other = base / "reportgen-downloads-not-ours"
        other.mkdir()  # no lock file: not one this reportgen made
        assert files.sweep_downloads(str(base)) == []  # a live run's, and not ours: kept
        assert live.is_dir() and other.is_dir()
    finally:
        alive.kill()
        alive.wait(10)
