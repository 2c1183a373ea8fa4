"""The Python API, for notebooks and scripts. The CLI calls these same functions.

>>> import reportgen
>>> result = reportgen.analyze(["cat.jpg"], models=["resnet18"], layers=["layer1.0.conv1"])
>>> result["models"][0]["predictions"]
>>> reportgen.build_report(["cat.jpg"], output="report", models=["resnet18"])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from reportgen.settings import RunSettings

_TUPLE_FIELDS = {f.name for f in dataclasses.fields(RunSettings) if str(f.type).startswith("tuple")}


def make_settings(
    inputs: Iterable[str] | str, output: str = "report", **options: Any
) -> RunSettings:
    """RunSettings from keyword options named as ``reportgen run``'s long options
    (``top_k=8``, ``layers=["conv1"]``); unknown names are an error."""
    known = {f.name for f in dataclasses.fields(RunSettings)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(unknown)}")
    for name in list(options):
        if name in _TUPLE_FIELDS and options[name] is not None:
            value = options[name]
            options[name] = (value,) if isinstance(value, (str, int, float)) else tuple(value)
    paths = (inputs,) if isinstance(inputs, str) else tuple(str(i) for i in inputs)
    return RunSettings(inputs=paths, output=str(output), **options)


def build_report(
    inputs: Iterable[str] | str | None = None,
    output: str = "report",
    *,
    settings: RunSettings | None = None,
    progress: Callable[[int], None] | None = None,
    **options: Any,
) -> Any:
    """Analyse ``inputs`` and write the report at ``output``; returns a RunSummary.

    Pass either ``inputs`` with options, or a ready ``settings`` object.
    """
    from reportgen.pipeline import build_report as run_pipeline

    if settings is None:
        if inputs is None:
            raise TypeError("build_report() needs inputs or settings")
        settings = make_settings(inputs, output, **options)
    return run_pipeline(settings, progress=progress)


def analyze(inputs: Iterable[str] | str, **options: Any) -> dict[str, Any]:
    """Run the analysis and return it as plain data, writing nothing.

    The result has the manifest's shape (see README): inputs, models with their
    predictions, Grad-CAM maps, layers, per-channel statistics, selections and
    dataset examples; picture paths are where ``build_report`` would put them.
    """
    from reportgen.pipeline import build_report as run_pipeline

    settings = make_settings(inputs, "unused", **options)
    summary = run_pipeline(settings, analysis_only=True)
    analysis: dict[str, Any] = summary.extra["analysis"]
    analysis.pop("files", None)
    return analysis
