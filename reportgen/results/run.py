"""A model's results over a run, bounded whatever the number of inputs:

* per input, its facts (predictions, Grad-CAM, per layer the channels selected and their
  numbers, the value range): a few hundred bytes a layer, never a value per channel;
* per layer, per-channel totals over all inputs (sums, counts, extremes), which merge by
  adding;
* per layer, each channel's top inputs (``TopExamples``), which merge as heaps;
* the full per-channel statistics of the *detail* inputs only (a bounded set).

Every input's per-channel statistics go to a ``StatsTable`` as they arrive (in a report,
a file per layer), never into memory. Results of disjoint sets of inputs merge:
``a.merge(b)`` equals one pass over all inputs, in any order, because every input carries
its index in the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reportgen.analysis.examples import TopExamples
from reportgen.analysis.stats import unit_ranks
from reportgen.nn.channel_stats import ChannelStats
from reportgen.results.records import GradCamResult, InputResult, LayerResult, ModelFacts


@dataclass
class ChannelTotals:
    """Per-channel sums and extremes over the inputs of one layer (arrays of length C)."""

    inputs: np.ndarray  # inputs with a finite mean
    sum_mean: np.ndarray
    sum_sparsity: np.ndarray
    min_mean: np.ndarray
    max_mean: np.ndarray
    min_max: np.ndarray
    max_max: np.ndarray
    selected: np.ndarray  # inputs that selected the channel
    best_rank: np.ndarray  # its best rank by mean among the layer's channels (1: highest)
    first: np.ndarray  # inputs on which it ranked first

    @classmethod
    def empty(cls, channels: int) -> ChannelTotals:
        zeros = np.zeros(channels, np.float64)
        return cls(
            np.zeros(channels, np.int64),
            zeros.copy(),
            zeros.copy(),
            np.full(channels, np.inf),
            np.full(channels, -np.inf),
            np.full(channels, np.inf),
            np.full(channels, -np.inf),
            np.zeros(channels, np.int64),
            np.full(channels, np.iinfo(np.int64).max),
            np.zeros(channels, np.int64),
        )

    def add(self, stats: ChannelStats, selected: list[int]) -> None:
        finite = np.isfinite(stats.mean)
        self.inputs += finite
        self.sum_mean += np.where(finite, stats.mean, 0.0)
        sparsity = np.where(np.isfinite(stats.sparsity), stats.sparsity, 0.0)
        self.sum_sparsity += np.where(finite, sparsity, 0.0)
        self.min_mean = np.fmin(self.min_mean, stats.mean)
        self.max_mean = np.fmax(self.max_mean, stats.mean)
        self.min_max = np.fmin(self.min_max, stats.max)
        self.max_max = np.fmax(self.max_max, stats.max)
        np.add.at(self.selected, np.asarray(sorted(set(selected)), dtype=np.int64), 1)
        ranks = unit_ranks(stats.mean)
        self.best_rank = np.minimum(self.best_rank, ranks)
        self.first += ranks == 1

    def merge(self, other: ChannelTotals) -> None:
        self.inputs += other.inputs
        self.sum_mean += other.sum_mean
        self.sum_sparsity += other.sum_sparsity
        self.min_mean = np.fmin(self.min_mean, other.min_mean)
        self.max_mean = np.fmax(self.max_mean, other.max_mean)
        self.min_max = np.fmin(self.min_max, other.min_max)
        self.max_max = np.fmax(self.max_max, other.max_max)
        self.selected += other.selected
        self.best_rank = np.minimum(self.best_rank, other.best_rank)
        self.first += other.first

    def mean_of_means(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.inputs > 0, self.sum_mean / np.maximum(self.inputs, 1), np.nan)

    def mean_sparsity(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.inputs > 0, self.sum_sparsity / np.maximum(self.inputs, 1), np.nan)


@dataclass(frozen=True)
class SelectedChannel:
    """A channel selected for an input, with its numbers on that input."""

    channel: int
    mean: float
    max: float
    sparsity: float


@dataclass
class InputFacts:
    """What is kept of every input: bounded by layers and --top-k, not by channels."""

    input_id: str
    predictions: list[tuple[int, float]]
    gradcam: list[GradCamResult]
    selected: dict[str, list[SelectedChannel]]  # layer -> in selection order
    ranges: dict[str, tuple[float, float] | None]  # layer -> finite (min, max)


def input_facts(result: InputResult) -> InputFacts:
    selected: dict[str, list[SelectedChannel]] = {}
    for name, layer in result.layers.items():
        s = layer.stats
        selected[name] = [
            SelectedChannel(c, float(s.mean[c]), float(s.max[c]), float(s.sparsity[c]))
            for c in layer.selected
        ]
    return InputFacts(
        result.input_id,
        result.predictions,
        result.gradcam,
        selected,
        {name: layer.value_range for name, layer in result.layers.items()},
    )


class StatsTable:
    """Every input's per-channel statistics of one layer, as rows [input, channel, field]
    (``STATS_FIELDS``). This one keeps them in memory (``reportgen.analyze``, single-file
    reports); a folder report streams them to a file instead (``report.statsfile``)."""

    def __init__(self, inputs: int, channels: int) -> None:
        self.array = np.zeros((inputs, channels, len(STATS_FIELDS)), np.float32)

    def write(self, index: int, stats: ChannelStats) -> None:
        self.array[index] = stats_rows(stats)

    def close(self) -> None:
        return None

    def read(self) -> np.ndarray:
        return self.array


STATS_FIELDS = ("mean", "max", "min", "std", "sparsity", "argmax_y", "argmax_x")


def stats_rows(stats: ChannelStats) -> np.ndarray:
    """One input's statistics of every channel as a [C, 7] float32 block."""
    return np.stack([np.asarray(getattr(stats, f), np.float32) for f in STATS_FIELDS], axis=1)


