"""--cam through the whole run: each chosen map method at --gradcam-layer, its overlays
beside Grad-CAM's on input pages, its maps in the manifest under its name; the maps
equal the method computed directly on the same batch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from reportgen.compute.batch import forward_batch
from reportgen.compute.model_run import pass_plan, plan_layers
from reportgen.inputs.discovery import discover_inputs
from reportgen.nn.cams import cam_method
from reportgen.nn.gradients import batch_pass
from reportgen.run_options import compute_options
from reportgen.settings import RunSettings
from tests.helpers import error_line, invoke, random_model

MODEL = ("-m", "tests.contribnet_factory:build", "--weights", "none", "--input-size", "32")


def _run(images: Path, out: Path, *options: str) -> dict:
    result = invoke(
        "run", str(images), *MODEL, "-l", "stem", "--no-cache", "-o", str(out), "-q", *options
    )
    assert result.exit_code == 0, result.stderr
    return json.loads((out / "manifest.json").read_text())["models"][0]


def test_layercam_is_shown_beside_grad_cam(small_images: Path, tmp_path: Path) -> None:
    model = _run(
        small_images,
        tmp_path / "both",
        "--cam",
        "gradcam,layercam",
        "--gradcam-layer",
        "expand",
        "--target-class",
        "1",
    )
    assert set(model["layercam"]) == set(model["gradcam"]) == set(model["input_pages"])
    for input_id, entry in model["layercam"].items():
        assert entry["layer"] == "expand" and entry["target"]["class_index"] == 1
        assert entry["class_index"] == model["gradcam"][input_id]["class_index"]
        assert entry["map"] != model["gradcam"][input_id]["map"]
        for image in (entry["image"], entry["target"]["image"]):
            assert image.startswith("models/") and "/layercam/" in image
            assert (tmp_path / "both" / image).stat().st_size > 0
        page = (tmp_path / "both" / model["input_pages"][input_id]).read_text()
        assert "Grad-CAM, top prediction" in page and "LayerCAM, top prediction" in page
        assert page.index("Grad-CAM, target class") < page.index("LayerCAM, top prediction")
    default = _run(small_images, tmp_path / "default")
    assert "layercam" not in default and default["gradcam"]
    assert not list((tmp_path / "default").rglob("layercam"))


def test_the_run_maps_are_the_method_on_the_batch(small_images: Path) -> None:
    settings = RunSettings(
        inputs=("x",),
        models=("resnet18",),
        weights="none",
        layers=("layer1",),
        cam=("layercam",),
        gradcam_layer="layer2",
    )
    compute = compute_options(settings)
    model = random_model("resnet18")
    facts, _ = plan_layers(model, compute)
    plan = pass_plan(model, compute)
    assert plan.methods == ("layercam", "contributions")
    files, _ = discover_inputs([str(small_images)])
    outputs = forward_batch(model, facts.layers, files, plan)
    batch = torch.stack(
        [model.preprocessing.tensor(model.preprocessing.view(_image(f), f.source)) for f in files]
    )
    done = batch_pass(model.module, batch, [], ["layer2"], {"top": [None] * len(files)})
    direct = cam_method("layercam").cams(done.values, done.classes["top"], "layer2")
    for output, cam in zip(outputs, direct):
        ((record, unrounded),) = output.cams
        assert record.method == "layercam" and record.class_index == cam.class_index
        np.testing.assert_array_equal(unrounded, cam.map)


def _image(file: object) -> object:
    from reportgen.inputs.files import load_image

    return load_image(file).image  # type: ignore[arg-type]


def test_an_unknown_method_is_one_error_line(small_images: Path, tmp_path: Path) -> None:
    result = invoke("run", str(small_images), *MODEL, "--cam", "gradcam,scorecam", "-o", "x")
    error_line(result, 2, "--cam", "scorecam", "layercam")
