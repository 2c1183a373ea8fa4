"""Complete or absent: a run that is killed, interrupted or fails leaves the previous
report exactly as it was, and the next run cleans what a killed run left behind.

Killed runs are real processes. To keep the suite fast, one helper process imports
reportgen and torch once and forks a child per run ("zygote"); each child is a
whole ``reportgen run`` that gets a real signal from the operating system.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import reportgen
from reportgen.report import output
from reportgen.report.output import STAGING_TAG, StagedReport, recover_and_clean
from tests.helpers import REPRODUCIBLE_ENV, invoke_reproducible, write_images

EPOCH = REPRODUCIBLE_ENV["SOURCE_DATE_EPOCH"]

ZYGOTE = r"""
import json, os, sys
import torch, torchvision.models  # the slow imports, once
from reportgen.cli.commands import main

for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(err, 2)
            torch.set_num_threads(1)
            try:
                main(request["args"], prog_name="reportgen", standalone_mode=True)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            os._exit(code)
    print(json.dumps({"pid": pid}), flush=True)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        result = -os.WTERMSIG(status)
    else:
        result = os.WEXITSTATUS(status)
    print(json.dumps({"exit": result}), flush=True)
"""


class Zygote:
    def __init__(self, cwd: Path) -> None:
        env = dict(os.environ, SOURCE_DATE_EPOCH=EPOCH, REPORTGEN_OFFLINE="1")
        env["REPORTGEN_CACHE_DIR"] = "off"  # every run computes everything
        env.pop("REPORTGEN_WEIGHTS_DIR", None)
        # The children run the reportgen these tests import, wherever it is.
        source = str(Path(reportgen.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [source, env.get("PYTHONPATH")]))
        self.cwd = cwd
        self.proc = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.count = 0

    def start(self, args: list[str]) -> tuple[int, Path]:
        self.count += 1
        stderr = self.cwd / f"stderr-{self.count}.txt"
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"args": args, "stderr": str(stderr)}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the helper process died"
        return json.loads(line)["pid"], stderr

    def wait(self, pid: int, timeout: float = 180) -> int:
        """The child's exit status; a child that hangs is killed and the test fails."""
        assert self.proc.stdout is not None
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(self.proc.stdout.readline()))
        reader.start()
        reader.join(timeout)
        if reader.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            reader.join(30)
            pytest.fail(f"reportgen run did not end within {timeout} s")
        assert lines and lines[0], "the helper process died"
        return int(json.loads(lines[0])["exit"])

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def tree_digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with its sha256 (the exact state of a report)."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def leftovers(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}."))


