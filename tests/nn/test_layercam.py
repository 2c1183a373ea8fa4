"""The map methods against the reference implementation, pytorch-grad-cam (PyPI
``grad-cam``, a test extra): the same model, layer and class, the reference's resize and
scaling applied to ours, equal to 1e-5."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torchvision

from reportgen.nn.cams import cam_method
from reportgen.nn.gradients import batch_pass

pytorch_grad_cam = pytest.importorskip("pytorch_grad_cam")


@pytest.fixture(scope="module")
def resnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval()


def _reference(kind: Any, model: torch.nn.Module, layer: str, x: torch.Tensor, classes: list[int]):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    target_layer = dict(model.named_modules())[layer]
    with kind(model=model, target_layers=[target_layer]) as cam:
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in classes])


def _ours(method: str, model: torch.nn.Module, layer: str, x: torch.Tensor, classes: list[Any]):
    from pytorch_grad_cam.utils.image import scale_cam_image

    done = batch_pass(model, x, [], [layer], {"class": classes})
    cams = cam_method(method).cams(done.values, done.classes["class"], layer)
    maps = np.stack([cam.map for cam in cams]).astype(np.float32)
    # the reference's resize and scaling: each map to 0..1 by its own minimum and maximum
    # and resized to the input, then (its one-layer aggregate) scaled to 0..1 again
    resized = scale_cam_image(maps, (x.shape[3], x.shape[2]))
    return scale_cam_image(resized), [cam.class_index for cam in cams]


@pytest.mark.parametrize("layer", ["layer1", "layer3.0.conv2", "layer4"])
@pytest.mark.parametrize(
    ("method", "reference"), [("layercam", "LayerCAM"), ("gradcam", "GradCAM")]
)
def test_maps_equal_pytorch_grad_cams(
    resnet: torch.nn.Module, layer: str, method: str, reference: str
) -> None:
    x = torch.rand(3, 3, 96, 112, generator=torch.Generator().manual_seed(5))
    ours, classes = _ours(method, resnet, layer, x, [None, 7, None])
    assert classes[1] == 7
    theirs = _reference(getattr(pytorch_grad_cam, reference), resnet, layer, x, classes)
    assert ours.shape == theirs.shape == (3, 96, 112)
    np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0)
    assert float(theirs.max()) > 0.99  # a real map, not an empty one


def test_layercam_keeps_the_detail_that_grad_cam_pools_away(resnet: torch.nn.Module) -> None:
    """At an early layer the two differ: LayerCAM weighs each position by its own gradient."""
    x = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(6))
    done = batch_pass(resnet, x, [], ["layer1"], {"top": [None]})
    grad = cam_method("gradcam").cams(done.values, done.classes["top"], "layer1")[0].map
    layer = cam_method("layercam").cams(done.values, done.classes["top"], "layer1")[0].map
    assert grad.shape == layer.shape == (24, 24)
    assert not np.allclose(grad, layer, atol=1e-3)
