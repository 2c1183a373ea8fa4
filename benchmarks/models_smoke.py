# ruff: noqa: E501  (markdown table rows read better unwrapped)
"""Every torchvision classifier through the real CLI, once each: does it make a report?

    .venv/bin/python benchmarks/models_smoke.py                       # all models (hours on 2 cores)
    .venv/bin/python benchmarks/models_smoke.py --models resnet18,vit_b_16 --out -
    .venv/bin/python benchmarks/models_smoke.py --timeout 300

Each model of ``torchvision.models.list_models(module=torchvision.models)`` runs as its
own process::

    python -m reportgen run IMAGE -m NAME --weights none --no-cache -o WORK/NAME

on one small synthetic picture (64x64, made with Pillow), default settings otherwise
(every Conv2d, Grad-CAM, examples, every page), under a per-model timeout (the whole
process group is killed when it runs out). Measured: exit status, wall seconds, peak
resident memory (``os.wait4``: the process and the workers it waited for), layers in the
report (``models[].layers`` of manifest.json), pages (``.html`` files), total bytes, and
the first line of stderr when it failed. Each report is deleted once measured: some
models write hundreds of MB.

The table goes to stdout and to ``--out`` (default benchmarks/models_smoke.md, ``-`` for
none) with the date, machine, versions and a summary line. This is a benchmark, not a
test: tests/nn/test_models_smoke.py checks a dozen models in the suite.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as _dt
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PYTHON = sys.executable
DEFAULT_OUT = HERE / "models_smoke.md"
DEFAULT_TIMEOUT = 900.0


@dataclasses.dataclass
class Outcome:
    model: str
    status: str  # "0", "1", "2", ..., "timeout", "signal N"
    seconds: float
    peak_mib: float | None = None
    layers: int | None = None
    pages: int | None = None
    bytes: int | None = None
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "0" and bool(self.layers)


def in_child(code: str) -> str:
    """Run ``code`` in a fresh Python: this process never imports torch, so that it stays
    small (a child's peak memory counts its parent's at the start, see ``run_one``)."""
    return subprocess.run(
        [PYTHON, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout


def all_models() -> list[str]:
    listing = in_child(
        "import torchvision\n"
        "print('\\n'.join(torchvision.models.list_models(module=torchvision.models)))"
    )
    return sorted(listing.split())


def make_image(folder: Path, size: int = 64) -> Path:
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    path = folder / "small.png"
    Image.fromarray(pixels).save(path)
    return path


def first_line(text: str) -> str:
    """The first non-empty line of stderr, or for a traceback its last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    if lines[0].startswith("Traceback"):
        return f"Traceback ... {lines[-1]}"
    return lines[0]


def measure_report(report: Path) -> tuple[int | None, int, int]:
    """(layers listed in manifest.json, html files, total bytes) of a report folder."""
    layers = None
    manifest = report / "manifest.json"
    if manifest.is_file():
        data = json.loads(manifest.read_text(encoding="utf-8"))
        layers = sum(len(model.get("layers", [])) for model in data.get("models", []))
    pages = 0
    size = 0
    # os.walk, not Path.rglob: Python 3.11's rglob keeps every path it yielded (a set),
    # gigabytes for reports of 300 000 files.
    for folder, _, files in os.walk(report):
        for file in files:
            size += os.stat(os.path.join(folder, file)).st_size
            pages += file.endswith(".html")
    return layers, pages, size


def run_one(name: str, image: Path, work: Path, timeout: float, extra: list[str]) -> Outcome:
    out = work / name
    shutil.rmtree(out, ignore_errors=True)
    cmd = [PYTHON, "-m", "reportgen", "run", str(image), "-m", name]
    cmd += ["--weights", "none", "--no-cache", "-o", str(out), *extra]
    env = dict(os.environ, REPORTGEN_OFFLINE="1")
    stderr_path = work / f"{name}.stderr"
    with open(os.devnull, "wb") as devnull, stderr_path.open("wb") as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdout=devnull, stderr=stderr, env=env, cwd=REPO, start_new_session=True
        )
        deadline = started + timeout
        timed_out = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
                _, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.2)
        seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    # Workers of a killed run may linger in its session: make sure none does.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    err = stderr_path.read_text(encoding="utf-8", errors="replace")
    stderr_path.unlink(missing_ok=True)
    code = proc.returncode
    if timed_out:
        state = "timeout"
    elif code < 0:
        state = f"signal {-code}"
    else:
        state = str(code)
    # ru_maxrss of a child starts from its parent's size when it is spawned (Linux keeps
    # the high-water mark across fork/exec): this process stays small for that reason.
    outcome = Outcome(name, state, seconds, usage.ru_maxrss / 1024.0)
    if out.exists() and not timed_out:
        outcome.layers, outcome.pages, outcome.bytes = measure_report(out)
    shutil.rmtree(out, ignore_errors=True)
    if state != "0" or "Traceback" in err:
        outcome.message = first_line(err)
    if timed_out:
        outcome.message = f"killed after {timeout:.0f} s" + (
            f"; stderr: {outcome.message}" if outcome.message else ""
        )
    return outcome


