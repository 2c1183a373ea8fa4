"""Feature visualisation over a run: for each model's chosen channels, the images that
most excite (and, with --fv-negative, suppress) them, optimised by ``reportgen.nn.featurevis``,
measured against the run's inputs, and kept in the cache per layer.

Like for like: each picture is optimised as the photos are seen (resized as their view
resizes them, then a random crop of the model's input size), and its numbers are
measured from the saved 8-bit picture through the preprocessing the photos get
(``model.preprocessing``: resize, centre crop, normalise), the view on which every
input's mean was measured."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence

import numpy as np

from reportgen.nn.featurevis import (
    LEARNING_RATE,
    MAX_BATCH,
    Recipe,
    Visualisation,
    visualise,
)
from reportgen.nn.fv_image import pair, photo_view
from reportgen.nn.models import LoadedModel
from reportgen.options import FeatureVisOptions
from reportgen.results.records import PictureKey
from reportgen.results.run import ModelResults
from reportgen.results.store import InputCache

log = logging.getLogger("reportgen")


def encode_png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    from reportgen.imaging import pictures as imaging

    return imaging.encode_png(Image.fromarray(np.ascontiguousarray(pixels), mode="RGB"))


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


def cache_key(
    model: LoadedModel, layer: str, channels: Sequence[int], fv: FeatureVisOptions
) -> str:
    """Everything a layer's feature visualisations depend on, hashed: reportgen's code,
    torch, the model and its weights file, the preprocessing, the device, the layer, the
    exact channel list (they are optimised as one batch) and the options."""
    from reportgen.compute.keys import code_parts, model_parts
    from reportgen.results.store import digest

    return digest(
        "featurevis/4",
        code_parts(),
        model_parts(model),
        layer,
        list(channels),
        [fv.steps, fv.size, fv.negative, fv.seed],
        [LEARNING_RATE, MAX_BATCH],
    )


def _cached(store: InputCache | None, key: str) -> list[Visualisation] | None:
    """A layer's results from the cache (``reportgen.results.store.InputCache``), or None."""
    if store is None:
        return None
    entry = store.load(key)
    if entry is None or "images" not in entry.arrays:
        return None
    try:
        images = entry.arrays["images"]
        return [
            Visualisation(
                int(item["channel"]),
                int(item["sign"]),
                np.array(images[i], dtype=np.uint8),
                float(item["activation"]),
                float(item["others_mean"]),
            )
            for i, item in enumerate(entry.header["results"])
        ]
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def _store(store: InputCache | None, key: str, results: list[Visualisation]) -> None:
    if store is None or not results:
        return
    from reportgen.results.store import Entry

    header = {
        "results": [
            {
                "channel": r.channel,
                "sign": r.sign,
                "activation": r.activation,
                "others_mean": r.others_mean,
            }
            for r in results
        ]
    }
    store.store(key, Entry(header, {"images": np.stack([r.image for r in results])}))


def _visualise_layer(
    model: LoadedModel,
    layer: str,
    channels: list[int],
    fv: FeatureVisOptions,
    store: InputCache | None,
) -> tuple[list[Visualisation], float | None]:
    """A layer's visualisations, from the cache or optimised; seconds per channel when
    optimised."""
    key = cache_key(model, layer, channels, fv) if store is not None else ""
    cached = _cached(store, key) if store is not None else None
    if cached is not None:
        log.info("%s %s: feature visualisations from the cache", model.id, layer)
        return cached, None
    started = time.perf_counter()
    recipe = Recipe(
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
    )
    results = visualise(model.module, layer, channels, recipe)
    seconds = time.perf_counter() - started
    log.info(
        "%s %s: feature visualisation of %d channels in %.1f s (%.2f s per channel)",
        model.id,
        layer,
        len(channels),
        seconds,
        seconds / len(channels),
    )
    if store is not None:
        _store(store, key, results)
    return results, seconds / len(channels)


def feature_vis_for_model(
    model: LoadedModel,
    results: ModelResults,
    fv: FeatureVisOptions,
    emit: Callable[[PictureKey, bytes], None] | None,
    store: InputCache | None = None,
) -> dict[str, float]:
    """Feature visualisations of the chosen channels of every layer of one model, into
    ``results.feature_vis``; pictures go to ``emit`` (None: none are encoded). Returns
    seconds per channel for each layer that was optimised (not read from the cache)."""
    timings: dict[str, float] = {}
    optimised_at = list(input_size(model))
    view = measured_on(model)
    for layer in results.facts.layers:
        channels = chosen_channels(results, layer.name, fv.channels)
        if not channels:
            continue
        found, seconds = _visualise_layer(model, layer.name, channels, fv, store)
        if seconds is not None:
            timings[layer.name] = seconds
        numbers = results.feature_vis.setdefault(layer.name, {})
        for item in found:
            if item.sign > 0:
                best = best_input_mean(results, layer.name, item.channel)
                others = item.others_mean
                numbers[item.channel] = {
                    "activation": round(item.activation, 6),
                    "steps": fv.steps,
                    "size": fv.size,
                    "optimised_at": optimised_at,
                    "measured_on": view,
                    "best_input": None if best is None else round(best, 6),
                    "others_mean": round(others, 6),
                    "ratio": round(item.activation / others, 4) if others > 0 else None,
                }
            else:
                numbers[item.channel]["negative"] = {"activation": round(item.activation, 6)}
            if emit is not None:
                part = "max" if item.sign > 0 else "min"
                emit(
                    PictureKey("featurevis", layer.name, item.channel, part), encode_png(item.image)
                )
    return timings
