"""The seed notebook's approach, as a script: the benchmark's baseline.

For every image it does what running the notebook's cells on that image does
(../shared/seed, "CNN Activation Analyzer"): a hooked analyzer per layer with its
own forward pass, per-neuron statistics in a Python loop, and one matplotlib
figure per cell saved as PNG:

1. top-12 activation maps of the target layer (with colorbars), under the image;
2. overlays of the top-6 maps on the image;
3. a layer comparison: top-4 maps of each of four layers, one analyzer each;
4. the first 16 filters of the first layer;
5. filters beside maps: the image, then the top-6 filters and their maps.

Usage: python benchmarks/notebook_style.py IMAGES_DIR OUT_DIR [--layers a,b,c,d]
Only torch, torchvision, numpy, Pillow and matplotlib; no reportgen code.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision import transforms  # noqa: E402
from torchvision.models import get_model  # noqa: E402

SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class SingleImageAnalyzer:
    """One forward hook on one layer, as in the seed's ``src.utils.image_analyzer``."""

    def __init__(self, model: torch.nn.Module, target_layer: str, device: torch.device) -> None:
        self.model = model
        self.device = device
        self.actual_layer_name = target_layer
        self.activations: torch.Tensor | None = None
        module = dict(model.named_modules())[target_layer]
        self.handle = module.register_forward_hook(self._hook)
        self.transform = transforms.Compose(
            [
                transforms.Resize(256),
                transforms.CenterCrop(224),
                transforms.ToTensor(),
                transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
            ]
        )

    def _hook(self, _module: Any, _inputs: Any, output: torch.Tensor) -> None:
        self.activations = output.detach().clone()

    def load_image(self, path: Path) -> tuple[torch.Tensor, np.ndarray]:
        image = Image.open(path).convert("RGB")
        tensor = self.transform(image).unsqueeze(0).to(self.device)
        vis = np.asarray(transforms.CenterCrop(224)(transforms.Resize(256)(image)))
        return tensor, vis

    def analyze_image(self, tensor: torch.Tensor) -> dict[str, Any]:
        with torch.no_grad():
            output = self.model(tensor)
        assert self.activations is not None
        return {"activations": self.activations, "output": output}

    @staticmethod
    def get_neuron_statistics(activations: torch.Tensor) -> list[dict[str, float]]:
        stats = []
        for index in range(activations.shape[1]):
            act = activations[0, index]
            stats.append(
                {
                    "neuron_idx": index,
                    "mean": act.mean().item(),
                    "max": act.max().item(),
                    "min": act.min().item(),
                    "std": act.std().item(),
                    "sparsity": (act <= 0).float().mean().item(),
                }
            )
        return stats

    @staticmethod
    def get_top_neurons(
        stats: list[dict[str, float]], top_k: int, criterion: str = "mean"
    ) -> list[int]:
        ranked = sorted(stats, key=lambda s: s[criterion], reverse=True)
        return [int(s["neuron_idx"]) for s in ranked[:top_k]]

    @staticmethod
    def get_activation_overlay(
        image_vis: np.ndarray, activations: torch.Tensor, neuron_idx: int, alpha: float = 0.6
    ) -> np.ndarray:
        act = activations[0, neuron_idx].cpu().numpy()
        span = act.max() - act.min()
        act = (act - act.min()) / span if span > 0 else np.zeros_like(act)
        height, width = image_vis.shape[:2]
        resized = np.asarray(
            Image.fromarray(act.astype(np.float32), mode="F").resize(
                (width, height), Image.BILINEAR
            )
        )
        heat = plt.get_cmap("jet")(resized)[:, :, :3]
        return np.clip((1 - alpha) * image_vis / 255.0 + alpha * heat, 0, 1)

    def cleanup(self) -> None:
        self.handle.remove()


def _normalise(array: np.ndarray) -> np.ndarray:
    span = array.max() - array.min()
    return (array - array.min()) / span if span > 0 else array


def _save(fig: Any, path: Path) -> None:
    fig.savefig(path, format="png")
    plt.close(fig)


