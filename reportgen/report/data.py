"""What a report shows, as plain data gathered before any page is written."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from reportgen.analysis.weights import StrongestInputs
from reportgen.imaging.sheets import SheetGrid
from reportgen.report.classes import ChannelDrives, ClassRecord, InputWhy


@dataclass
class InputRecord:
    id: str
    source: str
    sha256: str
    width: int
    height: int
    thumbnail: str  # report-relative path
    notes: list[str] = field(default_factory=list)
    detail: bool = True  # keeps every channel's map (see --detail)


@dataclass
class SkippedRecord:
    source: str
    reason: str


@dataclass
class Prediction:
    index: int
    label: str
    probability: float


@dataclass(frozen=True)
class Histogram:
    """A channel's per-input values over every input, in equal bins."""

    low: float
    high: float
    counts: list[int]


@dataclass
class ChannelSummary:
    """A channel over every input of the run."""

    # Each statistic over every input (``reportgen.statistics.over_inputs``) by its key:
    # e.g. "mean", the mean of its per-input means. Each is an attribute too.
    values: dict[str, float | None]
    selected: int  # inputs that selected it
    inputs: int  # inputs with finite statistics
    best_rank: int | None = None  # best rank by mean among the layer's channels (1: highest)
    first: int = 0  # inputs on which it ranked first (a class unit: inputs predicted as it)

    def __getattr__(self, name: str) -> float | None:
        # Only called for names that are not plain attributes: the values.
        values = self.__dict__.get("values")
        if values is not None and name in values:
            return values[name]
        raise AttributeError(name)

    def entry(self) -> dict[str, Any]:
        """As the manifest lists it: the values, then the counts."""
        counts = {k: v for k, v in dataclasses.asdict(self).items() if k != "values"}
        return {**self.values, **counts}


@dataclass
class ChannelRecord:
    index: int
    page: str
    name: str = ""  # as pages show it: "channel 12", or "unit 450: bobsled" (units)
    label: str | None = None  # the class it stands for (a layer of class units)
    # detail input id -> stats (every input's are in the layer's statistics file)
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    summary: ChannelSummary | None = None
    histograms: dict[str, Histogram] = field(default_factory=dict)  # "max"/"mean"
    selected_by: list[str] = field(default_factory=list)  # input ids (the first ones)
    # input id -> map image path; only in single-file reports (a folder report's maps
    # are tiles of the layer's sheets: LayerRecord.sheets)
    maps: dict[str, str] = field(default_factory=dict)
    overlays: dict[str, str] = field(default_factory=dict)  # input id -> overlay (selected)
    # "rgb"/"r"/"g"/"b" or "mean" -> path; only in single-file reports (a folder report's
    # filters are tiles of the layer's filter sheets: LayerRecord.filter_sheets)
    filter: dict[str, str] = field(default_factory=dict)
    # Feature visualisation (featurevis.py): {image, activation, steps, size, best_input,
    # others_mean, ratio, negative?: {image, activation}}; None when not computed.
    feature_vis: dict[str, Any] | None = None
    # Top inputs across the run by max activation: {input, value, box [x0, y0, x1, y1]}.
    examples: list[dict[str, Any]] = field(default_factory=list)
    examples_image: str | None = None  # one strip holding every example crop, in order
    # Folder reports: the sheet holding its strip (row index % 64 of LayerRecord.example_grid)
    examples_sheet: str | None = None
    example_views: list[str] = field(default_factory=list)  # units: the examples' views
    drives: ChannelDrives | None = None  # the classes it pushes up and down (contributions)


