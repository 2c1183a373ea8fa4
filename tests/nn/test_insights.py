"""Issue 6: Grad-CAM, dataset examples, receptive fields, comparison, custom models, API."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from reportgen.analysis.examples import TopExamples
from reportgen.nn.gradcam import grad_cam, last_conv_layer
from reportgen.nn.receptive import receptive_fields
from tests.helpers import SAMPLE_IMAGES, TESTS, invoke, write_images

# --- Grad-CAM -------------------------------------------------------------------------


def test_gradcam_equals_cam_formula_for_a_pooled_linear_head() -> None:
    """For global average pooling + fc, Grad-CAM's weights are fc.weight[c] / (H*W):
    the map must equal relu(sum_k fc.weight[c, k] * A_k), normalised (Zhou et al.)."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    batch = torch.randn(2, 3, 160, 160)
    cams = grad_cam(model, "layer4", batch, [None, 7])
    recorded = {}
    handle = model.layer4.register_forward_hook(lambda m, i, o: recorded.setdefault("a", o))
    with torch.no_grad():
        logits = model(batch)
    handle.remove()
    assert cams[0].class_index == int(logits[0].argmax())
    assert cams[1].class_index == 7
    for i, cam in enumerate(cams):
        weights = model.fc.weight.detach()[cam.class_index]
        expected = torch.relu((weights[:, None, None] * recorded["a"][i]).sum(0)).numpy()
        expected = expected / expected.max()
        np.testing.assert_allclose(cam.map, expected, atol=1e-5)


def test_gradcam_before_an_inplace_relu_matches_autograd_on_a_split_model() -> None:
    """AlexNet features.10 is followed by an in-place ReLU: the map must use the conv's
    true output and the gradient with respect to it, computed here independently."""
    torch.manual_seed(1)
    model = torchvision.models.alexnet().eval()
    batch = torch.randn(2, 3, 224, 224)
    cams = grad_cam(model, "features.10", batch, [None, 3])
    for i, cam in enumerate(cams):
        with torch.no_grad():
            activation = model.features[:11](batch[i : i + 1]).clone()
        assert float(activation.min()) < 0  # the values an in-place ReLU would erase
        activation.requires_grad_(True)
        rest = model.features[11:](activation.clone())
        logits = model.classifier(torch.flatten(model.avgpool(rest), 1))
        (gradient,) = torch.autograd.grad(logits[0, cam.class_index], activation)
        expected = torch.relu((gradient.mean((2, 3), keepdim=True) * activation).sum(1))[0]
        expected = (expected / expected.max()).detach().numpy()
        np.testing.assert_allclose(cam.map, expected, atol=1e-5)


def test_last_conv_layer() -> None:
    assert last_conv_layer(torchvision.models.alexnet()) == "features.10"
    assert last_conv_layer(torchvision.models.resnet18()) == "layer4.1.conv2"


