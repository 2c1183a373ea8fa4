"""The effective options of one ``reportgen run``, as one plain object.

The CLI and the API build it, the manifest records it, the cache key hashes it; no
stage reads it: ``reportgen.run_options`` cuts it into the small groups of
``reportgen.options``, one for each stage. Each option's
default lives here only: the click options of ``reportgen run`` read theirs with
:func:`default_of`, and ``reportgen.api.make_settings`` leaves unset ones to the
dataclass.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any

# The choices of the options with a fixed set of values are defined with their groups.
from reportgen.options import DETAIL_DEFAULT as DETAIL_DEFAULT
from reportgen.options import DEVICES as DEVICES
from reportgen.options import FV_CHANNELS as FV_CHANNELS
from reportgen.options import SCALES as SCALES
from reportgen.options import STRATEGIES as STRATEGIES

# Options that say how a run is carried out (and change no byte of the report): kept
# apart from the report's settings, never recorded in the manifest.
RUNTIME_FIELDS = (
    "jobs",
    "cache_dir",
    "no_cache",
    "strict",
    "single_file",
    "max_single_file_mb",
    "cluster",
)

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
    # The class activation map methods (reportgen.explanations), all at gradcam_layer.
    cam: tuple[str, ...] = ("gradcam",)
    gradcam_layer: str | None = None  # default: the model's last Conv2d
    target_class: str | None = None  # class index or label, besides the top prediction
    # Each channel's contribution to the top (and target) class logit, per input and layer.
    contributions: bool = True
    examples: int = 9  # top inputs per channel across the run
    # Detail inputs keep every channel's map: () is the first DETAIL_DEFAULT inputs (all of
    # a run with at most that many); ("all",), ("N",) or input names and globs.
    detail: tuple[str, ...] = ()
    model_labels: tuple[str, ...] = ()  # display labels, in the order of models
    input_size: int | None = None  # custom models: crop size
    mean: tuple[float, ...] = ()  # custom models: normalisation
    std: tuple[float, ...] = ()
    labels_file: str | None = None  # custom models: class names, one a line
    # Feature visualisation (issue 8): images optimised to excite each chosen channel.
    feature_vis: bool = False
    fv_steps: int = 256
    fv_size: int = 256  # the photos' resize for ImageNet models: seen pixel for pixel
    fv_channels: str = "selected"  # "selected" (for any input) or "all"
    fv_negative: bool = False  # also the image that most suppresses each channel
    # Pictures optimised together: a unit of work (a Dask task, a shard's share); with
    # --seed it decides the pictures, so it is recorded (issue 26).
    fv_batch: int = 64
    fv_diversity: int = 1  # pictures per channel, kept apart from each other
    # How the run is carried out: not recorded in the manifest (RUNTIME_FIELDS).
    jobs: int | None = None  # page and encoder workers; None: one per CPU core
    cache_dir: str | None = None  # None: REPORTGEN_CACHE_DIR, else ~/.cache/reportgen
    no_cache: bool = False
    strict: bool = False  # an unreadable input fails the run instead of being skipped
    single_file: bool = False  # one self-contained HTML file instead of a folder
    max_single_file_mb: float = 25.0
    # Per-input results computed on a Dask cluster: "local:N" (N worker processes here)
    # or a scheduler's address ("tcp://host:8786"); None: in this process.
    cluster: str | None = None

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


def shareable(settings: RunSettings, inputs: dict[str, str]) -> RunSettings:
    """``settings`` as a report shows and records them, with no path of the building
    machine: each input as ``inputs`` names it (``reportgen.inputs.discovery.shown_arguments``),
    the files and folders that are not inputs (weights, labels) by their names only."""
    return dataclasses.replace(
        settings,
        inputs=tuple(inputs.get(argument, argument) for argument in settings.inputs),
        weights=_name_only(settings.weights),
        weights_dir=_name_only(settings.weights_dir),
        labels_file=_name_only(settings.labels_file),
        models=tuple(_model_without_path(spec) for spec in settings.models),
    )


def _name_only(value: str | None) -> Any:
    """The last part of a path (``/home/me/w/resnet.pth``: ``resnet.pth``); a value
    without a folder in it (``imagenet``) as it is."""
    if value is None or not re.search(r"[/\\]", value):
        return value
    return re.split(r"[/\\]", value.rstrip("/\\"))[-1] or value


def _model_without_path(spec: str) -> str:
    """``-m NAME=PATH`` (a model's own weights file) with the file's name only."""
    name, sep, weights = spec.partition("=")
    return f"{name}{sep}{_name_only(weights)}" if sep else spec


def maps_in_sheets(settings: RunSettings) -> bool:
    """Folder reports tile a layer's maps into one sheet per input (reportgen.imaging.sheets);
    a single-file report embeds each map on its own, since one data: URI cannot be
    shared by the tiles of a page."""
    return not settings.single_file


# --- values in range, before any work ---------------------------------------------------

# Whole-number options: (lowest, highest) allowed; None for an optional one means "unset".
# --seed stays below 2**32, the range every consumer of it takes (torch, NumPy, the seeds
# feature visualisation derives from it).
INT_RANGES: dict[str, tuple[int, int]] = {
    "seed": (0, 2**32 - 1),
    "batch_size": (1, 4096),
    "top_k": (1, 2**31 - 1),
    "examples": (0, 1000),
    "input_size": (8, 2048),
    "fv_steps": (1, 100_000),
    "fv_size": (32, 2048),
    "fv_batch": (1, 4096),
    "fv_diversity": (1, 16),
    "jobs": (1, 1024),
}
# Options that are numbers with a decimal point (a whole number is fine for them), which
# must be finite. (--alpha has its own range, 0 to 1, which NaN and infinity are outside.)
FLOAT_OPTIONS = ("interesting_mean", "interesting_max", "max_single_file_mb")
# The long option of a field, where it is not the field's name with dashes.
_OPTION_NAMES = {"labels_file": "--labels", "model_labels": "--label", "models": "-m"}


def option_name(field_name: str) -> str:
    """The command-line spelling of a RunSettings field: ``top_k`` is ``--top-k``."""
    return _OPTION_NAMES.get(field_name, "--" + field_name.replace("_", "-"))


def check_values(settings: RunSettings) -> None:
    """Every number of ``settings`` of the right kind and in range (UsageError, exit 2):
    whole numbers are ints (not bools, not floats) within ``INT_RANGES``, other numbers
    finite. Called before any work, whoever made the settings (CLI, --config,
    --from-manifest, the API)."""
    from reportgen.errors import UsageError

    for name, (low, high) in INT_RANGES.items():
        value = getattr(settings, name)
        if value is None and default_of(name) is None:
            continue
        if not _is_int(value):
            raise UsageError(f"{option_name(name)} must be a whole number, got {value!r}")
        if value < low:
            raise UsageError(f"{option_name(name)} must be at least {low}, got {value}")
        if value > high:
            raise UsageError(f"{option_name(name)} must be at most {high}, got {value}")
    for name in FLOAT_OPTIONS:
        _check_finite(option_name(name), getattr(settings, name))
    for name in ("mean", "std"):
        values = getattr(settings, name)
        for value in values:
            _check_finite(option_name(name), value)
        if len(values) not in (0, 1, 3):
            raise UsageError(
                f"{option_name(name)} takes 1 or 3 numbers (one per colour), got {len(values)}"
            )
    if any(value <= 0 for value in settings.std):
        raise UsageError(f"--std must be greater than 0, got {_joined(settings.std)}")
    if settings.max_single_file_mb <= 0:
        raise UsageError(
            f"--max-single-file-mb must be greater than 0, got {settings.max_single_file_mb}"
        )
    for channel in settings.channels:
        if not _is_int(channel):
            raise UsageError(f"--channels must be whole numbers, got {channel!r}")
        if not 0 <= channel < 2**31:
            raise UsageError(f"--channels must be non-negative channel indices, got {channel}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_finite(option: str, value: Any) -> None:
    from reportgen.errors import UsageError

    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"{option} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise UsageError(f"{option} must be a finite number, got {value}")


def _joined(values: tuple[float, ...]) -> str:
    return ",".join(str(v) for v in values)


# --- the settings as a person types them ---------------------------------------------

# The long option of ``reportgen run`` for each recorded field whose name differs from it
# (tests/cli checks these against the command's own options).
LONG_OPTIONS = {
    "models": "--model",
    "layers": "--layer",
    "model_labels": "--label",
    "labels_file": "--labels",
}
# Flags that are on by default: off is written with their --no- form.
_OFF_FORMS = {
    "gradcam": "--no-gradcam",
    "overlay_files": "--no-overlay-files",
    "contributions": "--no-contributions",
}
# Lists given as one comma-separated value (--channels 0,5,10).
_COMMA_LISTS = ("channels", "mean", "std", "cam")


@dataclass(frozen=True)
class TypedOption:
    """One option of a report's settings as it is written on the command line."""

    option: str  # "--top-k"
    arguments: tuple[str, ...]  # ("--top-k", "12"); () when it was not given
    default: bool  # the value is the option's default


def typed_options(recorded: dict[str, Any]) -> list[TypedOption]:
    """Every option of ``recorded`` (a report's settings, ``report_settings``) but the
    inputs: the model, its weights and the layers first (what a command line starts
    with), then the others by name."""
    options = []
    for name, value in recorded.items():
        if name == "inputs" or name not in _FIELDS:
            continue
        option = LONG_OPTIONS.get(name, "--" + name.replace("_", "-"))
        default = _FIELDS[name].default
        is_default = value == (list(default) if isinstance(default, tuple) else default)
        options.append(TypedOption(option, _arguments(name, option, value), is_default))
    first = ("--model", "--label", "--weights", "--weights-dir", "--layer")
    rank = {option: i for i, option in enumerate(first)}
    return sorted(options, key=lambda o: (rank.get(o.option, len(first)), o.option))


def _arguments(name: str, option: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, bool):
        if value:
            return (option,)
        return (_OFF_FORMS[name],) if name in _OFF_FORMS else ()
    if value is None or value == []:
        return ()
    if name in _COMMA_LISTS:
        return (option, ",".join(str(v) for v in value))
    if isinstance(value, list):
        return tuple(part for item in value for part in (option, str(item)))
    return (option, str(value))


def command_line(recorded: dict[str, Any]) -> str:
    """The ``reportgen run`` command that makes a report with ``recorded`` settings again
    (its options that differ from the defaults), quoted for a POSIX shell."""
    import shlex

    words = ["reportgen", "run", *recorded.get("inputs", [])]
    for typed in typed_options(recorded):
        if not typed.default:
            words.extend(typed.arguments)
    return " ".join(shlex.quote(word) for word in words)
