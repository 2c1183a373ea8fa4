"""The models of a run: -m NAME[=WEIGHTS] and custom factories loaded with labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reportgen.nn.models import (
    CustomPreprocessing,
    LoadedModel,
    is_custom,
    load_custom_model,
    load_model,
    model_id,
    read_labels,
)
from reportgen.nn.timm_names import is_timm
from reportgen.options import ModelOptions


def split_model_spec(spec: str, default_weights: str) -> tuple[str, str]:
    """``-m NAME[=WEIGHTS]``: a model and, optionally, its own weights."""
    name, sep, weights = spec.partition("=")
    return name.strip(), (weights.strip() if sep and weights.strip() else default_weights)


def load_models(options: ModelOptions, device: Any) -> tuple[list[LoadedModel], list[str]]:
    """Every ``-m`` model, built on ``device`` with its labels; and the warnings to show
    (weights that were not at hand and were stood in for)."""
    taken: set[str] = set()
    models = []
    warnings: list[str] = []
    for position, spec in enumerate(options.specs):
        name, weights = split_model_spec(spec, options.weights)
        label = options.labels[position] if options.labels else ""
        default_label = name if weights == options.weights else f"{name} ({Path(weights).name})"
        ident = model_id(label or default_label, taken)
        taken.add(ident)
        loaded = _load_one(name, weights, ident, options, device)
        loaded.display_label = label or default_label
        warnings.extend(f"{ident}: {note}" for note in loaded.notes if "not available" in note)
        models.append(loaded)
    return models, warnings


def _load_one(
    name: str, weights: str, ident: str, options: ModelOptions, device: Any
) -> LoadedModel:
    if is_timm(name):
        from reportgen.nn.timm_models import load_timm_model

        return load_timm_model(
            name,
            weights,
            offline=options.offline,
            seed=options.seed,
            device=device,
            model_id_=ident,
            labels_file=options.labels_file,
        )
    if is_custom(name):
        return load_custom_model(
            name,
            weights,
            seed=options.seed,
            device=device,
            model_id_=ident,
            custom=CustomPreprocessing(
                options.input_size, options.mean, options.std, options.labels_file
            ),
        )
    loaded = load_model(
        name,
        weights,
        weights_dir=options.weights_dir,
        offline=options.offline,
        seed=options.seed,
        device=device,
        model_id_=ident,
    )
    if options.labels_file:
        loaded.categories = read_labels(options.labels_file)
    return loaded
