"""The per-channel statistics, defined once: each one's name, its reduction over a map,
how pages show it and what it is over all inputs. Everything else iterates over
``statistics()``: the network stage's reduction (``reportgen.nn.reduce``), the results'
totals and rows (``reportgen.results.run``), the cache entries (``results.entry_format``),
the statistics files, summaries, records, pages, the notebook view and the manifest. A
statistic added here is in all of them.

No torch here: a reduction is a function of a torch tensor, typed under TYPE_CHECKING
and called only by the network stage.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from torch import Tensor

# A map reduced per channel: values [B, C, N] (N positions) -> [B, C].
Reduction = Callable[["Tensor"], "Tensor"]
Display = Literal["number", "percent"]
Combine = Literal["mean", "highest", "lowest"]


@dataclass(frozen=True)
class OverInputs:
    """A statistic over every input of a run: the layer page's cards and tools, channel
    pages, the comparison and the manifest's channel summaries show it."""

    key: str  # its name in summaries and the manifest
    combine: Combine  # the per-input values' mean (inputs with a finite mean), or extreme
    heading: str | None = None  # the layer page's sort and filter label; None: not offered


@dataclass(frozen=True)
class Statistic:
    name: str  # in statistics files, cache entries, records, pages and the manifest
    reduce: Reduction
    display: Display = "number"
    over_inputs: tuple[OverInputs, ...] = ()


def _mean(flat: Tensor) -> Tensor:
    return flat.mean(dim=2)


def _max(flat: Tensor) -> Tensor:
    return flat.max(dim=2).values


def _min(flat: Tensor) -> Tensor:
    return flat.min(dim=2).values


def _std(flat: Tensor) -> Tensor:
    """Unbiased, as ``torch.std``; NaN for a map of one value (a unit), as torch's is."""
    if flat.shape[2] > 1:
        return flat.std(dim=2)
    return flat.new_full(flat.shape[:2], float("nan"))


def _sparsity(flat: Tensor) -> Tensor:
    """The fraction of positions with a value <= 0."""
    return (flat <= 0).float().mean(dim=2)


STATISTICS: tuple[Statistic, ...] = (
    Statistic("mean", _mean, over_inputs=(OverInputs("mean", "mean", "mean of means"),)),
    Statistic(
        "max",
        _max,
        # "min" over inputs is the lowest per-input max: a unit's lowest value
        over_inputs=(OverInputs("max", "highest", "highest max"), OverInputs("min", "lowest")),
    ),
    Statistic("min", _min),
    Statistic("std", _std),
    Statistic(
        "sparsity",
        _sparsity,
        display="percent",
        over_inputs=(OverInputs("sparsity", "mean", "sparsity (0&ndash;1)"),),
    ),
)

# Where the maximum is, in map cells: after the statistics in a statistics file's fields.
POSITION_FIELDS = ("argmax_y", "argmax_x")

# Each channel's contribution to a class logit on one input: the sum over positions of
# gradient x value (``reportgen.nn.gradients.contributions``). After the positions, in
# this order, in the runs that compute them: the top class's always (unless
# --no-contributions), the --target-class's when one is given.
CONTRIBUTION = "contribution"
TARGET_CONTRIBUTION = "target_contribution"
CONTRIBUTION_FIELDS = (CONTRIBUTION, TARGET_CONTRIBUTION)


def statistics() -> tuple[Statistic, ...]:
    """The statistics, read when called (a test may put another tuple in their place)."""
    return STATISTICS


def statistic_names() -> tuple[str, ...]:
    return tuple(stat.name for stat in statistics())


def file_fields(contributions: Sequence[str] = ()) -> tuple[str, ...]:
    """The fields of a statistics file's last axis (and of a cache entry's arrays): the
    statistics, the positions, then the ``contributions`` a run computes (in
    ``CONTRIBUTION_FIELDS`` order)."""
    return (*statistic_names(), *POSITION_FIELDS, *contribution_fields(contributions))


def contribution_fields(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` in ``CONTRIBUTION_FIELDS`` order; ValueError for any other name."""
    unknown = [name for name in names if name not in CONTRIBUTION_FIELDS]
    if unknown:
        raise ValueError(f"not a contribution field: {unknown[0]!r}")
    return tuple(name for name in CONTRIBUTION_FIELDS if name in names)


def over_inputs() -> list[tuple[Statistic, OverInputs]]:
    """Each statistic over all inputs with the statistic it is made from, in order."""
    return [(stat, summary) for stat in statistics() for summary in stat.over_inputs]


def offered_over_inputs() -> list[tuple[Statistic, OverInputs]]:
    """Those the layer page offers to sort and filter by (and the comparison shows)."""
    return [(stat, summary) for stat, summary in over_inputs() if summary.heading]


def statistics_version() -> str:
    """A short fingerprint of the fields (and their order): a cache entry written with
    other statistics is a miss that says so, not a misread."""
    text = ",".join(file_fields())
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class ChannelStats:
    """Statistics of every channel of one layer for one input (arrays of length C): one
    attribute per statistic (``stats.mean``, ``stats.of("mean")``), the position of
    each channel's maximum in its map, and the map's size.

    For a 2-D output (e.g. Linear) each channel is a single value: ``std`` is NaN,
    as ``torch.std`` of one element is.

    The contributions (``CONTRIBUTION_FIELDS``) a run computed are attributes too
    (``stats.contribution``, float32); ``contributions`` holds those present.
    """

    def __init__(
        self,
        *,
        argmax_y: np.ndarray,
        argmax_x: np.ndarray,
        map_size: tuple[int, int],
        **values: np.ndarray,
    ) -> None:
        names = statistic_names()
        extra = contribution_fields([name for name in values if name in CONTRIBUTION_FIELDS])
        if set(values) - set(extra) != set(names):
            raise TypeError(
                f"ChannelStats takes the statistics {list(names)}, got {sorted(values)}"
            )
        self.values: dict[str, np.ndarray] = {name: values[name] for name in names}
        self.contributions: dict[str, np.ndarray] = {
            name: np.asarray(values[name], np.float32) for name in extra
        }
        self.argmax_y = argmax_y
        self.argmax_x = argmax_x
        self.map_size = map_size

    def __getattr__(self, name: str) -> np.ndarray:
        # Only called for names that are not plain attributes: the statistics.
        for held in ("values", "contributions"):
            values = self.__dict__.get(held)
            if values is not None and name in values:
                return values[name]
        raise AttributeError(name)

    @property
    def channels(self) -> int:
        return int(self.values[statistic_names()[0]].shape[0])

    def of(self, stat: str) -> np.ndarray:
        return self.values[stat] if stat in self.values else self.contributions[stat]

    def fields(self) -> Mapping[str, np.ndarray]:
        """Every field of a statistics file's row, by name, in ``file_fields()`` order
        (with the contributions held)."""
        return {
            **self.values,
            **dict(zip(POSITION_FIELDS, (self.argmax_y, self.argmax_x))),
            **self.contributions,
        }
