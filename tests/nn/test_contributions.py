"""Channel contributions (gradient x activation, summed over a channel's map) against
independent computations: a plain forward pass written out here with
``torch.autograd.grad``, the logits themselves at a layer pooled into the classifier,
and captum's ``LayerGradientXActivation``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from reportgen.nn.gradients import batch_pass, contributions
from reportgen.nn.pooled import pooled_into_classifier
from tests.contribnet_factory import ContribNet

LAYERS = ["stem", "expand", "depthwise", "residual", "units"]


@pytest.fixture(scope="module")
def net() -> ContribNet:
    torch.manual_seed(4)
    return ContribNet().eval()


def _plain(net: ContribNet, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The net's forward pass written out with out-of-place ops: each layer's value as
    the layer produced it, and the logits."""
    stem = net.stem(x)
    expand = net.expand(F.relu(stem))
    depthwise = net.depthwise(F.relu(expand))
    residual = F.relu(stem) + depthwise
    units = net.units(residual.mean(dim=(2, 3)))
    logits = net.head(F.relu(units))
    return logits, {
        "stem": stem,
        "expand": expand,
        "depthwise": depthwise,
        "residual": residual,
        "units": units,
    }


def _plain_contributions(
    net: ContribNet, x: torch.Tensor, classes: list[int]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    x = x.clone().requires_grad_(True)
    logits, values = _plain(net, x)
    score = logits[torch.arange(len(classes)), torch.tensor(classes)].sum()
    grads = torch.autograd.grad(score, list(values.values()))
    return logits.detach(), {
        name: (grad * value).reshape(x.shape[0], value.shape[1], -1).sum(dim=2).detach()
        for (name, value), grad in zip(values.items(), grads)
    }


def test_contributions_equal_a_plain_autograd_pass(net: ContribNet) -> None:
    x = torch.rand(3, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    kinds: dict[str, list[int | None]] = {"top": [None] * 3, "target": [2, 2, 2]}
    done = batch_pass(net, x, LAYERS, [], kinds, attributed=LAYERS)
    logits, _ = _plain(net, x)
    top = [int(i) for i in logits.argmax(dim=1)]
    assert done.classes["top"].classes == top and done.classes["target"].classes == [2, 2, 2]
    for kind, classes in (("top", top), ("target", [2, 2, 2])):
        _, want = _plain_contributions(net, x, classes)
        # Summed in the gradient hooks: no gradient is kept for a layer only attributed.
        assert done.classes[kind].gradients == {}
        for name in LAYERS:
            got = done.classes[kind].contributions[name]
            assert got.shape == want[name].shape
            torch.testing.assert_close(got, want[name].float(), rtol=1e-5, atol=1e-6)
    # The first kind's backward pass left the graph for the second: both are non-zero.
    assert all(done.classes[k].contributions["stem"].abs().sum() > 0 for k in ("top", "target"))


def test_a_layer_both_wanted_and_attributed_gives_both_and_they_agree(net: ContribNet) -> None:
    x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(5))
    done = batch_pass(net, x, [], ["depthwise"], {"top": [None, None]}, attributed=LAYERS)
    kind = done.classes["top"]
    assert list(kind.gradients) == ["depthwise"] and list(kind.contributions) == LAYERS
    assert list(done.values) == ["depthwise"]
    from_gradient = contributions(done.values["depthwise"], kind.gradients["depthwise"])
    torch.testing.assert_close(kind.contributions["depthwise"], from_gradient)


def test_the_recorded_value_is_the_layers_output_before_the_in_place_relu(
    net: ContribNet,
) -> None:
    x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(2))
    done = batch_pass(net, x, LAYERS, LAYERS, {"top": [None, None]})
    _, values = _plain(net, x)
    assert (values["stem"] < 0).any()  # the ReLU after it would change it
    for name in LAYERS:
        torch.testing.assert_close(done.recorded[name], values[name].detach())
        torch.testing.assert_close(done.values[name], values[name].detach())
    # The model computes as without hooks, and no parameter kept a gradient.
    torch.testing.assert_close(done.logits, net(x).detach())
    assert all(p.grad is None and p.requires_grad for p in net.parameters())


