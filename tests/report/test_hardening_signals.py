"""Issue 15, class 6: a randomised signal test.

Runs on one -o, each with other settings, get SIGINT, SIGTERM or SIGKILL at a random
moment (from before the run has started to after it has ended). After each, the report
at -o is the previous one, byte for byte, or the new one, complete; the exit status says
which (0: the new one; 130, or death by SIGTERM before the run began: the previous one;
SIGKILL: whichever is intact after the next run's recovery), and nothing prints a
traceback.

To keep this fast, the runs (a small custom network, tests/tinynet_factory.py) are
forked from one process that has imported reportgen and torch once (a "zygote"); each
forked run restores the default SIGINT handler, as a process started from a shell
would have it.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

from reportgen.report.output import recover_and_clean
from tests.helpers import snapshot

REPO = Path(__file__).resolve().parents[2]
TRIALS = 24
FAST = [
    "-m",
    "tests.tinynet_factory:build",
    "--weights",
    "none",
    "--device",
    "cpu",
    "--jobs",
    "1",
    "--examples",
    "0",
    "--no-gradcam",
]

ZYGOTE = r"""
import json, os, signal, sys
import torch, torchvision  # noqa: F401 - imported once, before any fork
import reportgen.pipeline, reportgen.report.site, reportgen.compute.model_run  # noqa: F401
from reportgen.cli.commands import main

for line in sys.stdin:
    request = json.loads(line)
    if request["op"] == "run":
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(log, 1)
            os.dup2(log, 2)
            code = 1
            try:
                main(request["args"], prog_name="reportgen")
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)
        print(json.dumps({"pid": pid}), flush=True)
    else:
        _, status = os.waitpid(request["pid"], 0)
        code = os.waitstatus_to_exitcode(status)
        print(json.dumps({"code": code}), flush=True)
"""


class Zygote:
    def __init__(self) -> None:
        env = {**os.environ, "REPORTGEN_OFFLINE": "1", "REPORTGEN_CACHE_DIR": "off"}
        env["SOURCE_DATE_EPOCH"] = "1700000000"
        self.process = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=env,
        )

    def ask(self, request: dict[str, object]) -> dict[str, int]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        assert answer, "the zygote died"
        return dict(json.loads(answer))

    def start(self, args: list[str], log: Path) -> int:
        return self.ask({"op": "run", "args": args, "log": str(log)})["pid"]

    def wait(self, pid: int) -> int:
        return self.ask({"op": "wait", "pid": pid})["code"]

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def leftovers(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.iterdir() if ".reportgen-" in p.name)


def top_k_at(target: Path) -> int:
    return int(json.loads((target / "manifest.json").read_text())["settings"]["top_k"])


def intact(target: Path) -> bool:
    from reportgen.tools.verify import verify_report

    return verify_report(target).ok


def test_random_signals_leave_one_whole_report_and_say_which(tmp_path: Path) -> None:
    image = tmp_path / "in.png"
    Image.new("RGB", (40, 32), (90, 140, 200)).save(image)
    out = tmp_path / "out"
    zygote = Zygote()
    rng = random.Random(15)
    try:
        args = ["run", str(image), "-o", str(out), *FAST]
        duration = 0.0
        for warm in (0, 1):  # two runs without a signal: the second says how long one takes
            started = time.monotonic()
            first = zygote.start([*args, "--top-k", "1"], tmp_path / f"warm{warm}.log")
            assert zygote.wait(first) == 0, (tmp_path / f"warm{warm}.log").read_text()
            duration = time.monotonic() - started
        outcomes: dict[str, int] = {}
        history: list[str] = []
        for trial in range(1, TRIALS + 1):
            before = snapshot(out)
            before_k = top_k_at(out)
            k = trial + 1
            signum = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)[trial % 3]
            # Stratified over [0, 1.4 x a run]: early, mid-run, the swap, and after the end.
            delay = duration * 1.4 * (trial - 1 + rng.random()) / TRIALS
            log = tmp_path / f"{trial}.log"
            pid = zygote.start([*args, "--top-k", str(k)], log)
            time.sleep(delay)
            with contextlib.suppress(ProcessLookupError):  # it may have ended already
                os.kill(pid, signum)
            code = zygote.wait(pid)
            text = log.read_text(errors="replace")
            where = f"trial {trial}: {signum.name} after {delay:.2f} s, exit {code}: {text}"
            assert "Traceback" not in text, where
            if code == 0:
                assert intact(out) and top_k_at(out) == k, where
                outcome = "new"
            elif code in (130, -signal.SIGTERM):
                assert snapshot(out) == before, where
                outcome = "previous"
            else:
                assert code == -signal.SIGKILL, where
                recover_and_clean(out)  # what the next run does first
                assert intact(out) and top_k_at(out) in (before_k, k), where
                outcome = "new" if top_k_at(out) == k else "previous"
            assert leftovers(out) == [], where
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            history.append(f"{signum.name} at {delay:.2f}/{duration:.2f} s: {code} ({outcome})")
        assert outcomes.get("previous") and outcomes.get("new"), history
    finally:
        zygote.close()
