"""The Python API, for notebooks and scripts. The CLI calls these same functions.

>>> import reportgen
>>> result = reportgen.analyze(["cat.jpg"], models=["resnet18"], layers=["layer1.0.conv1"])
>>> result["models"][0]["predictions"]
>>> reportgen.build_report(["cat.jpg"], output="report", models=["resnet18"])

Keyword options are those of ``reportgen run``: its long option names with
underscores (``top_k=8``, ``single_file=True``), or the names of the RunSettings
fields where they differ (``models``/``model``, ``layers``/``layer``,
``model_labels``/``label``, ``labels_file``/``labels``). An option left out has
its default from RunSettings, the same as on the command line.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
import typing
from collections.abc import Callable, Iterable
from typing import Any

from reportgen.settings import RunSettings, default_of, default_output

# Long options of ``reportgen run`` whose RunSettings field is named otherwise.
LONG_NAMES = {
    "model": "models",
    "layer": "layers",
    "label": "model_labels",
    "labels": "labels_file",
}
# Options of the command line that are not options of a run, and what to do instead.
CLI_ONLY = {
    "config": "--config reads keyword options from a TOML file: pass them as keywords",
    "from_manifest": "--from-manifest is the command line's rebuild: pass an earlier "
    "report's manifest['settings'] as keywords (make_settings(**settings)), after checking "
    "the models it names, since a package.module:factory model runs code",
    "json": "--json prints the run's summary: build_report() returns it (a RunSummary)",
    "as_json": "--json prints the run's summary: build_report() returns it (a RunSummary)",
    "verbose": "-v/--verbose is the command line's logging: configure the 'reportgen' logger",
    "quiet": "-q/--quiet is the command line's logging: configure the 'reportgen' logger",
    "allow_urls": "--allow-urls lets --from-manifest fetch the URLs a manifest names: "
    "pass the URL inputs you trust as inputs",
}

_FIELDS = {f.name for f in dataclasses.fields(RunSettings)} - {"inputs", "output"}
_TYPES = typing.get_type_hints(RunSettings)


def make_settings(
    inputs: Iterable[str | os.PathLike[str]] | str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    **options: object,
) -> RunSettings:
    """RunSettings from keyword options named as ``reportgen run``'s long options
    (``top_k=8``, ``layers=["conv1"]``, ``single_file=True``).

    A list option takes a list or one value (``layers="conv1"``; ``channels`` and
    ``mean``/``std`` also "0,5,10" as on the command line). ``output`` defaults to
    ``report``, or ``report.html`` with ``single_file=True``. Unknown names, the
    command line's own options (``config``, ``from_manifest``, ``json``, ``verbose``,
    ``quiet``) and values of the wrong type are a TypeError.
    """
    # Field name -> value, each checked against its field's type by _typed().
    values: dict[str, Any] = {}
    given_as: dict[str, str] = {}
    for key, value in options.items():
        name = LONG_NAMES.get(key, key)
        if key in CLI_ONLY:
            raise TypeError(
                f"{key}= is an option of the command line only, not of a run: {CLI_ONLY[key]}"
            )
        if name not in _FIELDS:
            known = ", ".join(sorted(_FIELDS | set(LONG_NAMES)))
            raise TypeError(f"unknown option {key}=; known options: {known}")
        if name in values:
            raise TypeError(f"option {name} given twice (as {given_as[name]}= and as {key}=)")
        values[name] = _typed(name, value)
        given_as[name] = key
    if output is None:
        output = default_output(values.get("single_file") is True)
    paths = _typed("inputs", inputs)
    assert isinstance(paths, tuple)
    settings = RunSettings(inputs=paths, output=str(_typed("output", output)))
    return dataclasses.replace(settings, **values)


def _typed(name: str, value: object) -> object:
    """``value`` as the type of the RunSettings field ``name``, or a TypeError."""
    hint = _TYPES[name]
    if typing.get_origin(hint) is tuple:
        if value is None and name in _FIELDS:
            return default_of(name)  # layers=None: every Conv2d, as when left out
        return _as_tuple(name, value, typing.get_args(hint)[0])
    kinds = [k for k in typing.get_args(hint) or (hint,) if k is not type(None)]
    if value is None and len(kinds) < len(typing.get_args(hint)):
        return None
    return _as_scalar(name, value, kinds[0])


def _as_tuple(name: str, value: object, item: type) -> tuple[object, ...]:
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        if item is str:
            # cam="gradcam,layercam", as --cam takes it; other names are one value each
            return tuple(p for p in text.split(",") if p) if name == "cam" else (str(text),)
        parts = str(text).replace(" ", "").split(",")
        return tuple(_as_scalar(name, part, item, text=True) for part in parts if part)
    if isinstance(value, numbers.Real) and item is not str:
        return (_as_scalar(name, value, item),)
    if isinstance(value, Iterable) and not isinstance(value, (bytes, dict)):
        return tuple(_as_scalar(name, element, item, text=True) for element in value)
    raise TypeError(f"{name}= takes a list of {item.__name__}, got {value!r}")


def _as_scalar(name: str, value: object, kind: type, text: bool = False) -> object:
    """``value`` as ``kind``; ``text``: a number may be written as text (the items of
    "0,5,10" or ["0.5", "0.5"])."""
    if kind is bool and isinstance(value, bool):
        return value
    if isinstance(value, bool):
        pass  # True is no number and no text here
    elif kind is str and isinstance(value, (str, os.PathLike)):
        return str(os.fspath(value))
    elif kind is str and isinstance(value, numbers.Integral):
        return str(value)  # target_class=281, as --target-class 281
    elif kind is int and isinstance(value, numbers.Integral):
        return int(value)
    elif kind is float and isinstance(value, numbers.Real):
        return float(value)
    elif text and kind in (int, float) and isinstance(value, str):
        try:
            return kind(value)
        except ValueError:
            raise ValueError(f"{name}= takes numbers, got {value!r}") from None
    raise TypeError(f"{name}= takes {kind.__name__}, got {type(value).__name__} {value!r}")


def build_report(
    inputs: Iterable[str | os.PathLike[str]] | str | os.PathLike[str] | None = None,
    output: str | os.PathLike[str] | None = None,
    *,
    settings: RunSettings | None = None,
    progress: Callable[[int], None] | None = None,
    **options: object,
) -> Any:
    """Analyse ``inputs`` and write the report at ``output``; returns a RunSummary.

    Pass either ``inputs`` with options (see :func:`make_settings`), or a ready
    ``settings`` object.
    """
    if settings is None:
        if inputs is None:
            raise TypeError("build_report() needs inputs or settings")
        settings = make_settings(inputs, output, **options)
    elif inputs is not None or output is not None or options:
        raise TypeError("build_report() takes settings, or inputs with options: not both")
    from reportgen.run_options import run_options

    checked = run_options(settings)
    from reportgen.pipeline import build_report as run_pipeline  # torch, once options are good

    return run_pipeline(checked, progress=progress)


def analyze(
    inputs: Iterable[str | os.PathLike[str]] | str | os.PathLike[str], **options: object
) -> dict[str, Any]:
    """Run the analysis and return it as plain data, writing nothing.

    The result has the manifest's shape (see README): inputs, models with their
    predictions, Grad-CAM maps, layers, per-channel statistics, selections and
    dataset examples; picture paths are where ``build_report`` would put them.
    """
    from reportgen.run_options import run_options

    checked = run_options(make_settings(inputs, "unused", **options), writes=False)
    from reportgen.pipeline import build_report as run_pipeline

    summary = run_pipeline(checked, analysis_only=True)
    analysis: dict[str, Any] = summary.extra["analysis"]
    analysis.pop("files", None)
    return analysis
