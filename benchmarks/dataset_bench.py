"""Reports of many images (issue 13): what a default run writes and costs as inputs grow.

For each size N (default 64 and 512) it makes N distinct images, runs
``reportgen run IMAGES -m resnet18 --weights none --no-cache`` (default settings: every
Conv2d, 20 layers, 4,800 channels) in a fresh process, and measures wall time, peak
memory (the child's max RSS), the report's bytes, files and HTML, the heaviest page of
each kind and how long that page takes to reach DOMContentLoaded in headless Chromium.
It also times the floor: what a bare script must do per image (decode, preprocess, the
forward pass with every selected layer copied, per-channel statistics, top-k
bookkeeping, a thumbnail), on the same images.

Usage: python benchmarks/dataset_bench.py [--sizes 64,512] [--out benchmarks/dataset.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

KINDS = {
    "index": lambda p: p == "index.html",
    "gallery": lambda p: "/gallery/" in p or p.startswith("gallery/"),
    "model": lambda p: p.count("/") == 2 and p.endswith("/index.html"),
    "layer": lambda p: "/layers/" in p and p.endswith("/index.html") and "/inputs/" not in p,
    "channel": lambda p: "/layers/" in p and re.fullmatch(r"c\d{4,}\.html", p.rsplit("/", 1)[1]),
    "input": lambda p: "/inputs/" in p and "/layers/" not in p,
    "input x layer": lambda p: "/layers/" in p and "/inputs/" in p,
    "layer comparison": lambda p: p.endswith("/compare.html"),
}


def make_images(folder: Path, count: int, size: int = 256) -> None:
    """Distinct smooth random pictures (blurred noise at a few scales), as JPEGs."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        coarse = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        base = Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC)
        detail = rng.integers(0, 64, size=(size, size, 3), dtype=np.uint8)
        pixels = np.clip(np.asarray(base, np.int16) + detail - 32, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i:05d}.jpg", quality=90)


def run_report(images: Path, out: Path, extra: list[str]) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "reportgen", "run", str(images),
        "-m", "resnet18", "--weights", "none", "--no-cache", "-o", str(out), *extra,
    ]  # fmt: skip
    # A wrapper process reports the peak memory of this run alone.
    wrapper = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True,"
        " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL);"
        " u = resource.getrusage(resource.RUSAGE_CHILDREN);"
        " print(u.ru_maxrss, u.ru_utime + u.ru_stime)"
    )
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", wrapper, *command], check=True, capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    peak_kb, cpu = done.stdout.split()
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(float(cpu), 2),
        "peak_rss_mb": round(int(peak_kb) / 1024, 1),
    }


def report_sizes(out: Path) -> dict[str, Any]:
    files = [p for p in out.rglob("*") if p.is_file()]
    pages = [p for p in files if p.suffix == ".html"]
    heaviest: dict[str, tuple[int, str]] = {}
    for page in pages:
        rel = page.relative_to(out).as_posix()
        size = page.stat().st_size
        for kind, test in KINDS.items():
            if test(rel) and size > heaviest.get(kind, (0, ""))[0]:
                heaviest[kind] = (size, rel)
    return {
        "bytes": sum(p.stat().st_size for p in files),
        "files": len(files),
        "html_bytes": sum(p.stat().st_size for p in pages),
        "pages": len(pages),
        "heaviest": {k: {"bytes": v[0], "page": v[1]} for k, v in sorted(heaviest.items())},
    }


def load_times(out: Path, pages: dict[str, dict[str, Any]]) -> dict[str, float]:
    """DOMContentLoaded of each page in headless Chromium (file://), in seconds."""
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"]  # fmt: skip
    times: dict[str, float] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=args
        )
        page = browser.new_page()
        for kind, entry in pages.items():
            url = (out / entry["page"]).resolve().as_uri()
            page.goto(url, wait_until="domcontentloaded")
            times[kind] = round(
                page.evaluate(
                    "() => { const t = performance.getEntriesByType('navigation')[0];"
                    " return t.domContentLoadedEventEnd / 1000; }"
                ),
                3,
            )
        browser.close()
    return times


