"""The class pages' records (reportgen.report.classes) from merged results and a
statistics table with a ``contribution`` field, against a brute force over the table:
each class's inputs and channels, each input's strongest channels, each channel's classes;
and without the field, class pages that list their inputs only."""

from __future__ import annotations

import numpy as np
import pytest

from reportgen.analysis.classes import CHANNEL_UP, CLASS_CHANNELS, INPUT_DOWN, INPUT_UP
from reportgen.report.classes import add_classes
from reportgen.report.records import model_record
from reportgen.results.records import InputResult, LayerFacts, LayerResult, ModelFacts
from reportgen.results.run import ModelResults
from reportgen.statistics import ChannelStats, statistic_names

CHANNELS = 12
INPUTS = 40
FIELDS = ("mean", "contribution")
LABELS = tuple(f"class <{k}> & co" for k in range(10))


def _facts() -> ModelFacts:
    layers = (
        LayerFacts("conv", "Conv2d", "output", (CHANNELS, 3, 3), True),
        LayerFacts("head", "Linear", "output", (10,), False, class_labels=LABELS),
    )
    return ModelFacts("m", "m", "none", "", "", (), "", LABELS, (9, 9), layers)


def _stats(channels: int, rng: np.random.Generator) -> ChannelStats:
    values = {name: rng.normal(size=channels) for name in statistic_names()}
    zeros = np.zeros(channels, np.int64)
    return ChannelStats(argmax_y=zeros, argmax_x=zeros, map_size=(3, 3), **values)


def _made(seed: int = 0) -> tuple[ModelResults, dict[str, np.ndarray], np.ndarray]:
    """Results of INPUTS inputs (folded in a shuffled order) and their tables."""
    rng = np.random.default_rng(seed)
    facts = _facts()
    top = rng.choice([2, 5, 7], size=INPUTS, p=[0.5, 0.3, 0.2])
    probability = rng.uniform(0.2, 0.9, size=INPUTS).round(3)
    results = ModelResults.empty(facts, 2)
    for index in rng.permutation(INPUTS):
        layers = {
            layer.name: LayerResult(_stats(layer.channels, rng), [0]) for layer in facts.layers
        }
        predictions = [(int(top[index]), float(probability[index])), (9, 0.01)]
        results.add(InputResult(f"in{index:02d}", predictions, [], layers), int(index))
    results.inputs = dict(sorted(results.inputs.items(), key=lambda kv: results.order[kv[0]]))
    tables = {
        layer.name: rng.normal(size=(INPUTS, layer.channels, len(FIELDS))).astype(np.float32)
        for layer in facts.layers
    }
    return results, tables, probability


def test_class_records_equal_a_brute_force_over_the_statistics() -> None:
    results, tables, probability = _made()
    record = model_record(results, {}, sheets=False, overlay_files=False)
    add_classes(record, results, tables, FIELDS)
    assert record.contributions
    top = np.array([results.inputs[f"in{i:02d}"].predictions[0][0] for i in range(INPUTS)])
    assert [c.index for c in record.classes] == sorted(set(top.tolist()))
    for klass in record.classes:
        members = np.flatnonzero(top == klass.index)
        expected = sorted(members, key=lambda i: (-probability[i], i))
        assert klass.inputs == [f"in{i:02d}" for i in expected]
        assert klass.label == LABELS[klass.index]
        assert klass.units == [("head", record.layers[1].channels[klass.index].page)]
        for layer in record.layers:
            mean = tables[layer.name][members, :, 1].astype(np.float64).mean(axis=0)
            positive = [c for c in np.argsort(-mean, kind="stable") if mean[c] > 0]
            shown = klass.channels[layer.name]
            assert [c for c, _ in shown] == positive[:CLASS_CHANNELS]
            assert [v for _, v in shown] == pytest.approx([mean[c] for c, _ in shown])


def test_each_input_names_the_channels_that_pushed_its_top_class_most() -> None:
    results, tables, _ = _made(1)
    record = model_record(results, {}, sheets=False, overlay_files=False)
    add_classes(record, results, tables, FIELDS)
    for index in range(INPUTS):
        why = record.why[f"in{index:02d}"]["conv"]
        row = tables["conv"][index, :, 1]
        up = [c for c in np.argsort(-row, kind="stable") if row[c] > 0][:INPUT_UP]
        down = [c for c in np.argsort(row, kind="stable") if row[c] < 0][:INPUT_DOWN]
        assert [c for c, _ in why.up] == up and [c for c, _ in why.down] == down
        assert [v for _, v in why.up] == [float(row[c]) for c in up]


def test_each_channel_names_the_classes_it_pushes_most() -> None:
    results, tables, _ = _made(2)
    record = model_record(results, {}, sheets=False, overlay_files=False)
    add_classes(record, results, tables, FIELDS)
    top = np.array([results.inputs[f"in{i:02d}"].predictions[0][0] for i in range(INPUTS)])
    for channel in record.layers[0].channels:
        means = {
            k: float(tables["conv"][top == k, channel.index, 1].astype(np.float64).mean())
            for k in sorted(set(top.tolist()))
        }
        up = sorted((k for k in means if means[k] > 0), key=lambda k: -means[k])
        assert channel.drives is not None
        assert [e.index for e in channel.drives.up] == up[:CHANNEL_UP]
        assert all(e.page == record.class_pages[e.index] for e in channel.drives.up)
        assert [e.label for e in channel.drives.up] == [LABELS[k] for k in up[:CHANNEL_UP]]


def test_without_contributions_class_pages_list_their_inputs_only() -> None:
    results, tables, _ = _made(3)
    record = model_record(results, {}, sheets=False, overlay_files=False)
    add_classes(record, results, {k: t[:, :, :1] for k, t in tables.items()}, ("mean",))
    assert not record.contributions and not record.why
    assert record.classes and all(not c.channels for c in record.classes)
    assert sum(len(c.inputs) for c in record.classes) == INPUTS
    assert all(channel.drives is None for channel in record.layers[0].channels)
