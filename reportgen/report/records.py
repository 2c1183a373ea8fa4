"""Merged results -> the records pages are made from: every picture's path, every number
as the pages and the manifest show it. The only place where results meet report paths."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from reportgen.analysis.stats import map_to_view, unit_ranks
from reportgen.explanations import map_method_names, method
from reportgen.imaging import fv_pictures
from reportgen.imaging.pictures import EXAMPLE_TILE
from reportgen.imaging.sheets import (
    EXAMPLE_SHEET_CHANNELS,
    SheetGrid,
    example_first_grid,
    example_firsts_grid,
    example_grid,
)
from reportgen.report import paths
from reportgen.report.data import (
    CamRecord,
    ChannelRecord,
    ChannelSummary,
    Histogram,
    LayerRecord,
    ModelRecord,
    Prediction,
)
from reportgen.report.kernels import add_kernels
from reportgen.results.records import (
    GRADCAM_TOP,
    LayerFacts,
    LayerResult,
    ModelFacts,
    PictureKey,
    channel_label,
)
from reportgen.results.run import InputFacts, ModelResults
from reportgen.statistics import file_fields, over_inputs


def picture_path(model_id: str, input_id: str, key: PictureKey) -> str:
    """Where a picture of a model (and input, for per-input pictures) lives in a report."""
    kind, layer, channel = key.kind, key.layer, key.channel
    if kind == "view":
        return paths.model_view(model_id, input_id)
    if kind in map_method_names():
        return cam_path(model_id, input_id, kind, key.part)
    if kind == "sheet":
        return paths.map_sheet(model_id, layer, input_id)
    if kind == "map":
        return paths.map_image(model_id, layer, input_id, channel)
    if kind == "overlay":
        return paths.overlay_image(model_id, layer, input_id, channel)
    if kind == "filter":
        return paths.filter_image(model_id, layer, channel, key.part)
    if kind == "filter_sheet":
        return paths.filter_sheet(model_id, layer, key.part)
    if kind == "kernel_sheet":
        return paths.kernel_sheet(model_id, layer)
    if kind == "examples" and key.part == "firsts":
        return paths.examples_firsts(model_id, layer)
    if kind == "examples" and key.part == "sheet":
        return paths.examples_sheet(model_id, layer, channel)
    if kind == "examples":
        return paths.examples_image(model_id, layer, channel)
    if kind == "featurevis" and key.part == "sheet":
        return paths.featurevis_sheet(model_id, layer)
    if kind == "featurevis":
        return paths.featurevis_image(model_id, layer, channel, key.part)
    raise ValueError(f"no path for a picture of kind {kind!r}")


def cam_path(model_id: str, input_id: str, method_name: str, kind: str) -> str:
    """Where a map method's overlay for a class kind of an input lives."""
    suffix = "" if kind == GRADCAM_TOP else "-target"
    return paths.cam_image(model_id, method(method_name).folder, input_id + suffix)


def filter_note(layer: LayerFacts) -> str | None:
    if layer.weight is None:
        return None
    kh, kw = layer.weight.shape[2:]
    if layer.filter_parts[0] == "rgb":
        return (
            f"{kh}x{kw} filters over the RGB input: shown as colour, and as their R, G and B "
            "parts apart, each filter scaled over its own range (true pixels, no smoothing)"
        )
    if kh * kw == 1:
        # A 1x1 kernel's filter would be one pixel: no filter is drawn (kernel_shown); the
        # weights view, where there is one, says which input channels it weighs.
        return (
            f"1x1 filters over {layer.weight.shape[1]} input channels: a 1x1 filter is one "
            "weight per input channel, so no filter picture is drawn"
            + (
                "; the weights view lists its strongest weights"
                if layer.weight.shape[1] > 1
                else ""
            )
        )
    if layer.weight.shape[1] == 1:
        return (
            f"{kh}x{kw} filters, each over one input channel ({layer.groups} groups): shown "
            "in grey, each scaled over its own range"
        )
    return (
        f"{kh}x{kw} filters over {layer.weight.shape[1]} input channels: shown as the mean over "
        "those channels, in grey, each scaled over its own range"
    )


# Inputs listed by name on a channel page as having selected it (the count says the rest).
SELECTED_BY_SHOWN = 50
HISTOGRAM_BINS = 24
_ROWS_PER_READ = 4096  # inputs read at a time from a statistics file


def model_record(
    results: ModelResults,
    stats: dict[str, Any],
    sheets: bool,
    overlay_files: bool,
) -> ModelRecord:
    """A model's record from its merged results. ``stats``: per layer every input's
    statistics as an array [input, channel, field] (a memory map of the layer's file),
    read in chunks for the histograms."""
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
        view_size=facts.view_size,
        cam_methods=facts.cam_methods,
    )
    record.layers = [_layer_record(facts, layer, sheets) for layer in facts.layers]
    for input_facts in results.inputs.values():
        _add_input(record, facts, input_facts)
    for input_id, layers in results.detail.items():
        for layer in record.layers:
            _add_detail_input(facts, layer, input_id, layers[layer.name], overlay_files)
    for layer in record.layers:
        _add_summaries(layer, results)
        table = stats.get(layer.name)
        if table is not None:
            _add_histograms(layer, table)
        _add_examples_and_feature_vis(facts.id, layer, results, sheets)
    return record


