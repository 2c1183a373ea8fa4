"""What a report shows, as plain data gathered before any page is written."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class InputRecord:
    id: str
    source: str
    sha256: str
    width: int
    height: int
    thumbnail: str  # report-relative path
    notes: list[str] = field(default_factory=list)


@dataclass
class SkippedRecord:
    source: str
    reason: str


@dataclass
class Prediction:
    index: int
    label: str
    probability: float


@dataclass
class ChannelRecord:
    index: int
    page: str
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)  # input id -> stats
    maps: dict[str, str] = field(default_factory=dict)  # input id -> map image path
    overlays: dict[str, str] = field(default_factory=dict)  # input id -> overlay (selected)
    filter: dict[str, str] = field(default_factory=dict)  # "rgb"/"r"/"g"/"b" or "mean" -> path


@dataclass
class LayerRecord:
    name: str
    type: str
    value: str  # what a recorded value is, e.g. "output of Conv2d, before ReLU"
    output_shape: tuple[int, ...]
    page: str
    spatial: bool
    filter_note: str | None = None
    selected: dict[str, list[int]] = field(default_factory=dict)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)  # layer range per input
    charts: dict[str, str] = field(default_factory=dict)  # input id -> ranked chart (2-D)
    channels: list[ChannelRecord] = field(default_factory=list)


@dataclass
class ModelRecord:
    id: str
    name: str
    weights: str
    weights_detail: str
    preprocessing: str
    page: str
    compare_page: str
    notes: list[str] = field(default_factory=list)
    views: dict[str, str] = field(default_factory=dict)  # input id -> network view image
    predictions: dict[str, list[Prediction]] = field(default_factory=dict)
    layers: list[LayerRecord] = field(default_factory=list)


@dataclass
class ReportData:
    title: str
    created: str
    generator_version: str
    environment: dict[str, str]
    settings: dict[str, Any]
    inputs: list[InputRecord]
    skipped: list[SkippedRecord]
    models: list[ModelRecord]
    warnings: list[str] = field(default_factory=list)
    colorbar: str = ""
