"""Grad-CAM (Selvaraju et al., 2017): where in the picture the network found its class.

The gradient is taken with a tensor hook on the layer's output, never a full
backward module hook: those break when an in-place op (ReLU) follows the layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from reportgen.errors import ReportgenError
from reportgen.nn.hooks import ForwardHooks, modules_that_run


@dataclass(frozen=True)
class GradCam:
    class_index: int
    layer: str
    map: np.ndarray  # [H, W] at the layer's resolution, scaled to 0..1
    score: float  # the class logit


_NO_CONV = "the model has no Conv2d layer for Grad-CAM; choose --gradcam-layer"


def last_conv_layer(module: torch.nn.Module) -> str:
    """The last Conv2d in model order, whether it runs or not (see default_gradcam_layer)."""
    name = None
    for candidate, sub in module.named_modules():
        if isinstance(sub, torch.nn.Conv2d):
            name = candidate
    if name is None:
        raise ReportgenError(_NO_CONV)
    return name


def default_gradcam_layer(
    module: torch.nn.Module, size: int | Sequence[int], device: Any = "cpu"
) -> str:
    """The last Conv2d to run in a dry forward pass (eval mode, no gradients, one zero
    image of the crop ``size``): torchvision classifiers end their features there.

    The last Conv2d in model order is not always one that runs: GoogLeNet's auxiliary
    heads come after its last inception block and are skipped in eval mode, so their
    output has no gradient to the logits.
    """
    if not any(isinstance(sub, torch.nn.Conv2d) for sub in module.modules()):
        raise ReportgenError(_NO_CONV)
    fired = modules_that_run(module, size, device, torch.nn.Conv2d)
    if not fired:
        raise ReportgenError(
            "no Conv2d layer of the model runs in its forward pass; choose --gradcam-layer"
        )
    return fired[-1]


def grad_cam(
    module: torch.nn.Module, layer: str, batch: torch.Tensor, class_indices: list[int | None]
) -> list[GradCam]:
    """Grad-CAM of every image in ``batch`` for its class (None: its top prediction)."""
    return grad_cam_and_logits(module, layer, batch, class_indices)[0]


def grad_cam_and_logits(
    module: torch.nn.Module, layer: str, batch: torch.Tensor, class_indices: list[int | None]
) -> tuple[list[GradCam], torch.Tensor]:
    """Grad-CAM and the logits of the same forward pass (detached, on the CPU)."""
    target = dict(module.named_modules()).get(layer)
    if target is None:
        raise ReportgenError(f"no layer named {layer!r} for Grad-CAM")
    captured: dict[str, torch.Tensor] = {}
    gradients: dict[str, torch.Tensor] = {}

    def keep_output(_name: str, _mod: Any, _inp: Any, output: Any) -> Any:
        if not isinstance(output, torch.Tensor):
            return None
        # Only this output's gradient is wanted: it becomes the leaf of the graph, so the
        # backward pass computes no weight gradients and stops here (about twice the
        # forward pass saved). The rest of the network gets a copy: an in-place op after
        # the layer (ReLU) then changes the copy, never the tensor whose values and
        # gradient we keep.
        leaf = output.detach().requires_grad_(True)
        captured["value"] = leaf.detach()
        leaf.register_hook(lambda grad: gradients.__setitem__("value", grad))
        return leaf.clone()

    frozen = [p for p in module.parameters() if p.requires_grad]
    for parameter in frozen:
        parameter.requires_grad_(False)
    try:
        with ForwardHooks([(layer, target)], keep_output), torch.enable_grad():
            inputs = batch.detach().requires_grad_(False)
            logits = module(inputs)
            chosen = _chosen_classes(logits, class_indices)
            scores = logits[torch.arange(len(chosen)), torch.tensor(chosen)]
            module.zero_grad(set_to_none=True)
            scores.sum().backward()
    finally:
        for parameter in frozen:
            parameter.requires_grad_(True)
    if "value" not in captured or "value" not in gradients:
        raise ReportgenError(f"layer {layer!r} is not on the path to the prediction")
    activations = captured["value"].detach()
    grads = gradients["value"].detach()
    if activations.dim() != 4:
        raise ReportgenError(f"Grad-CAM needs a layer with spatial output; {layer!r} has none")
    return _scaled_cams(activations, grads, chosen, scores, layer), logits.detach().float().cpu()


def _chosen_classes(logits: torch.Tensor, class_indices: list[int | None]) -> list[int]:
    """Each image's class: the one asked for, else its top prediction."""
    chosen = [int(logits[i].argmax()) if c is None else int(c) for i, c in enumerate(class_indices)]
    if any(not 0 <= c < logits.shape[1] for c in chosen):
        raise ReportgenError(
            f"--target-class is out of range: the model has {logits.shape[1]} classes"
        )
    return chosen


def _scaled_cams(
    activations: torch.Tensor,
    grads: torch.Tensor,
    chosen: list[int],
    scores: torch.Tensor,
    layer: str,
) -> list[GradCam]:
    """Grad-CAM from the layer's values and gradients: ReLU of the gradient-weighted sum
    of the channels, each map scaled to its peak."""
    weights = grads.mean(dim=(2, 3), keepdim=True)  # alpha_k: pooled gradients
    cams = torch.relu((weights * activations).sum(dim=1))  # [B, H, W]
    results = []
    for i, cam in enumerate(cams):
        array = cam.float().cpu().numpy()
        peak = float(array.max())
        scaled = array / peak if peak > 0 else np.zeros_like(array)
        results.append(
            GradCam(chosen[i], layer, scaled.astype(np.float64), float(scores[i].detach()))
        )
    return results
