# ruff: noqa: E501  (markdown table rows read better unwrapped)
"""reportgen against the seed notebook's approach, on this machine, in one run.

    .venv/bin/python benchmarks/bench.py            # full run (about 10 minutes on 2 cores)
    .venv/bin/python benchmarks/bench.py --quick    # a smoke run (about 2 minutes)

Every timing is a whole process (``subprocess``), wall clock; peak memory is that
process's maximum resident set size (``os.wait4``). The pipelines alternate round by
round so that load from other programs falls on all of them alike; medians are reported.

Measured:
* ``reportgen run`` (every channel's map of AlexNet features.0,3,6,8, in one sheet per
  layer and input; overlays of the selected channels, composed by the browser; filters,
  Grad-CAM, dataset examples, every page, the manifest; ``--weights none``,
  ``--no-cache``)
  against ``benchmarks/notebook_style.py`` for the small and the large input set;
  the marginal cost per image is (T(large) - T(small)) / (large - small);
* the floor (``benchmarks/floor.py``): the same forward passes and encodings alone;
* ``reportgen --help`` and ``reportgen run --help``, and whether they import torch;
* incremental re-runs with the cache: first run, unchanged re-run, one input added;
* peak memory with 200 inputs against 20 (one layer, small pictures, --batch-size 8);
* ``--jobs 1`` against the default (all cores).

Results go to benchmarks/results.md (and JSON beside it) with the machine described.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PYTHON = sys.executable
REPORTGEN = [PYTHON, "-m", "reportgen"]
LAYERS = ["features.0", "features.3", "features.6", "features.8"]
SAMPLES = REPO / "sample_images"


def run_timed(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Wall seconds and peak RSS (MiB) of one child process; fails loudly on error."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    out = proc.stdout.read().decode() if proc.stdout else ""
    err = proc.stderr.read().decode() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{out}\n{err}")
    return {
        "seconds": seconds,
        "peak_mib": usage.ru_maxrss / 1024.0,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
    }


def make_inputs(folder: Path, count: int, size: int | None = None) -> Path:
    """``count`` distinct pictures made from sample_images (crops and mirror images)."""
    from PIL import Image, ImageOps

    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted(p for p in SAMPLES.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    for i in range(count):
        with Image.open(sources[i % len(sources)]) as opened:
            image = opened.convert("RGB")
        k = i // len(sources)
        w, h = image.size
        image = image.crop((k * 7 % 60, k * 5 % 60, w - k * 3 % 60, h - k * 11 % 60))
        if k % 2:
            image = ImageOps.mirror(image)
        if size:
            image = image.resize((size, size), Image.Resampling.BILINEAR)
        image.save(folder / f"img{i:04d}.jpg", quality=90)
    return folder


def reportgen_cmd(images: Path, out: Path, layers: list[str], *extra: str) -> list[str]:
    cmd = [
        *REPORTGEN,
        "-q",
        "run",
        str(images),
        "-m",
        "alexnet",
        "--weights",
        "none",
        "-o",
        str(out),
    ]
    for layer in layers:
        cmd += ["-l", layer]
    return cmd + list(extra)


def count_maps(report: Path) -> int:
    manifest = json.loads((report / "manifest.json").read_text())
    total = 0
    for model in manifest["models"]:
        for layer in model["layers"]:
            if len(layer["output_shape"]) == 3:
                total += len(layer["channels"]) * len(manifest["inputs"])
    return total


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    versions = subprocess.run(
        [
            PYTHON,
            "-c",
            "import torch, torchvision; print(torch.__version__, torchvision.__version__, "
            "torch.get_num_threads())",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "ram_gib": round(ram, 1),
        "python": platform.python_version(),
        "torch": versions[0],
        "torchvision": versions[1],
        "torch_threads": int(versions[2]),
        "os": platform.platform(),
        "load_before": os.getloadavg()[0],
    }


def bench_help(rounds: int) -> dict[str, Any]:
    env = dict(os.environ)
    times: dict[str, list[float]] = {"--help": [], "run --help": []}
    for _ in range(rounds):
        for key, args in (("--help", ["--help"]), ("run --help", ["run", "--help"])):
            times[key].append(run_timed([*REPORTGEN, *args], env)["seconds"])
    probe = subprocess.run(
        [PYTHON, "-X", "importtime", "-m", "reportgen", "run", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    imported = {line.split("|")[-1].strip() for line in probe.stderr.splitlines() if "|" in line}
    return {
        "help_s": median(times["--help"]),
        "run_help_s": median(times["run --help"]),
        "torch_imported": "torch" in imported,
        "torchvision_imported": "torchvision" in imported,
        "matplotlib_imported": "matplotlib" in imported,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="reportgen benchmark")
    parser.add_argument("--quick", action="store_true", help="small sets, one round")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--small", type=int, default=None)
    parser.add_argument("--large", type=int, default=None)
    parser.add_argument(
        "--large-rounds", type=int, default=None, help="rounds on the large set (default 2)"
    )
    parser.add_argument(
        "--notebook-large-rounds",
        type=int,
        default=1,
        help="rounds of the notebook-style pipeline on the large set (slow)",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results.md")
    parser.add_argument("--from-json", type=Path, help="write results.md again from a results.json")
    parser.add_argument("--skip", default="", help="comma list of: compare,cache,scale,jobs,help")
    args = parser.parse_args(argv)
    if args.from_json:
        results = json.loads(args.from_json.read_text())
        kept = results.get("compare")
        if kept:
            maps = {int(k): v for k, v in kept["maps"].items()}
            ratios = kept.get("ratios_small") or [kept["whole_ratio_small_median"]]
            results["compare"] = summarise(
                kept["runs"], maps, ratios, results["small"], results["large"]
            )
        args.out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
        args.out.write_text(render(results))
        print(render(results))
        return
    rounds = args.rounds or (1 if args.quick else 3)
    small = args.small or (2 if args.quick else 8)
    large = args.large or (6 if args.quick else 32)
    skip = set(filter(None, args.skip.split(",")))
    work = Path(tempfile.mkdtemp(prefix="reportgen-bench-"))
    env = dict(os.environ)
    env.pop("REPORTGEN_CACHE_DIR", None)
    results: dict[str, Any] = {
        "machine": machine(),
        "quick": args.quick,
        "rounds": rounds,
        "small": small,
        "large": large,
    }
    started = time.perf_counter()
    try:
        sets = {n: make_inputs(work / f"in{n}", n) for n in (small, large)}
        if "help" not in skip:
            results["help"] = bench_help(max(3, rounds))
            print("help", results["help"], flush=True)
        if "compare" not in skip:
            large_rounds = args.large_rounds or min(rounds, 2)
            results["large_rounds"] = large_rounds
            results["compare"] = compare(
                work, sets, rounds, large_rounds, args.notebook_large_rounds, env
            )
        if "jobs" not in skip:
            results["jobs"] = jobs_check(work, sets[small], min(rounds, 2), env)
        if "cache" not in skip:
            results["cache"] = cache_check(work, sets[small], min(rounds, 2), env)
        if "scale" not in skip:
            results["scale"] = scale_check(
                work, 20 if not args.quick else 10, 200 if not args.quick else 60, env
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["bench_seconds"] = round(time.perf_counter() - started, 1)
    results["machine"]["load_after"] = os.getloadavg()[0]
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    args.out.write_text(render(results))
    print(render(results))


def compare(
    work: Path,
    sets: dict[int, Path],
    rounds: int,
    large_rounds: int,
    nb_large_rounds: int,
    env: dict[str, str],
) -> dict[str, Any]:
    runs: dict[str, list[dict[str, float]]] = {}

    def record(key: str, cmd: list[str]) -> dict[str, float]:
        result = run_timed(cmd, env)
        runs.setdefault(key, []).append(result)
        print(key, {k: round(v, 2) for k, v in result.items()}, flush=True)
        return result

    layers_arg = ",".join(LAYERS)
    ratios_small: list[float] = []
    maps = {}
    for n, folder in sets.items():
        for r in range(rounds if n == min(sets) else large_rounds):
            out = work / f"report{n}"
            rg = record(f"reportgen_{n}", reportgen_cmd(folder, out, LAYERS, "--no-cache"))
            maps[n] = count_maps(out)
            shutil.rmtree(out)
            record(
                f"floor_{n}", [PYTHON, str(HERE / "floor.py"), str(folder), "--layers", layers_arg]
            )
            if n == min(sets) or r < nb_large_rounds:
                nb_out = work / f"nb{n}"
                nb = record(
                    f"notebook_{n}",
                    [
                        PYTHON,
                        str(HERE / "notebook_style.py"),
                        str(folder),
                        str(nb_out),
                        "--layers",
                        layers_arg,
                    ],
                )
                shutil.rmtree(nb_out)
                if n == min(sets):
                    ratios_small.append(nb["seconds"] / rg["seconds"])
    small, large = sorted(sets)
    return summarise(runs, maps, ratios_small, small, large)


def summarise(
    runs: dict[str, list[dict[str, float]]],
    maps: dict[int, int],
    ratios_small: list[float],
    small: int,
    large: int,
) -> dict[str, Any]:
    """Medians, best-of and CPU-time views of the interleaved runs."""
    med = {key: median([r["seconds"] for r in value]) for key, value in runs.items()}
    best = {key: min(r["seconds"] for r in value) for key, value in runs.items()}
    cpu = {key: median([r["cpu_seconds"] for r in value]) for key, value in runs.items()}
    peak = {key: max(r["peak_mib"] for r in value) for key, value in runs.items()}
    span = large - small
    names = ("reportgen", "notebook", "floor")

    def marginal(table: dict[str, float]) -> dict[str, float]:
        return {n: (table[f"{n}_{large}"] - table[f"{n}_{small}"]) / span for n in names}

    m_med, m_best, m_cpu = marginal(med), marginal(best), marginal(cpu)

    def per_round(n: int) -> list[float]:
        """reportgen / floor of each round: the two ran back to back, so load that
        changes between rounds falls on both."""
        pairs = zip(runs[f"reportgen_{n}"], runs[f"floor_{n}"])
        return [r["seconds"] / f["seconds"] for r, f in pairs]

    return {
        "median_seconds": med,
        "best_seconds": best,
        "median_cpu_seconds": cpu,
        "peak_mib": peak,
        "runs": runs,
        "maps": maps,
        "ratios_small": ratios_small,
        "whole_ratio_small_median": median(ratios_small),
        "marginal_s_per_image": m_med,
        "marginal_best_s_per_image": m_best,
        "marginal_cpu_s_per_image": m_cpu,
        "marginal_speedup": m_med["notebook"] / m_med["reportgen"],
        "marginal_speedup_best": m_best["notebook"] / m_best["reportgen"],
        "marginal_speedup_cpu": m_cpu["notebook"] / m_cpu["reportgen"],
        "floor_ratio_whole_small": med[f"reportgen_{small}"] / med[f"floor_{small}"],
        "floor_ratio_whole_large": med[f"reportgen_{large}"] / med[f"floor_{large}"],
        "floor_ratio_whole_large_best": best[f"reportgen_{large}"] / best[f"floor_{large}"],
        "floor_ratio_marginal": m_med["reportgen"] / m_med["floor"],
        "floor_ratios_small": per_round(small),
        "floor_ratios_large": per_round(large),
        "floor_ratio_cpu_large": cpu[f"reportgen_{large}"] / cpu[f"floor_{large}"],
        "maps_per_second_large": maps[large] / med[f"reportgen_{large}"],
        "maps_per_second_marginal": (maps[large] - maps[small]) / span / m_best["reportgen"],
    }


def jobs_check(work: Path, folder: Path, rounds: int, env: dict[str, str]) -> dict[str, Any]:
    times: dict[str, list[float]] = {"jobs1": [], "default": []}
    for _ in range(rounds):
        for key, extra in (("jobs1", ["--jobs", "1"]), ("default", [])):
            out = work / f"jobs-{key}"
            times[key].append(
                run_timed(reportgen_cmd(folder, out, LAYERS, "--no-cache", *extra), env)["seconds"]
            )
            shutil.rmtree(out)
    result = {key: median(value) for key, value in times.items()}
    print("jobs", result, flush=True)
    return result


def cache_check(work: Path, folder: Path, rounds: int, env: dict[str, str]) -> dict[str, Any]:
    first: list[float] = []
    again: list[float] = []
    added: list[float] = []
    extra_image = make_inputs(work / "extra", len(list(folder.iterdir())) + 1)
    last = sorted(extra_image.iterdir())[-1]
    for r in range(rounds):
        cache = work / f"cache{r}"
        images = work / f"cache-in{r}"
        shutil.copytree(folder, images)
        out = work / f"cache-report{r}"
        cmd = reportgen_cmd(images, out, LAYERS, "--cache-dir", str(cache))
        first.append(run_timed(cmd, env)["seconds"])
        again.append(run_timed(cmd, env)["seconds"])
        shutil.copy(last, images / "zz-added.jpg")
        added.append(run_timed(cmd, env)["seconds"])
        shutil.rmtree(out)
        shutil.rmtree(cache)
        shutil.rmtree(images)
    result = {"first_s": median(first), "unchanged_s": median(again), "one_added_s": median(added)}
    result["unchanged_speedup"] = result["first_s"] / result["unchanged_s"]
    print("cache", result, flush=True)
    return result


def scale_check(work: Path, few: int, many: int, env: dict[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "layers": ["features.0"],
        "image_px": 96,
        "batch_size": 8,
        "options": "--no-gradcam",
    }
    for n in (few, many):
        folder = make_inputs(work / f"scale{n}", n, size=96)
        out = work / f"scale-report{n}"
        timed = run_timed(
            reportgen_cmd(
                folder, out, ["features.0"], "--no-cache", "--batch-size", "8", "--no-gradcam"
            ),
            env,
        )
        result[str(n)] = {"seconds": timed["seconds"], "peak_mib": timed["peak_mib"]}
        shutil.rmtree(out)
    result["few"], result["many"] = few, many
    result["peak_ratio"] = result[str(many)]["peak_mib"] / result[str(few)]["peak_mib"]
    print("scale", result, flush=True)
    return result


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        "# reportgen benchmark results",
        "",
        f"Written by `benchmarks/bench.py`{' --quick' if results['quick'] else ''} "
        f"in {results['bench_seconds']} s.",
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['ram_gib']} GiB RAM, CPU only; "
        f"Python {m['python']}, torch {m['torch']} ({m['torch_threads']} threads), "
        f"torchvision {m['torchvision']}; {m['os']}. Load average before/after: "
        f"{m['load_before']:.1f}/{m.get('load_after', 0):.1f}.",
        "",
        "The machine was shared with other jobs while this ran, so single timings are noisy: "
        f"the pipelines alternate ({results['rounds']} rounds on the small set, "
        f"{results.get('large_rounds', 1)} on the large one, the notebook-style pipeline once "
        "on the large one: it takes minutes), and the tables give medians.",
        "",
    ]
    small, large = results["small"], results["large"]
    c = results.get("compare")
    if c:
        med, best = c["median_seconds"], c["best_seconds"]
        peak = c["peak_mib"]
        marg, mbest, mcpu = (
            c["marginal_s_per_image"],
            c["marginal_best_s_per_image"],
            c["marginal_cpu_s_per_image"],
        )
        maps = {int(k): v for k, v in c["maps"].items()}
        lines += [
            f"## Full report against the notebook-style pipeline (AlexNet {','.join(LAYERS)})",
            "",
            "Wall-clock seconds of whole processes: median (best) of the interleaved runs; "
            "CPU seconds (user + system, all threads and processes) as a load-independent view. "
            f"Marginal = (T({large}) - T({small})) / {large - small}.",
            "",
            f"| pipeline | {small} images (s) | {large} images (s) | marginal s/image, median (best) | marginal CPU s/image | peak MiB ({large}) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for key, label in (
            ("notebook", "notebook-style (matplotlib figures)"),
            ("reportgen", "`reportgen run` (full report)"),
            ("floor", "floor (forward passes + encodings only)"),
        ):
            lines.append(
                f"| {label} | {med[f'{key}_{small}']:.1f} ({best[f'{key}_{small}']:.1f}) | "
                f"{med[f'{key}_{large}']:.1f} ({best[f'{key}_{large}']:.1f}) | "
                f"{marg[key]:.3f} ({mbest[key]:.3f}) | {mcpu[key]:.3f} | "
                f"{peak.get(f'{key}_{large}', 0):.0f} |"
            )
        lines += [
            "",
            "| measure | value | target |",
            "|---|---:|---|",
            f"| marginal per-image speed-up over notebook-style, medians | **{c['marginal_speedup']:.1f}x** | >= 20x |",
            f"| same, best-of runs | {c['marginal_speedup_best']:.1f}x | |",
            f"| same, CPU seconds | {c['marginal_speedup_cpu']:.1f}x | |",
            f"| whole process, {small} images: notebook-style / reportgen (median of per-round ratios) | "
            f"{c['whole_ratio_small_median']:.1f}x | |",
            f"| whole report / floor, {small} images | **{c['floor_ratio_whole_small']:.2f}x** | <= 2x |",
            f"| whole report / floor, {large} images | **{c['floor_ratio_whole_large']:.2f}x** | <= 2x |",
            f"| same, each round (report and floor back to back), {small} / {large} images | "
            f"{', '.join(f'{r:.2f}' for r in c['floor_ratios_small'])} / "
            f"{', '.join(f'{r:.2f}' for r in c['floor_ratios_large'])} | <= 2x |",
            f"| same in CPU seconds, {large} images | {c['floor_ratio_cpu_large']:.2f}x | |",
            f"| marginal report / marginal floor (medians) | {c['floor_ratio_marginal']:.2f}x | |",
            f"| maps per second ({large} images, whole process, median) | {c['maps_per_second_large']:.0f} | |",
            f"| maps per second (marginal, best-of) | {c['maps_per_second_marginal']:.0f} | |",
            f"| seconds per image (marginal, median / best-of) | {marg['reportgen']:.3f} / {mbest['reportgen']:.3f} | |",
            f"| maps in the {large}-image report | {maps[large]} | |",
            "",
        ]
    h = results.get("help")
    if h:
        lines += [
            "## Start-up",
            "",
            f"`reportgen --help`: {h['help_s']:.2f} s; `reportgen run --help`: {h['run_help_s']:.2f} s "
            "(target < 0.5 s). `python -X importtime -m reportgen run --help` imports torch: "
            f"{'yes' if h['torch_imported'] else 'no'}, torchvision: "
            f"{'yes' if h['torchvision_imported'] else 'no'}, matplotlib: "
            f"{'yes' if h['matplotlib_imported'] else 'no'}.",
            "",
        ]
    j = results.get("jobs")
    if j:
        lines += [
            "## Both cores",
            "",
            f"{small} images, full report: `--jobs 1` {j['jobs1']:.2f} s, default (all cores) "
            f"{j['default']:.2f} s.",
            "",
        ]
    k = results.get("cache")
    if k:
        lines += [
            "## Incremental re-runs (cache)",
            "",
            "| run | seconds |",
            "|---|---:|",
            f"| first ({small} images, empty cache) | {k['first_s']:.2f} |",
            f"| unchanged re-run | {k['unchanged_s']:.2f} |",
            f"| one input added | {k['one_added_s']:.2f} |",
            "",
            f"Unchanged re-run: **{k['unchanged_speedup']:.1f}x** faster than the first (target >= 5x).",
            "",
        ]
    s = results.get("scale")
    if s:
        few, many = s["few"], s["many"]
        lines += [
            "## Scale: peak memory",
            "",
            f"Layer {','.join(s['layers'])}, {s['image_px']}x{s['image_px']} pictures, "
            f"--batch-size {s['batch_size']}, {s.get('options', '')}.",
            "",
            "| inputs | seconds | peak MiB |",
            "|---:|---:|---:|",
            f"| {few} | {s[str(few)]['seconds']:.2f} | {s[str(few)]['peak_mib']:.0f} |",
            f"| {many} | {s[str(many)]['seconds']:.2f} | {s[str(many)]['peak_mib']:.0f} |",
            "",
            f"Peak memory ratio {many}/{few}: **{s['peak_ratio']:.2f}x** (target <= 1.3x).",
            "",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
