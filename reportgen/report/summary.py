"""Derived values the pages show: per-layer summaries, chart geometry and the compact
channel-statistics tables that the grid tools (sort, filter) read. Plain Python, no torch."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from reportgen.report.data import LayerRecord, ModelRecord
from reportgen.statistics import offered_over_inputs, statistic_names, statistics

# The numbers the grid tools sort and filter by: of one input (the statistics, or
# UNIT_KEYS), and over every input (``summary_keys``, UNIT_SUMMARY_KEYS); units are
# channels of one value.
UNIT_KEYS = ("value", "rank")
UNIT_SUMMARY_KEYS = ("mean", "max", "best_rank", "first", "selected")


def statistic_options() -> list[tuple[str, str]]:
    """(key, label) of each statistic of one input for the grid tools; a percentage is
    filtered by its fraction."""
    return [
        (stat.name, stat.name + (" (0&ndash;1)" if stat.display == "percent" else ""))
        for stat in statistics()
    ]


def summary_options() -> list[tuple[str, str]]:
    """(key, label) of each number over every input the layer page's tools offer."""
    offered = [
        (summary.key, summary.heading or summary.key) for _, summary in offered_over_inputs()
    ]
    return [*offered, ("selected", "inputs that selected it")]


def summary_keys() -> tuple[str, ...]:
    """A map layer's numbers over every input that the layer page sorts and filters by:
    the statistics over inputs it offers, then how many inputs selected the channel."""
    return (*(summary.key for _, summary in offered_over_inputs()), "selected")


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _compact(value: Any) -> float | None:
    """Six significant digits: enough to sort and filter, small enough for big layers."""
    number = _finite(value)
    return None if number is None else float(f"{number:.6g}")


def summary_table(layer: LayerRecord) -> dict[str, Any]:
    """Every channel's numbers over all inputs, column-wise, for the layer page's grid
    tools: mean of means, highest max, mean sparsity (units: best rank and inputs where
    it is first instead), inputs that selected it."""
    rows = [channel.summary for channel in layer.channels]
    keys = summary_keys() if layer.spatial else UNIT_SUMMARY_KEYS
    return {
        "channels": [channel.index for channel in layer.channels],
        "selected": [c.index for c in layer.channels if c.summary and c.summary.selected],
        "stats": {
            key: [_compact(getattr(row, key)) if row else None for row in rows] for key in keys
        },
    }


def most_selected(layer: LayerRecord, count: int = 6) -> list[tuple[int, int]]:
    """The channels selected for the most inputs: (channel, inputs), most first."""
    ranked = sorted(
        (c for c in layer.channels if c.summary and c.summary.selected),
        key=lambda c: (-c.summary.selected, c.index),  # type: ignore[union-attr]
    )
    return [(c.index, c.summary.selected) for c in ranked[:count]]  # type: ignore[union-attr]


# A histogram's plot, with a line of axis text above (the tallest bin's count) and below
# (the range of values, low at the left).
HISTOGRAM_TEXT = 16


def histogram_bars(histogram: Any, width: int = 240, height: int = 48) -> dict[str, Any]:
    """Bar geometry of a histogram for an inline SVG: ``plot_top`` to ``plot_bottom`` holds
    the bars (the tallest bin reaches the top), with room for axis text above and below."""
    counts = histogram.counts
    top = max(counts) or 1
    step = width / len(counts)
    plot_top, plot_bottom = HISTOGRAM_TEXT, HISTOGRAM_TEXT + height
    bars = [  # empty bins draw nothing
        {
            "x": round(i * step, 2),
            "width": round(max(step - 1, 1), 2),
            "height": round(height * n / top, 2),
            "y": round(plot_bottom - height * n / top, 2),
            "count": n,
        }
        for i, n in enumerate(counts)
        if n
    ]
    return {
        "width": width,
        "height": plot_bottom + HISTOGRAM_TEXT,
        "plot_top": plot_top,
        "plot_bottom": plot_bottom,
        "bars": bars,
        "top": top,
    }


def channel_table(layer: LayerRecord, input_id: str) -> dict[str, Any]:
    """One input's statistics of every channel of a layer, column-wise, for JSON."""
    rows = [channel.stats.get(input_id, {}) for channel in layer.channels]
    keys = statistic_names() if layer.spatial else UNIT_KEYS
    return {
        "channels": [channel.index for channel in layer.channels],
        "selected": list(layer.selected.get(input_id, [])),
        "stats": {key: [_compact(row.get(key)) for row in rows] for key in keys},
    }


TOP_UNITS = 20  # units listed, with bars, on a unit layer's page for one input


