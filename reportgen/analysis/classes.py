"""Which channels a decision rests on, from the channels' contributions (gradient x
activation for an input's top class, one value per input and channel):

* per input, the channels that pushed its top class most, up and down (``strongest``);
* per class that is some input's top prediction, per channel the sum and the count of
  the contributions over those inputs (``ClassSums``: the class-wide statistics of
  concept relevance propagation), and from them the channels each class rests on and
  the classes each channel drives.

Only classes that occur get a row: memory is classes that occur x channels, for one
layer at a time, whatever the number of inputs. The sums are made in input order, in
chunks of a fixed size, so they are a function of the rows alone: a run computed in one
process, by a cluster or in shards merged in any order gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

# Listed per class and layer (class pages, the manifest's classes)
CLASS_CHANNELS = 6
# Listed per input and layer: the channels that pushed its top class up most, and down
INPUT_UP, INPUT_DOWN = 6, 3
# Listed per channel: the classes it pushes up most on their inputs, and down
CHANNEL_UP, CHANNEL_DOWN = 5, 3

Ranked = list[tuple[int, float]]  # (index, value), strongest first


def ranked(values: np.ndarray, count: int, *, up: bool) -> Ranked:
    """The ``count`` highest positive values (``up``) or lowest negative ones, as
    (index, value), strongest first; equal values by lower index. NaN never counts."""
    values = np.asarray(values, np.float64)
    wanted = np.flatnonzero(values > 0 if up else values < 0)
    if not len(wanted):
        return []
    key = -values[wanted] if up else values[wanted]
    order = np.lexsort((wanted, key))[:count]  # by key, then by index
    return [(int(wanted[i]), float(values[wanted[i]])) for i in order]


def strongest(row: np.ndarray) -> tuple[Ranked, Ranked]:
    """An input's channels that pushed its top class most: up, then down."""
    return ranked(row, INPUT_UP, up=True), ranked(row, INPUT_DOWN, up=False)


class ClassSums:
    """Per class that occurs and per channel, the sum and the count of the finite
    contributions over the inputs predicted as the class."""

    def __init__(self, classes: Iterable[int], channels: int) -> None:
        self.classes = np.asarray(sorted(set(classes)), np.int64)
        self.sums = np.zeros((len(self.classes), channels), np.float64)
        self.counts = np.zeros((len(self.classes), channels), np.int64)

    def add(self, contributions: np.ndarray, top: np.ndarray) -> None:
        """Fold in rows [inputs, channels] of inputs whose top classes are ``top``."""
        if not len(top):
            return
        rows = np.searchsorted(self.classes, top)
        if (rows >= len(self.classes)).any() or (self.classes[rows] != top).any():
            raise ValueError("a top class that was not announced to ClassSums")
        values = np.asarray(contributions, np.float64)
        finite = np.isfinite(values)
        # add.at adds row after row, in input order: the same sums for the same rows
        np.add.at(self.sums, rows, np.where(finite, values, 0.0))
        np.add.at(self.counts, rows, finite)

    def means(self) -> np.ndarray:
        """[classes, channels]: the mean contribution, NaN where no input counted."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts > 0, self.sums / np.maximum(self.counts, 1), np.nan)


@dataclass(frozen=True)
class ClassWide:
    """A layer's class-wide statistics: per class that occurs, the channels with the
    highest mean contribution; per channel, the classes with the highest and the lowest."""

    channels_of: dict[int, Ranked]  # class index -> channels, highest mean first
    up: list[Ranked]  # per channel: classes whose inputs it pushes up most
    down: list[Ranked]  # per channel: classes whose inputs it pushes down most


def class_wide(sums: ClassSums) -> ClassWide:
    means = sums.means()
    channels_of = {
        int(k): ranked(means[row], CLASS_CHANNELS, up=True) for row, k in enumerate(sums.classes)
    }
    up: list[Ranked] = []
    down: list[Ranked] = []
    for column in means.T:
        up.append([(int(sums.classes[i]), v) for i, v in ranked(column, CHANNEL_UP, up=True)])
        down.append([(int(sums.classes[i]), v) for i, v in ranked(column, CHANNEL_DOWN, up=False)])
    return ClassWide(channels_of, up, down)