def analyse_image(
    model: torch.nn.Module, device: torch.device, path: Path, layers: list[str], out: Path
) -> int:
    """All the notebook's cells on one image; returns the number of figures written."""
    stem = path.stem
    target = layers[0]
    analyzer = SingleImageAnalyzer(model, target, device)
    tensor, vis = analyzer.load_image(path)
    activations = analyzer.analyze_image(tensor)["activations"]
    stats = analyzer.get_neuron_statistics(activations)
    selected = analyzer.get_top_neurons(stats, 12, "mean")
    analyzer.get_top_neurons(stats, 10, "max")

    # Cell 4: the selected maps under the image.
    fig = plt.figure(figsize=(20, 12))
    grid = fig.add_gridspec(4, 4, hspace=0.35, wspace=0.3)
    fig.suptitle(f"Activation maps - {target}\nTop 12 by mean", fontsize=14, fontweight="bold")
    ax = fig.add_subplot(grid[0, :])
    ax.imshow(vis)
    ax.set_title("Original image")
    ax.axis("off")
    for index, neuron in enumerate(selected):
        ax = fig.add_subplot(grid[index // 4 + 1, index % 4])
        im = ax.imshow(
            _normalise(activations[0, neuron].cpu().numpy()), cmap="jet", interpolation="bilinear"
        )
        s = stats[neuron]
        ax.set_title(f"Neuron {neuron}\nmean={s['mean']:.3f}, max={s['max']:.3f}", fontsize=9)
        ax.axis("off")
        cbar = plt.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        cbar.ax.tick_params(labelsize=7)
    _save(fig, out / f"{stem}-1-maps.png")

    # Cell 5: overlays of the top 6.
    fig, axes = plt.subplots(2, 3, figsize=(15, 10))
    for ax, neuron in zip(axes.flatten(), analyzer.get_top_neurons(stats, 6)):
        ax.imshow(analyzer.get_activation_overlay(vis, activations, neuron, alpha=0.6))
        s = stats[neuron]
        ax.set_title(f"Neuron {neuron}\nmean={s['mean']:.3f}, max={s['max']:.3f}", fontsize=10)
        ax.axis("off")
    fig.suptitle(f"Activation overlays - {target}", fontsize=14)
    fig.tight_layout()
    _save(fig, out / f"{stem}-2-overlays.png")

    # Cell 6: compare layers, one analyzer (and forward pass) per layer.
    fig, axes = plt.subplots(
        len(layers), 5, figsize=(20, 4 * len(layers)), gridspec_kw={"width_ratios": [1, 4, 4, 4, 4]}
    )
    for row, name in enumerate(layers):
        temp = SingleImageAnalyzer(model, name, device)
        acts = temp.analyze_image(tensor)["activations"]
        top4 = temp.get_top_neurons(temp.get_neuron_statistics(acts), 4)
        axes[row, 0].text(
            0.5,
            0.5,
            f"{name}\n\nShape:\n{acts.shape[1]} channels\n{acts.shape[2]}x{acts.shape[3]} px",
            ha="center",
            va="center",
            fontsize=11,
            bbox={"boxstyle": "round", "facecolor": "lightblue"},
        )
        axes[row, 0].axis("off")
        for col, neuron in enumerate(top4):
            act = acts[0, neuron].cpu().numpy()
            im = axes[row, col + 1].imshow(_normalise(act), cmap="jet")
            axes[row, col + 1].set_title(f"Neuron {neuron}\nmean={act.mean():.2f}", fontsize=9)
            axes[row, col + 1].axis("off")
            plt.colorbar(im, ax=axes[row, col + 1], fraction=0.046, pad=0.04)
        temp.cleanup()
    fig.suptitle("Activations across layers\n(top 4 per layer)", fontsize=16)
    fig.tight_layout()
    _save(fig, out / f"{stem}-3-compare.png")

    # Filters cell: the first 16 filters of the first layer.
    filters = dict(model.named_modules())[layers[0]].weight.data.cpu()
    fig, axes = plt.subplots(4, 4, figsize=(12, 12))
    for index, ax in enumerate(axes.flatten()[: min(16, filters.shape[0])]):
        if filters.shape[1] == 3:
            ax.imshow(_normalise(filters[index].permute(1, 2, 0).numpy()), interpolation="nearest")
        else:
            ax.imshow(
                _normalise(filters[index].mean(dim=0).numpy()), cmap="gray", interpolation="nearest"
            )
        ax.set_title(f"Filter {index}", fontsize=9)
        ax.axis("off")
    fig.suptitle(f"Filters of {layers[0]}", fontsize=13)
    fig.tight_layout()
    _save(fig, out / f"{stem}-4-filters.png")

    # Side-by-side cell: a fresh analyzer on the first layer, filters above maps.
    temp = SingleImageAnalyzer(model, layers[0], device)
    tensor2, vis2 = temp.load_image(path)
    acts = temp.analyze_image(tensor2)["activations"]
    top6 = temp.get_top_neurons(temp.get_neuron_statistics(acts), 6)
    fig = plt.figure(figsize=(18, 10))
    grid = fig.add_gridspec(3, 6, hspace=0.4, wspace=0.3)
    fig.suptitle(f"Filters vs activation maps - {layers[0]}", fontsize=14)
    ax = fig.add_subplot(grid[0, :])
    ax.imshow(vis2)
    ax.axis("off")
    for col, neuron in enumerate(top6):
        ax = fig.add_subplot(grid[1, col])
        kernel = filters[neuron]
        if kernel.shape[0] == 3:
            ax.imshow(_normalise(kernel.permute(1, 2, 0).numpy()), interpolation="nearest")
        else:
            ax.imshow(_normalise(kernel.mean(dim=0).numpy()), cmap="gray", interpolation="nearest")
        ax.set_title(f"FILTER #{neuron}", fontsize=8)
        ax.axis("off")
        ax = fig.add_subplot(grid[2, col])
        ax.imshow(_normalise(acts[0, neuron].cpu().numpy()), cmap="jet", interpolation="bilinear")
        ax.set_title(f"ACTIVATION #{neuron}", fontsize=8)
        ax.axis("off")
    _save(fig, out / f"{stem}-5-filters-vs-maps.png")
    temp.cleanup()
    analyzer.cleanup()
    return 5


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--model", default="alexnet")
    parser.add_argument("--layers", default="features.0,features.3,features.6,features.8")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    torch.manual_seed(0)
    device = torch.device("cpu")
    model = get_model(args.model, weights=None).eval().to(device)
    layers = args.layers.split(",")
    args.out.mkdir(parents=True, exist_ok=True)
    images = sorted(p for p in args.images.iterdir() if p.suffix.lower() in SUFFIXES)
    figures = sum(analyse_image(model, device, path, layers, args.out) for path in images)
    print(f"{len(images)} images, {figures} figures in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
