"""Which inputs are *detail* inputs: those that keep every channel's map (and so get an
input-by-layer page). Every other input keeps its thumbnail, network view, Grad-CAM,
predictions, statistics and selections, which keeps a report of thousands of inputs
small."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence

from reportgen.errors import UsageError
from reportgen.inputs.files import InputFile


def is_count(word: str) -> bool:
    """``word`` is a count (``--detail 8``): ASCII digits only (``str.isdigit`` also takes
    "²", which int() does not, and "²" is then a name or glob like any other)."""
    return bool(re.fullmatch(r"[0-9]{1,18}", word))


def detail_inputs(files: Sequence[InputFile], detail: Sequence[str], default: int) -> set[str]:
    """The ids of the detail inputs among ``files`` (in input order): ``()`` the first
    ``default``; ``("all",)`` every one; ``("N",)`` the first N; else every input whose
    source, file name or id matches one of the names or globs."""
    if not detail:
        return {f.id for f in files[:default]}
    words = [d.strip() for d in detail]
    if words == ["all"]:
        return {f.id for f in files}
    if len(words) == 1 and is_count(words[0]):
        return {f.id for f in files[: int(words[0])]}
    chosen: set[str] = set()
    for pattern in words:
        if pattern == "all" or is_count(pattern):
            raise UsageError(f"--detail {pattern!r} cannot be combined with other --detail values")
        found = {
            f.id
            for f in files
            if any(fnmatch.fnmatchcase(name, pattern) for name in (f.source, f.path.name, f.id))
        }
        if not found:
            raise UsageError(f"--detail {pattern!r} matches no input (give a name or a glob)")
        chosen |= found
    return chosen
