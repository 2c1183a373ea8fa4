"""Channel contributions' cost (issue 23): ResNet-18 with default settings (random
weights, every Conv2d whose output is a map, Grad-CAM on), N and M images, each size run
with contributions (the default) and with ``--no-contributions``, alternating, in the
same benchmark run.

* marginal seconds per image, (T(M) - T(N)) / (M - N) for each mode, and their ratio
  (target: at most 1.25);
* peak resident memory of each run (flat: the same at N and M);
* bytes per added input, (B(M) - B(N)) / (M - N) for each mode: of the statistics files
  (the data: target, contributions add one float32 per recorded channel) and of the whole
  report (the pages too: an input page's "why" rows);
* the network's floor, measured apart on the same machine: per image, a plain forward
  pass and the same pass with the gradient of the top logit taken down to the first
  recorded layer (torch alone, no reportgen): the least any implementation must add.
  With it, the lowest ratio reachable, (off + floor) / off.

    .venv/bin/python benchmarks/contributions_bench.py                   # 64 and 512, 3 rounds
    .venv/bin/python benchmarks/contributions_bench.py --sizes 8,24 --rounds 1  # a smoke run

Writes ``benchmarks/contributions.json``: every run, and the summary README's table shows.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dataset_bench import make_images, run_report  # noqa: E402

FLOOR_BATCH = 8  # the default --batch-size

MODES = {"contributions": [], "no-contributions": ["--no-contributions"]}
COMMON = ["--device", "cpu", "-q"]


def report_bytes(out: Path) -> tuple[int, int]:
    """All of a report's bytes, and its statistics files' bytes."""
    files = [p for p in out.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), sum(
        p.stat().st_size for p in files if p.name == "stats.npy"
    )


def recorded_channels(out: Path) -> int:
    manifest = json.loads((out / "manifest.json").read_text())
    return sum(int(layer["output_shape"][0]) for layer in manifest["models"][0]["layers"])


def network_floor(repeats: int = 6) -> dict[str, float]:
    """Seconds per image of ResNet-18's forward pass, and of forward + backward down to
    ``conv1``'s output (the first recorded layer), in plain torch at the default batch."""
    import time

    import torch
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval().requires_grad_(False)
    batch = torch.randn(FLOOR_BATCH, 3, 224, 224)

    def forward() -> None:
        with torch.inference_mode():
            model(batch)

    def forward_backward() -> None:
        leaf: list[torch.Tensor] = []

        def make_leaf(_module: Any, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
            leaf.append(output.detach().requires_grad_(True))
            return leaf[0]

        hook = model.conv1.register_forward_hook(make_leaf)
        try:
            logits = model(batch)
            torch.autograd.grad(logits.max(dim=1).values.sum(), leaf)
        finally:
            hook.remove()

    def seconds(step: Any) -> float:
        step()  # warm-up
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            step()
            best = min(best, time.perf_counter() - started)
        return best / FLOOR_BATCH

    f, fb = seconds(forward), seconds(forward_backward)
    return {
        "forward_s": round(f, 4),
        "forward_backward_s": round(fb, 4),
        "floor_s": round(fb - f, 4),
    }


def measure(sizes: list[int], folder: Path, rounds: int) -> dict[str, Any]:
    """Every (mode, size) run ``rounds`` times, alternating modes; each run's time is the
    least of its rounds (a shared host only ever adds time), its bytes the last round's."""
    runs: dict[str, dict[int, list[dict[str, Any]]]] = {m: {n: [] for n in sizes} for m in MODES}
    channels = 0
    for size in sizes:
        make_images(folder / f"images-{size}", size)
    for number in range(rounds):
        for size in sizes:
            for mode, extra in MODES.items():  # alternating: the load of the moment hits both
                out = folder / f"out-{mode}-{size}"
                shutil.rmtree(out, ignore_errors=True)
                run = run_report(folder / f"images-{size}", out, [*COMMON, *extra])
                run["bytes"], run["stats_bytes"] = report_bytes(out)
                channels = recorded_channels(out)
                runs[mode][size].append(run)
                print(f"round {number + 1}", mode, size, run, flush=True)
    low, high = sizes[0], sizes[-1]
    summary: dict[str, Any] = {
        "sizes": sizes,
        "rounds": rounds,
        "recorded_channels": channels,
        "modes": {mode: _mode_summary(by_size, low, high) for mode, by_size in runs.items()},
    }
    on, off = summary["modes"]["contributions"], summary["modes"]["no-contributions"]
    summary["time_ratio"] = round(on["marginal_s_per_image"] / off["marginal_s_per_image"], 3)
    summary["cpu_ratio"] = round(
        on["marginal_cpu_s_per_image"] / off["marginal_cpu_s_per_image"], 3
    )
    summary["added_bytes_per_input"] = on["bytes_per_added_input"] - off["bytes_per_added_input"]
    summary["added_stats_bytes_per_input"] = (
        on["stats_bytes_per_added_input"] - off["stats_bytes_per_added_input"]
    )
    summary["one_float32_per_channel"] = 4 * channels
    floor = network_floor()
    summary["network"] = floor
    summary["floor_time_ratio"] = round(
        (off["marginal_s_per_image"] + floor["floor_s"]) / off["marginal_s_per_image"], 3
    )
    return summary


def _mode_summary(by_size: dict[int, list[dict[str, Any]]], low: int, high: int) -> dict[str, Any]:
    """One mode's marginal time, CPU time and bytes per added input, from the least of
    each size's rounds."""
    added = high - low

    def least(size: int, key: str) -> float:
        return float(min(run[key] for run in by_size[size]))

    def last(size: int, key: str) -> int:
        return int(by_size[size][-1][key])

    return {
        "runs": {str(k): v for k, v in by_size.items()},
        "marginal_s_per_image": round((least(high, "wall_s") - least(low, "wall_s")) / added, 4),
        "marginal_cpu_s_per_image": round((least(high, "cpu_s") - least(low, "cpu_s")) / added, 4),
        "peak_rss_mb": {str(k): max(run["peak_rss_mb"] for run in v) for k, v in by_size.items()},
        "bytes_per_added_input": round((last(high, "bytes") - last(low, "bytes")) / added),
        "stats_bytes_per_added_input": round(
            (last(high, "stats_bytes") - last(low, "stats_bytes")) / added
        ),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="64,512", help="two image counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each mode and size")
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).with_name("contributions.json")
    )
    args = parser.parse_args(argv)
    sizes = sorted(int(v) for v in args.sizes.split(","))
    with tempfile.TemporaryDirectory(prefix="contrib-bench-") as folder:
        summary = measure(sizes, Path(folder), args.rounds)
    summary["machine"] = {"python": platform.python_version(), "cpus": __import__("os").cpu_count()}
    args.output.write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "modes"}, indent=1))


if __name__ == "__main__":
    main()
