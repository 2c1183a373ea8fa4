"""The one hook owner (reportgen.nn.hooks): hooks are gone after every exit, owners
nest, every user of forward hooks leaves none behind; the default Grad-CAM layer is
the last Conv2d that runs."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
import torchvision

from reportgen.errors import ReportgenError
from reportgen.nn import featurevis as fv
from reportgen.nn.gradcam import default_gradcam_layer, grad_cam, last_conv_layer
from reportgen.nn.hooks import ForwardHooks, dry_pass_mode, modules_that_run
from reportgen.nn.layers import trace_layers
from reportgen.nn.receptive import receptive_fields


def _no_hooks_left(model: torch.nn.Module) -> bool:
    return all(
        not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
        for m in model.modules()
    )


def _small_cnn() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.ReLU(inplace=True),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 6, 3, padding=1),
        torch.nn.ReLU(inplace=True),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(6, 5),
    ).eval()


@pytest.fixture(scope="module")
def resnet() -> torchvision.models.ResNet:
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval()


# --- the owner ------------------------------------------------------------------------


def test_hooks_run_by_name_while_open_and_are_removed_on_exit() -> None:
    model = _small_cnn()
    seen: list[tuple[str, tuple[int, ...]]] = []

    def note(name: str, module: torch.nn.Module, inputs: Any, output: Any) -> None:
        assert module is dict(model.named_modules())[name]
        seen.append((name, tuple(output.shape)))

    with ForwardHooks([("3", model[3]), ("0", model[0])], note) as hooks:
        assert hooks.active
        assert len(model[0]._forward_hooks) == 1 and len(model[3]._forward_hooks) == 1
        model(torch.zeros(1, 3, 8, 8))
    assert not hooks.active
    assert seen == [("0", (1, 4, 8, 8)), ("3", (1, 6, 4, 4))]
    assert _no_hooks_left(model)
    model(torch.zeros(1, 3, 8, 8))
    assert len(seen) == 2  # nothing runs after exit


def test_hooks_are_removed_when_the_block_raises() -> None:
    model = _small_cnn()
    hooks = ForwardHooks([(n, m) for n, m in model.named_modules() if n], lambda *a: None)
    with pytest.raises(RuntimeError), hooks:
        assert sum(len(m._forward_hooks) for m in model.modules()) == 8
        model(torch.zeros(1, 5, 8, 8))  # wrong channel count: the pass fails
    assert _no_hooks_left(model)
    assert not hooks.active


def test_hooks_are_removed_when_a_hook_raises() -> None:
    model = _small_cnn()

    def fail(*_: Any) -> None:
        raise ValueError("from the hook")

    with pytest.raises(ValueError, match="from the hook"), ForwardHooks([("3", model[3])], fail):
        model(torch.zeros(1, 3, 8, 8))
    assert _no_hooks_left(model)


def test_a_returned_value_replaces_the_output() -> None:
    model = _small_cnn()
    with ForwardHooks([("7", model[7])], lambda n, m, i, o: torch.full_like(o, 2.0)):
        out = model(torch.rand(2, 3, 8, 8))
    assert torch.equal(out, torch.full((2, 5), 2.0))


def test_owners_nest_and_each_removes_only_its_own() -> None:
    model = _small_cnn()
    order: list[str] = []
    outer = ForwardHooks([("0", model[0])], lambda *a: order.append("outer"))
    inner = ForwardHooks([("0", model[0])], lambda *a: order.append("inner"))
    with outer:
        with inner:
            assert len(model[0]._forward_hooks) == 2
            model(torch.zeros(1, 3, 8, 8))
        assert len(model[0]._forward_hooks) == 1 and outer.active
        model(torch.zeros(1, 3, 8, 8))
    assert order == ["outer", "inner", "outer"]  # registration order is run order
    assert _no_hooks_left(model)


def test_an_owner_is_entered_once_at_a_time_and_can_be_reused() -> None:
    model = _small_cnn()
    hooks = ForwardHooks([("0", model[0])], lambda *a: None)
    with hooks:
        with pytest.raises(RuntimeError, match="already"), hooks:
            pass
        # The refused re-entry removed nothing of the open block.
        assert len(model[0]._forward_hooks) == 1
    assert _no_hooks_left(model)
    with hooks:
        assert len(model[0]._forward_hooks) == 1
    assert _no_hooks_left(model)


def test_modules_that_run_in_firing_order_and_the_mode_is_restored() -> None:
    model = _small_cnn().train()
    assert modules_that_run(model, 8, kind=torch.nn.Conv2d) == ["0", "3"]
    assert modules_that_run(model, (8, 12)) == ["0", "1", "2", "3", "4", "5", "6", "7"]
    assert model.training and _no_hooks_left(model)
    with pytest.raises(RuntimeError), dry_pass_mode(model):
        assert not model.training and not torch.is_grad_enabled()
        raise RuntimeError
    assert model.training


# --- every user leaves no hook behind -------------------------------------------------


def test_grad_cam_leaves_no_hooks_also_when_it_fails(resnet: torchvision.models.ResNet) -> None:
    grad_cam(resnet, "layer4.1.conv2", torch.rand(1, 3, 64, 64), [None])
    assert _no_hooks_left(resnet)
    with pytest.raises(ReportgenError, match="out of range"):
        grad_cam(resnet, "layer4.1.conv2", torch.rand(1, 3, 64, 64), [5000])
    assert _no_hooks_left(resnet)
    assert all(p.requires_grad for p in resnet.parameters())


def test_receptive_fields_and_trace_layers_leave_no_hooks(
    resnet: torchvision.models.ResNet,
) -> None:
    receptive_fields(resnet, ["layer1.0.conv1"], 64)
    assert _no_hooks_left(resnet)
    trace_layers(resnet, 64)
    assert _no_hooks_left(resnet)
    four_channels = torch.nn.Sequential(torch.nn.Conv2d(4, 2, 1), torch.nn.ReLU()).train()
    with pytest.raises(RuntimeError):
        trace_layers(four_channels, 8)  # the dummy image has 3 channels: the pass fails
    assert _no_hooks_left(four_channels) and four_channels.training
    with pytest.raises(RuntimeError):
        receptive_fields(four_channels, ["0"], 8)
    assert _no_hooks_left(four_channels)


def test_layer_probe_leaves_no_hooks() -> None:
    model = _small_cnn()
    with fv.LayerProbe(model, "3").open() as probe:
        assert len(model[3]._forward_hooks) == 1
        probe(torch.rand(1, 3, 8, 8))
    assert _no_hooks_left(model)
    with pytest.raises(RuntimeError), fv.LayerProbe(model, "3").open() as probe:
        probe(torch.rand(1, 5, 8, 8))
    assert _no_hooks_left(model)
    assert all(p.requires_grad for p in model.parameters())
    fv.visualise(model, "3", [0], fv.Recipe(mean=[0.5] * 3, std=[0.25] * 3, steps=1, size=32))
    assert _no_hooks_left(model)


# --- the default Grad-CAM layer -------------------------------------------------------


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    extra: dict[str, Any] = {}
    if name in ("googlenet", "inception_v3"):
        extra = {"aux_logits": True, "init_weights": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torchvision.models.get_model(name, weights=None, **extra).eval()


@pytest.mark.parametrize(
    ("name", "size", "expected", "side"),
    [
        # The last Conv2d in model order is an auxiliary head (aux2) that eval skips.
        ("googlenet", 224, "inception5b.branch4.1.conv", 7),
        ("inception_v3", 299, "Mixed_7c.branch_pool.conv", 8),
    ],
)
def test_default_gradcam_layer_is_one_that_runs(
    name: str, size: int, expected: str, side: int
) -> None:
    model = _model(name)
    layer = default_gradcam_layer(model, size, "cpu")
    assert layer == expected
    assert _no_hooks_left(model) and not model.training
    # It is on the path to the prediction: Grad-CAM works with it.
    cams = grad_cam(model, layer, torch.rand(1, 3, size, size), [None])
    assert cams[0].map.shape == (side, side)


@pytest.mark.parametrize("name", ["resnet18", "alexnet", "mobilenet_v2"])
def test_default_gradcam_layer_is_unchanged_where_the_last_conv_runs(name: str) -> None:
    model = _model(name)
    assert default_gradcam_layer(model, (224,), "cpu") == last_conv_layer(model)


def test_default_gradcam_layer_without_a_conv_that_runs() -> None:
    with pytest.raises(ReportgenError, match="no Conv2d layer for Grad-CAM"):
        default_gradcam_layer(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 2)), 8)

    class SkipsItsConv(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.unused = torch.nn.Conv2d(3, 3, 1)
            self.head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(x)

    with pytest.raises(ReportgenError, match="runs in its forward pass"):
        default_gradcam_layer(SkipsItsConv(), 8)
