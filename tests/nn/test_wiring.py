"""Which recorded layer's channels a Conv2d reads, traced by hooks in one dry pass."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import alexnet, resnet18

from reportgen.nn.wiring import conv_input_sources


def test_alexnet_reads_through_relu_and_pooling() -> None:
    model = alexnet(weights=None)
    sources = conv_input_sources(model, (64, 64), "cpu", ["features.0", "features.3"])
    assert sources["features.0"].network_input and sources["features.0"].layer is None
    assert sources["features.3"].layer == "features.0"
    # In forward order: the in-place ReLU (same tensor as the conv's output), the pool.
    assert sources["features.3"].through == ("features.1", "features.2")


def test_a_residual_sum_is_named_not_linked() -> None:
    """ResNet's ``out += identity`` changes the tensor in place outside modules: its
    version counter shows it, and the next block's conv is not linked to conv2."""
    model = resnet18(weights=None)
    names = ["conv1", "layer1.0.conv1", "layer1.0.conv2", "layer1.1.conv1"]
    sources = conv_input_sources(model, (64, 64), "cpu", names)
    assert sources["layer1.0.conv1"].layer == "conv1"
    assert sources["layer1.0.conv1"].through == ("bn1", "relu", "maxpool")
    assert sources["layer1.0.conv2"].layer == "layer1.0.conv1"
    assert sources["layer1.1.conv1"].layer is None
    assert sources["layer1.1.conv1"].module == "layer1.0"


class _Mixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3)
        self.b = nn.Conv2d(4, 4, 1)
        self.c = nn.Conv2d(4, 4, 1)
        self.d = nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.a(x)
        y = self.b(torch.tanh(x))  # a function, not a module: the walk stops there
        z = self.c(nn.functional.relu(y))
        return self.d(torch.cat([y, z], 1))


def test_functions_between_layers_end_the_walk() -> None:
    sources = conv_input_sources(_Mixed(), (16, 16), "cpu", ["a", "b", "c", "d"])
    assert sources["b"].layer is None and sources["b"].module is None
    assert not sources["b"].network_input
    assert sources["d"].layer is None


def test_a_recorded_container_is_a_source() -> None:
    model = nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()), nn.Conv2d(4, 2, 1)
    )
    sources = conv_input_sources(model, (16, 16), "cpu", ["0", "1"])
    assert sources["1"].layer == "0" and sources["1"].through == ()