def floor_seconds(images: Path) -> tuple[float, float]:
    """Wall and CPU seconds of the bare per-image work on every image (see the module
    docstring); the model's construction is not counted."""
    code = r"""
import sys, time, torch, numpy as np
from pathlib import Path
from PIL import Image
from torchvision import transforms
from torchvision.models import get_model
torch.manual_seed(0)
model = get_model("resnet18", weights=None).eval()
convs = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
out = {}
mods = dict(model.named_modules())
for n in convs:
    mods[n].register_forward_hook(lambda m, i, o, n=n: out.__setitem__(n, o.detach().clone()))
view = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224)])
norm = transforms.Compose([transforms.ToTensor(),
    transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
files = sorted(Path(sys.argv[1]).iterdir())
best = {n: np.full((9, mods[n].out_channels), -np.inf) for n in convs}
import resource
_u = resource.getrusage(resource.RUSAGE_SELF)
cpu_at_start = _u.ru_utime + _u.ru_stime
started = time.perf_counter()
for start in range(0, len(files), 8):
    batch, views = [], []
    for f in files[start:start + 8]:
        img = Image.open(f).convert("RGB")
        img.copy().thumbnail((160, 160))
        v = view(img); views.append(v); batch.append(norm(v))
    with torch.inference_mode():
        model(torch.stack(batch))
    for n in convs:
        flat = out[n].flatten(2)
        stats = [flat.mean(2), flat.amax(2), flat.amin(2), flat.std(2), (flat <= 0).float().mean(2)]
        merged = np.concatenate([best[n], stats[1].numpy()], axis=0)
        best[n] = -np.partition(-merged, 8, axis=0)[:9]  # top 9 per channel
import resource
usage = resource.getrusage(resource.RUSAGE_SELF)
print(time.perf_counter() - started, usage.ru_utime + usage.ru_stime - cpu_at_start)
"""
    result = subprocess.run(
        [sys.executable, "-c", code, str(images)], check=True, capture_output=True, text=True
    )
    wall, cpu = result.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64,512")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("dataset.json"))
    parser.add_argument("--keep", type=Path, help="keep the reports here")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="reportgen-dataset-"))
    results: dict[str, Any] = {"sizes": {}, "cores": os.cpu_count()}
    try:
        for n in sizes:
            images = work / f"images-{n}"
            make_images(images, n)
            out = work / f"report-{n}"
            measured = run_report(images, out, [])
            measured.update(report_sizes(out))
            measured["load_s"] = load_times(out, measured["heaviest"])
            floor_wall, floor_cpu = floor_seconds(images)
            measured["floor_s"], measured["floor_cpu_s"] = round(floor_wall, 2), round(floor_cpu, 2)
            results["sizes"][str(n)] = measured
            print(json.dumps({n: measured}, indent=1), flush=True)
            if args.keep:
                shutil.copytree(out, args.keep / f"report-{n}", dirs_exist_ok=True)
            shutil.rmtree(out)
        if len(sizes) >= 2:
            small, big = (results["sizes"][str(s)] for s in (sizes[0], sizes[-1]))
            added = sizes[-1] - sizes[0]
            results["per_added_input"] = {
                "bytes": round((big["bytes"] - small["bytes"]) / added),
                "files": round((big["files"] - small["files"]) / added, 2),
                "seconds": round((big["wall_s"] - small["wall_s"]) / added, 4),
                "cpu_seconds": round((big["cpu_s"] - small["cpu_s"]) / added, 4),
                "floor_seconds": round((big["floor_s"] - small["floor_s"]) / added, 4),
                "floor_cpu_seconds": round((big["floor_cpu_s"] - small["floor_cpu_s"]) / added, 4),
            }
            marginal = results["per_added_input"]
            results["marginal_vs_floor"] = round(marginal["seconds"] / marginal["floor_seconds"], 2)
            results["marginal_cpu_vs_floor"] = round(
                marginal["cpu_seconds"] / marginal["floor_cpu_seconds"], 2
            )
            results["peak_memory_ratio"] = round(big["peak_rss_mb"] / small["peak_rss_mb"], 3)
        args.out.write_text(json.dumps(results, indent=1) + "\n")
        print(json.dumps({k: v for k, v in results.items() if k != "sizes"}, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
