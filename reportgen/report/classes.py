"""Class pages and the "why" of input and channel pages, as records: made from a model's
merged results and its layers' statistics tables, after ``model_record``.

The class-wide numbers are read from the statistics tables (every input's row, in the
run's input order) in chunks of a fixed number of inputs: a function of the merged rows
only, so one process, a cluster and merged shards give the same bytes. Without a
``contribution`` field (``--no-contributions``) class pages list their inputs only, and
input and channel pages have no "why".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from reportgen.analysis.classes import ClassSums, Ranked, class_wide, strongest
from reportgen.report import paths
from reportgen.statistics import CONTRIBUTION

if TYPE_CHECKING:
    from reportgen.report.data import LayerRecord, ModelRecord
    from reportgen.results.records import LayerFacts, ModelFacts
    from reportgen.results.run import ModelResults

_ROWS_PER_READ = 4096  # inputs read at a time from a statistics table


@dataclass
class ClassRecord:
    """A class that is the top prediction of at least one input."""

    index: int
    label: str
    page: str
    inputs: list[str]  # input ids predicted as it, highest probability first
    # layer -> the channels with the highest mean contribution over its inputs
    channels: dict[str, Ranked] = field(default_factory=dict)
    units: list[tuple[str, str]] = field(default_factory=list)  # (layer, unit page)


@dataclass
class ClassEffect:
    index: int
    label: str
    value: float
    page: str | None  # its class page (a class that is some input's top prediction)


@dataclass
class ChannelDrives:
    """What a channel drives: over the inputs predicted as each class, the classes its
    mean contribution pushes up most and down most; at a layer pooled straight into the
    final Linear also the exact direct effect (that Linear's weights on it)."""

    up: list[ClassEffect]
    down: list[ClassEffect]
    exact_up: list[ClassEffect] = field(default_factory=list)
    exact_down: list[ClassEffect] = field(default_factory=list)


@dataclass
class InputWhy:
    """A layer's channels that pushed an input's top class most."""

    up: Ranked
    down: Ranked


def top_classes(results: ModelResults) -> np.ndarray:
    """Each row's top class, rows in the run's input order."""
    top = np.full(len(results.order), -1, np.int64)
    for input_id, facts in results.inputs.items():
        top[results.order[input_id]] = facts.predictions[0][0]
    return top


def contribution_field(fields: tuple[str, ...] | list[str]) -> int | None:
    return list(fields).index(CONTRIBUTION) if CONTRIBUTION in fields else None


def add_classes(
    record: ModelRecord, results: ModelResults, tables: dict[str, Any], fields: tuple[str, ...]
) -> None:
    """Class pages, the classes index, per input its strongest channels and per channel
    the classes it drives. ``tables``: per layer the rows [input, channel, field] with
    ``fields`` on the last axis."""
    facts = results.facts
    record.classes_page = paths.classes_page(facts.id)
    record.classes = _class_records(record, results)
    record.class_pages = {c.index: c.page for c in record.classes}
    column = contribution_field(fields)
    if column is None or not record.classes:
        return
    record.contributions = True
    top = top_classes(results)
    rows = {index: input_id for input_id, index in results.order.items()}
    by_index = {c.index: c for c in record.classes}
    for layer, layer_facts in zip(record.layers, facts.layers):
        table = tables.get(layer.name)
        if table is None or int(table.shape[0]) != len(top):
            continue
        sums = ClassSums(by_index, len(layer.channels))
        for start in range(0, len(top), _ROWS_PER_READ):
            block = np.asarray(table[start : start + _ROWS_PER_READ, :, column], np.float64)
            sums.add(block, top[start : start + len(block)])
            for offset, row in enumerate(block):
                up, down = strongest(row)
                why = record.why.setdefault(rows[start + offset], {})
                why[layer.name] = InputWhy(up, down)
        wide = class_wide(sums)
        for index, ranked_channels in wide.channels_of.items():
            by_index[index].channels[layer.name] = ranked_channels
        for channel in layer.channels:
            channel.drives = ChannelDrives(
                [_effect(facts, record, k, v) for k, v in wide.up[channel.index]],
                [_effect(facts, record, k, v) for k, v in wide.down[channel.index]],
            )
        _add_direct_effects(record, facts, layer, layer_facts)


def _class_records(record: ModelRecord, results: ModelResults) -> list[ClassRecord]:
    facts = results.facts
    members: dict[int, list[tuple[float, int, str]]] = {}
    for input_id, input_facts in results.inputs.items():
        index, probability = input_facts.predictions[0]
        members.setdefault(index, []).append((-probability, results.order[input_id], input_id))
    classes = []
    for index in sorted(members):
        ordered = [input_id for *_, input_id in sorted(members[index])]
        units = [
            (layer.name, layer.channels[index].page)
            for layer in record.layers
            if layer.class_units and index < len(layer.channels)
        ]
        classes.append(
            ClassRecord(
                index,
                facts.class_label(index),
                paths.class_page(facts.id, index),
                ordered,
                units=units,
            )
        )
    return classes


def _effect(facts: ModelFacts, record: ModelRecord, index: int, value: float) -> ClassEffect:
    return ClassEffect(index, facts.class_label(index), value, record.class_pages.get(index))


def _add_direct_effects(
    record: ModelRecord, facts: ModelFacts, layer: LayerRecord, layer_facts: LayerFacts
) -> None:
    """At the layer pooled into the final Linear: each channel's weights to the classes
    (``LayerFacts.direct_effects``: per channel the highest and the lowest)."""
    effects = layer_facts.direct_effects
    if not layer_facts.exact_contributions or effects is None:
        return
    for channel, effect in zip(layer.channels, effects):
        drives = channel.drives
        if drives is not None:
            drives.exact_up = [_effect(facts, record, int(k), float(w)) for k, w in effect.raises]
            drives.exact_down = [_effect(facts, record, int(k), float(w)) for k, w in effect.lowers]
