"""Feature visualisation of every channel of a layer, channels per minute, by engine
(``python benchmarks/featurevis_bench.py --engines``; issue 26).

Whole ``reportgen run`` commands on sample_images/ with MobileNetV2's real weights,
``--feature-vis --fv-channels all -l LAYER``, each timed on the wall clock:

* ``one``: one process, one thread (OMP_NUM_THREADS=1);
* ``cluster``: ``--cluster local:N``, one thread per worker (the client's count, which
  the workers take: OMP_NUM_THREADS=1 in the client);
* ``cuda`` (only where CUDA is available): one process on the GPU, ``--fv-batch``
  chosen from the device's free memory (``cuda_batch``).

Each is run once without ``--feature-vis`` too, and the difference is the feature
visualisation's time (the forward passes, the pages and, for a cluster, starting its
workers are the same either way): channels per minute are ``channels * 60 / that``.
The reports of ``one`` and ``cluster`` are compared byte for byte (SOURCE_DATE_EPOCH
fixed, no cache). The machine's load average is recorded before and after: on a
shared machine, numbers are only comparable at the same load.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _run(arguments: list[str], out: Path, threads: int = 1) -> float:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "SOURCE_DATE_EPOCH": "1700000000",
        "REPORTGEN_CACHE_DIR": "off",
        "REPORTGEN_OFFLINE": "1",
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
    }
    command = [sys.executable, "-m", "reportgen", "-q", "run", *arguments, "-o", str(out)]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    return seconds


def cuda_batch(layer: str, size: int, weights_dir: str, share: float = 0.7) -> int:
    """Pictures per unit that fit ``share`` of the GPU's free memory: one step of a
    batch of 4 is measured (peak memory over the model's own) and scaled."""
    import torch

    from featurevis_bench import _module
    from reportgen.nn.featurevis import Recipe, visualise
    from reportgen.nn.fv_image import pair, photo_view
    from reportgen.nn.models import default_preprocessing

    module = _module("mobilenet_v2", weights_dir, "cuda")
    prep = default_preprocessing()
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    recipe = Recipe(
        steps=1, size=size, input_size=pair(prep.crop_size), resize_to=pair(prep.resize_size),
        view=photo_view(prep), device="cuda",
    )  # fmt: skip
    visualise(module, layer, [0, 1, 2, 3], recipe)
    per_picture = max(1, (torch.cuda.max_memory_allocated() - base) // 4)
    free, _total = torch.cuda.mem_get_info()
    return int(max(1, min(4096, share * free // per_picture)))


def engines(
    layer: str,
    steps: int,
    batch: int,
    workers: int,
    weights_dir: str,
    channels: int,
) -> dict[str, Any]:
    """Channels per minute for every channel of ``layer`` (it has ``channels``)."""
    base = [
        str(REPO / "sample_images"), "-m", "mobilenet_v2", "--weights-dir", weights_dir,
        "-l", layer, "--device", "cpu", "--jobs", "1",
    ]  # fmt: skip
    fv = ["--feature-vis", "--fv-channels", "all", "--fv-steps", str(steps)]
    fv += ["--fv-batch", str(batch)]
    cluster = ["--cluster", f"local:{workers}"]
    load_before = os.getloadavg()
    result: dict[str, Any] = {
        "layer": layer, "channels": channels, "steps": steps, "fv_batch": batch,
        "workers": workers, "cpus": os.cpu_count(),
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="fv-engines-") as folder:
        out = Path(folder)
        runs = {
            "one": (_run([*base, *fv], out / "one"), _run(base, out / "one-plain")),
            "cluster": (
                _run([*base, *fv, *cluster], out / "cluster"),
                _run([*base, *cluster], out / "cluster-plain"),
            ),
        }
        result["byte_identical"] = _snapshot(out / "one") == _snapshot(out / "cluster")
        report = out / "one" / "models" / "mobilenet_v2" / "layers" / layer / "featurevis"
        pictures = sorted(report.glob("*.webp"))
        sheet = report.parent / "featurevis.jpg"
        total = sum(p.stat().st_size for p in pictures) + sheet.stat().st_size
        result["bytes_per_channel"] = round(total / channels)
        result["largest_picture_bytes"] = max(p.stat().st_size for p in pictures)
    for name, (with_fv, plain) in runs.items():
        seconds = max(with_fv - plain, 1e-9)
        result[name] = {
            "run_s": round(with_fv, 1),
            "without_fv_s": round(plain, 1),
            "fv_s": round(seconds, 1),
            "channels_per_minute": round(channels * 60 / seconds, 2),
        }
    result["speedup"] = round(
        result["cluster"]["channels_per_minute"] / result["one"]["channels_per_minute"], 2
    )
    result["load_average_before"] = [round(v, 2) for v in load_before]
    result["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    return result


def engines_cuda(layer: str, steps: int, weights_dir: str, channels: int) -> dict[str, Any]:
    """``--device cuda``, one process, ``--fv-batch`` from the free memory."""
    batch = cuda_batch(layer, 256, weights_dir)
    base = [
        str(REPO / "sample_images"), "-m", "mobilenet_v2", "--weights-dir", weights_dir,
        "-l", layer, "--device", "cuda", "--jobs", "1",
    ]  # fmt: skip
    fv = ["--feature-vis", "--fv-channels", "all", "--fv-steps", str(steps)]
    with tempfile.TemporaryDirectory(prefix="fv-cuda-") as folder:
        out = Path(folder)
        with_fv = _run([*base, *fv, "--fv-batch", str(batch)], out / "fv", threads=4)
        plain = _run(base, out / "plain", threads=4)
    seconds = max(with_fv - plain, 1e-9)
    return {
        "fv_batch": batch,
        "run_s": round(with_fv, 1),
        "fv_s": round(seconds, 1),
        "channels_per_minute": round(channels * 60 / seconds, 2),
    }
