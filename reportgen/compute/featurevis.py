"""Feature visualisation over a run: for each model's chosen channels, the images that
most excite (and, with --fv-negative, suppress) them, optimised by ``reportgen.nn.featurevis``,
measured against the run's inputs.

The work comes in units (``FvUnit``): a batch of one layer's pictures, optimised
together, seeded by ``--seed`` and its place. A unit is what the cache keeps, what a
Dask worker optimises (``compute.fv_tasks``) and what a shard holds (``sharding``):
wherever it is optimised its pixels are the same, so a report is the same bytes from
one process, a cluster or merged shards.

Like for like: each picture is optimised as the photos are seen (resized as their view
resizes them, then a random crop of the model's input size), and its numbers are
measured from the saved 8-bit picture through the preprocessing the photos get
(``model.preprocessing``: resize, centre crop, normalise), the view on which every
input's mean was measured."""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np

from reportgen.imaging import fv_pictures
from reportgen.nn.featurevis import (
    DIVERSITY_WEIGHT,
    LEARNING_RATE,
    Recipe,
    Visualisation,
    batches,
    visualise_batch,
)
from reportgen.nn.fv_image import pair, photo_view
from reportgen.nn.models import LoadedModel
from reportgen.options import FeatureVisOptions
from reportgen.results.records import PictureKey
from reportgen.results.run import ModelResults
from reportgen.results.store import Entry, InputCache

log = logging.getLogger("reportgen")


def chosen_channels(results: ModelResults, layer: str, which: str) -> list[int]:
    """``selected``: every channel selected for at least one input; ``all``: every one."""
    if which == "all":
        facts = {f.name: f for f in results.facts.layers}[layer]
        return list(range(facts.channels))
    return [int(c) for c in np.flatnonzero(results.totals[layer].selected > 0)]


def best_input_mean(results: ModelResults, layer: str, channel: int) -> float | None:
    """The largest mean activation of a channel over the run's inputs."""
    best = float(results.totals[layer].max_mean[channel])
    return best if math.isfinite(best) else None


def input_size(model: LoadedModel) -> tuple[int, int]:
    """(height, width) the network sees while the pictures are optimised: the model's
    crop (224 for ImageNet models, ``--input-size`` for custom ones)."""
    return pair(tuple(model.preprocessing.crop_size))


def resized_to(model: LoadedModel) -> tuple[int, int]:
    """(height, width) a square picture is resized to by the photos' view, before
    its crop (256 for ImageNet models): the scale the network sees it at."""
    return pair(tuple(model.preprocessing.resize_size))


def measured_on(model: LoadedModel) -> str:
    """The photos' preprocessing, in words: the view a visualisation's numbers are
    measured on (from the saved picture), as every input's are."""
    return str(model.preprocessing.describe())


@dataclass(frozen=True)
class FvUnit:
    """One batch of a layer's pictures: the unit of work of feature visualisation (a
    Dask task, a shard's share, a cache entry). ``start``: the batch's place among the
    layer's pictures (it seeds the batch); ``jobs``: its (channel, sign) pairs."""

    layer: str
    start: int
    jobs: tuple[tuple[int, int], ...]


def plan_units(layers: Sequence[tuple[str, list[int]]], fv: FeatureVisOptions) -> list[FvUnit]:
    """The units of a model's layers, each given with its chosen channels, in order."""
    shape = Recipe(negative=fv.negative, max_batch=fv.batch, diversity=fv.diversity)
    return [
        FvUnit(layer, start, tuple(jobs))
        for layer, channels in layers
        if channels
        for start, jobs in batches(channels, shape)
    ]


def run_units(results: ModelResults, fv: FeatureVisOptions) -> list[FvUnit]:
    """The units of one model of a run (the channels chosen over the run's inputs)."""
    chosen = [
        (layer.name, chosen_channels(results, layer.name, fv.channels))
        for layer in results.facts.layers
    ]
    return plan_units(chosen, fv)


