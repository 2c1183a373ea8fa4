"""LayerCAM (Jiang et al., 2021): each position of each channel weighted by its own
positive gradient, so the map keeps the detail of the layer's resolution (usable at
early layers, where Grad-CAM's one weight per channel blurs)."""

from __future__ import annotations

import torch

from reportgen.explanations import LAYERCAM
from reportgen.nn.cam_base import CamMethod


class LayerCam(CamMethod):
    name = LAYERCAM.name
    title = LAYERCAM.title

    def cam_image(self, activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return (torch.relu(grads) * activations).sum(dim=1)
