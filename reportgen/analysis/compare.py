"""Two models side by side: per-channel statistics, filter similarity between two
checkpoints of one architecture (most changed first), predictions per input.

Works on the records the pipeline built and on plain numpy kernels; no torch, no files.
"""

from __future__ import annotations

import numpy as np

from reportgen.report.data import ComparisonRecord, LayerComparison, LayerRecord, ModelRecord


def _mean_over_inputs(layer: LayerRecord, stat: str) -> list[float | None]:
    values = []
    for channel in layer.channels:
        numbers = [s[stat] for s in channel.stats.values() if s.get(stat) is not None]
        values.append(float(np.mean(numbers)) if numbers else None)
    return values


def filter_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each output channel's kernel in ``a`` and in ``b``."""
    flat_a = a.reshape(a.shape[0], -1).astype(np.float64)
    flat_b = b.reshape(b.shape[0], -1).astype(np.float64)
    norms = np.linalg.norm(flat_a, axis=1) * np.linalg.norm(flat_b, axis=1)
    dots = (flat_a * flat_b).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), np.nan)
    return cosine


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
        means_a, means_b = _mean_over_inputs(layer, "mean"), _mean_over_inputs(match, "mean")
        maxes_a, maxes_b = _mean_over_inputs(layer, "max"), _mean_over_inputs(match, "max")
        sparse_a = _mean_over_inputs(layer, "sparsity")
        sparse_b = _mean_over_inputs(match, "sparsity")
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
