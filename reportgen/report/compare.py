"""Two models side by side, as the comparison pages show them: per-channel statistics,
filter similarity between two checkpoints of one architecture (most changed first),
predictions per input. Works on the records of both models and their kernels."""

from __future__ import annotations

import numpy as np

from reportgen.analysis.compare import filter_cosine
from reportgen.report.data import ComparisonRecord, LayerComparison, LayerRecord, ModelRecord
from reportgen.results.records import ModelFacts
from reportgen.statistics import offered_over_inputs


def compare_all(
    facts: list[ModelFacts], records: list[ModelRecord], detail: set[str]
) -> list[ComparisonRecord]:
    """The first model against each other one, on the layers they share."""
    if len(records) < 2:
        return []
    kernels = [{la.name: la.weight for la in f.layers if la.weight is not None} for f in facts]
    return [
        compare_models(records[0], records[i], kernels[0], kernels[i], detail)
        for i in range(1, len(records))
    ]


def over_inputs(layer: LayerRecord, key: str) -> list[float | None]:
    """Per channel of a layer record, a statistic over every input (``key``, e.g. the
    mean of its means; None: no input)."""
    return [c.summary.values[key] if c.summary else None for c in layer.channels]


def compare_models(
    base: ModelRecord,
    other: ModelRecord,
    base_kernels: dict[str, np.ndarray],
    other_kernels: dict[str, np.ndarray],
    detail: set[str],
) -> ComparisonRecord:
    """Compare layers of the same name and output shape; filters when shapes match too."""
    same_architecture = base.name == other.name
    record = ComparisonRecord(base.id, other.id, same_architecture)
    other_layers = {layer.name: layer for layer in other.layers}
    for layer in base.layers:
        match = other_layers.get(layer.name)
        if match is None or tuple(match.output_shape) != tuple(layer.output_shape):
            continue
        keys = [summary.key for _, summary in offered_over_inputs()]
        sides = {key: (over_inputs(layer, key), over_inputs(match, key)) for key in keys}
        kernel_a, kernel_b = base_kernels.get(layer.name), other_kernels.get(layer.name)
        cosine = None
        if kernel_a is not None and kernel_b is not None and kernel_a.shape == kernel_b.shape:
            cosine = filter_cosine(kernel_a, kernel_b)
        rows = []
        for c in range(len(layer.channels)):
            rows.append(
                {
                    "index": c,
                    "base_page": layer.channels[c].page,
                    "other_page": match.channels[c].page,
                    **{
                        key: (base_side[c], other_side[c])
                        for key, (base_side, other_side) in sides.items()
                    },
                    "cosine": None if cosine is None or np.isnan(cosine[c]) else float(cosine[c]),
                }
            )
        if cosine is not None:
            # Most changed filters first: lowest similarity; ties in channel order.
            rows.sort(key=lambda r: (r["cosine"] if r["cosine"] is not None else 2.0, r["index"]))
        record.layers.append(
            LayerComparison(layer.name, len(layer.channels), rows, cosine is not None)
        )
    # Predictions side by side for the detail inputs: bounded, whatever the run's size.
    for input_id, predictions in base.predictions.items():
        if input_id in other.predictions and input_id in detail:
            record.predictions[input_id] = (predictions, other.predictions[input_id])
    return record
