"""The floor: the report's forward passes and image encodings on their own.

Same model, layers, inputs and batches as ``reportgen run``; the same encoders
(reportgen.imaging.pictures) for every map (one sheet per layer and input, as a folder report
writes them), the network views, thumbnails and filters, on one thread per core.
Overlays are composed by the browser, so the report encodes none (``--overlays`` adds
the JPEGs of the top-12 channels per layer and input that ``--overlay-files`` writes).
Nothing else: no Grad-CAM, no statistics dictionaries, no pages, no manifest, no files
(the bytes are dropped).

Usage: python benchmarks/floor.py IMAGES_DIR [--layers a,b] [--batch-size 8] [--top-k 12]
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision import transforms
from torchvision.models import get_model

from reportgen.imaging import pictures as imaging
from reportgen.imaging.sheets import SheetGrid

SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", type=Path)
    parser.add_argument("--model", default="alexnet")
    parser.add_argument("--layers", default="features.0,features.3,features.6,features.8")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--top-k", type=int, default=12)
    parser.add_argument("--overlays", action="store_true", help="also the overlay JPEGs")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    torch.manual_seed(0)
    model = get_model(args.model, weights=None).eval()
    layers = args.layers.split(",")
    modules = dict(model.named_modules())
    outputs: dict[str, torch.Tensor] = {}

    def hook(name: str) -> Any:
        def record(_m: Any, _i: Any, out: torch.Tensor) -> None:
            outputs[name] = out.detach().to("cpu", torch.float32, copy=True)

        return record

    for name in layers:
        modules[name].register_forward_hook(hook(name))
    view_of = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224)])
    to_tensor = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])]
    )
    table = imaging.colormap_table("jet")
    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1)
    futures = []

    def maps(values: np.ndarray) -> int:
        lows, highs = values.min(axis=(1, 2)), values.max(axis=(1, 2))
        grid = SheetGrid.for_layer(*values.shape)
        return len(imaging.map_sheet_png(values, lows, highs, table, grid))

    for name in layers:
        weight = modules[name].weight.detach().numpy()
        for kernel in weight:
            if kernel.shape[0] == 3:
                futures.append(pool.submit(imaging.filter_rgb_png, kernel))
                futures.append(pool.submit(imaging.filter_channel_pngs, kernel))
            else:
                futures.append(pool.submit(imaging.filter_mean_png, kernel))
    paths = sorted(p for p in args.images.iterdir() if p.suffix.lower() in SUFFIXES)
    count = 0
    for start in range(0, len(paths), args.batch_size):
        images = [Image.open(p).convert("RGB") for p in paths[start : start + args.batch_size]]
        views = [view_of(img) for img in images]
        for image, view in zip(images, views):
            futures.append(pool.submit(imaging.thumbnail_jpeg, image))
            futures.append(pool.submit(imaging.view_jpeg, view))
        with torch.inference_mode():
            model(torch.stack([to_tensor(v) for v in views]))
        arrays = [np.asarray(v, dtype=np.uint8) for v in views]
        for name in layers:
            values = outputs.pop(name).numpy()
            for b in range(values.shape[0]):
                futures.append(pool.submit(maps, values[b]))
                if not args.overlays:
                    continue
                means = values[b].reshape(values.shape[1], -1).mean(axis=1)
                for c in np.argsort(-means)[: args.top_k]:
                    v = values[b, c]
                    futures.append(
                        pool.submit(
                            imaging.overlay_jpeg,
                            arrays[b],
                            v,
                            float(v.min()),
                            float(v.max()),
                            table,
                            0.5,
                        )
                    )
                    count += 1
    for future in futures:
        future.result()
    pool.shutdown()
    print(f"{len(paths)} images, {count} overlays in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
