"""What the batch pass records (``reportgen.nn.gradients.batch_pass``, the product's one
recording path) equals a plain forward computation."""

from __future__ import annotations

import pytest
import torch
from torchvision.models import alexnet, resnet18

from reportgen.errors import ReportgenError
from reportgen.nn.gradients import batch_pass


def _record(
    model: torch.nn.Module, names: list[str], x: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    done = batch_pass(model, x, names, [], {})
    return done.logits, done.recorded


@pytest.fixture(scope="module")
def alexnet_random() -> torch.nn.Module:
    torch.manual_seed(0)
    return alexnet(weights=None).eval()


@pytest.fixture(scope="module")
def resnet_random() -> torch.nn.Module:
    torch.manual_seed(1)
    return resnet18(weights=None).eval()


def _batch(seed: int, n: int = 2, size: int = 224) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=generator)


def test_alexnet_features0_is_recorded_before_the_inplace_relu(
    alexnet_random: torch.nn.Module,
) -> None:
    model = alexnet_random
    assert isinstance(model.features[1], torch.nn.ReLU) and model.features[1].inplace
    x = _batch(0)
    with torch.no_grad():
        expected = model.features[0](x)  # the Conv2d alone: no ReLU applied
        after_relu = torch.relu(expected)
        expected_logits = model(x)
    assert (expected < 0).any()

    logits, recorded = _record(model, ["features.0", "features.1", "features.3"], x)

    conv = recorded["features.0"]
    assert conv.shape == (2, 64, 55, 55)
    torch.testing.assert_close(conv, expected, rtol=1e-5, atol=1e-5)
    assert (conv < 0).any(), "the in-place ReLU must not have changed the recorded values"
    assert conv.min() < -0.01
    torch.testing.assert_close(recorded["features.1"], after_relu, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        features3 = model.features[3](model.features[2](after_relu))
    torch.testing.assert_close(recorded["features.3"], features3, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(logits, expected_logits, rtol=1e-4, atol=1e-4)


def test_resnet_nested_layers_match_a_manual_forward(resnet_random: torch.nn.Module) -> None:
    model = resnet_random
    x = _batch(1, n=3, size=64)
    with torch.no_grad():
        stem = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        block = model.layer1[0]
        conv1 = block.conv1(stem)
        block_out = block(stem)
    names = ["conv1", "layer1.0.conv1", "layer1.0", "fc"]
    logits, recorded = _record(model, names, x)
    assert list(recorded) != [] and set(recorded) == set(names)
    torch.testing.assert_close(recorded["layer1.0.conv1"], conv1, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(recorded["layer1.0"], block_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(recorded["fc"], logits)
    assert recorded["fc"].shape == (3, 1000)
    # The recorded conv1 is before bn1/relu: it has negative values.
    assert (recorded["conv1"] < 0).any()


def test_recorded_tensors_are_detached_float32_copies(alexnet_random: torch.nn.Module) -> None:
    x = _batch(2, n=1)
    _, first = _record(alexnet_random, ["features.0"], x)
    _, second = _record(alexnet_random, ["features.0"], x)
    out = first["features.0"]
    assert out.dtype == torch.float32 and out.device.type == "cpu"
    assert not out.requires_grad
    assert out is not second["features.0"]
    torch.testing.assert_close(out, second["features.0"])


def test_hooks_are_removed_after_the_pass_and_when_it_fails(
    alexnet_random: torch.nn.Module,
) -> None:
    model = alexnet_random
    _record(model, ["features.0"], _batch(0, n=1, size=64))
    assert all(len(m._forward_hooks) == 0 for m in model.modules())
    with pytest.raises(RuntimeError):
        _record(model, ["features.0"], torch.zeros(1, 5, 64, 64))  # wrong channel count
    assert all(len(m._forward_hooks) == 0 for m in model.modules())


def test_unknown_layer_is_refused(alexnet_random: torch.nn.Module) -> None:
    with pytest.raises(ReportgenError, match="features.99"):
        _record(alexnet_random, ["features.99"], _batch(0, n=1, size=64))


def test_batches_record_each_input_independently(alexnet_random: torch.nn.Module) -> None:
    x = _batch(3, n=3, size=128)
    _, together = _record(alexnet_random, ["features.3"], x)
    _, alone = _record(alexnet_random, ["features.3"], x[1:2])
    torch.testing.assert_close(
        together["features.3"][1:2], alone["features.3"], rtol=1e-4, atol=1e-4
    )
