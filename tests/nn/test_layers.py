"""Layer listing and selection: shapes, conv marks, globs, closest-name errors."""

from __future__ import annotations

import pytest
import torch
from torchvision.models import alexnet, resnet18

from reportgen.errors import ReportgenError
from reportgen.nn.layers import LayerInfo, resolve_layers, trace_layers


@pytest.fixture(scope="module")
def resnet_infos() -> list[LayerInfo]:
    torch.manual_seed(0)
    return trace_layers(resnet18(weights=None), 224)


@pytest.fixture(scope="module")
def alexnet_infos() -> list[LayerInfo]:
    torch.manual_seed(0)
    return trace_layers(alexnet(weights=None), 224)


def _by_name(infos: list[LayerInfo]) -> dict[str, LayerInfo]:
    return {info.name: info for info in infos}


def test_trace_lists_every_named_module_in_model_order(resnet_infos: list[LayerInfo]) -> None:
    torch.manual_seed(0)
    model = resnet18(weights=None)
    expected = [name for name, _ in model.named_modules() if name]
    assert [info.name for info in resnet_infos] == expected
    conv_names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    assert [info.name for info in resnet_infos if info.is_conv] == conv_names
    assert len(conv_names) == 20


def test_output_shapes_match_real_outputs_at_224(resnet_infos: list[LayerInfo]) -> None:
    infos = _by_name(resnet_infos)
    assert infos["conv1"].output_shape == (64, 112, 112)
    assert infos["layer1.0.conv1"].output_shape == (64, 56, 56)
    assert infos["layer4.1.conv2"].output_shape == (512, 7, 7)
    assert infos["avgpool"].output_shape == (512, 1, 1)
    assert infos["fc"].output_shape == (1000,)
    assert infos["fc"].type == "Linear" and not infos["fc"].is_conv
    assert infos["layer1"].is_leaf is False and infos["layer1.0.conv1"].is_leaf


def test_alexnet_shapes_and_value_descriptions(alexnet_infos: list[LayerInfo]) -> None:
    infos = _by_name(alexnet_infos)
    assert infos["features.0"].output_shape == (64, 55, 55)
    assert infos["features.3"].output_shape == (192, 27, 27)
    assert infos["classifier.6"].output_shape == (1000,)
    value = infos["features.0"].value
    assert value.startswith("output of Conv2d, before ReLU")
    assert "in-place" in value
    assert infos["features.2"].value.startswith("output of MaxPool2d, before Conv2d")
    assert "in-place" not in infos["features.2"].value
    assert "last module" in infos["classifier.6"].value


def test_trace_leaves_no_hooks_and_keeps_training_mode() -> None:
    torch.manual_seed(0)
    model = resnet18(weights=None).train()
    trace_layers(model, 64)
    assert model.training
    assert all(len(m._forward_hooks) == 0 for m in model.modules())


def test_default_and_conv_keyword_select_every_conv2d(resnet_infos: list[LayerInfo]) -> None:
    convs = [info.name for info in resnet_infos if info.is_conv]
    assert resolve_layers(resnet_infos, (), "resnet18") == convs
    assert resolve_layers(resnet_infos, ("conv",), "resnet18") == convs


def test_exact_names_come_back_in_model_order(resnet_infos: list[LayerInfo]) -> None:
    chosen = resolve_layers(resnet_infos, ("fc", "layer1.0.conv1", "conv1", "fc"), "resnet18")
    assert chosen == ["conv1", "layer1.0.conv1", "fc"]


def test_glob_patterns(resnet_infos: list[LayerInfo]) -> None:
    assert resolve_layers(resnet_infos, ("layer?.0.conv1",), "resnet18") == [
        "layer1.0.conv1",
        "layer2.0.conv1",
        "layer3.0.conv1",
        "layer4.0.conv1",
    ]
    assert resolve_layers(resnet_infos, ("layer4.1.*",), "resnet18") == [
        "layer4.1.conv1",
        "layer4.1.bn1",
        "layer4.1.relu",
        "layer4.1.conv2",
        "layer4.1.bn2",
    ]
    assert resolve_layers(resnet_infos, ("layer[12].1.conv2",), "resnet18") == [
        "layer1.1.conv2",
        "layer2.1.conv2",
    ]


def test_unknown_layer_names_the_closest_ones(resnet_infos: list[LayerInfo]) -> None:
    with pytest.raises(ReportgenError) as caught:
        resolve_layers(resnet_infos, ("layer1.0.conv3",), "resnet18")
    message = str(caught.value)
    assert "'layer1.0.conv3'" in message
    assert "closest:" in message and "layer1.0.conv1" in message
    assert "reportgen layers resnet18" in message


def test_glob_that_matches_nothing_is_an_error(alexnet_infos: list[LayerInfo]) -> None:
    with pytest.raises(ReportgenError, match=r"layer\?\.0.*reportgen layers alexnet"):
        resolve_layers(alexnet_infos, ("layer?.0",), "alexnet")


def test_alexnet_unknown_name_suggests_features(alexnet_infos: list[LayerInfo]) -> None:
    with pytest.raises(ReportgenError, match=r"closest: .*features\.0"):
        resolve_layers(alexnet_infos, ("feature.0",), "alexnet")


def test_equally_close_names_come_in_model_order(alexnet_infos: list[LayerInfo]) -> None:
    with pytest.raises(ReportgenError, match=r"closest: features\.0, features\.1, features\.2"):
        resolve_layers(alexnet_infos, ("features.O",), "alexnet")
