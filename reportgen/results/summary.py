"""What a run reports back: the summary ``--json`` prints and the API returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RunSummary:
    report: str
    inputs: list[str]
    skipped: list[dict[str, str]]
    models: list[str]
    layers: dict[str, list[str]]
    warnings: list[str]
    pages: int
    files: int
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
