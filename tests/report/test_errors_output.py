"""Issue 4, part 5: the output cannot be written. In every case the previous report
survives byte for byte, no staging folder is left behind, and the error is one line.

The tests run as root in CI, where permission bits do not stop writes; so the
kernel's refusals (EACCES, ENOSPC) are injected where the report is written, and a
separate test drops root privileges in a child process for a real read-only folder.
"""

from __future__ import annotations

import errno
import io
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from reportgen.report import output as output_module
from tests.helpers import REPO, error_line, invoke, snapshot

FAST = ("-m", "alexnet", "-l", "features.0", "--weights", "none", "--device", "cpu", "--jobs", "2")
STAGING = ".reportgen-staging-"


def leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if ".reportgen-" in p.name]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, bytes]]:
    """An input and a finished report, copied fresh for each test from this one."""
    root = tmp_path_factory.mktemp("output")
    image = root / "in.png"
    Image.new("RGB", (48, 40), (30, 160, 90)).save(image)
    result = invoke("run", str(image), "-o", str(root / "report"), *FAST)
    assert result.exit_code == 0, result.stderr
    return image, root / "report", snapshot(root / "report")


@pytest.fixture
def existing(built: tuple[Path, Path, dict[str, bytes]], tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the finished report under ``tmp_path/out/report``."""
    image, report, files = built
    target = tmp_path / "out" / "report"
    for relpath, data in files.items():
        (target / relpath).parent.mkdir(parents=True, exist_ok=True)
        (target / relpath).write_bytes(data)
    return image, target


def test_output_path_is_an_existing_file(tmp_path: Path, built: Any) -> None:
    image = built[0]
    target = tmp_path / "report.html"
    target.write_text("my notes")
    line = error_line(invoke("run", str(image), "-o", str(target), *FAST))
    assert str(target) in line and "not a folder" in line
    assert target.read_text() == "my notes"
    assert leftovers(tmp_path) == []


def test_read_only_folder_refused_before_work(
    existing: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The access check (what a non-root user meets) refuses the folder up front."""
    image, report = existing
    before = snapshot(report)
    parent = str(report.parent)
    real_access = os.access

    def access(path: Any, mode: int, *args: Any, **kwargs: Any) -> bool:
        if os.fspath(path) == parent and mode & os.W_OK:
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(output_module.os, "access", access)
    line = error_line(invoke("run", str(image), "-o", str(report), *FAST))
    assert parent in line and "permission denied" in line.lower()
    assert snapshot(report) == before
    assert leftovers(report.parent) == []


class _FaultyFile(io.RawIOBase):
    """A file whose writes fail as a full disk makes them fail."""

    def __init__(self, real: Any, error: int) -> None:
        self.real = real
        self.error = error

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.real.write(bytes(data)[:10])  # part of it lands, as on a real full disk
        raise OSError(self.error, os.strerror(self.error))

    def close(self) -> None:
        self.real.close()
        super().close()


def inject_write_errors(
    monkeypatch: pytest.MonkeyPatch, error: int, after: int, only: str | None = None
) -> list[str]:
    """Make writes into the staging folder fail with ``error`` after ``after`` files."""
    real_open = pathlib.Path.open
    lock = threading.Lock()
    opened: list[str] = []

    def open_(self: pathlib.Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if STAGING not in str(self) or not any(c in mode for c in "wax+"):
            return real_open(self, mode, *args, **kwargs)
        with lock:
            opened.append(self.name)
            fail = len(opened) > after and (only is None or self.name == only)
        if not fail:
            return real_open(self, mode, *args, **kwargs)
        faulty = _FaultyFile(real_open(self, "wb"), error)
        return faulty if "b" in mode else io.TextIOWrapper(faulty, encoding="utf-8")

    monkeypatch.setattr(pathlib.Path, "open", open_)
    return opened


def test_read_only_folder_refused_while_writing(
    existing: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the check passes but the kernel still refuses (EACCES/EROFS), same outcome."""
    image, report = existing
    before = snapshot(report)
    inject_write_errors(monkeypatch, errno.EROFS, after=0)
    line = error_line(invoke("run", str(image), "-o", str(report), *FAST))
    assert "cannot write the report" in line and "Read-only file system" in line
    assert snapshot(report) == before
    assert leftovers(report.parent) == []


@pytest.mark.parametrize("after", [20])
def test_disk_full_mid_write(
    existing: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, after: int
) -> None:
    image, report = existing
    before = snapshot(report)
    opened = inject_write_errors(monkeypatch, errno.ENOSPC, after=after)
    line = error_line(invoke("run", str(image), "-o", str(report), *FAST))
    assert "No space left on device" in line and str(report.parent) in line
    assert len(opened) > after  # the failure really came mid-run
    assert snapshot(report) == before
    assert leftovers(report.parent) == []


def test_disk_full_writing_the_manifest(
    existing: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    image, report = existing
    before = snapshot(report)
    opened = inject_write_errors(monkeypatch, errno.ENOSPC, after=0, only="manifest.json")
    line = error_line(invoke("run", str(image), "-o", str(report), *FAST))
    assert "No space left on device" in line
    assert opened[-1] == "manifest.json" and len(opened) > 50
    assert snapshot(report) == before
    assert leftovers(report.parent) == []


def _fail_final_rename(monkeypatch: pytest.MonkeyPatch, report: Path) -> None:
    real_rename = os.rename

    def rename(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if STAGING in os.fspath(src) and os.fspath(dst) == str(report):
            raise OSError(errno.EIO, os.strerror(errno.EIO), os.fspath(src))
        real_rename(src, dst, *args, **kwargs)

    monkeypatch.setattr(output_module.os, "rename", rename)


def test_swap_fails_after_the_old_report_was_moved_aside(
    existing: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last step (staging -> target) fails: nothing of the old report is lost; the
    next run's recovery (or ``recover_and_clean``) puts it back byte for byte."""
    image, report = existing
    before = snapshot(report)
    _fail_final_rename(monkeypatch, report)
    error_line(invoke("run", str(image), "-o", str(report), *FAST))
    monkeypatch.undo()
    output_module.recover_and_clean(report)
    assert snapshot(report) == before
    assert leftovers(report.parent) == []


def test_swap_failure_puts_the_old_report_back_at_once(
    existing: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    image, report = existing
    before = snapshot(report)
    _fail_final_rename(monkeypatch, report)
    error_line(invoke("run", str(image), "-o", str(report), *FAST))
    monkeypatch.undo()
    assert snapshot(report) == before


CHILD = r"""
import os, sys
from pathlib import Path
from reportgen.errors import ReportgenError
from reportgen.report.output import StagedReport

# Warm every lazy import as root on a writable copy (the interpreter's own files
# are not readable by 'nobody' here), then drop privileges for the real attempt.
with StagedReport(Path(sys.argv[2])) as warm:
    warm.write("index.html", "warm")
os.setgid(65534)
os.setuid(65534)
target = Path(sys.argv[1])
assert not os.access(str(target.parent), os.W_OK)
try:
    with StagedReport(target) as staged:
        staged.write("index.html", "replaced")
        print("wrote")
except ReportgenError as exc:
    print(f"Error: {exc}")
"""


@pytest.mark.skipif(not hasattr(os, "setuid"), reason="needs POSIX users")
def test_read_only_folder_for_real(built: tuple[Path, Path, dict[str, bytes]]) -> None:
    """A folder mode 0555 owned by root; the report writer runs as user 'nobody'."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to another user (as non-root, chmod suffices)")
    _, _, files = built
    scratch = Path(tempfile.mkdtemp(prefix="reportgen-ro-"))  # outside pytest's 0700 tree
    try:
        os.chmod(scratch, 0o755)
        report = scratch / "out" / "report"
        for relpath, data in files.items():
            (report / relpath).parent.mkdir(parents=True, exist_ok=True)
            (report / relpath).write_bytes(data)
        warm = scratch / "warm" / "report"
        shutil.copytree(report, warm)
        before = snapshot(report)
        for folder in [report.parent, *(p for p in report.rglob("*") if p.is_dir()), report]:
            os.chmod(folder, 0o555)
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(report), str(warm)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.startswith("Error: "), done.stdout
        assert str(report.parent) in done.stdout and "permission denied" in done.stdout.lower()
        assert snapshot(report) == before
        assert leftovers(report.parent) == []
    finally:
        for folder in [scratch, *(p for p in scratch.rglob("*") if p.is_dir())]:
            os.chmod(folder, 0o755)
        shutil.rmtree(scratch, ignore_errors=True)
