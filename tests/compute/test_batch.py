"""The compute stage's boundary: one batch through one model -> per-input results,
checked against a plain forward pass done here with torch directly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from reportgen.analysis.stats import select_channels
from reportgen.compute.batch import PassPlan, PictureOptions, finish_input, forward_batch
from reportgen.compute.model_run import plan_layers
from reportgen.imaging import pictures
from reportgen.inputs.discovery import discover_inputs
from reportgen.inputs.files import load_image
from reportgen.options import ComputeOptions
from reportgen.results.records import GRADCAM_TARGET, GRADCAM_TOP, PictureKey
from reportgen.run_options import compute_options
from reportgen.settings import RunSettings
from tests.helpers import random_model

LAYERS = ("features.0", "features.3", "classifier.6")
BOTH = ("gradcam", "contributions")  # the explanation methods the batches run


@pytest.fixture(scope="module")
def alexnet() -> Any:
    return random_model("alexnet")


def _settings(**options: Any) -> ComputeOptions:
    """What each input computes: the test's layers and ``options``' selection."""
    settings = RunSettings(
        inputs=("x",), models=("alexnet",), weights="none", layers=LAYERS, **options
    )
    return compute_options(settings)


def _options(files: list[Any], encode: bool = True, **changes: Any) -> PictureOptions:
    """Pictures of a folder report; ``files`` are detail inputs (every map)."""
    values: dict[str, Any] = {
        "table": pictures.colormap_table("jet"),
        "alpha": 0.5,
        "sheets": True,
        "overlay_files": False,
        "scale_by_layer": False,
        "encode": encode,
        "detail": frozenset(f.id for f in files),
    }
    values.update(changes)
    return PictureOptions(**values)


def _plain_pass(model: Any, files: list[Any]) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
    """The network's logits and each layer's output, with plain torch hooks."""
    views = [model.preprocessing.view(load_image(f).image) for f in files]
    batch = torch.stack([model.preprocessing.tensor(v) for v in views])
    modules = dict(model.module.named_modules())
    seen: dict[str, np.ndarray] = {}
    handles = [
        modules[name].register_forward_hook(
            lambda _m, _i, out, name=name: seen.__setitem__(name, out.detach().clone().numpy())
        )
        for name in LAYERS
    ]
    try:
        with torch.no_grad():
            logits = model.module(batch)
    finally:
        for handle in handles:
            handle.remove()
    return logits, seen


def test_one_batch_gives_per_input_results_equal_to_a_plain_forward_pass(
    alexnet: Any, small_images: Path
) -> None:
    settings = _settings(top_k=5)
    facts = plan_layers(alexnet, settings)[0]
    files, _ = discover_inputs([str(small_images)])
    outputs = forward_batch(alexnet, facts.layers, files, PassPlan(("contributions",), None, None))
    results = [finish_input(o, facts.layers, settings.selection, _options(files)) for o in outputs]
    logits, plain = _plain_pass(alexnet, files)

    assert [r.input_id for r in results] == [f.id for f in files]
    top = torch.topk(torch.softmax(logits, dim=1), k=5, dim=1)
    for b, result in enumerate(results):
        assert [i for i, _ in result.predictions] == top.indices[b].tolist()
        assert np.allclose([p for _, p in result.predictions], top.values[b].numpy(), atol=1e-6)
        for name in LAYERS:
            values = plain[name][b].reshape(plain[name].shape[1], -1)
            stats = result.layers[name].stats
            assert np.allclose(stats.mean, values.mean(axis=1), rtol=1e-5, atol=1e-6)
            assert np.allclose(stats.max, values.max(axis=1), rtol=1e-6)
            assert np.allclose(stats.min, values.min(axis=1), rtol=1e-6)
            assert result.layers[name].selected == select_channels(stats, "top_mean", 5)
        # Map layers: one map sheet and a value range; the unit layer: no picture.
        assert result.layers["features.0"].value_range == (
            float(plain["features.0"][b].min()),
            float(plain["features.0"][b].max()),
        )
        assert result.layers["classifier.6"].value_range is None
        assert set(result.pictures) == {
            PictureKey("view"),
            PictureKey("sheet", "features.0"),
            PictureKey("sheet", "features.3"),
        }


def test_each_inputs_result_is_independent_of_its_batch(alexnet: Any, small_images: Path) -> None:
    settings = _settings()
    facts = plan_layers(alexnet, settings)[0]
    files, _ = discover_inputs([str(small_images)])
    together = forward_batch(alexnet, facts.layers, files, PassPlan(BOTH, "features.10", 3))
    alone = forward_batch(alexnet, facts.layers, files[1:2], PassPlan(BOTH, "features.10", 3))[0]
    assert together[1].input_id == alone.input_id
    for name in LAYERS:
        assert np.allclose(
            together[1].layers[name].values, alone.layers[name].values, rtol=1e-4, atol=1e-5
        )
    assert [c.kind for c, _ in alone.cams] == [GRADCAM_TOP, GRADCAM_TARGET]
    assert alone.cams[1][0].class_index == 3


def test_only_detail_inputs_get_maps(alexnet: Any, small_images: Path) -> None:
    settings = _settings()
    facts = plan_layers(alexnet, settings)[0]
    files, _ = discover_inputs([str(small_images)])
    outputs = forward_batch(alexnet, facts.layers, files, PassPlan(BOTH, "features.10", None))
    options = _options(files[1:2])
    results = [finish_input(o, facts.layers, settings.selection, options) for o in outputs]
    kinds = [sorted({k.kind for k in r.pictures}) for r in results]
    assert kinds == [
        ["gradcam", "view"],
        ["gradcam", "sheet", "view"],
        ["gradcam", "view"],
    ]
    # Statistics, selections and ranges are kept for every input.
    assert all(r.layers["features.0"].value_range is not None for r in results)


def test_pictures_follow_the_options(alexnet: Any, small_images: Path) -> None:
    settings = _settings(top_k=2)
    facts = plan_layers(alexnet, settings)[0]
    files, _ = discover_inputs([str(small_images)])
    (output,) = forward_batch(
        alexnet,
        facts.layers,
        files[:1],
        PassPlan(BOTH, "features.10", None),
    )
    per_map = finish_input(
        output, facts.layers, settings.selection, _options(files, sheets=False, overlay_files=True)
    )
    kinds = {(k.kind, k.layer) for k in per_map.pictures}
    assert ("sheet", "features.0") not in kinds
    maps = [k for k in per_map.pictures if k.kind == "map" and k.layer == "features.0"]
    assert len(maps) == facts.layers[0].channels
    overlays = sorted(
        k.channel for k in per_map.pictures if k.kind == "overlay" and k.layer == "features.0"
    )
    assert overlays == sorted(per_map.layers["features.0"].selected)
    assert PictureKey("gradcam", part=GRADCAM_TOP) in per_map.pictures
    nothing = finish_input(output, facts.layers, settings.selection, _options(files, encode=False))
    assert nothing.pictures == {}
    assert nothing.layers["features.0"].selected == per_map.layers["features.0"].selected
