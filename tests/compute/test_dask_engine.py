"""The Dask engine (``reportgen run --cluster``): the same report as one process, a worker
killed mid-run, a batch that keeps killing its worker, the address of a running
scheduler, and the CLI without the extra.

The runs are whole ``reportgen`` processes (so a test can find and kill their workers),
on TinyNet at 16 px: each cluster run is a few seconds, most of it starting workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.helpers import REPO, REPRODUCIBLE_ENV, TESTS, error_line, invoke, snapshot, write_images

pytest.importorskip("distributed")

MODEL = ["--weights", "none", "--input-size", "16", "--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5"]
# Tiny batches: a run of 14 inputs is 7 batches, two shards of 4 batches (one partial).
RUN = [*MODEL, "--batch-size", "2", "--top-k", "3", "--jobs", "1", "--examples", "4"]


# What a LocalCluster started in this process leaves in os.environ (Dask sets it for its
# workers): the runs here must have torch's own thread count.
THREAD_LIMITS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DASK_", "CLUSTERNET_")) and k not in THREAD_LIMITS
    }
    env.update(REPRODUCIBLE_ENV)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(REPO)])
    env["CLUSTERNET_MARKS"] = str(tmp_path / "marks")
    (tmp_path / "marks").mkdir(exist_ok=True)
    env.update(extra)
    return env


def _command(images: Path, out: Path, model: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "reportgen",
        "run",
        str(images),
        "-m",
        model,
        *RUN,
        "-o",
        str(out),
        *extra,
    ]


def _run(
    images: Path, out: Path, env: dict[str, str], model: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(images, out, model, *extra), env=env, capture_output=True, text=True, timeout=240
    )


def _marks(tmp_path: Path, kind: str) -> dict[int, int]:
    counts: dict[int, int] = {}
    for path in (tmp_path / "marks").glob(f"{kind}-*"):
        pid = int(path.name.split("-")[1])
        counts[pid] = counts.get(pid, 0) + 1
    return counts


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_images(tmp_path_factory.mktemp("cluster-inputs"), 14, (20, 24), seed=7)


@pytest.fixture(scope="module")
def single(images: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The reference: the same run in one process."""
    tmp = tmp_path_factory.mktemp("single")
    done = _run(images, tmp / "report", _env(tmp), "clusternet_factory:observed")
    assert done.returncode == 0, done.stderr
    # The statistics files compared hold the channel contributions (issue 23).
    manifest = json.loads((tmp / "report" / "manifest.json").read_text())
    assert all(
        "contribution" in layer["stats_file"]["fields"] for layer in manifest["models"][0]["layers"]
    )
    return snapshot(tmp / "report")


def test_local_cluster_writes_the_single_process_report(
    images: Path, single: dict[str, bytes], tmp_path: Path
) -> None:
    done = _run(
        images,
        tmp_path / "report",
        _env(tmp_path),
        "clusternet_factory:observed",
        "--cluster",
        "local:2",
    )
    assert done.returncode == 0, done.stderr
    assert snapshot(tmp_path / "report") == single
    # ... class pages and the class-wide statistics of contributions included
    manifest = json.loads(single["manifest.json"])
    classes = [c for model in manifest["models"] for c in model["classes"]]
    assert classes and all(c["channels"] for c in classes)
    assert all(c["page"] in single for c in classes)
    # Nothing of Dask's own log reaches the user without -v.
    assert "distributed" not in done.stderr and "Nanny" not in done.stderr, done.stderr
    # The forward passes ran on the workers, and each worker built the model once.
    client = done_client_pid(tmp_path)
    forwards = {pid: n for pid, n in _marks(tmp_path, "forward").items() if pid != client}
    assert forwards, "no forward pass ran on a worker"
    builds = _marks(tmp_path, "build")
    assert all(builds.get(pid) == 1 for pid in forwards), (builds, forwards)
    assert _batch_passes(tmp_path) == 7  # each batch once (the killed-worker test counts)


def done_client_pid(tmp_path: Path) -> int:
    """The client is the process that built the model first (it plans the layers before
    any shard is sent)."""
    first = min((tmp_path / "marks").glob("build-*"), key=lambda p: p.stat().st_mtime_ns)
    return int(first.name.split("-")[1])


