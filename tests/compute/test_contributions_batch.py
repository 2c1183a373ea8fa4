"""Channel contributions through the compute stage: the pass plan, the facts of the
layer pooled into the classifier, what each input's statistics carry, the cache entry,
and --no-contributions (no field, no backward pass)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from reportgen.compute.batch import forward_batch
from reportgen.compute.model_run import pass_plan, plan_layers
from reportgen.inputs.discovery import discover_inputs
from reportgen.inputs.files import load_image
from reportgen.results.store import result_entry, result_from_entry
from reportgen.run_options import compute_options
from reportgen.settings import RunSettings
from reportgen.statistics import file_fields
from tests.helpers import random_model, write_images

LAYERS = ("layer1", "layer4")


@pytest.fixture(scope="module")
def resnet() -> Any:
    return random_model("resnet18")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    folder = write_images(tmp_path_factory.mktemp("in"), 3, (80, 64), seed=2, prefix="pic")
    return discover_inputs([str(folder)])[0]


def _compute(**options: Any) -> Any:
    settings = RunSettings(
        inputs=("x",), models=("resnet18",), weights="none", layers=LAYERS, **options
    )
    return compute_options(settings)


def _logits(model: Any, files: list[Any]) -> torch.Tensor:
    views = [model.preprocessing.view(load_image(f).image, f.source) for f in files]
    batch = torch.stack([model.preprocessing.tensor(v) for v in views])
    with torch.no_grad():
        return model.module(batch).double()


def test_every_input_carries_its_contributions_and_the_pooled_layer_is_exact(
    resnet: Any, files: list[Any]
) -> None:
    compute = _compute(target_class="7")
    facts, _ = plan_layers(resnet, compute)
    assert facts.contribution_fields == ("contribution", "target_contribution")
    assert facts.stats_fields == file_fields(("contribution", "target_contribution"))
    by_name = {layer.name: layer for layer in facts.layers}
    assert by_name["layer4"].exact_contributions and not by_name["layer1"].exact_contributions
    assert by_name["layer1"].direct_effects is None
    effects = by_name["layer4"].direct_effects
    weight = resnet.module.fc.weight.detach().numpy()
    assert effects is not None and len(effects) == 512
    for channel in (0, 311):
        column = weight[:, channel]
        assert [k for k, _ in effects[channel].raises] == list(np.argsort(-column)[:5])
        assert [k for k, _ in effects[channel].lowers] == list(np.argsort(column)[:5])
        assert effects[channel].raises[0][1] == pytest.approx(float(column.max()))

    outputs = forward_batch(resnet, facts.layers, files, pass_plan(resnet, compute))
    logits = _logits(resnet, files)
    bias = resnet.module.fc.bias.detach().double()
    for b, output in enumerate(outputs):
        top = output.predictions[0][0]
        stats = output.layers["layer4"].stats
        assert stats.contribution.dtype == np.float32 and stats.contribution.shape == (512,)
        for values, c in ((stats.contribution, top), (stats.target_contribution, 7)):
            want = float(logits[b, c] - bias[c])
            assert abs(float(values.astype(np.float64).sum()) - want) <= 1e-4 * abs(want)
        assert output.layers["layer1"].stats.target_contribution.shape == (64,)


def test_contributions_survive_the_cache_entry(resnet: Any, files: list[Any]) -> None:
    from reportgen.compute.batch import PictureOptions, finish_input
    from reportgen.imaging import pictures

    compute = _compute()
    facts, _ = plan_layers(resnet, compute)
    output = forward_batch(resnet, facts.layers, files[:1], pass_plan(resnet, compute))[0]
    options = PictureOptions(pictures.colormap_table("jet"), 0.5, True, False, False, False)
    result = finish_input(output, facts.layers, compute.selection, options)
    entry = result_entry(result)
    assert entry.header["fields"] == list(facts.stats_fields)
    back = result_from_entry(entry, LAYERS, facts.contribution_fields)
    for name in LAYERS:
        np.testing.assert_array_equal(
            back.layers[name].stats.contribution, result.layers[name].stats.contribution
        )
    from reportgen.results.store import EntryMismatch

    with pytest.raises(EntryMismatch):  # an entry without them is a miss for a run with
        result_from_entry(entry, LAYERS, ("contribution", "target_contribution"))


def test_no_contributions_means_no_field_and_no_backward_pass(
    resnet: Any, files: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    compute = _compute(contributions=False, gradcam=False, target_class="7")
    facts, _ = plan_layers(resnet, compute)
    assert facts.contribution_fields == () and facts.stats_fields == file_fields()
    assert not any(layer.exact_contributions for layer in facts.layers)
    backward: list[int] = []
    original = torch.autograd.grad
    monkeypatch.setattr(
        torch.autograd, "grad", lambda *a, **k: (backward.append(1), original(*a, **k))[1]
    )
    outputs = forward_batch(resnet, facts.layers, files, pass_plan(resnet, compute))
    assert backward == []
    assert outputs[0].layers["layer4"].stats.contributions == {}
    with pytest.raises(AttributeError):
        _ = outputs[0].layers["layer4"].stats.contribution