def top_units(layer: LayerRecord, input_id: str, width: int = 160) -> dict[str, Any]:
    """The highest units of a layer on one input, ranked, with bar geometry: each bar
    runs from zero to the value, on one scale for the rows shown."""
    ranked = sorted(
        (channel.stats[input_id]["rank"], channel.index, channel.stats[input_id]["value"])
        for channel in layer.channels
        if input_id in channel.stats
    )[:TOP_UNITS]
    values = [v for _, _, v in ranked if v is not None]
    low, high = min([0.0, *values]), max([0.0, *values])
    scale = width / (high - low) if high > low else 0.0
    zero = -low * scale
    rows = []
    for rank, unit, value in ranked:
        end = zero + (value or 0.0) * scale
        rows.append(
            {
                "rank": rank,
                "unit": unit,
                "value": value,
                "x": round(min(zero, end), 1),
                "w": round(abs(end - zero), 1),
            }
        )
    return {"rows": rows, "width": width}


@dataclass(frozen=True)
class LayerSummary:
    name: str
    page: str
    channels: int
    mean: float | None  # channel means, averaged over channels and inputs
    max: float | None  # largest value over channels and inputs
    sparsity: float | None  # fraction of values <= 0, averaged over channels and inputs


def _average(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _append_finite(bucket: list[float], value: Any) -> None:
    number = _finite(value)
    if number is not None:
        bucket.append(number)


def summarize_layer(layer: LayerRecord) -> LayerSummary:
    means: list[float] = []
    maxes: list[float] = []
    sparsities: list[float] = []
    for channel in layer.channels:
        if channel.summary is None:
            continue
        summary = channel.summary
        _append_finite(means, summary.mean)
        _append_finite(maxes, summary.max)
        _append_finite(sparsities, summary.sparsity)
    return LayerSummary(
        name=layer.name,
        page=layer.page,
        channels=len(layer.channels),
        mean=_average(means),
        max=max(maxes) if maxes else None,
        sparsity=_average(sparsities),
    )


@dataclass(frozen=True)
class Bar:
    """One layer's row of a chart: its bar from zero (x, width), its row (y, height), where
    its name and value are written (text_y), and the name as drawn (shortened)."""

    x: float
    y: float
    width: float
    height: float
    value: float | None
    layer: LayerSummary
    text_y: float
    label: str


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    low: float
    high: float
    zero_x: float
    bars: list[Bar]


@dataclass(frozen=True)
class SummaryChart:
    width: int
    height: int
    plot_top: int
    plot_bottom: int
    plot_left: int
    plot_right: int
    layers: list[LayerSummary]
    panels: list[Panel]


# Rows of a summary chart: every layer named beside its bar, in text at least 12 px (a
# name in a tooltip only is lost on touch screens); the value at the bar's right.
CHART_ROW = 18
CHART_LABEL_WIDTH = 150
CHART_VALUE_WIDTH = 54
CHART_LABEL_CHARS = 22


def short_label(name: str, chars: int = CHART_LABEL_CHARS) -> str:
    """A layer name that fits the chart's name column: its end kept (``...4.conv.0.0``),
    which is what tells a network's layers apart."""
    return name if len(name) <= chars else "\u2026" + name[-(chars - 1) :]


def summary_chart(model: ModelRecord, width: int = 340) -> SummaryChart:
    """Geometry of two small horizontal bar charts (mean and sparsity per layer), one row
    a layer in network order, drawn once as SVG."""
    layers = [summarize_layer(layer) for layer in model.layers]
    top = 18
    bottom = top + CHART_ROW * max(len(layers), 1)
    left, right = CHART_LABEL_WIDTH, width - CHART_VALUE_WIDTH
    specs: list[tuple[str, str, tuple[float, float] | None]] = [
        ("mean", "mean activation", None),
        ("sparsity", "sparsity", (0.0, 1.0)),
    ]
    panels = []
    for key, title, fixed in specs:
        values = [getattr(summary, key) for summary in layers]
        known = [v for v in values if v is not None]
        low, high = fixed if fixed is not None else (min([0.0, *known]), max([0.0, *known]))
        span = (high - low) or 1.0

        def x_of(v: float, low: float = low, span: float = span) -> float:
            return round(left + (v - low) / span * (right - left), 2)

        zero = x_of(0.0)
        bars = []
        for i, (summary, value) in enumerate(zip(layers, values)):
            end = zero if value is None else x_of(value)
            row = top + i * CHART_ROW
            bars.append(
                Bar(
                    min(zero, end),
                    row + 3,
                    round(max(abs(end - zero), 0.75), 2),
                    CHART_ROW - 6,
                    value,
                    summary,
                    row + 13,
                    short_label(summary.name),
                )
            )
        panels.append(Panel(key, title, low, high, zero, bars))
    return SummaryChart(width, bottom + 4, top, bottom, left, right, layers, panels)
