"""Dataset examples: across all inputs of a run, each channel's top inputs by max
activation. Memory stays bounded: at most N entries per channel, whatever the
number of inputs."""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, order=True)
class Example:
    value: float
    order: int  # negative arrival index: on equal values the earlier input wins
    input_id: str
    y: int
    x: int


class TopExamples:
    """Keeps the ``count`` highest-max inputs of every channel of one layer."""

    def __init__(self, channels: int, count: int) -> None:
        self.count = count
        self._heaps: list[list[Example]] = [[] for _ in range(channels)]
        self._seen = 0

    def add(self, input_id: str, maxima: np.ndarray, arg_y: np.ndarray, arg_x: np.ndarray) -> None:
        """Offer one input's per-channel maxima and their positions in the map."""
        self._seen += 1
        if self.count <= 0:
            return
        for channel, heap in enumerate(self._heaps):
            value = float(maxima[channel])
            if not np.isfinite(value):
                continue
            item = Example(value, -self._seen, input_id, int(arg_y[channel]), int(arg_x[channel]))
            if len(heap) < self.count:
                heapq.heappush(heap, item)
            elif item > heap[0]:
                heapq.heapreplace(heap, item)

    def top(self, channel: int) -> list[Example]:
        """The channel's examples, highest value first."""
        return sorted(self._heaps[channel], reverse=True)

    def inputs_needed(self) -> set[str]:
        return {item.input_id for heap in self._heaps for item in heap}
