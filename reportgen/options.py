"""What each stage of a run uses: small typed option groups, each checked where it is
defined (``check``), so that no stage sees the options of another.

``reportgen.settings.RunSettings`` is the run as a person typed it (recorded in the
manifest, hashed into the cache key); ``reportgen.run_options`` cuts it into these groups,
once, for the CLI and the API. Numbers are checked for kind and range before that, in
one table (``settings.INT_RANGES``); a group checks the rules between its own fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reportgen.errors import UsageError

STRATEGIES = ("top_mean", "top_max", "mixed", "interesting", "manual")
SCALES = ("channel", "layer")
DEVICES = ("auto", "cpu", "cuda")
FV_CHANNELS = ("selected", "all")
# Inputs with every channel's map when --detail is not given (all of a smaller run).
DETAIL_DEFAULT = 32


@dataclass(frozen=True)
class InputOptions:
    """What to read: the inputs as given, and what to do with an unusable one."""

    arguments: tuple[str, ...]  # files, folders and URLs, as typed
    strict: bool = False  # an unusable input fails the run instead of being skipped
    detail: tuple[str, ...] = ()  # --detail: N, all, or names and globs; () the default

    def check(self) -> None:
        if not self.arguments:
            raise UsageError("no inputs given")


@dataclass(frozen=True)
class ModelOptions:
    """Which models, with which weights and preprocessing, on which device."""

    specs: tuple[str, ...]  # -m NAME[=WEIGHTS]
    weights: str = "imagenet"
    weights_dir: str | None = None
    offline: bool = False
    seed: int = 0
    device: str = "auto"
    labels: tuple[str, ...] = ()  # --label, one per model
    input_size: int | None = None  # custom models: crop size
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    labels_file: str | None = None

    def check(self) -> None:
        if not self.specs:
            raise UsageError("no model given (-m)")
        if self.device not in DEVICES:
            raise UsageError(f"unknown --device {self.device!r}; use one of {', '.join(DEVICES)}")
        if self.labels and len(self.labels) != len(self.specs):
            raise UsageError(
                f"--label was given {len(self.labels)} times for {len(self.specs)} models; "
                "give one label per -m, in the same order"
            )


@dataclass(frozen=True)
class SelectionOptions:
    """Which channels each input shows, per layer (the notebook's strategies)."""

    strategy: str = "top_mean"
    top_k: int = 12
    channels: tuple[int, ...] = ()  # --strategy manual
    interesting_mean: float = 0.3
    interesting_max: float = 2.0

    def check(self) -> None:
        if self.strategy not in STRATEGIES:
            raise UsageError(
                f"unknown --strategy {self.strategy!r}; use one of {', '.join(STRATEGIES)}"
            )
        if self.strategy == "manual" and not self.channels:
            raise UsageError("--strategy manual needs --channels, e.g. --channels 0,5,10")
        if self.channels and self.strategy != "manual":
            raise UsageError("--channels is only used with --strategy manual")


@dataclass(frozen=True)
class ComputeOptions:
    """What is computed for every input: the layers, the selections, Grad-CAM, and how
    many dataset examples each channel keeps."""

    layers: tuple[str, ...] = ()  # () every Conv2d whose output is a map
    batch_size: int = 8
    selection: SelectionOptions = field(default_factory=SelectionOptions)
    gradcam: bool = True  # False: no map method runs
    cams: tuple[str, ...] = ("gradcam",)  # the map methods (reportgen.explanations)
    gradcam_layer: str | None = None
    target_class: str | None = None
    contributions: bool = True  # each channel's contribution to the class logits
    examples: int = 9

    def check(self) -> None:
        from reportgen.explanations import map_method_names

        self.selection.check()
        known = map_method_names()
        unknown = [name for name in self.cams if name not in known]
        if unknown or not self.cams:
            raise UsageError(
                f"unknown --cam {unknown[0]!r}; use one or more of {', '.join(known)}, "
                "comma-separated"
                if unknown
                else f"--cam needs at least one of {', '.join(known)}"
            )
        if len(set(self.cams)) != len(self.cams):
            raise UsageError(f"--cam names a method twice: {','.join(self.cams)}")


@dataclass(frozen=True)
class PictureChoices:
    """Which pictures the run draws and how (``compute.batch.PictureOptions`` adds the
    colormap's table and the detail inputs)."""

    colormap: str = "jet"
    alpha: float = 0.5
    scale: str = "channel"
    overlay_files: bool = False
    # Folder reports tile a layer's maps into one sheet per input; a single-file report
    # embeds each map on its own, since one data: URI cannot be shared by a page's tiles.
    sheets: bool = True

    def check(self) -> None:
        if self.scale not in SCALES:
            raise UsageError(f"unknown --scale {self.scale!r}; use one of {', '.join(SCALES)}")
        if not 0.0 <= self.alpha <= 1.0:
            raise UsageError(f"--alpha must be between 0 and 1, got {self.alpha}")


@dataclass(frozen=True)
class FeatureVisOptions:
    """Feature visualisation: images optimised to excite each chosen channel."""

    enabled: bool = False
    steps: int = 256
    size: int = 256
    channels: str = "selected"  # "selected" (for any input) or "all"
    negative: bool = False
    seed: int = 0
    batch: int = 64  # pictures optimised together: the unit of work
    diversity: int = 1  # pictures per channel (--fv-diversity)

    def check(self) -> None:
        if self.channels not in FV_CHANNELS:
            raise UsageError(f"--fv-channels must be 'selected' or 'all', got {self.channels!r}")


@dataclass(frozen=True)
class ReportOptions:
    """What is written, and where."""

    output: str = "report"
    single_file: bool = False
    max_single_file_mb: float = 25.0

    def check(self) -> None:
        if self.max_single_file_mb <= 0:
            raise UsageError(
                f"--max-single-file-mb must be greater than 0, got {self.max_single_file_mb}"
            )


@dataclass(frozen=True)
class EngineOptions:
    """Where and how the run is carried out (changes no byte of the report)."""

    jobs: int | None = None  # page and encoder workers; None: one per CPU core
    cluster: str | None = None  # --cluster: local:N or a scheduler's address
    cache_dir: str | None = None
    no_cache: bool = False

    def workers(self, cores: int | None) -> int:
        return self.jobs or cores or 1


@dataclass(frozen=True)
class RunOptions:
    """One run, cut into what each stage uses. ``recorded`` is every setting that shapes
    the report (the cache key's view, with the paths as given); ``shown`` is the same as
    the manifest records it (no path of this machine)."""

    inputs: InputOptions
    models: ModelOptions
    compute: ComputeOptions
    pictures: PictureChoices
    feature_vis: FeatureVisOptions
    report: ReportOptions
    engine: EngineOptions
    recorded: Mapping[str, Any]
    shown: Mapping[str, Any]

    def check(self) -> None:
        """Each group's own rules, in the order a person reads the options."""
        for group in (
            self.inputs,
            self.models,
            self.compute,
            self.pictures,
            self.feature_vis,
            self.report,
        ):
            group.check()
