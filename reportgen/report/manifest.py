"""manifest.json: the machine-readable twin of the report (format documented in README)."""

from __future__ import annotations

import dataclasses
from typing import Any

from reportgen.report import paths
from reportgen.report.data import LayerRecord, ReportData

MANIFEST_FORMAT = "reportgen-manifest/1"


def build_manifest(data: ReportData, files: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "format": MANIFEST_FORMAT,
        "generator": {"name": "reportgen", "version": data.generator_version},
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
            }
            for i in data.inputs
        ],
        "skipped": [dataclasses.asdict(s) for s in data.skipped],
        "warnings": data.warnings,
        "models": [
            {
                "id": m.id,
                "name": m.name,
                "weights": m.weights,
                "weights_detail": m.weights_detail,
                "notes": m.notes,
                "page": m.page,
                "compare_page": m.compare_page,
                "views": m.views,
                "predictions": {
                    input_id: [dataclasses.asdict(p) for p in preds]
                    for input_id, preds in m.predictions.items()
                },
                "layers": [
                    {
                        "name": layer.name,
                        "type": layer.type,
                        "value": layer.value,
                        "output_shape": list(layer.output_shape),
                        "page": layer.page,
                        "selected": layer.selected,
                        "ranges": {k: list(v) for k, v in layer.ranges.items()},
                        "images": layer_image_patterns(m.id, layer),
                        "channels": [
                            {"index": c.index, "page": c.page, "stats": c.stats}
                            for c in layer.channels
                        ],
                    }
                    for layer in m.layers
                ],
            }
            for m in data.models
        ],
        "files": files,
    }


def layer_image_patterns(model_id: str, layer: LayerRecord) -> dict[str, str]:
    """Where a layer's pictures are, as patterns: {input} is an input id, {channel} a
    channel index. Maps exist for every channel, overlays for the selected ones."""
    patterns: dict[str, str] = {}
    if layer.spatial:
        sample_map = paths.map_image(model_id, layer.name, "{input}", 0)
        patterns["map"] = sample_map.replace("c0000", "c{channel:04d}")
        sample_overlay = paths.overlay_image(model_id, layer.name, "{input}", 0)
        patterns["overlay"] = sample_overlay.replace("c0000", "c{channel:04d}")
    else:
        patterns["chart"] = paths.ranked_chart(model_id, layer.name, "{input}")
    if layer.channels and layer.channels[0].filter:
        for part in layer.channels[0].filter:
            sample = paths.filter_image(model_id, layer.name, 0, part)
            patterns[f"filter_{part}"] = sample.replace("c0000", "c{channel:04d}")
    return patterns
