"""The layers whose output is global-average-pooled straight into the model's final
Linear: there a channel's contributions to a logit are exact (they sum to the logit
minus the bias), and its weights in that Linear are its whole effect on the logits.

Found by a dry run (eval mode, no gradients) on seeded random images, not by module
names: the model's final Linear is the last Linear that runs, and only if its output is
the model's output; a layer qualifies when the mean of its output over the positions is
that Linear's input, number for number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from reportgen.nn.hooks import ForwardHooks, dry_pass_mode

# Two images: a coincidence on one (a ReLU after the layer that changed nothing) is
# unlikely on both.
_IMAGES = 2
# How far a mean over positions and the model's own pooling may differ (float32 sums).
_ROUNDING = 2e-6


def pooled_into_classifier(
    module: torch.nn.Module, size: int | Sequence[int], device: Any, names: Sequence[str]
) -> dict[str, np.ndarray]:
    """Of the layers ``names``, those pooled straight into the final Linear, each with
    that Linear's weight [classes, C]."""
    sides = [int(size)] if isinstance(size, int) else [int(v) for v in size]
    wanted = set(names)
    targets = [
        (name, sub)
        for name, sub in module.named_modules()
        if name and (name in wanted or isinstance(sub, torch.nn.Linear))
    ]
    outputs: dict[str, torch.Tensor] = {}
    linear_runs: list[tuple[str, torch.Tensor, torch.Tensor]] = []

    def note(name: str, sub: Any, inputs: Any, output: Any) -> None:
        if not isinstance(output, torch.Tensor):
            return
        if name in wanted:  # copied now: an in-place op after the layer would change it
            outputs[name] = output.detach().float().clone()
        if isinstance(sub, torch.nn.Linear) and inputs and isinstance(inputs[0], torch.Tensor):
            linear_runs.append((name, inputs[0].detach().float(), output.detach().float()))

    generator = torch.Generator().manual_seed(0)
    images = torch.rand(_IMAGES, 3, sides[0], sides[-1], generator=generator).to(device)
    with ForwardHooks(targets, note), dry_pass_mode(module):
        logits = module(images)
    if not linear_runs or not isinstance(logits, torch.Tensor):
        return {}
    name, features, linear_output = linear_runs[-1]
    if linear_output.shape != logits.shape or not torch.equal(linear_output, logits.float()):
        return {}
    linear = dict(module.named_modules())[name]
    found = {}
    for layer in names:
        value = outputs.get(layer)
        if value is None or value.dim() != 4 or features.dim() != 2:
            continue
        if value.shape[1] != features.shape[1]:
            continue
        # Equal up to float32 rounding, relative to the largest value: an untrained
        # model's values can all be near zero, and a layer a near-identity BatchNorm
        # (1 / sqrt(1 + eps)) away from the pooled one is not it.
        scale = float(features.abs().max())
        if scale > 0 and torch.allclose(
            value.mean(dim=(2, 3)), features, rtol=0.0, atol=_ROUNDING * scale
        ):
            found[layer] = linear.weight.detach().float().cpu().numpy()
    return found
