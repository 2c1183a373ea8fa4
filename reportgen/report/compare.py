"""Two models side by side, as the comparison pages show them: per-channel statistics,
filter similarity between two checkpoints of one architecture (most changed first),
predictions per input. Works on the records of both models and their kernels."""

from __future__ import annotations

import numpy as np

from reportgen.analysis.compare import filter_cosine
from reportgen.report.data import ComparisonRecord, LayerComparison, LayerRecord, ModelRecord
from reportgen.results.records import ModelFacts


def compare_all(facts: list[ModelFacts], records: list[ModelRecord]) -> list[ComparisonRecord]:
    """The first model against each other one, on the layers they share."""
    if len(records) < 2:
        return []
    kernels = [{la.name: la.weight for la in f.layers if la.weight is not None} for f in facts]
    return [
        compare_models(records[0], records[i], kernels[0], kernels[i])
        for i in range(1, len(records))
    ]


def mean_over_inputs(layer: LayerRecord, stat: str) -> list[float | None]:
    """Per channel of a layer record, the mean of ``stat`` over its inputs (None: none)."""
    values = []
    for channel in layer.channels:
        numbers = [s[stat] for s in channel.stats.values() if s.get(stat) is not None]
        values.append(float(np.mean(numbers)) if numbers else None)
    return values


def compare_models(
    base: ModelRecord,
    other: ModelRecord,
    base_kernels: dict[str, np.ndarray],
    other_kernels: dict[str, np.ndarray],
) -> ComparisonRecord:
    """Compare layers of the same name and output shape; filters when shapes match too."""
    same_architecture = base.name == other.name
    record = ComparisonRecord(base.id, other.id, same_architecture)
    other_layers = {layer.name: layer for layer in other.layers}
    for layer in base.layers:
        match = other_layers.get(layer.name)
        if match is None or tuple(match.output_shape) != tuple(layer.output_shape):
            continue
        means_a, means_b = mean_over_inputs(layer, "mean"), mean_over_inputs(match, "mean")
        maxes_a, maxes_b = mean_over_inputs(layer, "max"), mean_over_inputs(match, "max")
        sparse_a = mean_over_inputs(layer, "sparsity")
        sparse_b = mean_over_inputs(match, "sparsity")
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
                    "mean": (means_a[c], means_b[c]),
                    "max": (maxes_a[c], maxes_b[c]),
                    "sparsity": (sparse_a[c], sparse_b[c]),
                    "cosine": None if cosine is None or np.isnan(cosine[c]) else float(cosine[c]),
                }
            )
        if cosine is not None:
            # Most changed filters first: lowest similarity; ties in channel order.
            rows.sort(key=lambda r: (r["cosine"] if r["cosine"] is not None else 2.0, r["index"]))
        record.layers.append(
            LayerComparison(layer.name, len(layer.channels), rows, cosine is not None)
        )
    for input_id, predictions in base.predictions.items():
        if input_id in other.predictions:
            record.predictions[input_id] = (predictions, other.predictions[input_id])
    return record
