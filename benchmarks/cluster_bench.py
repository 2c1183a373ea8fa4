"""Beyond one process (issue 14): the dataset benchmark's default run on the Dask engine,
and shard/merge, measured against one process.

The run is ``benchmarks/dataset_bench.py``'s (ResNet-18, ``--weights none``, every
Conv2d, ``--no-cache``) on 64 and 512 distinct images, each in a fresh process:

* in one process, on ``--cluster local:1`` and on ``--cluster local:2``: wall and CPU
  time, peak memory of the largest process; from the two sizes, each engine's marginal
  time per image and its fixed cost per run;
* ``reportgen shard --part 1/2`` and ``2/2`` then ``reportgen merge`` on the 512 images,
  against "render alone": a run whose per-input results are all in the cache but whose
  report is not (another ``SOURCE_DATE_EPOCH``), the work a merge cannot avoid.

Every report is compared with the one-process report of the same size, byte for byte
(``SOURCE_DATE_EPOCH`` fixed): the engines must not change what is written.

Usage: python benchmarks/cluster_bench.py [--sizes 64,512] [--out benchmarks/cluster.json]
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dataset_bench import make_images

MODEL = ["-m", "resnet18", "--weights", "none"]
ENGINES = {
    "one process": [],
    "local:1": ["--cluster", "local:1"],
    "local:2": ["--cluster", "local:2"],
}
# The largest process's peak RSS and the CPU time of every process, as the parent sees them.
WRAPPER = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True,"
    " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL);"
    " u = resource.getrusage(resource.RUSAGE_CHILDREN);"
    " print(u.ru_maxrss, u.ru_utime + u.ru_stime)"
)


def timed(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, *command],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    wall = time.perf_counter() - started
    peak_kb, cpu = done.stdout.split()
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(float(cpu), 2),
        "peak_rss_mb": round(int(peak_kb) / 1024),
    }


def reportgen(*args: str) -> list[str]:
    return [sys.executable, "-m", "reportgen", *args]


def same_tree(a: Path, b: Path) -> bool:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    return files_a == files_b and all(filecmp.cmp(a / f, b / f, shallow=False) for f in files_a)


def engines(images: Path, work: Path, size: int, env: dict[str, str]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for name, extra in ENGINES.items():
        out = work / f"{name.replace(':', '-').replace(' ', '-')}-{size}"
        rows[name] = timed(
            reportgen("run", str(images), *MODEL, "--no-cache", "-o", str(out), *extra), env
        )
        if name != "one process":
            rows[name]["identical"] = same_tree(work / f"one-process-{size}", out)
            shutil.rmtree(out)
        print(size, name, rows[name], flush=True)
    return rows


def render_alone(images: Path, work: Path, size: int, env: dict[str, str]) -> dict[str, Any]:
    """A run whose per-input results are all in the cache but whose report is not (the
    run key holds SOURCE_DATE_EPOCH, the per-input keys do not): what a merge, or the
    client of a cluster run, does beyond receiving results."""
    cache, out = work / f"cache-{size}", work / f"warm-{size}"
    command = reportgen("run", str(images), *MODEL, "--cache-dir", str(cache), "-o", str(out))
    subprocess.run(command, check=True, env=env, capture_output=True)
    again = {**env, "SOURCE_DATE_EPOCH": str(int(env["SOURCE_DATE_EPOCH"]) + 1)}
    row = timed(command, again)
    shutil.rmtree(out)
    print(size, "render alone", row, flush=True)
    return row


def worker_split(images: Path, count: int = 64) -> dict[str, float]:
    """Seconds per image of a worker's two parts, in this process, on ``count`` images:
    the forward pass with its statistics (``forward_batch``: what a GPU speeds up) and the
    rest of the result (``finish_input``: selections, levels, PNG/JPEG encoding: CPU)."""
    import torch

    from reportgen.api import make_settings
    from reportgen.compute.batch import finish_input, forward_batch
    from reportgen.compute.model_run import LocalEngine, batches, plan_layers
    from reportgen.compute.model_setup import load_models
    from reportgen.inputs.detail import detail_inputs
    from reportgen.inputs.discovery import discover_inputs
    from reportgen.options import DETAIL_DEFAULT
    from reportgen.pipeline.models import picture_options
    from reportgen.run_options import run_options

    run = run_options(
        make_settings(str(images), "unused", models=["resnet18"], weights="none"), writes=False
    )
    torch.manual_seed(0)
    model = load_models(run.models, torch.device("cpu"))[0][0]
    facts = plan_layers(model, run.compute)[0]
    files = discover_inputs(run.inputs.arguments)[0][:count]
    detail = frozenset(detail_inputs(files, run.inputs.detail, DETAIL_DEFAULT))
    options = picture_options(run.pictures, detail, encode=True)
    engine = LocalEngine(model, facts, run.compute, options, encoder=None)  # type: ignore[arg-type]
    from reportgen.inputs.files import load_image

    started = time.perf_counter()
    for file in files:  # decode and preprocess alone: host work a GPU does not take over
        model.preprocessing.tensor(model.preprocessing.view(load_image(file).image, file.source))
    prepare = time.perf_counter() - started
    forward = 0.0
    finish = {True: 0.0, False: 0.0}  # detail inputs (every channel's map) apart
    for batch in batches(files, run.compute.batch_size):
        started = time.perf_counter()
        outputs = forward_batch(model, facts.layers, batch, engine.gradcam_layer, engine.target)
        forward += time.perf_counter() - started
        for file, output in zip(batch, outputs):
            started = time.perf_counter()
            finish_input(output, facts.layers, run.compute.selection, options)
            finish[file.id in options.detail] += time.perf_counter() - started
    detail = sum(f.id in options.detail for f in files)
    split = {
        "prepare_s_per_image": round(prepare / len(files), 4),
        "forward_s_per_image": round(forward / len(files), 4),
        "finish_s_per_detail_image": round(finish[True] / max(1, detail), 4),
        "finish_s_per_other_image": round(finish[False] / max(1, len(files) - detail), 4),
    }
    print("worker split", split, flush=True)
    return split


def shards(images: Path, work: Path, size: int, env: dict[str, str]) -> dict[str, Any]:
    parts = [work / f"part-{k}" for k in (1, 2)]
    row: dict[str, Any] = {}
    for k, part in enumerate(parts, start=1):
        row[f"shard {k}/2"] = timed(
            reportgen("shard", str(images), *MODEL, "--part", f"{k}/2", "-o", str(part)), env
        )
    merged = work / f"merged-{size}"
    row["merge"] = timed(reportgen("merge", *map(str, reversed(parts)), "-o", str(merged)), env)
    row["merge"]["identical"] = same_tree(work / f"one-process-{size}", merged)
    cache = work / "cache"
    subprocess.run(
        reportgen("run", str(images), *MODEL, "--cache-dir", str(cache), "-o", str(work / "warm")),
        check=True, env=env, capture_output=True,
    )  # fmt: skip
    again = {**env, "SOURCE_DATE_EPOCH": str(int(env["SOURCE_DATE_EPOCH"]) + 1)}
    row["render alone"] = timed(
        reportgen("run", str(images), *MODEL, "--cache-dir", str(cache), "-o", str(work / "warm")),
        again,
    )
    print(size, row, flush=True)
    return row


def marginal(rows: dict[int, dict[str, Any]], small: int, large: int) -> dict[str, Any]:
    """Per engine: seconds per added image (wall, CPU) and the fixed cost of a run."""
    out: dict[str, Any] = {}
    for name in [*ENGINES, "render alone"]:
        a, b = rows[small][name], rows[large][name]
        per_image = (b["wall_s"] - a["wall_s"]) / (large - small)
        out[name] = {
            "wall_s_per_image": round(per_image, 4),
            "cpu_s_per_image": round((b["cpu_s"] - a["cpu_s"]) / (large - small), 4),
            "fixed_s": round(a["wall_s"] - small * per_image, 2),
        }
    base = out["one process"]
    for name in [*ENGINES, "render alone"]:
        out[name]["overhead_s_per_image"] = round(
            out[name]["wall_s_per_image"] - base["wall_s_per_image"], 4
        )
        out[name]["overhead_fixed_s"] = round(out[name]["fixed_s"] - base["fixed_s"], 2)
    return out


def projections(results: dict[str, Any]) -> list[str]:
    """On paper, from the measured figures: hours for 50,000 and 1.2 million images on 8,
    32 and 128 workers, CPU and GPU, and where the client (folding, pictures, pages)
    becomes the bottleneck. A CPU worker is a process with this machine's cores doing
    what ``worker_split`` timed per image that is not a detail input (nearly all of a
    dataset): the forward pass with its statistics, then the rest of the result. A GPU
    worker is the same with the forward pass on a GPU, taken as free (ResNet-18 runs
    thousands of images a second on one), so only its host work is left: decode and
    preprocess, then the rest of the result. The client's cost per image is render
    alone's marginal time: what a run does per input once its result exists (reading it,
    writing its pictures, thumbnail, statistics rows and page). Shards are taken to keep
    every worker busy (pipelined), so a run takes its fixed cost plus, per image, the
    larger of a worker's share and the client's cost."""
    marginal_rows, split = results["marginal"], results["worker_split"]
    cpu_worker = split["forward_s_per_image"] + split["finish_s_per_other_image"]
    gpu_worker = split["prepare_s_per_image"] + split["finish_s_per_other_image"]
    client = max(marginal_rows["render alone"]["wall_s_per_image"], 1e-4)
    # The client's per-input work but folding runs on --jobs threads and processes: with
    # 16 cores instead of this machine's 2, its CPU time spread over them (an assumption,
    # said as one in the table).
    client_16 = max(marginal_rows["render alone"]["cpu_s_per_image"] / 16, 1e-4)
    fixed = marginal_rows["local:1"]["fixed_s"]
    lines = [
        "| images | workers | CPU workers, 2-core client (h) | GPU workers, 2-core client (h) "
        "| CPU workers, 16-core client (h) | GPU workers, 16-core client (h) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for images in (50_000, 1_200_000):
        for workers in (8, 32, 128):
            row = [f"{images:,}", str(workers)]
            for bound in (client, client_16):
                for per_worker in (cpu_worker, gpu_worker):
                    hours = (fixed + images * max(per_worker / workers, bound)) / 3600
                    mark = "" if per_worker / workers < bound else " (workers)"
                    row.append(f"{hours:.2f}{mark}")
            lines.append("| " + " | ".join(row) + " |")
    render_fixed = marginal_rows["render alone"]["fixed_s"]
    for images in (50_000, 1_200_000):
        merge = render_fixed + images * client
        lines.append(
            f"\nA merge of {images:,} images (render alone, 2 cores): {merge / 3600:.2f} h."
        )
    lines.append(
        f"\nPer image: CPU worker {cpu_worker:.4f} s, GPU worker (host work) {gpu_worker:.4f} s, "
        f"client {client:.4f} s (2 cores; {client_16:.4f} s on 16, assumed); the client bounds a "
        f"run from {cpu_worker / client:.1f} CPU workers or {gpu_worker / client:.2f} GPU workers "
        f"on (16-core client: {cpu_worker / client_16:.0f} and {gpu_worker / client_16:.1f}). "
        "Cells marked (workers) are bound by the workers, the others by the client."
    )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="64,512")
    parser.add_argument("--out", default=str(Path(__file__).with_name("cluster.json")))
    parser.add_argument("--skip-shards", action="store_true")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000", "REPORTGEN_OFFLINE": "1"}
    results: dict[str, Any] = {"sizes": sizes, "cores": os.cpu_count(), "runs": {}}
    with tempfile.TemporaryDirectory(prefix="cluster-bench-") as folder:
        work = Path(folder)
        for size in sizes:
            images = work / f"images-{size}"
            make_images(images, size)
            results["runs"][size] = engines(images, work, size, env)
            results["runs"][size]["render alone"] = render_alone(images, work, size, env)
            if size == max(sizes) and not args.skip_shards:
                results["shards"] = shards(images, work, size, env)
            shutil.rmtree(work / f"one-process-{size}")
            if size == max(sizes):
                results["worker_split"] = worker_split(images)
    if len(sizes) >= 2:
        results["marginal"] = marginal(results["runs"], sizes[0], sizes[-1])
    results["load_after"] = os.getloadavg()[0]
    if "marginal" in results and "worker_split" in results:
        results["projections"] = projections(results)
        print("\n".join(results["projections"]))
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results.get("marginal", {}), indent=1))


if __name__ == "__main__":
    main()
