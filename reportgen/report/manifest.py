"""manifest.json: the machine-readable twin of the report (format documented in README).

This module writes it; reportgen.report.manifest_file reads it (``read_manifest``)."""

from __future__ import annotations

import dataclasses
from typing import Any

from reportgen.report import paths
from reportgen.report.data import ComparisonRecord, LayerRecord, ModelRecord, ReportData
from reportgen.report.kernels import kernels_entry
from reportgen.report.manifest_file import GENERATOR_NAME, MANIFEST_FORMAT

__all__ = ["MANIFEST_FORMAT", "build_manifest"]


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
        "models": [
            {
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
                "gradcam": gradcam_entries(m),
                "layers": [
                    {
                        "name": layer.name,
                        "type": layer.type,
                        "value": layer.value,
                        "output_shape": list(layer.output_shape),
                        "units": not layer.spatial,
                        "class_units": layer.class_units,
                        "page": layer.page,
                        "selected": layer.selected,
                        "ranges": {k: list(v) for k, v in layer.ranges.items()},
                        "images": layer_image_patterns(m.id, layer),
                        "map_sheet": (
                            layer.sheet_grid.describe() if layer.sheet_grid is not None else None
                        ),
                        "kernels": kernels_entry(layer),
                        "example_sheet": (
                            layer.example_grid.describe()
                            if layer.example_grid is not None
                            else None
                        ),
                        "receptive_field": layer.receptive_field,
                        "stats_file": layer.stats_file,
                        "detail_pages": layer.detail_pages,
                        "channels": [
                            {
                                "index": c.index,
                                **({"label": c.label} if c.label is not None else {}),
                                "page": c.page,
                                "summary": (dataclasses.asdict(c.summary) if c.summary else None),
                                "examples": c.examples,
                                "examples_image": c.examples_image,
                                "feature_vis": c.feature_vis,
                            }
                            for c in layer.channels
                        ],
                    }
                    for layer in m.layers
                ],
            }
            for m in data.models
        ],
        "comparison_page": data.comparison_page if data.comparisons else None,
        "comparisons": [comparison_entry(c) for c in data.comparisons],
        "files": files,
    }


def gradcam_entries(model: ModelRecord) -> dict[str, dict[str, Any]]:
    """{input id: {class_index, label, layer, map, image}} for the top prediction, with
    the --target-class map under ``target`` when one was asked for."""
    entries: dict[str, dict[str, Any]] = {}
    for input_id, cams in model.gradcam.items():
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
                        "mean": list(row["mean"]),
                        "max": list(row["max"]),
                        "sparsity": list(row["sparsity"]),
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
