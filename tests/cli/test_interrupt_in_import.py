"""A Ctrl-C that lands inside a C extension's import (numpy's and torch's say
"ImportError: initialization failed") is an interruption, exit 130, not an internal
error: found by the randomised signal test, where SIGINT came 0.07 s into a run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[2]

# The stand-in for build_report gets the signal, and then fails the way an extension's
# import does: with the KeyboardInterrupt chained ("context") or dropped ("lost").
SCRIPT = r"""
import os, signal, sys, time
import reportgen.api
from reportgen.cli.commands import main

how = sys.argv[1]

def build_report(**_):
    if how == "no-signal":
        raise ImportError("initialization failed")
    interrupted = False
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
    except KeyboardInterrupt:
        if how == "context":
            raise ImportError("initialization failed")
        interrupted = True
    if interrupted:
        raise ImportError("initialization failed")

reportgen.api.build_report = build_report
signal.signal(signal.SIGINT, signal.default_int_handler)
main(["run", sys.argv[2], "-o", sys.argv[3], "--weights", "none"])
"""


def run_interrupted(tmp_path: Path, how: str) -> subprocess.CompletedProcess[str]:
    image = tmp_path / "a.png"
    Image.new("RGB", (8, 8), "red").save(image)
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, how, str(image), str(tmp_path / "out")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_interrupt_chained_to_an_import_error_exits_130(tmp_path: Path) -> None:
    done = run_interrupted(tmp_path, "context")
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip().splitlines() == [
        "Error: interrupted; any previous report was left as it was"
    ]


def test_interrupt_whose_exception_was_lost_still_exits_130(tmp_path: Path) -> None:
    done = run_interrupted(tmp_path, "lost")
    assert done.returncode == 130, done.stderr
    assert "interrupted" in done.stderr and "internal error" not in done.stderr


def test_the_same_import_error_without_a_signal_is_an_internal_error(tmp_path: Path) -> None:
    done = run_interrupted(tmp_path, "no-signal")
    assert done.returncode == 1, done.stderr
    assert "Error: internal error ImportError: initialization failed" in done.stderr
