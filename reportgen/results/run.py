"""A model's results over a run: the per-input results (pictures already written and
dropped) in input order, and the per-channel state that merges (top examples).

Results of disjoint sets of inputs merge: ``a.merge(b)`` equals one pass over all inputs,
whatever order the parts arrive in, because every input carries its index in the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reportgen.analysis.examples import TopExamples
from reportgen.results.records import InputResult, ModelFacts


@dataclass
class ModelResults:
    facts: ModelFacts
    inputs: dict[str, InputResult]  # input id -> result without pictures, in input order
    order: dict[str, int]  # input id -> index in the run
    examples: dict[str, TopExamples]  # layer -> each channel's top inputs
    # Filled after all inputs: per layer and channel {input, value, box} (dataset examples)
    # and per layer and channel feature visualisation numbers.
    example_boxes: dict[str, list[list[dict[str, Any]]]] = field(default_factory=dict)
    feature_vis: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def empty(cls, facts: ModelFacts, examples: int) -> ModelResults:
        trackers = {layer.name: TopExamples(layer.channels, examples) for layer in facts.layers}
        return cls(facts, {}, {}, trackers)

    def add(self, result: InputResult, index: int) -> None:
        """Fold in one input's result; ``index``: its position in the run's inputs."""
        if result.input_id in self.inputs:
            raise ValueError(f"input {result.input_id!r} was folded in twice")
        self.inputs[result.input_id] = result
        self.order[result.input_id] = index
        for name, tracker in self.examples.items():
            stats = result.layers[name].stats
            tracker.add(result.input_id, index, stats.max, stats.argmax_y, stats.argmax_x)

    def merge(self, other: ModelResults) -> None:
        """Fold in the results of other inputs of the same model and layers."""
        if other.facts.id != self.facts.id or [layer.name for layer in other.facts.layers] != [
            layer.name for layer in self.facts.layers
        ]:
            raise ValueError("results of different models or layers do not merge")
        twice = sorted(set(self.inputs) & set(other.inputs))
        if twice:
            raise ValueError(f"input {twice[0]!r} is in both results")
        merged = {**self.inputs, **other.inputs}
        self.order.update(other.order)
        self.inputs = {i: merged[i] for i in sorted(merged, key=self.order.__getitem__)}
        for name, tracker in self.examples.items():
            tracker.merge(other.examples[name])
