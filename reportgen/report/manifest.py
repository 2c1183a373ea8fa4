"""manifest.json: the machine-readable twin of the report (format documented in README).

This module writes it; reportgen.report.manifest_file reads it (``read_manifest``)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from reportgen.report import paths
from reportgen.report.data import ComparisonRecord, LayerRecord, ModelRecord, ReportData
from reportgen.report.kernels import kernels_entry
from reportgen.report.manifest_file import GENERATOR_NAME, MANIFEST_FORMAT
from reportgen.statistics import offered_over_inputs

__all__ = ["MANIFEST_FORMAT", "build_manifest"]

FLOAT32_MAX = float(np.finfo(np.float32).max)


def build_manifest(data: ReportData, files: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "format": MANIFEST_FORMAT,
        "generator": {"name": GENERATOR_NAME, "version": data.generator_version},
        "created": data.created,
        "environment": data.environment,
        "settings": data.settings,
        "inputs": [
            {
                "id": i.id,
                "source": i.source,
                "sha256": i.sha256,
                "width": i.width,
                "height": i.height,
                "thumbnail": i.thumbnail,
                "notes": i.notes,
                "detail": i.detail,
            }
            for i in data.inputs
        ],
        "skipped": [dataclasses.asdict(s) for s in data.skipped],
        "warnings": data.warnings,
        "models": [model_entry(m) for m in data.models],
        "comparison_page": data.comparison_page if data.comparisons else None,
        "comparisons": [comparison_entry(c) for c in data.comparisons],
        "files": files,
    }


def model_entry(m: ModelRecord) -> dict[str, Any]:
    return {
        "id": m.id,
        "name": m.name,
        "label": m.label,
        "weights": m.weights,
        "weights_detail": m.weights_detail,
        "notes": m.notes,
        "page": m.page,
        "compare_page": m.compare_page,
        "views": m.views,
        "input_pages": m.input_pages,
        "predictions": {
            input_id: [dataclasses.asdict(p) for p in preds]
            for input_id, preds in m.predictions.items()
        },
        **{name: cam_entries(m, name) for name in m.cam_methods},
        "classes_page": m.classes_page,
        "classes": class_entries(m),
        "layers": [layer_entry(m.id, layer) for layer in m.layers],
    }


def layer_entry(model_id: str, layer: LayerRecord) -> dict[str, Any]:
    return {
        "name": layer.name,
        "type": layer.type,
        "value": layer.value,
        "output_shape": list(layer.output_shape),
        "units": not layer.spatial,
        "examples_are_views": layer.examples_are_views,
        "class_units": layer.class_units,
        "page": layer.page,
        "selected": layer.selected,
        "ranges": {k: [float32_number(x) for x in v] for k, v in layer.ranges.items()},
        "images": layer_image_patterns(model_id, layer),
        "map_sheet": layer.sheet_grid.describe() if layer.sheet_grid is not None else None,
        "kernels": kernels_entry(layer),
        "example_sheet": (
            layer.example_grid.describe() if layer.example_grid is not None else None
        ),
        "receptive_field": layer.receptive_field,
        "stats_file": layer.stats_file,
        "exact_contributions": layer.exact_contributions,
        "detail_pages": layer.detail_pages,
        "channel_page": channel_page_pattern(model_id, layer),
        "channels": [channel_entry(c) for c in layer.channels],
    }


def float32_number(value: Any) -> Any:
    """A float32 statistic as the shortest decimal that reads back as the same float32
    (e.g. 0.0009827187, not 0.0009827186586335301: the manifest has hundreds of
    thousands of them); anything else (None, an int) as it is."""
    if not isinstance(value, float) or not abs(value) <= FLOAT32_MAX:  # NaN, inf, beyond
        return value
    return float(str(np.float32(value)))


def channel_page_pattern(model_id: str, layer: LayerRecord) -> str:
    """Where each channel's page is: ``{channel:04d}`` is its index (channels do not
    repeat it: it is a tenth of a big manifest)."""
    return paths.channel_page(model_id, layer.name, 0).replace("c0000", "c{channel:04d}")


def channel_entry(channel: Any) -> dict[str, Any]:
    """A channel in the manifest: ``label`` (class units), ``examples_image`` (a
    single-file report's strip) and ``feature_vis`` only where they are; its page is
    the layer's ``channel_page``. ``reportgen.report.manifest_file.layer_channels``
    gives them back in full."""
    entry: dict[str, Any] = {"index": channel.index}
    if channel.label is not None:
        entry["label"] = channel.label
    summary = None
    if channel.summary:
        summary = {k: float32_number(v) for k, v in channel.summary.entry().items()}
    entry["summary"] = summary
    entry["examples"] = [
        {**example, "value": float32_number(example["value"])} if "value" in example else example
        for example in channel.examples
    ]
    if channel.examples_image is not None:
        entry["examples_image"] = channel.examples_image
    if channel.feature_vis is not None:
        entry["feature_vis"] = channel.feature_vis
    return entry


def class_entries(model: ModelRecord) -> list[dict[str, Any]]:
    """Every class that is some input's top prediction: its page, how many inputs it is
    the top prediction of, and per layer its channels of highest mean contribution
    (empty without contributions)."""
    return [
        {
            "index": c.index,
            "label": c.label,
            "page": c.page,
            "inputs": len(c.inputs),
            "channels": {
                layer: [[channel, float32_number(value)] for channel, value in ranked]
                for layer, ranked in c.channels.items()
            },
        }
        for c in model.classes
    ]


def cam_entries(model: ModelRecord, method: str) -> dict[str, dict[str, Any]]:
    """A map method's maps (under its name: ``gradcam``, ``layercam``): {input id:
    {class_index, label, layer, map, image}} for the top prediction, with the
    --target-class map under ``target`` when one was asked for."""
    entries: dict[str, dict[str, Any]] = {}
    for input_id, all_cams in model.cams.items():
        cams = [cam for cam in all_cams if cam.method == method]
        if not cams:
            continue
        fields = [
            {
                "class_index": cam.class_index,
                "label": cam.label,
                "layer": cam.layer,
                "map": cam.map,
                "image": cam.image,
            }
            for cam in cams
        ]
        entry = fields[0]
        if len(fields) > 1:
            entry["target"] = fields[1]
        entries[input_id] = entry
    return entries


def comparison_entry(comparison: ComparisonRecord) -> dict[str, Any]:
    keys = [summary.key for _, summary in offered_over_inputs()]
    return {
        "base": comparison.base,
        "other": comparison.other,
        "same_architecture": comparison.same_architecture,
        "layers": [
            {
                "layer": layer.layer,
                "channels": layer.channels,
                "filters_compared": layer.filters_compared,
                "rows": [
                    {
                        "index": row["index"],
                        **{key: list(row[key]) for key in keys},
                        "cosine": row["cosine"],
                    }
                    for row in layer.rows
                ],
            }
            for layer in comparison.layers
        ],
        "predictions": {
            input_id: [[dataclasses.asdict(p) for p in side] for side in pair]
            for input_id, pair in comparison.predictions.items()
        },
    }


def layer_image_patterns(model_id: str, layer: LayerRecord) -> dict[str, str]:
    """Where a layer's pictures are, as patterns: {input} is an input id, {channel} a
    channel index. Maps exist for every channel: in a folder report as tiles of one
    sheet per input (``map_sheet``; the layer's ``map_sheet`` entry says where each tile
    is), in a single-file report as one picture each (``map``). Overlay files exist
    for the selected channels with --overlay-files (pages compose overlays in the
    browser)."""
    patterns: dict[str, str] = {}
    if layer.spatial and layer.sheet_grid is not None:
        patterns["map_sheet"] = paths.map_sheet(model_id, layer.name, "{input}")
    elif layer.spatial:
        sample_map = paths.map_image(model_id, layer.name, "{input}", 0)
        patterns["map"] = sample_map.replace("c0000", "c{channel:04d}")
    if layer.spatial and any(channel.overlays for channel in layer.channels):
        # --overlay-files
        sample_overlay = paths.overlay_image(model_id, layer.name, "{input}", 0)
        patterns["overlay"] = sample_overlay.replace("c0000", "c{channel:04d}")
    for part, sheet in layer.filter_sheets.items():
        patterns[f"filter_sheet_{part}"] = sheet
    if layer.example_grid is not None:
        # channel c's strip: sheet c // 64, its row c % 64 (the layer's example_sheet)
        sample = paths.examples_sheet(model_id, layer.name, 0)
        patterns["examples_sheet"] = sample.replace("examples-000", "examples-{sheet:03d}")
    if layer.channels and layer.channels[0].filter:
        for part in layer.channels[0].filter:
            sample = paths.filter_image(model_id, layer.name, 0, part)
            patterns[f"filter_{part}"] = sample.replace("c0000", "c{channel:04d}")
    return patterns
