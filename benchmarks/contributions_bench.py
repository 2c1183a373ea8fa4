"""Channel contributions' cost (issue 23): ResNet-18 with default settings (random
weights, every Conv2d whose output is a map, Grad-CAM on), N and M images, each size run
with contributions (the default) and with ``--no-contributions``, alternating, in the
same benchmark run.

* marginal seconds per image, (T(M) - T(N)) / (M - N) for each mode, and their ratio
  (target: at most 1.25);
* peak resident memory of each run (flat: the same at N and M);
* report bytes per added input, (B(M) - B(N)) / (M - N) for each mode, against one
  float32 per recorded channel (target: contributions add at most that).

    .venv/bin/python benchmarks/contributions_bench.py                   # 64 and 512
    .venv/bin/python benchmarks/contributions_bench.py --sizes 8,24      # a smoke run

Writes ``benchmarks/contributions.json`` (one round; the committed file holds the two
rounds README's table shows, under ``rounds``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dataset_bench import make_images, run_report  # noqa: E402

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


def measure(sizes: list[int], folder: Path) -> dict[str, Any]:
    runs: dict[str, dict[int, dict[str, Any]]] = {mode: {} for mode in MODES}
    channels = 0
    for size in sizes:
        images = folder / f"images-{size}"
        make_images(images, size)
        for mode, extra in MODES.items():  # alternating: the load of the moment hits both
            out = folder / f"out-{mode}-{size}"
            run = run_report(images, out, [*COMMON, *extra])
            run["bytes"], run["stats_bytes"] = report_bytes(out)
            channels = recorded_channels(out)
            runs[mode][size] = run
            print(mode, size, run, flush=True)
    low, high = sizes[0], sizes[-1]
    added = high - low
    summary: dict[str, Any] = {"sizes": sizes, "recorded_channels": channels, "modes": {}}
    for mode, by_size in runs.items():
        summary["modes"][mode] = {
            "runs": {str(k): v for k, v in by_size.items()},
            "marginal_s_per_image": round(
                (by_size[high]["wall_s"] - by_size[low]["wall_s"]) / added, 4
            ),
            "marginal_cpu_s_per_image": round(
                (by_size[high]["cpu_s"] - by_size[low]["cpu_s"]) / added, 4
            ),
            "bytes_per_added_input": round(
                (by_size[high]["bytes"] - by_size[low]["bytes"]) / added
            ),
        }
    on, off = summary["modes"]["contributions"], summary["modes"]["no-contributions"]
    summary["time_ratio"] = round(on["marginal_s_per_image"] / off["marginal_s_per_image"], 3)
    summary["cpu_ratio"] = round(
        on["marginal_cpu_s_per_image"] / off["marginal_cpu_s_per_image"], 3
    )
    summary["added_bytes_per_input"] = on["bytes_per_added_input"] - off["bytes_per_added_input"]
    summary["one_float32_per_channel"] = 4 * channels
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="64,512", help="two image counts, comma-separated")
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).with_name("contributions.json")
    )
    args = parser.parse_args(argv)
    sizes = sorted(int(v) for v in args.sizes.split(","))
    with tempfile.TemporaryDirectory(prefix="contrib-bench-") as folder:
        summary = measure(sizes, Path(folder))
    summary["machine"] = {"python": platform.python_version(), "cpus": __import__("os").cpu_count()}
    args.output.write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "modes"}, indent=1))


if __name__ == "__main__":
    main()
