"""A small custom model whose convolutions cover the weights view's cases: a stem over
RGB, a depthwise 3x3, a 1x1 over 32 inputs, a grouped 3x3, and a conv that reads a
residual sum (an operation outside modules)."""

from __future__ import annotations

import torch
from torch import nn


class WeightsNet(nn.Module):
    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 32, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm2d(32)
        self.act = nn.ReLU(inplace=True)
        self.depthwise = nn.Conv2d(32, 32, kernel_size=3, padding=1, groups=32)
        self.act2 = nn.ReLU6()
        self.pointwise = nn.Conv2d(32, 16, kernel_size=1)
        self.grouped = nn.Conv2d(16, 8, kernel_size=3, padding=1, groups=4)
        self.after_sum = nn.Conv2d(8, 4, kernel_size=1)
        self.head = nn.Linear(4, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn(self.stem(x)))
        x = self.pointwise(self.act2(self.depthwise(x)))
        y = self.grouped(x)
        y = y + y.flip(1)  # a residual-like sum outside any module
        return self.head(self.after_sum(y).mean(dim=(2, 3)))


def build() -> nn.Module:
    return WeightsNet()
