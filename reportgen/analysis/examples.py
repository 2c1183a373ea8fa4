"""Dataset examples: across all inputs of a run, each channel's top inputs by max
activation. Memory stays bounded: at most N entries per channel, whatever the
number of inputs. Trackers of disjoint sets of inputs merge: the merge holds the top
N of the union, ties broken by input order (the index each input has in the run),
never by the order in which results arrived."""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, order=True)
class Example:
    value: float
    order: int  # negative input index: on equal values the earlier input wins
    input_id: str
    y: int
    x: int


class TopExamples:
    """Keeps the ``count`` highest-max inputs of every channel of one layer."""

    def __init__(self, channels: int, count: int) -> None:
        self.count = count
        self._heaps: list[list[Example]] = [[] for _ in range(channels)]

    def add(
        self,
        input_id: str,
        index: int,
        maxima: np.ndarray,
        arg_y: np.ndarray,
        arg_x: np.ndarray,
    ) -> None:
        """Offer one input's per-channel maxima and their positions in the map;
        ``index``: the input's position in the run (smaller wins a tie)."""
        if self.count <= 0:
            return
        for channel, (value, y, x) in enumerate(
            zip(maxima.tolist(), arg_y.tolist(), arg_x.tolist())
        ):
            if np.isfinite(value):
                self._offer(channel, Example(float(value), -index, input_id, int(y), int(x)))

    def _offer(self, channel: int, item: Example) -> None:
        heap = self._heaps[channel]
        if len(heap) < self.count:
            heapq.heappush(heap, item)
        elif item > heap[0]:
            heapq.heapreplace(heap, item)

    def merge(self, other: TopExamples) -> None:
        """Fold in the examples of another tracker over other inputs of the same layer."""
        if len(other._heaps) != len(self._heaps) or other.count != self.count:
            raise ValueError("top examples of different layers or counts do not merge")
        for channel, heap in enumerate(other._heaps):
            for item in heap:
                self._offer(channel, item)

    def top(self, channel: int) -> list[Example]:
        """The channel's examples, highest value first."""
        return sorted(self._heaps[channel], reverse=True)

    def inputs_needed(self) -> set[str]:
        return {item.input_id for heap in self._heaps for item in heap}