def cell(value: object) -> str:
    if value is None:
        return ""
    return str(value).replace("|", "\\|")


def table(outcomes: list[Outcome]) -> list[str]:
    rows = [
        "| model | exit | seconds | peak MiB | layers | pages | bytes | first line of stderr |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for o in outcomes:
        peak = f"{o.peak_mib:.0f}" if o.peak_mib is not None else ""
        size = f"{o.bytes:,}" if o.bytes is not None else ""
        rows.append(
            f"| {o.model} | {o.status} | {o.seconds:.1f} | {peak} | {cell(o.layers)} | "
            f"{cell(o.pages)} | {size} | {cell(o.message)} |"
        )
    return rows


def summary(outcomes: list[Outcome]) -> str:
    passed = [o for o in outcomes if o.passed]
    failed = [o for o in outcomes if not o.passed and o.status != "timeout"]
    timeouts = [o for o in outcomes if o.status == "timeout"]
    line = f"**{len(passed)} passed of {len(outcomes)}**"
    if failed:
        line += f"; failed ({len(failed)}): {', '.join(o.model for o in failed)}"
    if timeouts:
        line += f"; timed out ({len(timeouts)}): {', '.join(o.model for o in timeouts)}"
    return line


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f", {int(line.split()[1]) / 1024 / 1024:.0f} GiB RAM"
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}){ram}, {platform.platform()}"


def versions() -> str:
    torch, torchvision = in_child(
        "import torch, torchvision; print(torch.__version__, torchvision.__version__)"
    ).split()
    return f"Python {platform.python_version()}, torch {torch}, torchvision {torchvision}"


def git_commit() -> str:
    if not (REPO / ".git").exists():
        return "unknown (not a git checkout)"
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "reportgen"],
            capture_output=True,
            text=True,
            cwd=REPO,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head}{' (with uncommitted changes under reportgen/)' if dirty else ''}"


def load_results(path: Path) -> list[Outcome]:
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [Outcome(**json.loads(line)) for line in lines if line.strip()]


def document(outcomes: list[Outcome], args: argparse.Namespace, started: str, carried: int) -> str:
    total = sum(o.seconds for o in outcomes)
    resumed = f"; {carried} of the results carried over by --resume" if carried else ""
    lines = [
        "# Every torchvision classifier through `reportgen run`",
        "",
        "Written by `benchmarks/models_smoke.py`: each model of "
        "`torchvision.models.list_models(module=torchvision.models)` as its own process, "
        "`reportgen run small.png -m NAME --weights none --no-cache -o WORK/NAME` on one "
        "64x64 picture, default settings otherwise (every Conv2d, Grad-CAM, examples, every "
        f"page), timeout {args.timeout:.0f} s per model. *layers*: `models[].layers` in "
        "manifest.json; *pages*: `.html` files; *bytes*: the whole report folder; *peak MiB*: "
        "maximum resident set size (`os.wait4`). A model passes with exit 0 and at least one "
        "layer in its report.",
        "",
        f"* date: {started} (runs took {total / 60:.0f} min in all{resumed})",
        f"* machine: {machine()}; shared with other work, runs under `nice`",
        f"* versions: {versions()}",
        f"* code: reportgen at {args.code or git_commit()}",
        "",
        summary(outcomes),
        "",
        *table(outcomes),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", help="comma-separated subset (default: every model)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per model")
    parser.add_argument(
        "--out", default=str(DEFAULT_OUT), help="markdown file to write, '-' for none"
    )
    parser.add_argument("--work-dir", help="where reports are written (default: a temp dir)")
    parser.add_argument(
        "--extra", default="", help="more 'reportgen run' options, e.g. '-l conv --no-gradcam'"
    )
    parser.add_argument(
        "--code", help="how to describe the code under test (default: this checkout's HEAD)"
    )
    parser.add_argument(
        "--resume",
        metavar="FILE.jsonl",
        help="keep each result in FILE (a JSON line each); models already there are not run again",
    )
    args = parser.parse_args(argv)

    names = all_models()
    if args.models:
        wanted = [n.strip() for n in args.models.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in names]
        if unknown:
            parser.error(f"unknown models: {', '.join(unknown)}")
        names = wanted
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="models-smoke-"))
    work.mkdir(parents=True, exist_ok=True)
    image = make_image(work)
    started = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    results = Path(args.resume) if args.resume else None
    done = {o.model: o for o in load_results(results)} if results else {}
    outcomes: list[Outcome] = []
    print(table([])[0])
    print(table([])[1])
    for name in names:
        outcome = done.get(name) or run_one(name, image, work, args.timeout, args.extra.split())
        outcomes.append(outcome)
        print(table([outcome])[2], flush=True)
        if results is not None and name not in done:
            with results.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(dataclasses.asdict(outcome)) + "\n")
    carried = sum(name in done for name in names)
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(summary(outcomes))
    if args.out != "-":
        text = document(outcomes, args, started, carried)
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    return 0 if all(o.passed for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
