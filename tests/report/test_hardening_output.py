"""Issue 15, class 6: ownership of -o, the lock file, signals during the swap, recovery.

* A run replaces only what it owns in -o (what the previous manifest lists, and the
  manifest): a file or folder that appears there while the run is going, at the top or
  in a subfolder, stops the run with an error; it and the previous report stay.
* One run at a time: a lock file beside -o, with the PID, makes a second run fail at once.
* SIGINT/SIGTERM during the swap: the swap completes, and the exit status and message
  say the new report is in place (exit 0), never "left as it was" with 130.
* Recovery after a kill between the renames puts back the intact, newest previous
  report (by its manifest), not the one whose name sorts last.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from PIL import Image

from reportgen.report import output
from reportgen.report.output import (
    RunLock,
    StagedReport,
    foreign_entries,
    recover_and_clean,
    remove_owned,
)
from tests.helpers import error_line, snapshot

FAST = ("-m", "alexnet", "-l", "features.0", "--weights", "none", "--device", "cpu", "--jobs", "1")
REPO = Path(__file__).resolve().parents[2]


def invoke(*args: str, epoch: str = "1700000000") -> Result:
    from reportgen.cli.commands import main

    env = {"SOURCE_DATE_EPOCH": epoch, "REPORTGEN_OFFLINE": "1", "REPORTGEN_CACHE_DIR": "off"}
    return CliRunner().invoke(main, list(args), env=env)


def leftovers(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.iterdir() if ".reportgen-" in p.name)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "in.png"
    Image.new("RGB", (40, 32), (90, 140, 200)).save(path)
    return path


@pytest.fixture(scope="module")
def made_once(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("previous")
    image = root / "in.png"
    Image.new("RGB", (40, 32), (90, 140, 200)).save(image)
    out = root / "out"
    result = invoke("run", str(image), "-o", str(out), *FAST, "--top-k", "2")
    assert result.exit_code == 0, result.stderr
    return image, out


@pytest.fixture
def previous(made_once: tuple[Path, Path], image: Path, tmp_path: Path) -> Path:
    """A report at tmp/out, made by an earlier run (of ``image``: same content)."""
    out = tmp_path / "out"
    shutil.copytree(made_once[1], out)
    manifest = json.loads((out / "manifest.json").read_text())
    # (named from the folder holding it: a report holds no path of this machine)
    assert manifest["settings"]["inputs"] == [made_once[0].name]
    return out


def during_the_run(monkeypatch: pytest.MonkeyPatch, action: Any) -> None:
    """``action(target)`` runs once the new report is complete, just before the swap."""
    original = StagedReport.commit

    def commit(self: StagedReport, manifest: dict[str, Any]) -> None:
        action(self.target)
        original(self, manifest)

    monkeypatch.setattr(StagedReport, "commit", commit)


# ---------------------------------------------------------------- ownership at swap time


def add_file(relpath: str) -> Any:
    def action(target: Path) -> None:
        path = target / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("the user's own words\n")

    return action


def add_folder(relpath: str) -> Any:
    return lambda target: (target / relpath).mkdir(parents=True)


def add_link(relpath: str) -> Any:
    return lambda target: os.symlink("/etc/hostname", target / relpath)


@pytest.mark.parametrize(
    "action, shown",
    [
        (add_file("notes.txt"), "notes.txt"),
        (add_file("models/alexnet/my-notes.md"), "models/alexnet/my-notes.md"),
        (add_folder("drafts"), "drafts/"),
        (add_folder("models/alexnet/scratch"), "models/alexnet/scratch/"),
        (add_link("hostname"), "hostname"),
    ],
    ids=["file at the top", "file in a subfolder", "empty folder", "nested folder", "link"],
)
def test_what_appears_in_o_during_the_run_is_never_deleted(
    previous: Path,
    image: Path,
    monkeypatch: pytest.MonkeyPatch,
    action: Any,
    shown: str,
) -> None:
    during_the_run(monkeypatch, action)
    before = snapshot(previous)
    result = invoke("run", str(image), "-o", str(previous), *FAST, "--top-k", "3")
    line = error_line(result, 1, shown, "left in place")
    assert "did not write" in line
    after = snapshot(previous)
    for name, data in before.items():  # the previous report, untouched
        assert after[name] == data
    assert os.path.lexists(previous / shown.rstrip("/"))  # the user's entry is still there
    assert json.loads((previous / "manifest.json").read_text())["settings"]["top_k"] == 2
    assert leftovers(previous) == []


def test_a_report_replaced_by_a_file_during_the_run_is_left_alone(
    previous: Path, image: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def replace(target: Path) -> None:
        shutil.rmtree(target)
        target.write_text("someone else's file")

    during_the_run(monkeypatch, replace)
    result = invoke("run", str(image), "-o", str(previous), *FAST)
    error_line(result, 1, "left in place")
    assert previous.read_text() == "someone else's file"


def test_foreign_entries_and_owned_removal(tmp_path: Path) -> None:
    folder = tmp_path / "report"
    (folder / "a" / "b").mkdir(parents=True)
    (folder / "a" / "b" / "page.html").write_text("x")
    (folder / "index.html").write_text("x")
    (folder / "manifest.json").write_text("{}")
    (folder / "a" / "mine.txt").write_text("keep me")
    (folder / "empty").mkdir()
    manifest = {"files": [{"path": "index.html"}, {"path": "a/b/page.html"}]}
    assert foreign_entries(folder, manifest) == ["a/mine.txt", "empty/"]
    assert remove_owned(folder, manifest) == ["a/mine.txt", "empty/"]
    assert (folder / "a" / "mine.txt").read_text() == "keep me"
    assert not (folder / "index.html").exists() and not (folder / "a" / "b").exists()
    (folder / "a" / "mine.txt").unlink()
    (folder / "empty").rmdir()
    assert remove_owned(folder, manifest) == [] and not folder.exists()


# ---------------------------------------------------------------- one run at a time

HOLD_LOCK = """
import sys, time
from pathlib import Path
from reportgen.report.output import RunLock
lock = RunLock(Path(sys.argv[1]))
lock.acquire()
print("held", flush=True)
time.sleep(float(sys.argv[2]))
lock.release()
"""


def test_a_second_run_on_the_same_output_fails_at_once(previous: Path, image: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(previous), "20"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        before = snapshot(previous)
        started = time.monotonic()
        result = invoke("run", str(image), "-o", str(previous), *FAST, "--top-k", "5")
        error_line(result, 1, "another reportgen run", f"PID {holder.pid}", str(previous))
        assert time.monotonic() - started < 10
        assert snapshot(previous) == before
    finally:
        holder.kill()
        holder.wait(10)


def test_a_lock_left_by_a_killed_run_is_free(previous: Path, image: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(previous), "60"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    assert RunLock(previous).path.exists()  # left behind, but nobody holds it
    result = invoke("run", str(image), "-o", str(previous), *FAST, "--top-k", "5")
    assert result.exit_code == 0, result.stderr
    assert leftovers(previous) == []


def test_two_runs_at_once_on_one_output(image: Path, tmp_path: Path) -> None:
    """Started together: each finishes or fails at once with the lock's error; never
    both writing; the report at -o is whole and nothing is left beside it."""
    out = tmp_path / "shared"
    env = {**os.environ, "REPORTGEN_OFFLINE": "1", "REPORTGEN_CACHE_DIR": "off"}
    command = [sys.executable, "-m", "reportgen", "run", str(image), "-o", str(out), *FAST]
    runs = [
        subprocess.Popen(
            [*command, "--top-k", str(k)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
        )
        for k in (2, 3)
    ]
    results = [(p.wait(300), p.stderr.read() if p.stderr else "") for p in runs]
    for code, stderr in results:
        assert code == 0 or (code == 1 and "another reportgen run" in stderr), stderr
        assert "Traceback" not in stderr
    assert any(code == 0 for code, _ in results)
    verified = invoke("verify", str(out))
    assert verified.exit_code == 0, verified.stdout
    assert leftovers(out) == []


# ---------------------------------------------------------------- signals during the swap


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("moment", ["moving the old report aside", "putting the new one"])
def test_a_signal_during_the_swap_tells_the_truth(
    previous: Path,
    image: Path,
    monkeypatch: pytest.MonkeyPatch,
    signum: signal.Signals,
    moment: str,
) -> None:
    real_rename = os.rename

    def rename(src: Any, dst: Any) -> None:
        moving_old = Path(dst).name.startswith(f".{previous.name}.reportgen-old-")
        putting_new = Path(dst) == previous and ".reportgen-staging-" in Path(src).name
        if (moment.startswith("moving") and moving_old) or (
            moment.startswith("putting") and putting_new
        ):
            signal.raise_signal(signum)  # the signal arrives right here
        real_rename(src, dst)

    monkeypatch.setattr(output.os, "rename", rename)
    result = invoke("run", str(image), "-o", str(previous), *FAST, "--top-k", "4")
    assert result.exit_code == 0, (result.stderr, result.exception)
    assert "interrupted after the new report was put in place" in result.stderr
    assert "left as it was" not in result.stderr and "Traceback" not in result.stderr
    assert json.loads((previous / "manifest.json").read_text())["settings"]["top_k"] == 4
    assert invoke("verify", str(previous)).exit_code == 0
    assert leftovers(previous) == []


def test_a_signal_before_the_swap_keeps_the_previous_report(
    previous: Path, image: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    during_the_run(monkeypatch, lambda target: signal.raise_signal(signal.SIGINT))
    before = snapshot(previous)
    result = invoke("run", str(image), "-o", str(previous), *FAST, "--top-k", "4")
    error_line(result, 130, "left as it was")
    assert snapshot(previous) == before
    assert leftovers(previous) == []


# ---------------------------------------------------------------- recovery


def make_report(image: Path, out: Path, top_k: int, epoch: str) -> Path:
    result = invoke("run", str(image), "-o", str(out), *FAST, "--top-k", str(top_k), epoch=epoch)
    assert result.exit_code == 0, result.stderr
    return out


@pytest.mark.parametrize("damaged", [True, False], ids=["last name damaged", "last name older"])
def test_recovery_restores_the_intact_newest_copy(
    image: Path, tmp_path: Path, damaged: bool
) -> None:
    target = tmp_path / "out"
    newest = make_report(image, tmp_path / "a", 3, "1700000500")
    other = make_report(
        image, tmp_path / "b", 5 if damaged else 2, "1700000900" if damaged else "1700000100"
    )
    if damaged:  # the newer one by its clock, but a file no longer matches its manifest
        page = next(other.glob("models/*/index.html"))
        page.write_text(page.read_text() + "<!-- damaged -->")
    # Left by runs killed between the renames: names sort the other way round.
    newest.rename(tmp_path / ".out.reportgen-old-aaaa")
    other.rename(tmp_path / ".out.reportgen-old-zzzz")
    recover_and_clean(target)
    assert json.loads((target / "manifest.json").read_text())["settings"]["top_k"] == 3
    assert invoke("verify", str(target)).exit_code == 0
    assert leftovers(target) == []


def test_recovery_keeps_foreign_files_of_an_old_copy(image: Path, tmp_path: Path) -> None:
    target = make_report(image, tmp_path / "out", 3, "1700000500")
    old = make_report(image, tmp_path / "b", 2, "1700000100")
    (old / "mine.txt").write_text("keep")
    old = old.rename(tmp_path / ".out.reportgen-old-zzzz")
    recover_and_clean(target)
    assert (old / "mine.txt").read_text() == "keep"
    assert sorted(p.name for p in old.iterdir()) == ["mine.txt"]


# ---------------------------------------------------------------- forked workers

POOL_SCRIPT = """
import multiprocessing, os, signal, time
from concurrent.futures import ProcessPoolExecutor
from reportgen.cli.exits import install_signal_handlers

signal.signal(signal.SIGINT, signal.default_int_handler)  # as from a shell
install_signal_handlers()
try:
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
        assert list(pool.map(abs, [-1, -2])) == [1, 2]  # the workers now wait for work
        time.sleep(0.5)
        os.killpg(0, signal.SIGINT)  # Ctrl-C: the whole process group
        time.sleep(5)
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


def test_ctrl_c_prints_no_traceback_from_forked_workers() -> None:
    """The page workers are forked: on Ctrl-C they leave quietly, the main process
    reports."""
    done = subprocess.run(
        [sys.executable, "-c", POOL_SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        start_new_session=True,  # its own process group: the SIGINT stays in there
        check=False,
    )
    assert done.stdout.strip() == "interrupted", (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
