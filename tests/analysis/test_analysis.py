"""Per-channel statistics and the seed's selection strategies, against numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reportgen.analysis.stats import (
    map_to_view,
    select_channels,
    value_range,
)
from reportgen.errors import UsageError
from reportgen.nn.channel_stats import ChannelStats
from reportgen.nn.reduce import channel_stats
from reportgen.statistics import statistic_names


def _activations(seed: int = 0, shape: tuple[int, ...] = (3, 10, 7, 5)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.normal(0.2, 1.5, size=shape).astype(np.float32)
    # A few exact zeros and a flat channel: sparsity counts value <= 0.
    values[0, 1, 0, :] = 0.0
    values[1, 2] = -0.5
    return values


def test_stats_match_numpy_for_every_channel_and_input() -> None:
    values = _activations()
    results = channel_stats(torch.from_numpy(values))
    assert len(results) == values.shape[0]
    batch, channels, height, width = values.shape
    for b, stats in enumerate(results):
        assert stats.channels == channels
        assert stats.map_size == (height, width)
        for c in range(channels):
            plane = values[b, c].astype(np.float64)
            assert stats.mean[c] == pytest.approx(plane.mean(), rel=1e-5, abs=1e-6)
            assert stats.max[c] == pytest.approx(plane.max())
            assert stats.min[c] == pytest.approx(plane.min())
            # torch.std is the unbiased (n - 1) estimator.
            assert stats.std[c] == pytest.approx(plane.std(ddof=1), rel=1e-5, abs=1e-6)
            assert stats.sparsity[c] == pytest.approx(np.count_nonzero(plane <= 0) / plane.size)
            y, x = np.unravel_index(np.argmax(plane), plane.shape)
            assert (stats.argmax_y[c], stats.argmax_x[c]) == (y, x)


def test_std_is_torch_std_not_population_std() -> None:
    values = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    (stats,) = channel_stats(values)
    assert stats.std[0] == pytest.approx(float(torch.std(values[0, 0])))
    assert stats.std[0] == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert stats.std[0] != pytest.approx(np.std([1, 2, 3, 4], ddof=0))


def test_sparsity_counts_zero_and_negative_positions() -> None:
    plane = torch.tensor([[-1.0, 0.0, 0.0], [2.0, 3.0, -0.0]])
    (stats,) = channel_stats(plane[None, None])
    assert stats.sparsity[0] == pytest.approx(4 / 6)


def test_argmax_takes_first_maximum_in_row_major_order() -> None:
    plane = torch.zeros(1, 1, 4, 6)
    plane[0, 0, 2, 5] = 7.0
    plane[0, 0, 3, 1] = 7.0  # same value later in memory order
    (stats,) = channel_stats(plane)
    assert (int(stats.argmax_y[0]), int(stats.argmax_x[0])) == (2, 5)


def test_two_dimensional_output_is_one_value_per_channel() -> None:
    values = torch.tensor([[0.5, -1.0, 3.0], [1.0, 2.0, 0.0]])
    results = channel_stats(values)
    assert len(results) == 2
    for b, stats in enumerate(results):
        assert stats.map_size == (1, 1)
        np.testing.assert_allclose(stats.mean, values[b].numpy())
        np.testing.assert_allclose(stats.max, values[b].numpy())
        np.testing.assert_allclose(stats.min, values[b].numpy())
        assert np.isnan(stats.std).all()  # torch.std of one element is NaN
        np.testing.assert_array_equal(stats.sparsity, (values[b] <= 0).numpy().astype(float))
        assert (stats.argmax_y == 0).all() and (stats.argmax_x == 0).all()


def test_other_ranks_are_refused() -> None:
    from reportgen.errors import ReportgenError

    with pytest.raises(ReportgenError, match="shape"):
        channel_stats(torch.zeros(1, 2, 3))


def test_stat_lookup_by_name() -> None:
    (stats,) = channel_stats(torch.from_numpy(_activations()[:1]))
    for name in statistic_names():
        assert stats.of(name) is getattr(stats, name)
    with pytest.raises(KeyError):
        stats.of("median")


@pytest.mark.parametrize(
    ("cell", "map_size", "view_size", "expected"),
    [
        ((0, 0), (55, 55), (224, 224), (2, 2)),  # centre of the first cell
        ((54, 54), (55, 55), (224, 224), (221, 221)),
        ((1, 3), (2, 4), (200, 100), (175, 75)),  # (y, x) in, (x, y) out
        ((0, 0), (1, 1), (224, 224), (112, 112)),
    ],
)
def test_map_to_view_is_the_cell_centre(
    cell: tuple[int, int],
    map_size: tuple[int, int],
    view_size: tuple[int, int],
    expected: tuple[int, int],
) -> None:
    assert map_to_view(*cell, map_size, view_size) == expected


# --- selection strategies -------------------------------------------------------------


def _stats(mean: list[float], maximum: list[float]) -> ChannelStats:
    n = len(mean)
    zeros = np.zeros(n)
    return ChannelStats(
        mean=np.array(mean, dtype=np.float64),
        max=np.array(maximum, dtype=np.float64),
        min=zeros,
        std=zeros,
        sparsity=zeros,
        argmax_y=zeros.astype(np.int64),
        argmax_x=zeros.astype(np.int64),
        map_size=(1, 1),
    )


def _random_stats(seed: int, channels: int = 40) -> ChannelStats:
    values = np.random.default_rng(seed).normal(0.0, 1.0, size=(1, channels, 6, 6))
    (stats,) = channel_stats(torch.from_numpy(values.astype(np.float32)))
    return stats


def _top(values: np.ndarray, k: int) -> list[int]:
    """Independent ranking: highest value first, lower channel index first on ties."""
    return sorted(range(len(values)), key=lambda c: (-float(values[c]), c))[:k]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 5, 12])
def test_top_mean_and_top_max(seed: int, k: int) -> None:
    stats = _random_stats(seed)
    assert select_channels(stats, "top_mean", k) == _top(stats.mean, k)
    assert select_channels(stats, "top_max", k) == _top(stats.max, k)
    # Sanity of the independent ranking itself.
    chosen = select_channels(stats, "top_mean", k)
    assert min(stats.mean[chosen]) >= max(np.delete(stats.mean, chosen))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 4, 7, 12])
def test_mixed_is_half_by_mean_then_the_rest_by_max_without_duplicates(seed: int, k: int) -> None:
    stats = _random_stats(seed)
    half = k // 2
    by_mean = _top(stats.mean, half)
    by_max = [c for c in _top(stats.max, len(stats.max)) if c not in by_mean][: k - half]
    chosen = select_channels(stats, "mixed", k)
    assert chosen == by_mean + by_max
    assert len(chosen) == len(set(chosen)) == k


def test_mixed_skips_channels_already_chosen_by_mean() -> None:
    # Channel 0 has both the highest mean and the highest max.
    stats = _stats([5.0, 1.0, 0.0, 2.0], [9.0, 3.0, 8.0, 1.0])
    assert select_channels(stats, "mixed", 2) == [0, 2]
    assert select_channels(stats, "mixed", 4) == [0, 3, 2, 1]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize(("low_mean", "low_max"), [(0.3, 2.0), (0.0, 1.0), (-0.2, 0.5)])
def test_interesting_keeps_channels_above_both_thresholds(
    seed: int, low_mean: float, low_max: float
) -> None:
    stats = _random_stats(seed)
    qualifying = [
        c for c in range(stats.channels) if stats.mean[c] > low_mean and stats.max[c] > low_max
    ]
    k = 5
    chosen = select_channels(
        stats, "interesting", k, interesting_mean=low_mean, interesting_max=low_max
    )
    assert set(chosen) <= set(qualifying)
    assert len(chosen) == min(k, len(qualifying))
    # reportgen ranks the qualifying channels by mean, highest first.
    assert chosen == sorted(qualifying, key=lambda c: (-stats.mean[c], c))[:k]


def test_interesting_thresholds_are_strict_and_may_select_nothing() -> None:
    stats = _stats([0.3, 0.31, 1.0, 0.5], [5.0, 2.0, 2.01, 1.0])
    assert select_channels(stats, "interesting", 12) == [2]
    assert select_channels(stats, "interesting", 12, interesting_mean=5.0) == []


def test_manual_keeps_the_given_order_and_drops_repeats() -> None:
    stats = _random_stats(0, channels=12)
    assert select_channels(stats, "manual", 12, channels=(5, 0, 10, 5)) == [5, 0, 10]


def test_manual_needs_channels_in_range() -> None:
    stats = _random_stats(0, channels=12)
    with pytest.raises(UsageError, match="--channels"):
        select_channels(stats, "manual", 12)
    with pytest.raises(UsageError, match=r"12 .*out of range.*12 channels"):
        select_channels(stats, "manual", 12, channels=(0, 12))
    assert UsageError.exit_code == 2


def test_top_k_larger_than_the_layer_selects_every_channel() -> None:
    stats = _random_stats(0, channels=6)
    assert sorted(select_channels(stats, "top_mean", 50)) == list(range(6))
    assert sorted(select_channels(stats, "mixed", 50)) == list(range(6))


def test_top_k_below_one_and_unknown_strategy_are_usage_errors() -> None:
    stats = _random_stats(0, channels=6)
    with pytest.raises(UsageError, match="top-k"):
        select_channels(stats, "top_mean", 0)
    with pytest.raises(UsageError, match="strategy"):
        select_channels(stats, "best", 3)


def test_nan_values_rank_last() -> None:
    stats = _stats([float("nan"), 1.0, 2.0], [0.0, 0.0, 0.0])
    assert select_channels(stats, "top_mean", 3) == [2, 1, 0]


def test_value_range_ignores_non_finite_values() -> None:
    assert value_range(np.array([1.0, np.nan, -2.0, np.inf])) == (-2.0, 1.0)
    assert value_range(np.array([np.nan])) == (0.0, 0.0)
    values = np.random.default_rng(3).normal(size=(4, 5, 5))
    assert value_range(values) == (values.min(), values.max())