# A run long enough to be killed while it writes: every Conv2d of AlexNet.
HEAVY = ["--weights", "none", "-m", "alexnet", "-l", "conv", "--jobs", "1", "--top-k", "2"]
LIGHT = ["--weights", "none", "-m", "alexnet", "-l", "features.0", "--top-k", "2"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Any:
    if not hasattr(os, "fork"):
        pytest.skip("needs fork (POSIX)")
    root = tmp_path_factory.mktemp("atomic")
    write_images(root / "images", 4, (64, 64), seed=7)
    dead = root / f".previous{STAGING_TAG}dead"  # what a killed run leaves behind
    (dead / "models").mkdir(parents=True)
    (dead / "models" / "half.png").write_bytes(b"half")
    zygote = Zygote(root)
    pid, stderr = zygote.start(["-q", "run", "images", *LIGHT, "-o", "previous"])
    code = zygote.wait(pid)
    assert code == 0, stderr.read_text()
    snapshot = tree_digest(root / "previous")
    yield root, zygote, snapshot
    zygote.close()


def _wait_for_staging(target: Path, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if any(STAGING_TAG in name for name in leftovers(target)):
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize(
    ("signum", "point"),
    [
        (signal.SIGKILL, "early"),
        (signal.SIGKILL, "staging"),
        (signal.SIGKILL, "writing"),
        (signal.SIGINT, "early"),
        (signal.SIGINT, "staging"),
        (signal.SIGINT, "writing"),
        (signal.SIGTERM, "writing"),
    ],
    ids=lambda v: v.name if isinstance(v, signal.Signals) else v,
)
def test_killed_run_leaves_previous_report(workspace: Any, signum: int, point: str) -> None:
    root, zygote, snapshot = workspace
    target = root / "previous"
    pid, stderr = zygote.start(["-q", "run", "images", *HEAVY, "-o", "previous"])
    if point == "early":
        time.sleep(0.3)  # loading the model: nothing staged yet
    else:
        assert _wait_for_staging(target, time.monotonic() + 120), "no staging folder appeared"
        if point == "writing":
            time.sleep(1.0)  # pictures and pages are being written
    os.kill(pid, signum)
    code = zygote.wait(pid)
    assert code != 0, "the run finished before it was killed; make HEAVY heavier"
    if signum == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:
        assert code == 130, stderr.read_text()
        assert "interrupted" in stderr.read_text()
        if point == "writing":
            # Interrupted inside the staging block: the run removed its own staging.
            assert leftovers(target) == []
    assert tree_digest(target) == snapshot
    # What a killed run leaves is cleaned by the next run (which starts with this).
    recover_and_clean(target.resolve())
    assert leftovers(target) == []
    assert tree_digest(target) == snapshot


def test_next_run_cleans_leftovers(workspace: Any) -> None:
    root, _zygote, _snapshot = workspace
    # The module's first run found a dead run's staging folder and removed it.
    assert not (root / f".previous{STAGING_TAG}dead").exists()
    assert leftovers(root / "previous") == []


def test_a_report_replaces_a_report(tmp_path: Path) -> None:
    target = tmp_path / "report"
    for text in ("first", "second"):
        with StagedReport(target) as staged:
            staged.write("index.html", text)
            staged.commit({"generator": {"name": "reportgen"}, "files": staged.file_list()})
    assert (target / "index.html").read_text() == "second"
    assert leftovers(target) == []
    from reportgen.tools.verify import verify_report

    assert verify_report(target).ok


def test_staging_folder_of_a_live_run_is_not_removed(tmp_path: Path) -> None:
    target = tmp_path / "report"
    live = StagedReport(target)  # holds its lock
    dead = tmp_path / f".report{STAGING_TAG}dead"
    dead.mkdir()
    recover_and_clean(target)
    assert live.root.is_dir()
    assert not dead.exists()
    live.__exit__(None, None, None)
    assert not live.root.exists()


def test_crash_between_the_two_renames_is_recovered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "report"
    with StagedReport(target) as first:
        first.write("index.html", "old")
        first.commit({"generator": {"name": "reportgen"}, "files": first.file_list()})
    before = tree_digest(target)
    real_rename = os.rename
    calls = []

    def crash_on_second(src: Any, dst: Any) -> None:
        calls.append((src, dst))
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed after moving the old report aside
        if len(calls) > 2:
            raise OSError("the process is gone: nothing more happens")
        real_rename(src, dst)

    monkeypatch.setattr(output.os, "rename", crash_on_second)
    with pytest.raises(KeyboardInterrupt), StagedReport(target) as second:
        second.write("index.html", "new")
        second.commit({"generator": {"name": "reportgen"}, "files": second.file_list()})
    monkeypatch.setattr(output.os, "rename", real_rename)
    assert not target.exists()  # the moment of the crash: old report aside
    recover_and_clean(target)
    assert tree_digest(target) == before
    assert leftovers(target) == []


@pytest.fixture
def previous(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """A small finished report (made without torch: a staged report with a manifest)."""
    target = tmp_path / "report"
    with StagedReport(target) as staged:
        staged.write("index.html", "<p>previous</p>")
        staged.write("assets/x.png", b"png")
        staged.commit({"generator": {"name": "reportgen"}, "files": staged.file_list()})
    images = write_images(tmp_path / "images", 2, (40, 40), seed=7)
    return target, images, tree_digest(target)


def test_exception_mid_run_leaves_previous_report(
    previous: tuple[Path, Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    target, images, snapshot = previous
    import reportgen.report.pages as pages

    def broken(*_args: Any, **_kwargs: Any) -> int:
        raise RuntimeError("boom while rendering")

    monkeypatch.setattr(pages, "render_pages", broken)
    result = invoke_reproducible(
        "run", str(images), *LIGHT, "-o", str(target), catch_exceptions=False
    )
    assert result.exit_code == 1
    assert "boom while rendering" in result.output
    assert tree_digest(target) == snapshot
    assert leftovers(target) == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_full_disk_leaves_previous_report(
    previous: tuple[Path, Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    target, images, snapshot = previous
    real_path_of = StagedReport.path_of
    count = {"n": 0}

    def filling_up(self: StagedReport, relpath: str) -> Path:
        count["n"] += 1
        if count["n"] > 20:  # the disk is full from the 21st file on
            return Path("/dev/full")  # writing there fails with ENOSPC
        return real_path_of(self, relpath)

    monkeypatch.setattr(StagedReport, "path_of", filling_up)
    result = invoke_reproducible(
        "run", str(images), *LIGHT, "-o", str(target), catch_exceptions=False
    )
    assert result.exit_code == 1
    assert "No space left on device" in result.output
    assert tree_digest(target) == snapshot
    assert leftovers(target) == []


def test_refuses_a_folder_that_is_not_a_report(tmp_path: Path) -> None:
    target = tmp_path / "photos"
    target.mkdir()
    (target / "holiday.jpg").write_bytes(b"precious")
    images = write_images(tmp_path / "images", 1, (32, 32), seed=7)
    result = invoke_reproducible(
        "run", str(images), *LIGHT, "-o", str(target), catch_exceptions=False
    )
    assert result.exit_code == 1
    assert "not a reportgen report" in result.output
    assert "choose another -o path" in result.output
    assert (target / "holiday.jpg").read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "photos"]


def test_refuses_a_report_holding_files_it_did_not_write(
    previous: tuple[Path, Path, dict[str, str]],
) -> None:
    target, images, _snapshot = previous
    (target / "notes.txt").write_text("mine")
    result = invoke_reproducible(
        "run", str(images), *LIGHT, "-o", str(target), catch_exceptions=False
    )
    assert result.exit_code == 1
    assert "notes.txt" in result.output and "did not write" in result.output
    assert (target / "notes.txt").read_text() == "mine"


def test_refuses_a_file_for_a_folder_report(tmp_path: Path) -> None:
    target = tmp_path / "report"
    target.write_text("a file")
    images = write_images(tmp_path / "images", 1, (32, 32), seed=7)
    result = invoke_reproducible(
        "run", str(images), *LIGHT, "-o", str(target), catch_exceptions=False
    )
    assert result.exit_code == 1
    assert "not a folder" in result.output
    assert target.read_text() == "a file"


def test_published_report_is_readable_by_others(tmp_path: Path) -> None:
    target = tmp_path / "report"
    old = os.umask(0o022)
    try:
        with StagedReport(target) as staged:
            staged.write("index.html", "x")
            staged.commit({"generator": {"name": "reportgen"}, "files": staged.file_list()})
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o755 == 0o755
    shutil.rmtree(target)
