"""The command on the index that builds a report again, and what its reader must supply.

A report's settings record the options as typed (``--weights imagenet``), which is what the
settings table shows. A command to paste must instead ask for what the run actually used:
``imagenet`` means torchvision's ``DEFAULT`` entry, and where that was not at hand another
one was taken (MobileNetV2's ``IMAGENET1K_V1`` for ``IMAGENET1K_V2``); pasted as typed, the
command would then look for the other file. Files and folders are recorded by their last
part only (no path of the building machine), so the reader is told which to supply.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from reportgen.settings import command_line

__all__ = ["Rebuild", "rebuild"]

# A torchvision weights entry as a model record names it ("IMAGENET1K_V1"); "none (random,
# seed 0)" and file names are not entries.
_ENTRY = re.compile(r"^[A-Z][A-Z0-9_]*$")
# The keywords that let reportgen choose the entry (what it chose is in the model record).
_CHOSEN_BY_REPORTGEN = ("imagenet", "DEFAULT")
_CHECKPOINT = re.compile(r" from (?P<file>\S+)$")


class UsedWeights(Protocol):
    """What a model record says of its weights (reportgen.report.data.ModelRecord)."""

    @property
    def weights(self) -> str: ...

    @property
    def weights_detail(self) -> str: ...


@dataclass(frozen=True)
class Rebuild:
    command: str  # quoted for a POSIX shell
    supply: tuple[str, ...]  # what the reader must put in place first, one sentence each


def rebuild(settings: dict[str, object], models: Sequence[UsedWeights]) -> Rebuild:
    """The command that makes a report with ``settings`` again, with the weights entries the
    run used (``models``, in the order of ``settings["models"]``), and what to supply."""
    pinned = pinned_settings(settings, models)
    return Rebuild(command_line(pinned), tuple(_supply(pinned, models)))


def pinned_settings(
    settings: dict[str, object], models: Sequence[UsedWeights]
) -> dict[str, object]:
    """``settings`` with ``imagenet``/``DEFAULT`` replaced by the entry each model used: one
    ``--weights ENTRY`` when every model that took the common ``--weights`` used the same
    entry, else ``-m NAME=ENTRY`` per model."""
    specs = [str(spec) for spec in _strings(settings.get("models"))]
    if len(specs) != len(models):
        return dict(settings)  # not a report of these models: leave the command as typed
    common = str(settings.get("weights", "imagenet"))
    used_by_common: set[str] = set()
    for spec, model in zip(specs, models):
        if "=" not in spec and common in _CHOSEN_BY_REPORTGEN:
            used_by_common.add(model.weights)
    pinned = dict(settings)
    common_entry = next(iter(used_by_common)) if len(used_by_common) == 1 else None
    if common_entry is not None and _ENTRY.match(common_entry):
        pinned["weights"] = common_entry
    new_specs = []
    for spec, model in zip(specs, models):
        name, sep, own = spec.partition("=")
        asked = own if sep else str(pinned["weights"])
        if asked in _CHOSEN_BY_REPORTGEN and _ENTRY.match(model.weights):
            spec = f"{name}={model.weights}"
        new_specs.append(spec)
    pinned["models"] = new_specs
    return pinned


def _strings(value: object) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


def _supply(settings: dict[str, object], models: Sequence[UsedWeights]) -> list[str]:
    needs = []
    inputs = _strings(settings.get("inputs"))
    if inputs:
        needs.append(
            "the inputs, at the paths given ("
            + ", ".join(inputs)
            + "), relative to the folder you run it in"
        )
    weights_dir = settings.get("weights_dir")
    checkpoints = sorted(
        {m.group("file") for m in (_CHECKPOINT.search(x.weights_detail) for x in models) if m}
    )
    files = [spec.partition("=")[2] for spec in _strings(settings.get("models"))]
    files.append(str(settings.get("weights", "")))
    own_files = sorted({f for f in files if "." in f and not _ENTRY.match(f)})
    if weights_dir:
        held = f" holding {', '.join(checkpoints)}" if checkpoints else ""
        needs.append(
            f"a folder {weights_dir}{held} (--weights-dir; or leave that option out where "
            "torchvision can download the weights)"
        )
    for name in own_files:
        needs.append(f"the weights file {name}")
    if settings.get("labels_file"):
        needs.append(f"the class names file {settings['labels_file']} (--labels)")
    return needs
