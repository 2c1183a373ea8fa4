"""Per-channel statistics and channel selection: numpy only, no files, no HTML.

The statistics (``ChannelStats``) come from a layer's tensor in ``reportgen.nn.reduce``."""

from __future__ import annotations

import numpy as np

from reportgen.errors import UsageError
from reportgen.nn.channel_stats import ChannelStats


def map_to_view(
    y: int, x: int, map_size: tuple[int, int], view_size: tuple[int, int]
) -> tuple[int, int]:
    """Centre, in input-view pixels (x, y), of map cell (y, x)."""
    map_h, map_w = map_size
    view_w, view_h = view_size
    return (int((x + 0.5) * view_w / map_w), int((y + 0.5) * view_h / map_h))


def _descending(values: np.ndarray) -> np.ndarray:
    """Channel indices by value, highest first; ties keep channel order; NaN last."""
    keys = np.where(np.isnan(values), -np.inf, values)
    return np.argsort(-keys, kind="stable")


def _ranked(values: np.ndarray) -> list[int]:
    return [int(i) for i in _descending(values)]


def unit_ranks(values: np.ndarray) -> np.ndarray:
    """Each unit's rank among its layer's units on one input: 1 for the highest value,
    ties in unit order, NaN last (for a classifier's logits: 1 is the prediction)."""
    order = _descending(np.asarray(values, np.float64))
    ranks = np.empty(len(order), np.int64)
    ranks[order] = np.arange(1, len(order) + 1)
    return ranks


def select_channels(
    stats: ChannelStats,
    strategy: str,
    top_k: int,
    channels: tuple[int, ...] = (),
    interesting_mean: float = 0.3,
    interesting_max: float = 2.0,
) -> list[int]:
    """The seed notebook's selection strategies, for one input of one layer.

    ``top_k`` above the channel count selects every channel.
    """
    if top_k < 1:
        raise UsageError(f"--top-k must be at least 1, got {top_k}")
    k = min(top_k, stats.channels)
    if strategy == "top_mean":
        return _ranked(stats.mean)[:k]
    if strategy == "top_max":
        return _ranked(stats.max)[:k]
    if strategy == "mixed":
        half = k // 2
        by_mean = _ranked(stats.mean)[:half]
        by_max = [c for c in _ranked(stats.max) if c not in by_mean][: k - half]
        return by_mean + by_max
    if strategy == "interesting":
        # High average activation that also peaks: ranked by mean, highest first.
        qualifying = (stats.mean > interesting_mean) & (stats.max > interesting_max)
        return [c for c in _ranked(stats.mean) if qualifying[c]][:k]
    if strategy == "manual":
        if not channels:
            raise UsageError("--strategy manual needs --channels, e.g. --channels 0,5,10")
        bad = [c for c in channels if not 0 <= c < stats.channels]
        if bad:
            raise UsageError(
                f"--channels {bad[0]} is out of range: the layer has {stats.channels} "
                f"channels (0-{stats.channels - 1})"
            )
        return list(dict.fromkeys(channels))
    raise UsageError(f"unknown strategy {strategy!r}")


def value_range(values: np.ndarray) -> tuple[float, float]:
    """Finite (min, max) of an array; (0, 0) when nothing is finite."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return (0.0, 0.0)
    return (float(finite.min()), float(finite.max()))
