"""Merging results of disjoint sets of inputs equals one pass over all of them: top
examples against a brute-force top-k, ties broken by input order, whatever the order in
which the parts arrive."""

from __future__ import annotations

import numpy as np
import pytest

from reportgen.nn.channel_stats import ChannelStats
from reportgen.results.records import InputResult, LayerFacts, LayerResult, ModelFacts
from reportgen.results.run import ModelResults

CHANNELS = 6
TOP = 4


def _facts() -> ModelFacts:
    layer = LayerFacts("conv", "Conv2d", "output", (CHANNELS, 3, 3), True)
    return ModelFacts("m", "m", "none", "", "", (), "", None, (9, 9), (layer,))


def _result(name: str, maxima: np.ndarray, rng: np.random.Generator) -> InputResult:
    ys = rng.integers(0, 3, CHANNELS)
    xs = rng.integers(0, 3, CHANNELS)
    stats = ChannelStats(
        mean=maxima / 2,
        max=maxima,
        min=maxima - 1,
        std=maxima,
        sparsity=maxima,
        argmax_y=ys,
        argmax_x=xs,
        map_size=(3, 3),
    )
    return InputResult(name, [(0, 1.0)], [], {"conv": LayerResult(stats, [0], (0.0, 1.0))})


def _inputs(seed: int, count: int) -> list[InputResult]:
    rng = np.random.default_rng(seed)
    # Few distinct values: many ties between inputs.
    maxima = rng.integers(0, 4, size=(count, CHANNELS)).astype(np.float64)
    maxima[rng.random(size=maxima.shape) < 0.05] = np.nan  # NaN maxima are never examples
    return [_result(f"in{i:03d}", maxima[i], rng) for i in range(count)]


def _brute_force_top(inputs: list[InputResult], channel: int) -> list[str]:
    rows = [
        (-float(r.layers["conv"].stats.max[channel]), index, r.input_id)
        for index, r in enumerate(inputs)
        if np.isfinite(r.layers["conv"].stats.max[channel])
    ]
    return [name for _, _, name in sorted(rows)[:TOP]]


def _fold(inputs: list[tuple[int, InputResult]]) -> ModelResults:
    part = ModelResults.empty(_facts(), TOP)
    for index, result in inputs:
        part.add(result, index)
    return part


@pytest.mark.parametrize("seed", range(6))
def test_merged_shards_equal_one_pass_and_a_brute_force_top_k(seed: int) -> None:
    inputs = _inputs(seed, 40)
    single = _fold(list(enumerate(inputs)))
    rng = np.random.default_rng(100 + seed)
    shards = np.array_split(rng.permutation(len(inputs)), 5)  # shuffled, uneven parts
    merged = _fold([(int(i), inputs[i]) for i in shards[0]])
    for shard in reversed(shards[1:]):  # arrival order unrelated to input order
        merged.merge(_fold([(int(i), inputs[i]) for i in shard]))

    assert list(merged.inputs) == [r.input_id for r in inputs]  # input order, not arrival
    for channel in range(CHANNELS):
        expected = _brute_force_top(inputs, channel)
        assert [e.input_id for e in single.examples["conv"].top(channel)] == expected
        assert [e.input_id for e in merged.examples["conv"].top(channel)] == expected
        assert merged.examples["conv"].top(channel) == single.examples["conv"].top(channel)


def test_an_input_in_two_parts_is_refused() -> None:
    inputs = _inputs(0, 4)
    first = _fold([(0, inputs[0]), (1, inputs[1])])
    with pytest.raises(ValueError, match="in0"):
        first.merge(_fold([(0, inputs[0])]))
    with pytest.raises(ValueError, match="twice"):
        first.add(inputs[1], 1)


def test_results_of_other_layers_do_not_merge() -> None:
    other = ModelFacts(
        "m", "m", "none", "", "", (), "", None, (9, 9), (LayerFacts("x", "", "", (2,), False),)
    )
    with pytest.raises(ValueError, match="do not merge"):
        _fold([]).merge(ModelResults.empty(other, TOP))
