"""Custom models whose layers' receptive fields and outputs the tests choose
(``-m fieldnet_factory:NAME``, input size 16).

* ``dilated``: five 3x3 convolutions at 16x16 with dilations 1, 2, 4, 8, 8: fields of
  3, 7, 15, 31 and 47 px, so the last layers' cells see the whole 16 px view;
* ``gated``: a convolution, a squeeze-and-excitation block (two 1x1 convolutions on the
  pooled map: [C, 1, 1] outputs) and a last convolution.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import SqueezeExcitation


class Dilated(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        widths = [3, 6, 6, 5, 5, 4]
        self.convs = nn.ModuleList(
            nn.Conv2d(widths[i], widths[i + 1], 3, padding=d, dilation=d)
            for i, d in enumerate([1, 2, 4, 8, 8])
        )
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = torch.relu(conv(x))
        return self.head(x.mean(dim=(2, 3)))


class Gated(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.se = SqueezeExcitation(8, 4)
        self.conv2 = nn.Conv2d(8, 6, 3, padding=1)
        self.head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2(self.se(torch.relu(self.conv1(x))))
        return self.head(x.mean(dim=(2, 3)))


def dilated() -> nn.Module:
    return Dilated()


def gated() -> nn.Module:
    return Gated()
