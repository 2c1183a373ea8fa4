"""Merged results -> the records pages are made from: every picture's path, every number
as the pages and the manifest show it. The only place where results meet report paths."""

from __future__ import annotations

import math
from typing import Any

from reportgen.analysis.stats import map_to_view
from reportgen.imaging.sheets import SheetGrid
from reportgen.report import paths
from reportgen.report.data import (
    ChannelRecord,
    GradCamRecord,
    LayerRecord,
    ModelRecord,
    Prediction,
)
from reportgen.results.records import (
    GRADCAM_TOP,
    InputResult,
    LayerFacts,
    LayerResult,
    ModelFacts,
    PictureKey,
)
from reportgen.results.run import ModelResults


def picture_path(model_id: str, input_id: str, key: PictureKey) -> str:
    """Where a picture of a model (and input, for per-input pictures) lives in a report."""
    kind, layer, channel = key.kind, key.layer, key.channel
    if kind == "view":
        return paths.model_view(model_id, input_id)
    if kind == "gradcam":
        return paths.gradcam_image(model_id, input_id + gradcam_suffix(key.part))
    if kind == "sheet":
        return paths.map_sheet(model_id, layer, input_id)
    if kind == "map":
        return paths.map_image(model_id, layer, input_id, channel)
    if kind == "overlay":
        return paths.overlay_image(model_id, layer, input_id, channel)
    if kind == "chart":
        return paths.ranked_chart(model_id, layer, input_id)
    if kind == "filter":
        return paths.filter_image(model_id, layer, channel, key.part)
    if kind == "examples":
        return paths.examples_image(model_id, layer, channel)
    if kind == "featurevis":
        return paths.featurevis_image(model_id, layer, channel, key.part)
    raise ValueError(f"no path for a picture of kind {kind!r}")


def gradcam_suffix(kind: str) -> str:
    return "" if kind == GRADCAM_TOP else "-target"


def filter_note(layer: LayerFacts) -> str | None:
    if layer.weight is None:
        return None
    kh, kw = layer.weight.shape[2:]
    if layer.filter_parts[0] == "rgb":
        return (
            f"{kh}x{kw} filters over the RGB input: shown as colour, and as their R, G and B "
            "parts apart, each filter scaled over its own range (true pixels, no smoothing)"
        )
    return (
        f"{kh}x{kw} filters over {layer.weight.shape[1]} input channels: shown as the mean over "
        "those channels, in grey, each scaled over its own range"
    )


def model_record(results: ModelResults, sheets: bool, overlay_files: bool) -> ModelRecord:
    """A model's record: its layers with every input's numbers and picture paths."""
    facts = results.facts
    record = ModelRecord(
        id=facts.id,
        name=facts.name,
        weights=facts.weights,
        weights_detail=facts.weights_detail,
        preprocessing=facts.preprocessing,
        page=paths.model_page(facts.id),
        compare_page=paths.compare_page(facts.id),
        notes=list(facts.notes),
        label=facts.label,
    )
    record.layers = [_layer_record(facts, layer, sheets) for layer in facts.layers]
    for result in results.inputs.values():
        _add_input(record, facts, result, overlay_files)
    for layer in record.layers:
        _add_examples_and_feature_vis(facts.id, layer, results)
    return record


def _layer_record(facts: ModelFacts, layer: LayerFacts, sheets: bool) -> LayerRecord:
    record = LayerRecord(
        name=layer.name,
        type=layer.type,
        value=layer.value,
        output_shape=layer.output_shape,
        page=paths.layer_page(facts.id, layer.name),
        spatial=layer.spatial,
        filter_note=filter_note(layer),
        channels=[
            ChannelRecord(
                c,
                paths.channel_page(facts.id, layer.name, c),
                filter={
                    part: paths.filter_image(facts.id, layer.name, c, part)
                    for part in layer.filter_parts
                },
            )
            for c in range(layer.channels)
        ],
    )
    record.receptive_field = layer.receptive_field
    if layer.spatial and sheets:
        record.sheet_grid = SheetGrid.for_layer(*layer.output_shape)
    return record


