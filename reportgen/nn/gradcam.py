"""Grad-CAM (Selvaraju et al., 2017): where in the picture the network found its class.

The gradient comes from the batch pass (``reportgen.nn.gradients``): the layer's output
kept, the rest of the network given a copy, never a full backward module hook (those
break when an in-place op (ReLU) follows the layer).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from reportgen.errors import ReportgenError
from reportgen.explanations import GRADCAM
from reportgen.nn.cam_base import Cam, CamMethod
from reportgen.nn.gradients import batch_pass
from reportgen.nn.hooks import modules_that_run


class GradCam(CamMethod):
    """Grad-CAM: each channel weighted by its gradient's mean over the map."""

    name = GRADCAM.name
    title = GRADCAM.title

    def cam_image(self, activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        weights = grads.mean(dim=(2, 3), keepdim=True)  # alpha_k: pooled gradients
        return (weights * activations).sum(dim=1)


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
) -> list[Cam]:
    """Grad-CAM of every image in ``batch`` for its class (None: its top prediction)."""
    if layer not in dict(module.named_modules()):
        raise ReportgenError(f"no layer named {layer!r} for Grad-CAM")
    done = batch_pass(module, batch, [], [layer], {"cam": class_indices})
    return GradCam().cams(done.values, done.classes["cam"], layer)
