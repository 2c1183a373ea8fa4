"""Class-wide statistics of contributions (reportgen.analysis.classes) against a brute
force: per class the plain mean over its inputs' rows, per channel a sort over classes."""

from __future__ import annotations

import numpy as np
import pytest

from reportgen.analysis.classes import (
    CHANNEL_DOWN,
    CHANNEL_UP,
    CLASS_CHANNELS,
    INPUT_DOWN,
    INPUT_UP,
    ClassSums,
    class_wide,
    ranked,
    strongest,
)


def _data(seed: int = 0, inputs: int = 200, channels: int = 30) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(inputs, channels)).astype(np.float32)
    values[rng.random(values.shape) < 0.02] = np.nan  # a channel without a number
    top = rng.choice([3, 17, 250, 999, 4], size=inputs, p=[0.4, 0.3, 0.2, 0.09, 0.01])
    return values, top


def _brute_means(values: np.ndarray, top: np.ndarray) -> dict[int, np.ndarray]:
    return {int(k): np.nanmean(values[top == k].astype(np.float64), axis=0) for k in set(top)}


def _brute_ranked(values: dict[int, float], count: int, up: bool) -> list[int]:
    kept = {k: v for k, v in values.items() if (v > 0 if up else v < 0)}
    order = sorted(kept, key=lambda k: (-kept[k] if up else kept[k], k))
    return order[:count]


def test_class_means_equal_the_mean_over_each_class_inputs() -> None:
    values, top = _data()
    sums = ClassSums(top.tolist(), values.shape[1])
    for start in range(0, len(top), 64):  # in chunks, as the report stage reads a file
        sums.add(values[start : start + 64], top[start : start + 64])
    assert sums.classes.tolist() == sorted(set(top.tolist()))  # only the classes that occur
    means = sums.means()
    for row, k in enumerate(sums.classes):
        np.testing.assert_allclose(means[row], _brute_means(values, top)[int(k)], rtol=1e-12)
        assert sums.counts[row].tolist() == np.isfinite(values[top == k]).sum(axis=0).tolist()


def test_the_same_rows_give_the_same_bytes_and_any_chunking_the_same_numbers() -> None:
    values, top = _data(1)
    made = []
    for chunk in (64, 64, 7, 1000):
        sums = ClassSums(top.tolist(), values.shape[1])
        for start in range(0, len(top), chunk):
            sums.add(values[start : start + chunk], top[start : start + chunk])
        made.append(sums.means())
    assert made[0].tobytes() == made[1].tobytes()
    for other in made[2:]:
        np.testing.assert_allclose(other, made[0], rtol=1e-12)


def test_a_class_not_announced_is_refused() -> None:
    sums = ClassSums([1, 2], 3)
    with pytest.raises(ValueError):
        sums.add(np.ones((1, 3)), np.array([5]))


def test_class_wide_lists_equal_a_brute_force() -> None:
    values, top = _data(2)
    sums = ClassSums(top.tolist(), values.shape[1])
    sums.add(values, top)
    wide = class_wide(sums)
    means = _brute_means(values, top)
    for k, mean in means.items():
        expected = _brute_ranked(dict(enumerate(mean.tolist())), CLASS_CHANNELS, up=True)
        assert [c for c, _ in wide.channels_of[k]] == expected
        for c, value in wide.channels_of[k]:
            assert value == pytest.approx(mean[c], rel=1e-12)
    for c in range(values.shape[1]):
        column = {k: float(mean[c]) for k, mean in means.items()}
        assert [k for k, _ in wide.up[c]] == _brute_ranked(column, CHANNEL_UP, up=True)
        assert [k for k, _ in wide.down[c]] == _brute_ranked(column, CHANNEL_DOWN, up=False)
        for k, value in wide.up[c] + wide.down[c]:
            assert value == pytest.approx(column[k], rel=1e-12)


def test_ranked_keeps_the_sign_breaks_ties_by_index_and_skips_nan() -> None:
    values = np.array([0.5, np.nan, 2.0, -1.0, 2.0, 0.0, -3.0, -1.0])
    assert ranked(values, 3, up=True) == [(2, 2.0), (4, 2.0), (0, 0.5)]
    assert ranked(values, 2, up=False) == [(6, -3.0), (3, -1.0)]
    assert ranked(np.zeros(4), 3, up=True) == []
    up, down = strongest(np.arange(-10, 11, dtype=np.float32))
    assert [c for c, _ in up] == list(range(20, 20 - INPUT_UP, -1))
    assert [c for c, _ in down] == list(range(INPUT_DOWN))
