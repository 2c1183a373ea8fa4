"""Class activation maps at one layer, from the batch pass's values and gradients there
(``reportgen.nn.gradients``). Modelled on pytorch-grad-cam's ``BaseCAM``: the shared
base turns a layer's values and gradients into one map per input, ReLU'd and scaled to
its peak; a method is one small subclass saying how the channels are weighted
(``cam_image``), named as its declaration in ``reportgen.explanations``; the
computations by name: ``reportgen.nn.cams``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from reportgen.errors import ReportgenError
from reportgen.nn.gradients import ClassGradients


@dataclass(frozen=True)
class Cam:
    """One input's map of one method for one class."""

    class_index: int
    layer: str
    map: np.ndarray  # [H, W] at the layer's resolution, scaled to 0..1
    score: float  # the class logit


class CamMethod:
    """A map method: how the layer's values and gradients weigh into a map."""

    name: ClassVar[str]
    title: ClassVar[str]

    def cam_image(self, activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        """[B, H, W] from values and gradients [B, C, H, W], before the ReLU."""
        raise NotImplementedError

    def cams(self, values: dict[str, torch.Tensor], kind: ClassGradients, layer: str) -> list[Cam]:
        """Each input's map for its class of ``kind``, from a pass that kept ``layer``."""
        if layer not in values or layer not in kind.gradients:
            raise ReportgenError(f"layer {layer!r} is not on the path to the prediction")
        activations, grads = values[layer], kind.gradients[layer]
        if activations.dim() != 4:
            raise ReportgenError(
                f"{self.title} needs a layer with spatial output; {layer!r} has none"
            )
        maps = torch.relu(self.cam_image(activations, grads))
        results = []
        for i, cam in enumerate(maps):
            array = cam.float().cpu().numpy()
            peak = float(array.max())
            scaled = array / peak if peak > 0 else np.zeros_like(array)
            results.append(
                Cam(kind.classes[i], layer, scaled.astype(np.float64), float(kind.scores[i]))
            )
        return results