def test_a_killed_worker_loses_no_input(
    images: Path, single: dict[str, bytes], tmp_path: Path
) -> None:
    import psutil

    env = _env(tmp_path, CLUSTERNET_DELAY="0.4")
    process = subprocess.Popen(
        _command(
            images, tmp_path / "report", "clusternet_factory:observed", "--cluster", "local:2"
        ),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        victim = _busy_worker(process.pid, tmp_path, deadline=time.monotonic() + 120)
        os.kill(victim, signal.SIGKILL)
        stdout, stderr = process.communicate(timeout=240)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert not psutil.pid_exists(victim) or psutil.Process(victim).status() == psutil.STATUS_ZOMBIE
    assert snapshot(tmp_path / "report") == single
    # The victim died inside a batch: its shard was computed again elsewhere, so more
    # batches ran than the run has (7: 14 inputs in batches of 2).
    assert _batch_passes(tmp_path) > 7


def _batch_passes(tmp_path: Path) -> int:
    """Forward passes over a batch of inputs (batch size 2), in every process: the
    planning passes (tracing, Grad-CAM's layer) have a batch of one."""
    return sum(1 for p in (tmp_path / "marks").glob("forward-*") if p.name.split("-")[2] == "2")


def _busy_worker(client: int, tmp_path: Path, deadline: float, batch: int = 2) -> int:
    """A worker process of ``client`` in the middle of a batch: its newest forward pass
    over a batch of ``batch`` (inputs, or pictures) began less than 0.2 s ago (each
    takes 0.4 s)."""
    import psutil

    while time.monotonic() < deadline:
        workers = {p.pid for p in psutil.Process(client).children(recursive=True)}
        now = time.time()
        for path in (tmp_path / "marks").glob(f"forward-*-{batch}-*"):
            pid = int(path.name.split("-")[1])
            try:
                fresh = now - path.stat().st_mtime < 0.2
            except FileNotFoundError:
                continue
            if pid in workers and fresh:
                return pid
        time.sleep(0.02)
    raise AssertionError("no worker started a batch in time")


def test_a_batch_that_keeps_killing_its_worker_is_named(images: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for path in sorted(images.iterdir())[:5]:
        (inputs / path.name).write_bytes(path.read_bytes())
    Image.new("RGB", (24, 20)).save(inputs / "black.png")
    env = _env(tmp_path, DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="1")
    earlier = _run(images, tmp_path / "report", env, "clusternet_factory:observed")
    assert earlier.returncode == 0, earlier.stderr
    before = snapshot(tmp_path / "report")
    done = _run(
        inputs,
        tmp_path / "report",
        env,
        "clusternet_factory:dying",
        "--cluster",
        "local:2",
        "--batch-size",
        "1",
    )
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("Error: input '") and "black.png': " in lines[-1], done.stderr
    assert "died each time" in lines[-1] and "Traceback" not in done.stderr
    assert not [line for line in lines if line.startswith(("ERROR", "Error"))][:-1], done.stderr
    assert snapshot(tmp_path / "report") == before


def test_a_running_scheduler_from_the_environment(
    images: Path, single: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distributed import LocalCluster

    env = _env(tmp_path)
    # The workers are started here, so they must see the test models as the CLI does
    # (spawned workers take this process's sys.path, and the variables of the models).
    monkeypatch.syspath_prepend(str(TESTS))
    saved = dict(os.environ)
    os.environ.update({k: env[k] for k in ("PYTHONPATH", "CLUSTERNET_MARKS")})
    try:
        # Two threads, as `dask worker` has on a 2-core machine: two shards run at once in
        # one process, on one copy of the model (its hooks must see one pass at a time).
        with LocalCluster(n_workers=1, threads_per_worker=2, dashboard_address=None) as cluster:
            env["DASK_SCHEDULER_ADDRESS"] = cluster.scheduler_address
            done = _run(images, tmp_path / "report", env, "clusternet_factory:observed")
    finally:
        # Dask leaves OMP_NUM_THREADS=1 and more in os.environ: later tests' runs would
        # compute with one thread.
        os.environ.clear()
        os.environ.update(saved)
    assert done.returncode == 0, done.stderr
    assert snapshot(tmp_path / "report") == single


def _cli_cluster(images: Path, tmp_path: Path, value: str) -> Any:
    """``reportgen run`` in this process with ``--cluster value`` (it fails before any work)."""
    out = str(tmp_path / "r")
    return invoke(
        "run", str(images), *MODEL, "-m", "tinynet_factory:build", "--cluster", value, "-o", out
    )


@pytest.mark.parametrize("value", ["local:0", "local:two", "localhost:8786", "tcp://", "foo://x:1"])
def test_a_bad_cluster_option_is_one_line(value: str, images: Path, tmp_path: Path) -> None:
    error_line(_cli_cluster(images, tmp_path, value), 2, "--cluster", value)


def test_without_the_extra_the_cli_says_how_to_install_it(
    images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed: ImportError
    result = _cli_cluster(images, tmp_path, "local:2")
    error_line(result, 2, "pip install 'reportgen[dask]'")
    assert not (tmp_path / "r").exists()


def test_an_interrupted_client_leaves_the_previous_report(
    images: Path, single: dict[str, bytes], tmp_path: Path
) -> None:
    import psutil

    out = tmp_path / "report"
    done = _run(images, out, _env(tmp_path), "clusternet_factory:observed")
    assert done.returncode == 0, done.stderr
    env = _env(tmp_path, CLUSTERNET_DELAY="0.4")
    process = subprocess.Popen(
        _command(images, out, "clusternet_factory:observed", "--cluster", "local:2", "--seed", "5"),
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        # A background process of a non-interactive shell ignores SIGINT: restore it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        _busy_worker(process.pid, tmp_path, deadline=time.monotonic() + 120)
        workers = [p.pid for p in psutil.Process(process.pid).children(recursive=True)]
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1].startswith("Error: interrupted")
    assert snapshot(out) == single
    time.sleep(1)
    assert not [
        pid
        for pid in workers
        if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    ]


def test_a_shard_computed_on_a_cluster_is_the_same_shard(images: Path, tmp_path: Path) -> None:
    """``reportgen shard --cluster`` (a CI job with several cores): the same bytes."""
    env = _env(tmp_path)
    folders = []
    for name, extra in (("here", []), ("cluster", ["--cluster", "local:2"])):
        out = tmp_path / name
        command = [sys.executable, "-m", "reportgen", "shard", str(images), "-m"]
        command += ["clusternet_factory:observed", *RUN, "--part", "2/2", "-o", str(out), *extra]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr
        folders.append(snapshot(out))
    assert folders[0] == folders[1]
    assert any(name.endswith(".bin") for name in folders[0])


def test_a_torchvision_model_on_two_workers_is_the_one_process_report(tmp_path: Path) -> None:
    """MobileNetV2's classifier (a 1280x1000 matrix product) has last bits that depend on
    torch's thread count, which Dask sets to one on its workers: the workers compute
    with the client's count, so the report is still the one-process report."""
    env = _env(tmp_path)
    images = write_images(tmp_path / "in", 4, (40, 48), seed=3)
    reports = []
    for name, extra in (("one", []), ("two", ["--cluster", "local:2"])):
        command = [sys.executable, "-m", "reportgen", "run", str(images), "-m", "mobilenet_v2"]
        command += ["--weights", "none", "-l", "classifier.1", "-l", "features.18.0"]
        command += ["--batch-size", "2", "-o", str(tmp_path / name), *extra]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        reports.append(snapshot(tmp_path / name))
    assert reports[0] == reports[1]


# Feature visualisation of every channel of TinyNet's two layers (8 and 6) in units of
# 3 pictures: conv1 3+3+2, conv2 3+3. Each unit of 3 makes 4 forward passes over a batch
# of 3 (3 steps, then the measure), a batch size no other pass of these runs has.
FEATURE_VIS = [
    "--feature-vis", "--fv-channels", "all", "--fv-steps", "3", "--fv-size", "32",
    "--fv-batch", "3",
]  # fmt: skip
UNIT_PASSES = 4 * 4


def _unit_passes(tmp_path: Path) -> dict[int, int]:
    counts: dict[int, int] = {}
    for path in (tmp_path / "marks").glob("forward-*-3-*"):
        pid = int(path.name.split("-")[1])
        counts[pid] = counts.get(pid, 0) + 1
    return counts


@pytest.fixture(scope="module")
def single_fv(images: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The reference with feature visualisation: one process."""
    tmp = tmp_path_factory.mktemp("single-fv")
    done = _run(images, tmp / "report", _env(tmp), "clusternet_factory:observed", *FEATURE_VIS)
    assert done.returncode == 0, done.stderr
    assert sum(_unit_passes(tmp).values()) == UNIT_PASSES
    return snapshot(tmp / "report")


def test_feature_visualisations_are_optimised_on_the_workers(
    images: Path, single_fv: dict[str, bytes], tmp_path: Path
) -> None:
    model = "clusternet_factory:observed"
    done = _run(
        images, tmp_path / "report", _env(tmp_path), model, *FEATURE_VIS, "--cluster", "local:2"
    )
    assert done.returncode == 0, done.stderr
    assert snapshot(tmp_path / "report") == single_fv
    passes = _unit_passes(tmp_path)
    assert done_client_pid(tmp_path) not in passes  # the client optimised none
    assert sum(passes.values()) == UNIT_PASSES  # each unit once
    builds = _marks(tmp_path, "build")
    assert all(builds.get(pid) == 1 for pid in passes), (builds, passes)


def test_a_worker_killed_inside_a_unit_of_pictures_loses_none(
    images: Path, single_fv: dict[str, bytes], tmp_path: Path
) -> None:
    env = _env(tmp_path, CLUSTERNET_DELAY="0.4")
    command = _command(
        images, tmp_path / "report", "clusternet_factory:observed", *FEATURE_VIS,
        "--cluster", "local:2",
    )  # fmt: skip
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        victim = _busy_worker(process.pid, tmp_path, time.monotonic() + 180, batch=3)
        os.kill(victim, signal.SIGKILL)
        _, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert snapshot(tmp_path / "report") == single_fv
    # The victim died inside a unit: Dask ran that unit again on another worker.
    assert sum(_unit_passes(tmp_path).values()) > UNIT_PASSES
