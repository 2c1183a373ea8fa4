"""The effective options of one ``reportgen run``, as one plain object.

The CLI builds it, the pipeline reads it, the manifest records it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

STRATEGIES = ("top_mean", "top_max", "mixed", "interesting", "manual")
SCALES = ("channel", "layer")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class RunSettings:
    inputs: tuple[str, ...]
    output: str
    models: tuple[str, ...] = ("resnet18",)
    weights: str = "imagenet"
    weights_dir: str | None = None
    layers: tuple[str, ...] = ()
    device: str = "auto"
    seed: int = 0
    batch_size: int = 8
    strategy: str = "top_mean"
    top_k: int = 12
    channels: tuple[int, ...] = ()
    interesting_mean: float = 0.3
    interesting_max: float = 2.0
    colormap: str = "jet"
    alpha: float = 0.5
    scale: str = "channel"
    offline: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def as_manifest(self) -> dict[str, Any]:
        """Every effective option, JSON-ready, in a stable order."""
        data = dataclasses.asdict(self)
        data.pop("extra")
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return dict(sorted(data.items()))
