"""The models of a run: -m NAME[=WEIGHTS] and custom factories loaded with labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reportgen.errors import UsageError
from reportgen.settings import RunSettings


def split_model_spec(spec: str, default_weights: str) -> tuple[str, str]:
    """``-m NAME[=WEIGHTS]``: a model and, optionally, its own weights."""
    name, sep, weights = spec.partition("=")
    return name.strip(), (weights.strip() if sep and weights.strip() else default_weights)


def load_models(settings: RunSettings, device: Any, warnings: list[str]) -> list[Any]:
    from reportgen.nn.models import is_custom, load_custom_model, load_model, model_id
    from reportgen.nn.timm_models import is_timm, load_timm_model

    if settings.model_labels and len(settings.model_labels) != len(settings.models):
        raise UsageError(
            f"--label was given {len(settings.model_labels)} times for "
            f"{len(settings.models)} models; give one label per -m, in the same order"
        )
    taken: set[str] = set()
    models = []
    for position, spec in enumerate(settings.models):
        name, weights = split_model_spec(spec, settings.weights)
        label = settings.model_labels[position] if settings.model_labels else ""
        default_label = name if weights == settings.weights else f"{name} ({Path(weights).name})"
        ident = model_id(label or default_label, taken)
        taken.add(ident)
        if is_timm(name):
            loaded = load_timm_model(
                name,
                weights,
                offline=settings.offline,
                seed=settings.seed,
                device=device,
                model_id_=ident,
                labels_file=settings.labels_file,
            )
        elif is_custom(name):
            loaded = load_custom_model(
                name,
                weights,
                seed=settings.seed,
                device=device,
                model_id_=ident,
                input_size=settings.input_size,
                mean=settings.mean,
                std=settings.std,
                labels_file=settings.labels_file,
            )
        else:
            loaded = load_model(
                name,
                weights,
                weights_dir=settings.weights_dir,
                offline=settings.offline,
                seed=settings.seed,
                device=device,
                model_id_=ident,
            )
            if settings.labels_file:
                from reportgen.nn.models import read_labels

                loaded.categories = read_labels(settings.labels_file)
        loaded.display_label = label or default_label
        warnings.extend(f"{ident}: {note}" for note in loaded.notes if "not available" in note)
        models.append(loaded)
    return models
