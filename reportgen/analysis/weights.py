"""A convolution's strongest input channels per output channel: its weights view.

For output channel ``o`` and each input channel ``i`` it reads, the kernel slice
``W[o, i]`` ([kh, kw]) is scored by its L2 norm and signed by its sum (a 1x1 slice is one
weight: the score is that weight). The view keeps the ``per_sign`` strongest positive and
the ``per_sign`` strongest negative slices, strongest first, ties to the lower input
channel. Grouped convolutions read only their group's input channels; a depthwise one
reads exactly one. Plain numpy: the network stage hands over the weight array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StrongestInputs:
    """Per output channel, ``2 * per_sign`` slots: positive ones first, then negative.
    An empty slot (fewer inputs of that sign) has input -1 and value NaN."""

    per_sign: int
    inputs: np.ndarray  # [out, 2 * per_sign] int: the input channel of the layer's input
    slices: np.ndarray  # [out, 2 * per_sign] int: its index in W[o] (within the group)
    values: np.ndarray  # [out, 2 * per_sign] float: L2 norm, signed by the slice's sum
    inputs_per_output: int  # input channels each output channel reads (in / groups)

    def shown(self, channel: int) -> list[tuple[int, int, float]]:
        """(slot, input channel, value) of one output channel's filled slots, in order."""
        return [
            (slot, int(self.inputs[channel, slot]), float(self.values[channel, slot]))
            for slot in range(self.inputs.shape[1])
            if self.inputs[channel, slot] >= 0
        ]


def signed_norms(weight: np.ndarray) -> np.ndarray:
    """[out, in/groups]: each kernel slice's L2 norm, negative where its sum is."""
    kernels = np.asarray(weight, dtype=np.float64)
    norms = np.sqrt(np.square(kernels).sum(axis=(2, 3)))
    return np.where(kernels.sum(axis=(2, 3)) < 0, -norms, norms)


def strongest_inputs(weight: np.ndarray, groups: int, per_sign: int) -> StrongestInputs:
    """The weights view of a Conv2d weight [out, in/groups, kh, kw] with ``groups``."""
    out, per_group_in = int(weight.shape[0]), int(weight.shape[1])
    scores = signed_norms(weight)
    offsets = (np.arange(out) // max(1, out // groups)) * per_group_in  # group's first input
    keep = min(per_sign, per_group_in)
    slices = np.full((out, 2 * per_sign), -1, dtype=np.int64)
    values = np.full((out, 2 * per_sign), np.nan)
    for start, sign in ((0, 1.0), (per_sign, -1.0)):
        strength = np.where(sign * scores > 0, np.abs(scores), -1.0)
        order = np.argsort(-strength, axis=1, kind="stable")[:, :keep]
        picked = np.take_along_axis(strength, order, axis=1)
        filled = picked > 0
        slices[:, start : start + keep] = np.where(filled, order, -1)
        values[:, start : start + keep] = np.where(filled, sign * picked, np.nan)
    inputs = np.where(slices >= 0, slices + offsets[:, None], -1)
    return StrongestInputs(per_sign, inputs, slices, values, per_group_in)


def extreme_weights(
    weight: np.ndarray, count: int
) -> list[tuple[list[tuple[int, float]], list[tuple[int, float]]]]:
    """Per input column of a Linear's weight [out, in]: the ``count`` outputs with the
    highest weight on it and the ``count`` with the lowest, as (output, weight), the
    strongest first; ties to the lower output."""
    columns = np.asarray(weight, np.float64).T  # [in, out]
    keep = min(count, columns.shape[1])
    highest = np.argsort(-columns, axis=1, kind="stable")[:, :keep]
    lowest = np.argsort(columns, axis=1, kind="stable")[:, :keep]
    return [
        (
            [(int(k), float(column[k])) for k in high],
            [(int(k), float(column[k])) for k in low],
        )
        for column, high, low in zip(columns, highest, lowest)
    ]
