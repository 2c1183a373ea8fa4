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
from reportgen.results.records import GradCamResult, InputResult, LayerResult, ModelFacts
from reportgen.statistics import (
    ChannelStats,
    Combine,
    file_fields,
    over_inputs,
    statistic_names,
)


@dataclass
class ChannelTotals:
    """Per-channel sums and extremes over the inputs of one layer (arrays of length C),
    of every statistic (``reportgen.statistics``): what each one is over all
    inputs (``over_inputs``) is made from these."""

    inputs: np.ndarray  # inputs with a finite mean
    # statistic -> its sum over the inputs with a finite mean / lowest / highest value on
    # any input, for the statistics that ``over_inputs`` (and ``max_mean``) make from them
    sums: dict[str, np.ndarray]
    lowest: dict[str, np.ndarray]
    highest: dict[str, np.ndarray]
    selected: np.ndarray  # inputs that selected the channel
    best_rank: np.ndarray  # its best rank by mean among the layer's channels (1: highest)
    first: np.ndarray  # inputs on which it ranked first

    @classmethod
    def empty(cls, channels: int) -> ChannelTotals:
        """Totals of no input, kept for what ``over_inputs`` and ``max_mean`` read."""
        wanted: dict[str, set[str]] = {c: set() for c in ("mean", "lowest", "highest")}
        for stat, summary in over_inputs():
            wanted[summary.combine].add(stat.name)
        wanted["highest"].add("mean")  # max_mean
        names = statistic_names()  # in the definition's order
        return cls(
            np.zeros(channels, np.int64),
            {name: np.zeros(channels, np.float64) for name in names if name in wanted["mean"]},
            {name: np.full(channels, np.inf) for name in names if name in wanted["lowest"]},
            {name: np.full(channels, -np.inf) for name in names if name in wanted["highest"]},
            np.zeros(channels, np.int64),
            np.full(channels, np.iinfo(np.int64).max),
            np.zeros(channels, np.int64),
        )

    def add(self, stats: ChannelStats, selected: list[int]) -> None:
        finite = np.isfinite(stats.mean)
        self.inputs += finite
        values = stats.values
        for name, total in self.sums.items():
            known = np.where(np.isfinite(values[name]), values[name], 0.0)
            total += np.where(finite, known, 0.0)
        for name, low in self.lowest.items():
            np.fmin(low, values[name], out=low)
        for name, high in self.highest.items():
            np.fmax(high, values[name], out=high)
        np.add.at(self.selected, np.asarray(sorted(set(selected)), dtype=np.int64), 1)
        ranks = unit_ranks(stats.mean)
        self.best_rank = np.minimum(self.best_rank, ranks)
        self.first += ranks == 1

    def merge(self, other: ChannelTotals) -> None:
        self.inputs += other.inputs
        for name, total in self.sums.items():
            total += other.sums[name]
        for name, low in self.lowest.items():
            np.fmin(low, other.lowest[name], out=low)
        for name, high in self.highest.items():
            np.fmax(high, other.highest[name], out=high)
        self.selected += other.selected
        self.best_rank = np.minimum(self.best_rank, other.best_rank)
        self.first += other.first

    @property
    def max_mean(self) -> np.ndarray:
        """Per channel, its highest per-input mean (feature visualisation's best input)."""
        return self.highest["mean"]

    def mean_of(self, stat: str) -> np.ndarray:
        """Per channel, the mean of ``stat`` over the inputs with a finite mean (NaN: none)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.inputs > 0, self.sums[stat] / np.maximum(self.inputs, 1), np.nan)

    def over_inputs(self, stat: str, combine: Combine) -> np.ndarray:
        """Per channel, ``stat`` over every input as ``combine`` says."""
        if combine == "mean":
            return self.mean_of(stat)
        return self.highest[stat] if combine == "highest" else self.lowest[stat]


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
    (``file_fields()``). This one keeps them in memory (``reportgen.analyze``, single-file
    reports); a folder report streams them to a file instead (``report.statsfile``)."""

    def __init__(self, inputs: int, channels: int, fields: tuple[str, ...] | None = None) -> None:
        self.fields = file_fields() if fields is None else fields
        self.array = np.zeros((inputs, channels, len(self.fields)), np.float32)

    def write(self, index: int, stats: ChannelStats) -> None:
        self.array[index] = stats_rows(stats, self.fields)

    def close(self) -> None:
        return None

    def read(self) -> np.ndarray:
        return self.array


def stats_rows(stats: ChannelStats, fields: tuple[str, ...]) -> np.ndarray:
    """One input's statistics of every channel as a [C, fields] float32 block, in the
    order of ``fields`` (``file_fields()`` with the run's contributions)."""
    held = stats.fields()
    return np.stack([np.asarray(held[f], np.float32) for f in fields], axis=1)


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