def test_no_class_kind_is_a_pass_without_graph(net: ContribNet) -> None:
    x = torch.rand(2, 3, 12, 12)
    done = batch_pass(net, x, LAYERS, LAYERS, {})
    assert done.classes == {} and done.values == {}
    torch.testing.assert_close(done.logits, net(x).detach())


def test_contributions_equal_captums_layer_gradient_x_activation(net: ContribNet) -> None:
    from captum.attr import LayerGradientXActivation

    x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(3))
    done = batch_pass(net, x, [], [], {"top": [None, None]}, attributed=["depthwise"])
    top = done.classes["top"].classes
    reference = LayerGradientXActivation(net, net.depthwise).attribute(x, target=top)
    got = done.classes["top"].contributions["depthwise"]
    torch.testing.assert_close(got, reference.sum(dim=(2, 3)).detach(), rtol=1e-5, atol=1e-6)


def _resnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval()


def _mobilenet() -> torch.nn.Module:
    torch.manual_seed(0)
    return torchvision.models.mobilenet_v2(weights=None).eval()


POOLED = [
    (_resnet, "layer4", "fc", ["layer3", "layer4.1.conv2", "layer4.1.bn2", "layer4"]),
    (_mobilenet, "features.18", "classifier.1", ["features.17", "features.18.0", "features.18"]),
]


@pytest.mark.parametrize(("build", "pooled", "head", "candidates"), POOLED)
def test_the_layer_pooled_into_the_final_linear_is_found(
    build: Any, pooled: str, head: str, candidates: list[str]
) -> None:
    model = build()
    found = pooled_into_classifier(model, 64, "cpu", candidates)
    assert list(found) == [pooled]
    linear = dict(model.named_modules())[head]
    np.testing.assert_array_equal(found[pooled], linear.weight.detach().numpy())
    # A model whose output is not its last Linear's (here: a softmax after it) has none.
    scaled = torch.nn.Sequential(model, torch.nn.Softmax(dim=1))
    assert pooled_into_classifier(scaled, 64, "cpu", [f"0.{pooled}"]) == {}


@pytest.mark.parametrize(("build", "pooled", "head", "candidates"), POOLED)
def test_at_the_pooled_layer_contributions_sum_to_the_logit_minus_the_bias(
    build: Any, pooled: str, head: str, candidates: list[str]
) -> None:
    model = build()
    x = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(7))
    done = batch_pass(model, x, [pooled], [], {"top": [None, None]}, attributed=[pooled])
    kind = done.classes["top"]
    contribution = kind.contributions[pooled].double()
    bias = dict(model.named_modules())[head].bias.detach().double()
    logits = model(x).detach().double()
    for b, c in enumerate(kind.classes):
        want = float(logits[b, c] - bias[c])
        assert abs(float(contribution[b].sum()) - want) <= 1e-4 * abs(want)
        # Zeroing channels there lowers the logit by exactly the sum of their contributions.
        zeroed = [int(i) for i in torch.argsort(contribution[b], descending=True)[:5]]
        zeroed += [int(i) for i in torch.argsort(contribution[b])[:3]]
        module = dict(model.named_modules())[pooled]

        def zero(_m: Any, _i: Any, output: torch.Tensor, chosen: list[int] = zeroed) -> Any:
            output = output.clone()
            output[:, chosen] = 0
            return output

        handle = module.register_forward_hook(zero)
        try:
            with torch.no_grad():
                lowered = model(x[b : b + 1]).double()[0, c]
        finally:
            handle.remove()
        drop = float(logits[b, c] - lowered)
        expected = float(contribution[b, zeroed].sum())
        assert abs(drop - expected) <= 1e-4 * max(1.0, abs(expected))
