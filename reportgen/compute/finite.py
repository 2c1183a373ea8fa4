"""A network's numbers must be finite for a report to show them: a checkpoint with a
NaN filter, or weights so large that float32 overflows, is stopped here with one line
naming the model, the layer and the input, before any picture or statistic is made of
a NaN (which would reach numpy's warnings and, at the end, a manifest that JSON cannot
hold)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from reportgen.errors import ReportgenError
from reportgen.inputs.files import InputFile
from reportgen.inputs.safe_read import printable
from reportgen.nn.channel_stats import ChannelStats

_HINT = (
    "reportgen shows finite networks only; check the weights (NaN or infinity in them, "
    "or values so large that float32 overflows)"
)


def require_finite(
    model_name: str,
    files: Sequence[InputFile],
    logits: Any,
    layers: dict[str, tuple[list[ChannelStats], np.ndarray]],
) -> None:
    """ReportgenError unless the batch's class scores, recorded layer outputs and their
    statistics (``layers``: per layer name, the stats and values of each input) are all
    finite. A standard deviation is NaN by design where a map has one position."""
    for name, (stats, values) in layers.items():
        for index, file in enumerate(files):
            if not (np.isfinite(values[index]).all() and _finite_stats(stats[index])):
                raise _error(model_name, f"at layer {name!r}", file)
    import torch

    finite = torch.isfinite(logits.detach()).reshape(len(files), -1).all(dim=1)
    for index, file in enumerate(files):
        if not bool(finite[index]):
            raise _error(model_name, "in its class scores", file)


def _finite_stats(stats: ChannelStats) -> bool:
    parts = [stats.mean, stats.max, stats.min]
    if stats.map_size[0] * stats.map_size[1] > 1:
        parts.append(stats.std)
    return all(bool(np.isfinite(part).all()) for part in parts)


def _error(model_name: str, where: str, file: InputFile) -> ReportgenError:
    return ReportgenError(
        f"model {model_name!r} gives values that are not finite (NaN or infinity) {where} "
        f"for input '{printable(file.source)}': {_HINT}"
    )
