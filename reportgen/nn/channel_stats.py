"""What the network stage hands on for each layer and input: per-channel statistics as
numpy arrays. No torch here (the stages after the network import this type)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STAT_NAMES = ("mean", "max", "min", "std", "sparsity")


@dataclass(frozen=True)
class ChannelStats:
    """Statistics of every channel of one layer for one input (arrays of length C).

    For a 2-D output (e.g. Linear) each channel is a single value: ``std`` is NaN,
    as ``torch.std`` of one element is.
    """

    mean: np.ndarray
    max: np.ndarray
    min: np.ndarray
    std: np.ndarray
    sparsity: np.ndarray  # fraction of positions with value <= 0
    argmax_y: np.ndarray  # position of the maximum in the map
    argmax_x: np.ndarray
    map_size: tuple[int, int]  # (H, W); (1, 1) for 2-D outputs

    @property
    def channels(self) -> int:
        return int(self.mean.shape[0])

    def of(self, stat: str) -> np.ndarray:
        if stat not in STAT_NAMES:
            raise KeyError(stat)
        return getattr(self, stat)