def unit_key(model: LoadedModel, unit: FvUnit, fv: FeatureVisOptions) -> str:
    """Everything a unit's pictures depend on, hashed: reportgen's code, torch, the model
    and its weights file, the preprocessing, the device (``compute.keys``), the layer, the
    batch (its place and its channels: they are optimised together) and the options."""
    from reportgen.compute.keys import code_parts, model_parts
    from reportgen.results.store import digest

    return digest(
        "featurevis/5",
        code_parts(),
        model_parts(model),
        unit.layer,
        unit.start,
        [list(job) for job in unit.jobs],
        [fv.steps, fv.size, fv.seed],
        [LEARNING_RATE, DIVERSITY_WEIGHT],
        ["webp", fv_pictures.QUALITY, fv_pictures.METHOD, fv_pictures.BUDGET],  # as decoded
    )


def recipe_for(model: LoadedModel, fv: FeatureVisOptions) -> Recipe:
    """How ``model``'s pictures are optimised and measured (the photos' view)."""
    return Recipe(
        mean=model.preprocessing.mean,
        std=model.preprocessing.std,
        steps=fv.steps,
        size=fv.size,
        input_size=input_size(model),
        resize_to=resized_to(model),
        view=photo_view(model.preprocessing),
        seed=fv.seed,
        device=model.device,
        negative=fv.negative,
        max_batch=fv.batch,
        diversity=fv.diversity,
        saved=fv_pictures.saved,
    )


def optimise_unit(model: LoadedModel, unit: FvUnit, fv: FeatureVisOptions) -> list[Visualisation]:
    """A unit's pictures, optimised in this process (the client's, a worker's, a
    shard's): the same pixels wherever it runs."""
    started = time.perf_counter()
    found = visualise_batch(model.module, unit.layer, unit.start, unit.jobs, recipe_for(model, fv))
    seconds = time.perf_counter() - started
    log.info(
        "%s %s: %d feature visualisations in %.1f s (%.2f s each)",
        model.id,
        unit.layer,
        len(unit.jobs),
        seconds,
        seconds / len(unit.jobs),
    )
    return found


def unit_entry(found: list[Visualisation]) -> Entry:
    """A unit's pictures as one cache entry (and shard entry): their files, as saved."""
    header = {
        "results": [
            {
                "channel": r.channel,
                "sign": r.sign,
                "activation": r.activation,
                "others_mean": r.others_mean,
            }
            for r in found
        ]
    }
    return Entry(header, {}, {f"picture-{i}": r.saved or b"" for i, r in enumerate(found)})


def _from_entry(entry: Entry | None, unit: FvUnit) -> list[Visualisation] | None:
    """A unit's pictures from its entry; None when there is none or it is not the unit's."""
    if entry is None:
        return None
    try:
        found = []
        for i, item in enumerate(entry.header["results"]):
            data = entry.blobs[f"picture-{i}"]
            found.append(
                Visualisation(
                    int(item["channel"]),
                    int(item["sign"]),
                    fv_pictures.decoded(data),
                    float(item["activation"]),
                    float(item["others_mean"]),
                    data,
                )
            )
    except (KeyError, IndexError, TypeError, ValueError, OSError):
        return None
    return found if [(r.channel, r.sign) for r in found] == list(unit.jobs) else None


# Optimises a unit where the run computes (this process, or a Dask worker): a Future.
Optimise = Callable[[FvUnit], "Future[list[Visualisation]]"]


def local_optimiser(model: LoadedModel, fv: FeatureVisOptions) -> Optimise:
    """Units optimised in this process, one at a time, when asked."""

    def optimise(unit: FvUnit) -> Future[list[Visualisation]]:
        future: Future[list[Visualisation]] = Future()
        future.set_result(optimise_unit(model, unit, fv))
        return future

    return optimise