@dataclass
class ModelResults:
    facts: ModelFacts
    inputs: dict[str, InputFacts]  # input id -> facts, in input order
    order: dict[str, int]  # input id -> index in the run
    examples: dict[str, TopExamples]  # layer -> each channel's top inputs
    totals: dict[str, ChannelTotals]  # layer -> per-channel totals
    detail: dict[str, dict[str, LayerResult]] = field(default_factory=dict)  # id -> layers
    # Filled after all inputs: per layer and channel {input, value, box} (dataset examples)
    # and per layer and channel feature visualisation numbers.
    example_boxes: dict[str, list[list[dict[str, Any]]]] = field(default_factory=dict)
    feature_vis: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def empty(cls, facts: ModelFacts, examples: int) -> ModelResults:
        trackers = {layer.name: TopExamples(layer.channels, examples) for layer in facts.layers}
        totals = {layer.name: ChannelTotals.empty(layer.channels) for layer in facts.layers}
        return cls(facts, {}, {}, trackers, totals)

    def add(self, result: InputResult, index: int, detail: bool = False) -> None:
        """Fold in one input's result; ``index``: its position in the run's inputs;
        ``detail``: keep its full per-channel statistics too."""
        if result.input_id in self.inputs:
            raise ValueError(f"input {result.input_id!r} was folded in twice")
        self.inputs[result.input_id] = input_facts(result)
        self.order[result.input_id] = index
        for name, layer in result.layers.items():
            stats = layer.stats
            self.examples[name].add(
                result.input_id, index, stats.max, stats.argmax_y, stats.argmax_x
            )
            self.totals[name].add(stats, layer.selected)
        if detail:
            self.detail[result.input_id] = result.layers

    def merge(self, other: ModelResults) -> None:
        """Fold in the results of other inputs of the same model and layers."""
        if other.facts.id != self.facts.id or [layer.name for layer in other.facts.layers] != [
            layer.name for layer in self.facts.layers
        ]:
            raise ValueError("results of different models or layers do not merge")
        twice = sorted(set(self.inputs) & set(other.inputs))
        if twice:
            raise ValueError(f"input {twice[0]!r} is in both results")
        self.order.update(other.order)
        merged = {**self.inputs, **other.inputs}
        self.inputs = {i: merged[i] for i in sorted(merged, key=self.order.__getitem__)}
        detail = {**self.detail, **other.detail}
        self.detail = {i: detail[i] for i in sorted(detail, key=self.order.__getitem__)}
        for name, tracker in self.examples.items():
            tracker.merge(other.examples[name])
            self.totals[name].merge(other.totals[name])