@pytest.mark.slow
def test_gradcam_mass_lies_on_the_object_with_real_weights(
    mobilenet_weights_dir: Path, tmp_path: Path
) -> None:
    """The cat fills the left half of the frame, a flat grey the right half."""
    cat = Image.open(SAMPLE_IMAGES / "cat_chelsea.png").convert("RGB").resize((224, 224))
    canvas = Image.new("RGB", (448, 224), (128, 128, 128))
    canvas.paste(cat, (0, 0))
    # The network's view is the centre crop: resize to 512x256, keep 224 columns.
    view = canvas.resize((512, 256)).crop((144, 16, 368, 240))
    images = tmp_path / "in"
    images.mkdir()
    view.save(images / "half_cat.png")
    out = tmp_path / "report"
    result = invoke(
        "run",
        str(images),
        "-m",
        "mobilenet_v2",
        "--weights-dir",
        str(mobilenet_weights_dir),
        "-l",
        "features.18.0",
        "--examples",
        "0",
        "-o",
        str(out),
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    (entry,) = manifest["models"][0]["gradcam"].values()
    assert "cat" in entry["label"].lower()
    cam = np.array(entry["map"])
    assert cam.min() >= 0 and cam.max() == pytest.approx(1.0)
    width = cam.shape[1]
    # Columns of the map over the cat (the left half of the view), the middle one halved.
    left = cam[:, : width // 2].sum() + 0.5 * cam[:, width // 2].sum() * (width % 2)
    assert left / cam.sum() > 0.6
    assert (out / entry["image"]).is_file()


# --- Receptive fields --------------------------------------------------------------------


def _measured_field(model: torch.nn.Module, layer: str, size: int = 224) -> tuple[int, int]:
    """Height and width of the input region that reaches the centre cell, by gradient.

    Max pools become average pools of the same geometry and nonlinearities identity,
    with positive weights: then every pixel of the field has a nonzero gradient."""
    probe = copy.deepcopy(model).eval()
    for parent in list(probe.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.MaxPool2d):
                pool = torch.nn.AvgPool2d(child.kernel_size, child.stride, child.padding)
                setattr(parent, name, pool)
            elif isinstance(child, (torch.nn.ReLU, torch.nn.BatchNorm2d, torch.nn.Dropout)):
                setattr(parent, name, torch.nn.Identity())
    with torch.no_grad():
        for parameter in probe.parameters():
            parameter.copy_(parameter.abs() + 0.01)
    image = torch.rand(1, 3, size, size, requires_grad=True)
    seen = {}
    module = dict(probe.named_modules())[layer]
    handle = module.register_forward_hook(lambda m, i, o: seen.setdefault("out", o))
    probe(image)
    handle.remove()
    out = seen["out"]
    y, x = out.shape[2] // 2, out.shape[3] // 2
    (gradient,) = torch.autograd.grad(out[0, :, y, x].sum(), image)
    rows, cols = (gradient[0].abs().sum(0) > 0).nonzero(as_tuple=True)
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


@pytest.mark.parametrize(
    ("name", "layers"),
    [
        ("alexnet", ["features.0", "features.3", "features.6", "features.8"]),
        ("resnet18", ["conv1", "layer1.0.conv2", "layer2.0.conv1", "layer2.1.conv2"]),
    ],
)
def test_receptive_field_matches_gradient_measurement(name: str, layers: list[str]) -> None:
    model = torchvision.models.get_model(name)
    fields = receptive_fields(model, layers, 224)
    for layer in layers:
        assert fields[layer].size == _measured_field(model, layer), layer


def test_receptive_field_box_is_clipped_to_the_view() -> None:
    fields = receptive_fields(torchvision.models.alexnet(), ["features.3"], 224)
    field = fields["features.3"]
    assert field.size == (51, 51) and field.stride == (8, 8)
    assert field.box(0, 0, (224, 224))[:2] == [0, 0]
    x0, y0, x1, y1 = field.box(13, 13, (224, 224))
    assert (x1 - x0, y1 - y0) == (51, 51)


# --- Dataset examples ----------------------------------------------------------------------


def test_top_examples_keep_the_highest_inputs_per_channel_with_bounded_memory() -> None:
    rng = np.random.default_rng(3)
    maxima = rng.normal(size=(50, 4))  # 50 inputs, 4 channels
    tracker = TopExamples(channels=4, count=5)
    for i in range(50):
        tracker.add(f"in{i}", i, maxima[i], np.full(4, i % 7), np.full(4, i % 5))
    for channel in range(4):
        expected = [f"in{i}" for i in np.argsort(-maxima[:, channel], kind="stable")[:5]]
        got = tracker.top(channel)
        assert [e.input_id for e in got] == expected
        assert len(tracker._heaps[channel]) == 5  # never more than N per channel
        assert got[0].y == int(expected[0][2:]) % 7


# --- Comparison, custom models and the Python API ----------------------------------------


@pytest.mark.slow
def test_compare_two_checkpoints_puts_most_changed_filters_first(tmp_path: Path) -> None:
    torch.manual_seed(0)
    base = torchvision.models.alexnet()
    torch.save(base.state_dict(), tmp_path / "base.pth")
    tuned = copy.deepcopy(base.state_dict())
    tuned["features.0.weight"][5] *= -1.0  # cosine -1
    tuned["features.0.weight"][9] = torch.randn_like(tuned["features.0.weight"][9])
    torch.save(tuned, tmp_path / "tuned.pth")
    images = write_images(tmp_path / "in", 2, (64, 64), seed=5, prefix="pic")
    out = tmp_path / "report"
    result = invoke(
        "run",
        str(images),
        "-m",
        f"alexnet={tmp_path / 'base.pth'}",
        "-m",
        f"alexnet={tmp_path / 'tuned.pth'}",
        "--label",
        "base",
        "--label",
        "tuned",
        "-l",
        "features.0",
        "--examples",
        "2",
        "-o",
        str(out),
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert [m["id"] for m in manifest["models"]] == ["base", "tuned"]
    (comparison,) = manifest["comparisons"]
    rows = comparison["layers"][0]["rows"]
    assert rows[0]["index"] == 5 and rows[0]["cosine"] == pytest.approx(-1.0, abs=1e-6)
    assert rows[1]["index"] == 9
    assert all(r["cosine"] == pytest.approx(1.0) for r in rows[2:])
    index = (out / "index.html").read_text()
    assert 'href="comparison.html"' in index
    page = (out / "comparison.html").read_text()
    assert "most changed filters first" in page
    # predictions of both models side by side, for every input
    assert set(comparison["predictions"]) == {i["id"] for i in manifest["inputs"]}


@pytest.mark.slow
def test_custom_model_factory_with_weights_labels_and_normalisation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(TESTS))
    sys.modules.pop("tinynet_factory", None)
    import tinynet_factory

    torch.manual_seed(4)
    trained = tinynet_factory.build()
    torch.save(trained.state_dict(), tmp_path / "tiny.pth")
    (tmp_path / "labels.txt").write_text("apple\nbanana\ncherry\n")
    images = write_images(tmp_path / "in", 3, (64, 64), seed=5, prefix="pic")
    out = tmp_path / "report"
    result = invoke(
        "run",
        str(images),
        "-m",
        "tinynet_factory:build",
        "--weights",
        str(tmp_path / "tiny.pth"),
        "--input-size",
        "32",
        "--mean",
        "0.5,0.5,0.5",
        "--std",
        "0.25,0.25,0.25",
        "--labels",
        str(tmp_path / "labels.txt"),
        "--examples",
        "2",
        "-o",
        str(out),
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    (model,) = manifest["models"]
    assert [layer["name"] for layer in model["layers"]] == ["conv1", "conv2"]
    assert model["layers"][0]["output_shape"] == [8, 32, 32]
    # predictions come from the saved weights and the given normalisation
    first = manifest["inputs"][0]
    pixels = Image.open(images / Path(first["source"]).name).convert("RGB")
    view = pixels.resize((37, 37), Image.Resampling.BILINEAR).crop((2, 2, 34, 34))
    tensor = torch.from_numpy(np.asarray(view, dtype=np.float32) / 255.0).permute(2, 0, 1)
    with torch.no_grad():
        probabilities = torch.softmax(trained.eval()((tensor[None] - 0.5) / 0.25), dim=1)[0]
    top = model["predictions"][first["id"]][0]
    assert top["label"] == ["apple", "banana", "cherry"][int(probabilities.argmax())]
    assert top["probability"] == pytest.approx(float(probabilities.max()), abs=0.02)
    assert model["gradcam"][first["id"]]["layer"] == "conv2"


@pytest.mark.slow
def test_analyze_returns_the_same_data_the_report_records(tmp_path: Path) -> None:
    import reportgen

    images = write_images(tmp_path / "in", 2, (64, 64), seed=5, prefix="pic")
    options = dict(models=["alexnet"], weights="none", layers=["features.0"], examples=3)
    analysis = reportgen.analyze([str(images)], **options)
    assert not (tmp_path / "report").exists()
    summary = reportgen.build_report([str(images)], output=str(tmp_path / "report"), **options)
    manifest = json.loads((Path(summary.report) / "manifest.json").read_text())
    for key in ("inputs", "warnings"):
        assert analysis[key] == manifest[key]
    got, want = analysis["models"][0], manifest["models"][0]
    assert got["predictions"] == want["predictions"]
    assert got["gradcam"] == want["gradcam"]
    assert got["layers"][0]["channels"] == want["layers"][0]["channels"]
    assert "files" not in analysis


def test_receptive_field_boxes_always_lie_inside_the_view() -> None:
    """Even where the walked stride overshoots (a cell whose centre falls past the edge),
    a box is at least one pixel and inside the view: the dataset examples crop it."""
    from reportgen.nn.receptive import ReceptiveField

    field = ReceptiveField(size=(7, 7), stride=(32, 32), start=(3.5, 3.5))
    for y, x in [(0, 0), (6, 6), (20, 20), (100, 3)]:
        x0, y0, x1, y1 = field.box(y, x, (224, 224))
        assert 0 <= x0 < x1 <= 224 and 0 <= y0 < y1 <= 224