def stored_else_optimised(
    units: Sequence[FvUnit],
    keys: Sequence[str | None],
    store: InputCache | None,
    optimise: Optimise,
    ahead: int = 0,
) -> Iterator[tuple[FvUnit, str | None, list[Visualisation]]]:
    """The one cache branch for feature visualisation: each unit's stored pictures, else
    optimised (``optimise``) and stored. In unit order, with up to ``ahead`` units in
    flight beyond the one awaited (a cluster's workers kept busy), so that memory holds
    a few units' pictures, not a model's."""
    pending: deque[tuple[FvUnit, str | None, Future[list[Visualisation]], bool]] = deque()

    def settled() -> tuple[FvUnit, str | None, list[Visualisation]]:
        unit, key, future, computed = pending.popleft()
        found = future.result()
        if computed and key is not None and store is not None:
            store.store(key, unit_entry(found))
        return unit, key, found

    for unit, key in zip(units, keys):
        stored = _from_entry(store.load(key), unit) if store is not None and key else None
        if stored is not None:
            done: Future[list[Visualisation]] = Future()
            done.set_result(stored)
            pending.append((unit, key, done, False))
        else:
            pending.append((unit, key, optimise(unit), True))
        while len(pending) > ahead:
            yield settled()
    while pending:
        yield settled()


def feature_vis_for_model(
    model: LoadedModel,
    results: ModelResults,
    fv: FeatureVisOptions,
    emit: Callable[[PictureKey, bytes], None] | None,
    store: InputCache | None = None,
    where: tuple[Optimise, int] | None = None,
    sheets: bool = True,
) -> None:
    """Feature visualisations of the chosen channels of every layer of one model, into
    ``results.feature_vis``; pictures go to ``emit`` (None: none are written), with
    ``sheets`` also each layer's sheet of card tiles. ``where``: how units are optimised
    and how many are kept in flight (a cluster's); None: in this process. Each unit from
    ``store`` when it holds it."""
    optimise, ahead = where if where is not None else (local_optimiser(model, fv), 0)
    units = run_units(results, fv)
    keys = [unit_key(model, u, fv) if store is not None else None for u in units]
    shown = {"optimised_at": list(input_size(model)), "measured_on": measured_on(model)}
    tiles: dict[int, np.ndarray] = {}
    for number, (unit, _key, found) in enumerate(
        stored_else_optimised(units, keys, store, optimise, ahead)
    ):
        numbers = results.feature_vis.setdefault(unit.layer, {})
        for item in found:
            best = best_input_mean(results, unit.layer, item.channel)
            part = _record(numbers, item, fv, shown, best)
            if emit is not None and item.saved is not None:
                emit(PictureKey("featurevis", unit.layer, item.channel, part), item.saved)
            if part == "max" and emit is not None and sheets:
                tiles[item.channel] = fv_pictures.tile(item.image)
        last = number + 1 == len(units) or units[number + 1].layer != unit.layer
        if last and tiles and emit is not None:
            # a layer's units are consecutive: its sheet is written after its last one,
            # and only one layer's tiles are held at a time
            grid = fv_pictures.sheet_grid(_channel_count(results, unit.layer))
            emit(
                PictureKey("featurevis", unit.layer, 0, "sheet"),
                fv_pictures.sheet_jpeg(tiles, grid),
            )
            tiles = {}


def _channel_count(results: ModelResults, layer: str) -> int:
    return next(facts.channels for facts in results.facts.layers if facts.name == layer)


def _record(
    numbers: dict[int, dict[str, Any]],
    item: Visualisation,
    fv: FeatureVisOptions,
    shown: dict[str, Any],
    best: float | None,
) -> str:
    """A picture's numbers as the report gives them; the name of its file's part: "max"
    (the channel's picture), "maxK" (its K+1-th diverse one, numbers under "diverse")
    or "min" (the suppressing one). A channel's first picture comes first."""
    activation = {"activation": round(item.activation, 6)}
    if item.sign < 0:
        numbers[item.channel]["negative"] = activation
        return "min"
    if item.channel in numbers:  # another of --fv-diversity's pictures
        diverse = numbers[item.channel]["diverse"]
        diverse.append(activation)
        return f"max{len(diverse) - 1}"
    others = item.others_mean
    numbers[item.channel] = {
        "activation": round(item.activation, 6),
        "steps": fv.steps,
        "size": fv.size,
        **shown,
        "best_input": None if best is None else round(best, 6),
        "others_mean": round(others, 6),
        "ratio": round(item.activation / others, 4) if others > 0 else None,
    }
    if fv.diversity > 1:
        numbers[item.channel]["diverse"] = [activation]
    return "max"
