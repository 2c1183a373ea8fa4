"""Seconds per channel of feature visualisation (reportgen --feature-vis).

    python benchmarks/featurevis_bench.py                      # MobileNetV2, CPU
    python benchmarks/featurevis_bench.py --device cuda --steps 256 --channels 16
    python benchmarks/featurevis_bench.py --weights-dir DIR    # real weights (else random)

Prints one line per run, e.g.

    featurevis mobilenet_v2 features.6.conv.0.0: 8 channels, 64 steps, 128 px, cpu
    (1 threads): 24.1 s, 3.012 s per channel (2.987 s of CPU time per channel)

and, with --json, the same numbers as JSON. ``benchmark()`` is the function a larger
benchmark can call. Weights do not change the cost, so random weights are fine here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def benchmark(
    model: str = "mobilenet_v2",
    layer: str = "features.6.conv.0.0",
    channels: int = 8,
    steps: int = 64,
    size: int = 128,
    device: str = "cpu",
    weights_dir: str | None = None,
    negative: bool = False,
    threads: int | None = None,
) -> dict[str, Any]:
    """Time ``visualise`` for the first ``channels`` channels of ``layer``."""
    import torch
    from torchvision.models import get_model

    from reportgen.nn.featurevis import visualise
    from reportgen.nn.models import IMAGENET_MEAN, IMAGENET_STD

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    module = get_model(model, weights=None)
    if weights_dir:
        from reportgen.nn.weights import load_state_dict

        files = sorted(Path(weights_dir).glob(f"{model}-*.pth"))
        if files:
            module.load_state_dict(load_state_dict(files[0]))
    module.eval().to(device)
    kwargs: dict[str, Any] = {
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "size": size,
        "seed": 0,
        "device": device,
        "negative": negative,
    }
    visualise(module, layer, list(range(min(channels, 2))), steps=2, **kwargs)  # warm-up
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
    started, cpu_started = time.perf_counter(), time.process_time()
    results = visualise(module, layer, list(range(channels)), steps=steps, **kwargs)
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started  # all threads; robust to a busy machine
    positive = [r for r in results if r.sign > 0]
    return {
        "model": model,
        "layer": layer,
        "channels": channels,
        "steps": steps,
        "size": size,
        "negative": negative,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "seconds": round(seconds, 3),
        "seconds_per_channel": round(seconds / channels, 4),
        "seconds_per_channel_per_step": round(seconds / channels / steps, 5),
        "cpu_seconds_per_channel": round(cpu_seconds / channels, 4),
        "mean_activation": round(sum(r.activation for r in positive) / len(positive), 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--layer", default="features.6.conv.0.0")
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--weights-dir")
    parser.add_argument("--negative", action="store_true")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = benchmark(
        args.model,
        args.layer,
        args.channels,
        args.steps,
        args.size,
        args.device,
        args.weights_dir,
        args.negative,
        args.threads,
    )
    print(
        f"featurevis {result['model']} {result['layer']}: {result['channels']} channels, "
        f"{result['steps']} steps, {result['size']} px, {result['device']} "
        f"({result['threads']} threads): {result['seconds']:.1f} s, "
        f"{result['seconds_per_channel']:.3f} s per channel "
        f"({result['cpu_seconds_per_channel']:.3f} s of CPU time per channel)"
    )
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