def _layer_record(facts: ModelFacts, layer: LayerFacts, sheets: bool) -> LayerRecord:
    record = LayerRecord(
        name=layer.name,
        type=layer.type,
        value=layer.value,
        output_shape=layer.output_shape,
        page=paths.layer_page(facts.id, layer.name),
        spatial=layer.spatial,
        examples_are_views=layer.examples_are_views,
        class_units=bool(layer.class_labels),
        filter_note=filter_note(layer),
        channels=[
            ChannelRecord(
                c,
                paths.channel_page(facts.id, layer.name, c),
                channel_label(c, spatial=layer.spatial) if layer.spatial else layer.unit_label(c),
                layer.class_labels[c] if layer.class_labels else None,
                filter={
                    part: paths.filter_image(facts.id, layer.name, c, part)
                    for part in layer.filter_parts
                }
                if layer.filter_informative and not sheets
                else {},
            )
            for c in range(layer.channels)
        ],
    )
    record.receptive_field = layer.receptive_field
    record.exact_contributions = layer.exact_contributions
    add_kernels(record, facts.id, layer, sheets)
    if layer.spatial and sheets:
        record.sheet_grid = SheetGrid.for_layer(*layer.output_shape)
    return record


def _add_input(record: ModelRecord, facts: ModelFacts, result: InputFacts) -> None:
    input_id = result.input_id
    record.views[input_id] = paths.model_view(facts.id, input_id)
    record.input_pages[input_id] = paths.input_page(facts.id, input_id)
    record.predictions[input_id] = [
        Prediction(index, facts.class_label(index), probability)
        for index, probability in result.predictions
    ]
    if result.cams:
        record.cams[input_id] = [
            CamRecord(
                class_index=cam.class_index,
                label=facts.class_label(cam.class_index),
                layer=cam.layer,
                map=cam.map,
                image=cam_path(facts.id, input_id, cam.method, cam.kind),
                kind=cam.kind,
                method=cam.method,
                title=method(cam.method).title,
            )
            for cam in result.cams
        ]
    chosen = record.selected_stats[input_id] = {}
    for layer in record.layers:
        selected = result.selected[layer.name]
        layer.selected[input_id] = [s.channel for s in selected]
        chosen[layer.name] = [
            (s.channel, _finite(s.mean), _finite(s.max), _finite(s.sparsity)) for s in selected
        ]
        value_range = result.ranges[layer.name]
        if value_range is not None:
            layer.ranges[input_id] = value_range


def _add_detail_input(
    facts: ModelFacts,
    layer: LayerRecord,
    input_id: str,
    result: LayerResult,
    overlay_files: bool,
) -> None:
    """Every channel's numbers and pictures of a detail input."""
    stats = result.stats
    layer.detail_pages[input_id] = paths.input_layer_page(facts.id, layer.name, input_id)
    # Plain lists: one conversion per array instead of a numpy scalar per value.
    values = {name: array.tolist() for name, array in stats.values.items()}
    ys, xs = stats.argmax_y.tolist(), stats.argmax_x.tolist()
    ranks = unit_ranks(stats.mean).tolist()
    if not layer.spatial:
        # A unit has one value per input: its mean, max and min are that value.
        means = stats.mean.tolist()
        for c, channel in enumerate(layer.channels):
            value = _finite(means[c])
            channel.stats[input_id] = {"value": value, "rank": ranks[c], "mean": value}
        return
    for c, channel in enumerate(layer.channels):
        y, x = ys[c], xs[c]
        numbers: dict[str, Any] = {name: _finite(column[c]) for name, column in values.items()}
        numbers["argmax"] = {
            "map_yx": [y, x],
            "view_xy": list(map_to_view(y, x, stats.map_size, facts.view_size)),
        }
        channel.stats[input_id] = numbers
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


def _add_summaries(layer: LayerRecord, results: ModelResults) -> None:
    totals = results.totals[layer.name]
    columns = {
        summary.key: totals.over_inputs(stat.name, summary.combine).tolist()
        for stat, summary in over_inputs()
    }
    for channel in layer.channels:
        c = channel.index
        channel.summary = ChannelSummary(
            {key: _finite(column[c]) for key, column in columns.items()},
            selected=int(totals.selected[c]),
            inputs=int(totals.inputs[c]),
            best_rank=int(totals.best_rank[c]) if totals.inputs[c] else None,
            first=int(totals.first[c]),
        )
    shown: dict[int, list[str]] = {}
    for input_id, chosen in layer.selected.items():
        for c in chosen:
            names = shown.setdefault(c, [])
            if len(names) < SELECTED_BY_SHOWN:
                names.append(input_id)
    for c, names in shown.items():
        layer.channels[c].selected_by = names