def _add_input(
    record: ModelRecord, facts: ModelFacts, result: InputResult, overlay_files: bool
) -> None:
    input_id = result.input_id
    record.views[input_id] = paths.model_view(facts.id, input_id)
    record.predictions[input_id] = [
        Prediction(index, facts.class_label(index), probability)
        for index, probability in result.predictions
    ]
    if result.gradcam:
        record.gradcam[input_id] = [
            GradCamRecord(
                class_index=cam.class_index,
                label=facts.class_label(cam.class_index),
                layer=cam.layer,
                map=cam.map,
                image=paths.gradcam_image(facts.id, input_id + gradcam_suffix(cam.kind)),
                kind=cam.kind,
            )
            for cam in result.gradcam
        ]
    for layer in record.layers:
        _add_layer_input(facts, layer, input_id, result.layers[layer.name], overlay_files)


def _add_layer_input(
    facts: ModelFacts,
    layer: LayerRecord,
    input_id: str,
    result: LayerResult,
    overlay_files: bool,
) -> None:
    stats = result.stats
    layer.selected[input_id] = result.selected
    # Plain lists: one conversion per array instead of a numpy scalar per value.
    means, maxs, mins = stats.mean.tolist(), stats.max.tolist(), stats.min.tolist()
    stds, sparsities = stats.std.tolist(), stats.sparsity.tolist()
    ys, xs = stats.argmax_y.tolist(), stats.argmax_x.tolist()
    for c, channel in enumerate(layer.channels):
        y, x = ys[c], xs[c]
        channel.stats[input_id] = {
            "mean": _finite(means[c]),
            "max": _finite(maxs[c]),
            "min": _finite(mins[c]),
            "std": _finite(stds[c]),
            "sparsity": _finite(sparsities[c]),
            "argmax": {
                "map_yx": [y, x],
                "view_xy": list(map_to_view(y, x, stats.map_size, facts.view_size)),
            },
        }
    if not layer.spatial:
        layer.charts[input_id] = paths.ranked_chart(facts.id, layer.name, input_id)
        return
    assert result.value_range is not None
    layer.ranges[input_id] = result.value_range
    if layer.sheet_grid is not None:
        layer.sheets[input_id] = paths.map_sheet(facts.id, layer.name, input_id)
    else:
        for c, channel in enumerate(layer.channels):
            channel.maps[input_id] = paths.map_image(facts.id, layer.name, input_id, c)
    if overlay_files:
        for c in sorted(set(result.selected)):
            layer.channels[c].overlays[input_id] = paths.overlay_image(
                facts.id, layer.name, input_id, c
            )


def _add_examples_and_feature_vis(model_id: str, layer: LayerRecord, results: ModelResults) -> None:
    boxes = results.example_boxes.get(layer.name)
    numbers = results.feature_vis.get(layer.name, {})
    for channel in layer.channels:
        if boxes is not None:
            channel.examples = boxes[channel.index]
            if channel.examples:
                channel.examples_image = paths.examples_image(model_id, layer.name, channel.index)
        found = numbers.get(channel.index)
        if found is not None:
            channel.feature_vis = _feature_vis_entry(model_id, layer.name, channel.index, found)


def _feature_vis_entry(
    model_id: str, layer: str, channel: int, numbers: dict[str, Any]
) -> dict[str, Any]:
    entry: dict[str, Any] = {"image": paths.featurevis_image(model_id, layer, channel, "max")}
    entry.update({k: v for k, v in numbers.items() if k != "negative"})
    if "negative" in numbers:
        entry["negative"] = {
            "image": paths.featurevis_image(model_id, layer, channel, "min"),
            **numbers["negative"],
        }
    return entry


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
