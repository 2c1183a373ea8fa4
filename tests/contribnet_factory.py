"""A small model for the channel-contribution tests: an in-place ReLU right after a
recorded Conv2d, a residual block with a depthwise convolution, a layer of units (a
Linear) followed by an in-place ReLU, and a classifier head."""

from __future__ import annotations

import torch
from torch import nn


class ContribNet(nn.Module):
    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, kernel_size=3, padding=1)
        self.stem_relu = nn.ReLU(inplace=True)
        self.expand = nn.Conv2d(8, 8, kernel_size=1)
        self.expand_relu = nn.ReLU(inplace=True)
        self.depthwise = nn.Conv2d(8, 8, kernel_size=3, padding=1, groups=8)
        self.residual = nn.Identity()  # its output: the residual sum
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.units = nn.Linear(8, 6)
        self.units_relu = nn.ReLU(inplace=True)
        self.head = nn.Linear(6, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem_relu(self.stem(x))
        branch = self.depthwise(self.expand_relu(self.expand(x)))
        x = self.residual(x + branch)
        x = self.units_relu(self.units(self.pool(x).flatten(1)))
        return self.head(x)


def build() -> nn.Module:
    return ContribNet()
