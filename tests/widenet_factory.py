"""A small custom model with one wide convolution over RGB, for tests of wide layer pages
(``-m tests.widenet_factory:build``): 2,048 channels, whose filters the cards show."""

from __future__ import annotations

import torch
from torch import nn

WIDTH = 2048


class WideNet(nn.Module):
    def __init__(self, width: int = WIDTH, classes: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=4, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.conv1(x))
        return self.head(x.mean(dim=(2, 3)))


def build() -> nn.Module:
    torch.manual_seed(0)
    return WideNet()


def build_narrow() -> nn.Module:
    """The same model with 64 channels (a quick single-file report)."""
    torch.manual_seed(0)
    return WideNet(64)
