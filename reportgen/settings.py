"""The effective options of one ``reportgen run``, as one plain object.

The CLI builds it, the pipeline reads it, the manifest records it. Each option's
default lives here only: the click options of ``reportgen run`` read theirs with
:func:`default_of`, and ``reportgen.api.make_settings`` leaves unset ones to the
dataclass.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# Options that say how a run is carried out (and change no byte of the report): kept
# apart from the report's settings, never recorded in the manifest.
RUNTIME_FIELDS = ("jobs", "cache_dir", "no_cache", "strict", "single_file", "max_single_file_mb")

STRATEGIES = ("top_mean", "top_max", "mixed", "interesting", "manual")
SCALES = ("channel", "layer")
DEVICES = ("auto", "cpu", "cuda")
FV_CHANNELS = ("selected", "all")
# -o when --single-file is given without it: one HTML file rather than a folder.
SINGLE_FILE_OUTPUT = "report.html"


@dataclass(frozen=True)
class RunSettings:
    inputs: tuple[str, ...]
    output: str = "report"  # the report folder; with single_file see default_output()
    models: tuple[str, ...] = ("resnet18",)
    weights: str = "imagenet"
    weights_dir: str | None = None
    layers: tuple[str, ...] = ()
    device: str = "auto"
    seed: int = 0
    batch_size: int = 8
    strategy: str = "top_mean"
    top_k: int = 12
    channels: tuple[int, ...] = ()
    interesting_mean: float = 0.3
    interesting_max: float = 2.0
    colormap: str = "jet"
    alpha: float = 0.5
    # Overlays are composed by the browser from the view and the map; this also writes
    # each selected channel's overlay as a JPEG file.
    overlay_files: bool = False
    scale: str = "channel"
    offline: bool = False
    # Grad-CAM, dataset examples, comparisons and custom models (issue 6).
    gradcam: bool = True
    gradcam_layer: str | None = None  # default: the model's last Conv2d
    target_class: str | None = None  # class index or label, besides the top prediction
    examples: int = 9  # top inputs per channel across the run
    model_labels: tuple[str, ...] = ()  # display labels, in the order of models
    input_size: int | None = None  # custom models: crop size
    mean: tuple[float, ...] = ()  # custom models: normalisation
    std: tuple[float, ...] = ()
    labels_file: str | None = None  # custom models: class names, one a line
    # Feature visualisation (issue 8): images optimised to excite each chosen channel.
    feature_vis: bool = False
    fv_steps: int = 256
    fv_size: int = 128
    fv_channels: str = "selected"  # "selected" (for any input) or "all"
    fv_negative: bool = False  # also the image that most suppresses each channel
    # How the run is carried out: not recorded in the manifest (RUNTIME_FIELDS).
    jobs: int | None = None  # page and encoder workers; None: one per CPU core
    cache_dir: str | None = None  # None: REPORTGEN_CACHE_DIR, else ~/.cache/reportgen
    no_cache: bool = False
    strict: bool = False  # an unreadable input fails the run instead of being skipped
    single_file: bool = False  # one self-contained HTML file instead of a folder
    max_single_file_mb: float = 25.0

    def as_manifest(self) -> dict[str, Any]:
        """Every effective option that shapes the report, JSON-ready, in a stable order."""
        data = dataclasses.asdict(self)
        for name in RUNTIME_FIELDS:
            data.pop(name)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return dict(sorted(data.items()))


_FIELDS = {field.name: field for field in dataclasses.fields(RunSettings)}


def default_of(name: str) -> Any:
    """The default of the option ``name`` (a RunSettings field): the one place it is
    written. KeyError for a field without one (``inputs``)."""
    field = _FIELDS[name]
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    raise KeyError(f"RunSettings.{name} has no default")


def default_output(single_file: bool) -> str:
    """-o when it is not given: the report folder, or one HTML file with --single-file."""
    return SINGLE_FILE_OUTPUT if single_file else str(default_of("output"))


def report_settings(settings: RunSettings) -> dict[str, Any]:
    """The settings a report records: every effective option but -o, so that the same
    run written to two places (or a report moved) gives byte-identical files."""
    recorded = settings.as_manifest()
    recorded.pop("output", None)
    return recorded


def maps_in_sheets(settings: RunSettings) -> bool:
    """Folder reports tile a layer's maps into one sheet per input (reportgen.imaging.sheets);
    a single-file report embeds each map on its own, since one data: URI cannot be
    shared by the tiles of a page."""
    return not settings.single_file
