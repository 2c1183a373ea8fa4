"""Grad-CAM (Selvaraju et al., 2017): where in the picture the network found its class.

The gradient comes from the batch pass (``reportgen.nn.gradients``): the layer's output
kept, the rest of the network given a copy, never a full backward module hook (those
break when an in-place op (ReLU) follows the layer).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from reportgen.errors import ReportgenError
from reportgen.nn.gradients import ClassGradients, batch_pass
from reportgen.nn.hooks import modules_that_run


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
    if layer not in dict(module.named_modules()):
        raise ReportgenError(f"no layer named {layer!r} for Grad-CAM")
    done = batch_pass(module, batch, [], [layer], {"cam": class_indices})
    return cams_of(done.values, done.classes["cam"], layer), done.logits


def cams_of(values: dict[str, torch.Tensor], kind: ClassGradients, layer: str) -> list[GradCam]:
    """Grad-CAM of one class kind from a batch pass that kept ``layer``'s gradient."""
    if layer not in values or layer not in kind.gradients:
        raise ReportgenError(f"layer {layer!r} is not on the path to the prediction")
    activations, grads = values[layer], kind.gradients[layer]
    if activations.dim() != 4:
        raise ReportgenError(f"Grad-CAM needs a layer with spatial output; {layer!r} has none")
    return _scaled_cams(activations, grads, kind.classes, kind.scores, layer)


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
