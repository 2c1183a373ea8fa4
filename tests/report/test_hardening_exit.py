"""Signals around the end of a run (issue 27, class 4).

* SIGKILL of ``run`` or ``merge`` while forked page workers render: no worker outlives
  it, none holds the lock of -o, the previous report is there byte for byte, and the
  next run on the same -o works.
* Ctrl-C (or SIGTERM) just after "Wrote ...": exit 0, never death by the signal, never
  a traceback; the new report is in place (with a warning when the signal still found
  the process).

The commands run as processes of their own (signals and exit statuses are the point).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import invoke_reproducible, snapshot, write_images

REPO = Path(__file__).resolve().parents[2]
OPTIONS = (
    "-m", "tests.tinynet_factory:build", "--weights", "none", "--input-size", "32",
    "--device", "cpu", "--top-k", "2", "--examples", "2", "--batch-size", "2",
)  # fmt: skip
TRUSTED = ("-m", "tests.tinynet_factory:build")
# Pages are forked from 200 channels on; tinynet has 14: render every report in workers.
FORKING = (
    "import sys, reportgen.report.site as site; site._PARALLEL_PAGES = 1; "
    "from reportgen.cli import main; sys.argv[0] = 'reportgen'; main()"
)


def environment() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "REPORTGEN_CACHE_DIR": "off",
        "REPORTGEN_OFFLINE": "1",
        "SOURCE_DATE_EPOCH": "1700000000",
    }


def forked_children(pid: int) -> list[int]:
    """The children of ``pid`` that are forks of it (same command line, as page workers
    are), not programs it runs for a moment (a library asking ``ldconfig``)."""
    found: list[int] = []
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(word) for word in handle.read().split()]
        return [child for child in found if Path(f"/proc/{child}/cmdline").read_bytes() == command]
    except OSError:
        return []


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper is not)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Images, two shards of them and a report of them at ``report``."""
    if not Path("/proc/self/task").is_dir():
        pytest.skip("needs Linux's /proc to find the page workers")
    monkeypatch.chdir(tmp_path)
    write_images(tmp_path / "images", 4, (36, 40), grow=4, seed=4)
    for args in (
        ("run", "images", *OPTIONS, "--jobs", "1", "-o", "report"),
        ("shard", "images", "--part", "1/2", *OPTIONS, "--jobs", "1", "-o", "part-1"),
        ("shard", "images", "--part", "2/2", *OPTIONS, "--jobs", "1", "-o", "part-2"),
    ):
        result = invoke_reproducible("-q", *args)
        assert result.exit_code == 0, result.stderr
    return tmp_path


COMMANDS = {
    "run": ("run", "images", *OPTIONS, "--seed", "1", "--jobs", "3", "-o", "report"),
    "merge": ("merge", *TRUSTED, "part-1", "part-2", "--jobs", "4", "-o", "report"),
}


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_sigkill_while_pages_render_leaves_no_worker_and_no_lock(work: Path, command: str) -> None:
    before = snapshot(work / "report")
    process = subprocess.Popen(
        [sys.executable, "-c", FORKING, *COMMANDS[command]],
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    workers: list[int] = []
    deadline = time.monotonic() + 120
    while not workers and process.poll() is None and time.monotonic() < deadline:
        workers = forked_children(process.pid)
        time.sleep(0.002)
    assert workers, "the run ended without forking page workers"
    time.sleep(0.02)  # the workers are rendering
    workers = sorted(set(workers) | set(forked_children(process.pid)))
    process.kill()
    process.wait()
    deadline = time.monotonic() + 10
    while any(alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [w for w in workers if alive(w)], "page workers outlived their killed parent"
    assert snapshot(work / "report") == before
    # The next run on the same -o is not told that another run is writing it.
    again = invoke_reproducible("-q", *COMMANDS[command][:-4], "--jobs", "1", "-o", "report")
    assert again.exit_code == 0, again.stderr
    assert not [p.name for p in work.iterdir() if "reportgen" in p.name]  # no lock, no staging


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_just_after_wrote_exits_0_with_the_new_report(work: Path, signum: int) -> None:
    for delay in (0.0, 0.05, 0.15, 0.3, 0.5):
        process = subprocess.Popen(
            [sys.executable, "-m", "reportgen", *COMMANDS["run"][:-4], "--jobs", "1",
             "--seed", str(int(delay * 100) + 2), "-o", "report"],
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("Wrote report/index.html"), line
        time.sleep(delay)
        process.send_signal(signum)
        _, err = process.communicate()
        assert process.returncode == 0, (delay, process.returncode, err)
        assert "Traceback" not in err and "Error" not in err, err
        lines = [e for e in err.splitlines() if not e.startswith("Warning: tests.tinynet")]
        warning = (
            "Warning: interrupted after the new report was put in place: "
            f"{str(work / 'report')!r} is the complete new report"
        )
        assert lines in ([], [warning]), err
        manifest = json.loads((work / "report" / "manifest.json").read_text())
        assert manifest["settings"]["seed"] == int(delay * 100) + 2


def spawned_children(pid: int) -> list[int]:
    """The worker processes Dask's local cluster starts (spawned Pythons)."""
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(word) for word in handle.read().split()]
        return [c for c in found if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
    except OSError:
        return []


@pytest.mark.slow
@pytest.mark.parametrize("after", [0.0, 0.3, 1.5])
def test_ctrl_c_of_a_cluster_client_says_one_line_and_no_traceback(
    work: Path, after: float
) -> None:
    """SIGINT while Dask's workers start (``after`` seconds after the first appears):
    exit 130, one Error line, no traceback from Dask's atexit callbacks."""
    pytest.importorskip("distributed")
    before = snapshot(work / "report")
    process = subprocess.Popen(
        [sys.executable, "-m", "reportgen", *COMMANDS["run"][:-4], "--jobs", "1",
         "--cluster", "local:2", "-o", "report"],
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not spawned_children(process.pid) and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    time.sleep(after)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    lines = [e for e in err.splitlines() if e.strip() and "Port 8787" not in e]
    assert process.returncode == 130, err
    assert lines[-1] == "Error: interrupted; any previous report was left as it was", err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert snapshot(work / "report") == before