def _add_histograms(layer: LayerRecord, table: Any) -> None:
    """Per channel, the distribution of its per-input max and mean over every input, in
    equal bins between the lowest and highest value (read in chunks of inputs)."""
    fields = {name: file_fields().index(name) for name in ("max", "mean")}
    inputs, channels = int(table.shape[0]), int(table.shape[1])
    if inputs == 0:
        return
    low = {k: np.full(channels, np.inf) for k in fields}
    high = {k: np.full(channels, -np.inf) for k in fields}
    for start in range(0, inputs, _ROWS_PER_READ):
        block = _finite_block(table[start : start + _ROWS_PER_READ])
        for name, f in fields.items():
            low[name] = np.fmin(low[name], np.fmin.reduce(block[:, :, f], axis=0))
            high[name] = np.fmax(high[name], np.fmax.reduce(block[:, :, f], axis=0))
    counts = {k: np.zeros((channels, HISTOGRAM_BINS), np.int64) for k in fields}
    for start in range(0, inputs, _ROWS_PER_READ):
        block = _finite_block(table[start : start + _ROWS_PER_READ])
        for name, f in fields.items():
            counts[name] += _binned(block[:, :, f], low[name], high[name])
    for channel in layer.channels:
        c = channel.index
        for name in fields:
            if np.isfinite(low[name][c]):
                channel.histograms[name] = Histogram(
                    float(low[name][c]), float(high[name][c]), counts[name][c].tolist()
                )


def _finite_block(rows: Any) -> np.ndarray:
    block = np.asarray(rows, np.float64)
    return np.where(np.isfinite(block), block, np.nan)


def _binned(values: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Counts per channel and bin of ``values`` [inputs, channels]; NaN is not counted."""
    width = np.where(high > low, high - low, 1.0)
    position = (values - low) / width * HISTOGRAM_BINS
    bins = np.clip(np.floor(np.nan_to_num(position, nan=-1.0)), -1, HISTOGRAM_BINS - 1)
    bins = bins.astype(np.int64)
    channels = values.shape[1]
    counts = np.zeros((channels, HISTOGRAM_BINS + 1), np.int64)
    rows = np.broadcast_to(np.arange(channels), values.shape)
    valid = np.isfinite(values)
    np.add.at(counts, (rows[valid], bins[valid]), 1)
    return counts[:, :HISTOGRAM_BINS]


def _add_examples_and_feature_vis(
    model_id: str, layer: LayerRecord, results: ModelResults, views_shared: bool
) -> None:
    """``views_shared``: pages link the network views as files (a folder report), so
    examples that are whole views (``examples_are_views``: units, and maps whose every
    cell sees the whole view) are those views (a single-file report would embed each
    again)."""
    boxes = results.example_boxes.get(layer.name)
    numbers = results.feature_vis.get(layer.name, {})
    crops = not layer.examples_are_views
    in_sheets = boxes is not None and crops and views_shared
    if in_sheets and boxes is not None:
        _add_example_grids(layer, boxes)
        if layer.example_grid is not None:
            layer.example_first_grid = example_firsts_grid(len(layer.channels), EXAMPLE_TILE)
            layer.example_first_sheet = paths.examples_firsts(model_id, layer.name)
    for channel in layer.channels:
        if boxes is not None:
            channel.examples = boxes[channel.index]
            if channel.examples and in_sheets:
                sheet = channel.index // EXAMPLE_SHEET_CHANNELS
                channel.examples_sheet = paths.examples_sheet(model_id, layer.name, sheet)
            elif channel.examples and (crops or not views_shared):
                channel.examples_image = paths.examples_image(model_id, layer.name, channel.index)
            elif channel.examples:  # the example is the whole view: no crop to make
                channel.example_views = [
                    paths.model_view(model_id, e["input"]) for e in channel.examples
                ]
        found = numbers.get(channel.index)
        if found is not None:
            channel.feature_vis = _feature_vis_entry(model_id, layer.name, channel.index, found)
    if numbers and views_shared:  # folder reports: the cards' tiles, in one sheet
        layer.feature_vis_grid = fv_pictures.sheet_grid(len(layer.channels))
        layer.feature_vis_sheet = paths.featurevis_sheet(model_id, layer.name)


def _add_example_grids(layer: LayerRecord, boxes: list[list[dict[str, Any]]]) -> None:
    per_strip = max((len(examples) for examples in boxes), default=0)
    if per_strip:
        layer.example_grid = example_grid(per_strip, EXAMPLE_TILE)
        layer.example_first_grid = example_first_grid(per_strip, EXAMPLE_TILE)


def _feature_vis_entry(
    model_id: str, layer: str, channel: int, numbers: dict[str, Any]
) -> dict[str, Any]:
    entry: dict[str, Any] = {"image": paths.featurevis_image(model_id, layer, channel, "max")}
    entry.update({k: v for k, v in numbers.items() if k not in ("negative", "diverse")})
    if "diverse" in numbers:  # --fv-diversity: the first is the channel's picture
        entry["diverse"] = [
            {"image": paths.featurevis_image(model_id, layer, channel, f"max{k or ''}"), **n}
            for k, n in enumerate(numbers["diverse"])
        ]
    if "negative" in numbers:
        entry["negative"] = {
            "image": paths.featurevis_image(model_id, layer, channel, "min"),
            **numbers["negative"],
        }
    return entry


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
