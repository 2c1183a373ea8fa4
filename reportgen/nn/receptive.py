"""Receptive fields from the model's conv and pool geometry.

Walks the modules that run before a layer, in execution order, composing kernel
size, stride, padding and dilation. A module whose input does not have the size the
walk expects sits on a parallel branch (a ResNet downsample shortcut) and is skipped:
the main path sets the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from reportgen.nn.hooks import ForwardHooks


@dataclass(frozen=True)
class ReceptiveField:
    size: tuple[int, int]  # (height, width) in input pixels
    stride: tuple[int, int]  # input pixels between neighbouring map cells
    start: tuple[float, float]  # input coordinate (y, x) of the centre of map cell (0, 0)

    def box(self, y: int, x: int, view_size: tuple[int, int]) -> list[int]:
        """[x0, y0, x1, y1] of map cell (y, x)'s field, clipped to the view (width, height)."""
        width, height = view_size
        cy = self.start[0] + y * self.stride[0]
        cx = self.start[1] + x * self.stride[1]
        half_h, half_w = self.size[0] / 2.0, self.size[1] / 2.0
        # Clipped so the box always lies inside the view, at least one pixel: off the
        # walked path (a branch beside a strided one) the stride is only approximate and
        # a cell's centre can fall past the view's edge.
        x0 = min(max(0, int(round(cx - half_w + 0.5))), width - 1)
        y0 = min(max(0, int(round(cy - half_h + 0.5))), height - 1)
        x1 = min(width, int(round(cx + half_w + 0.5)))
        y1 = min(height, int(round(cy + half_h + 0.5)))
        return [x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)]


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        return (int(value[0]), int(value[-1]))
    return (int(value), int(value))


_GEOMETRIC = (torch.nn.Conv2d, torch.nn.MaxPool2d, torch.nn.AvgPool2d)


# Modules outside torch.nn that downsample with a kernel of their own: timm's
# anti-aliasing BlurPool2d (a fixed filter, stride 2) and TResNet's SpaceToDepth stem.
_GEOMETRIC_BY_NAME = ("BlurPool2d", "SpaceToDepth", "PixelUnshuffle")


def _is_geometric(sub: torch.nn.Module) -> bool:
    return isinstance(sub, _GEOMETRIC) or type(sub).__name__ in _GEOMETRIC_BY_NAME


Pair = tuple[int, int]


def _geometry(sub: torch.nn.Module, in_hw: Pair) -> tuple[Pair, Pair, Pair, Pair]:
    """(kernel, stride, dilation, leading padding) of a geometric module."""
    kind = type(sub).__name__
    if kind == "BlurPool2d":
        size, step = _pair(getattr(sub, "filt_size", 3)), _pair(getattr(sub, "stride", 2))
        padding = list(getattr(sub, "padding", [0, 0, 0, 0]))  # F.pad's (left, right, top, bottom)
        return size, step, (1, 1), (int(padding[2]), int(padding[0]))
    if kind in ("SpaceToDepth", "PixelUnshuffle"):
        block = _pair(getattr(sub, "bs", getattr(sub, "downscale_factor", 1)))
        return block, block, (1, 1), (0, 0)
    kernel = _pair(sub.kernel_size)
    stride = getattr(sub, "stride", None)
    step = _pair(stride if stride is not None else kernel)
    dil = _pair(getattr(sub, "dilation", 1))
    return kernel, step, dil, _leading_padding(sub, in_hw, kernel, step, dil)


def _leading_padding(
    sub: torch.nn.Module,
    in_hw: tuple[int, int],
    kernel: tuple[int, int],
    step: tuple[int, int],
    dil: tuple[int, int],
) -> tuple[int, int]:
    """Pixels padded before the first row and column. timm's ``Conv2dSame``,
    ``MaxPool2dSame`` and ``AvgPool2dSame`` pad in their forward as TensorFlow's 'SAME'
    does (their ``padding`` says 0); torch's ``padding='same'`` pads (k - 1) d / 2."""
    if type(sub).__name__.endswith("Same"):
        totals = [
            max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
            for size, k, s, d in zip(in_hw, kernel, step, dil)
        ]
        return (totals[0] // 2, totals[1] // 2)
    padding = getattr(sub, "padding", 0)
    if isinstance(padding, str):
        same = padding == "same"
        return ((kernel[0] - 1) * dil[0] // 2 * same, (kernel[1] - 1) * dil[1] // 2 * same)
    return _pair(padding)


def receptive_fields(
    module: torch.nn.Module, layers: list[str], input_size: int, device: Any = "cpu"
) -> dict[str, ReceptiveField]:
    """Receptive field of each named layer's output cells, for a square input."""
    events: list[tuple[str, torch.nn.Module, tuple[int, int], tuple[int, int]]] = []

    def hook(name: str, mod: torch.nn.Module, inputs: Any, output: Any) -> None:
        first = inputs[0] if inputs else None
        if (
            isinstance(first, torch.Tensor)
            and isinstance(output, torch.Tensor)
            and first.dim() == 4
            and output.dim() == 4
        ):
            in_hw = (int(first.shape[2]), int(first.shape[3]))
            events.append((name, mod, in_hw, (int(output.shape[2]), int(output.shape[3]))))

    targets = [
        (name, sub)
        for name, sub in module.named_modules()
        if name and (_is_geometric(sub) or name in layers)
    ]
    with ForwardHooks(targets, hook), torch.no_grad():
        module(torch.zeros(1, 3, input_size, input_size, device=device))
    size = [1.0, 1.0]
    stride = [1.0, 1.0]
    start = [0.5 - 0.5, 0.5 - 0.5]  # centre of pixel 0 is at 0.0 in index coordinates
    current = (input_size, input_size)
    fields: dict[str, ReceptiveField] = {}
    for name, sub, in_hw, out_hw in events:
        if _is_geometric(sub) and in_hw == current:
            kernel, step, dil, pad = _geometry(sub, in_hw)
            for axis in (0, 1):
                size[axis] += (kernel[axis] - 1) * dil[axis] * stride[axis]
                start[axis] += ((kernel[axis] - 1) * dil[axis] / 2.0 - pad[axis]) * stride[axis]
                stride[axis] *= step[axis]
            current = out_hw
        if name in layers and name not in fields:
            fields[name] = ReceptiveField(
                (int(size[0]), int(size[1])),
                (int(stride[0]), int(stride[1])),
                (float(start[0]), float(start[1])),
            )
    return fields