@dataclass
class LayerRecord:
    name: str
    type: str
    value: str  # what a recorded value is, e.g. "output of Conv2d, before ReLU"
    output_shape: tuple[int, ...]
    page: str
    spatial: bool  # maps; else units (one value per channel: Linear, 1x1 outputs)
    class_units: bool = False  # its units are the model's classes, named by them
    filter_note: str | None = None
    selected: dict[str, list[int]] = field(default_factory=dict)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)  # layer range per input
    channels: list[ChannelRecord] = field(default_factory=list)
    receptive_field: int | None = None  # side of an output cell's field, in view pixels
    # A dataset example is the input's whole network view (units; a field as big as it)
    examples_are_views: bool = False
    # Folder reports: per input, one sheet holding every channel's map (reportgen.imaging.sheets)
    sheets: dict[str, str] = field(default_factory=dict)
    sheet_grid: SheetGrid | None = None
    stats_file: dict[str, Any] | None = None  # {path, shape, fields, dtype}
    # Pooled straight into the final Linear: contributions here sum to logit minus bias
    exact_contributions: bool = False
    # Folder reports: the dataset-example sheets' layout, strip by strip and tile by tile
    example_grid: SheetGrid | None = None
    example_first_grid: SheetGrid | None = None
    example_first_sheet: str | None = None  # each channel's strongest example, tile c
    # Folder reports with --feature-vis: each visualised channel's picture, tile c
    feature_vis_grid: SheetGrid | None = None
    feature_vis_sheet: str | None = None
    kernel_shown: bool = False  # a filter picture says something: over RGB, or over 1x1
    filter_rgb: bool = False  # filters over RGB: as colour and as R, G, B apart
    cards_filter: bool = False  # ... and is drawn on the layer page's cards (see records)
    filter_sheets: dict[str, str] = field(default_factory=dict)  # part -> sheet (folders)
    filter_grid: SheetGrid | None = None
    weights_view: WeightsView | None = None
    detail_pages: dict[str, str] = field(default_factory=dict)  # detail input -> page
    # Folder reports with several detail inputs: each channel's maps over them, one strip
    # a channel (reportgen.report.strips); tile i is the i-th detail input's map.
    strip_grid: SheetGrid | None = None


@dataclass
class WeightsView:
    """A Conv2d's strongest input channels per output channel (reportgen.analysis.weights)
    and where those input channels are: a recorded layer's channels (``source_pages``,
    one per input channel), else only named (``source_module``)."""

    model_id: str
    strongest: StrongestInputs
    groups: int
    in_channels: int
    kernel: tuple[int, int]  # (kh, kw)
    source_layer: str | None = None
    source_pages: list[str] = field(default_factory=list)
    source_module: str | None = None  # the nearest module whose output the layer reads
    through: list[str] = field(default_factory=list)  # per-channel modules in between
    kernel_sheet: str | None = None  # folder reports, kernels over 1x1
    kernel_grid: SheetGrid | None = None


@dataclass
class CamRecord:
    """One map of a map method (``reportgen.explanations``) on one input."""

    class_index: int
    label: str
    layer: str
    map: list[list[float]]  # layer resolution, scaled to 0..1
    image: str  # overlay on the network's view
    kind: str  # "top prediction" or "target class"
    method: str = "gradcam"  # the method's name
    title: str = "Grad-CAM"  # as pages name it


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
    label: str = ""  # display label (-m NAME=WEIGHTS with --label)
    # Folder reports: per detail input, one picture of the layer comparison's small maps
    # (reportgen.report.strips): row r is the r-th map layer, column k its k-th channel.
    compare_sheets: dict[str, str] = field(default_factory=dict)
    compare_grid: SheetGrid | None = None
    compare_rows: dict[str, int] = field(default_factory=dict)  # layer name -> row
    view_size: tuple[int, int] = (224, 224)  # (width, height) of the network's views
    # input id -> every map method's maps, in the registry's order, each top class first
    cams: dict[str, list[CamRecord]] = field(default_factory=dict)
    cam_methods: tuple[str, ...] = ("gradcam",)  # the map methods chosen (--cam)
    input_pages: dict[str, str] = field(default_factory=dict)  # input id -> its page
    # input id -> layer -> the channels selected for it: (channel, mean, max, sparsity)
    selected_stats: dict[str, dict[str, list[tuple[int, Any, Any, Any]]]] = field(
        default_factory=dict
    )
    # Classes that are some input's top prediction (reportgen.report.classes), by index
    classes: list[ClassRecord] = field(default_factory=list)
    class_pages: dict[int, str] = field(default_factory=dict)  # class index -> its page
    classes_page: str = ""
    contributions: bool = False  # the statistics hold each channel's contribution
    # input id -> layer -> the channels that pushed its top class most, up and down
    why: dict[str, dict[str, InputWhy]] = field(default_factory=dict)


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
    comparisons: list[ComparisonRecord] = field(default_factory=list)
    comparison_page: str = "comparison.html"


@dataclass
class LayerComparison:
    layer: str
    channels: int
    # per channel: index, mean over inputs of each model's channel mean, and, for two
    # checkpoints of one architecture, the cosine similarity of their filters
    rows: list[dict[str, Any]] = field(default_factory=list)
    filters_compared: bool = False


@dataclass
class ComparisonRecord:
    """Two models side by side: ``base`` against ``other`` (model ids)."""

    base: str
    other: str
    same_architecture: bool
    layers: list[LayerComparison] = field(default_factory=list)
    # input id -> (base top-5, other top-5)
    predictions: dict[str, tuple[list[Prediction], list[Prediction]]] = field(default_factory=dict)
