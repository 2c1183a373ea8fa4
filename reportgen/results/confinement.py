"""Path confinement: the one rule for every file of a report, written fresh
(``StagedReport.path_of``), put back from the cache or read from a shard. A path a
manifest or a kept run lists is data: it stays below its root (no absolute path, no
``..``), and a kept file is read only as a regular file, never through a link."""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath


def confined_path(root: Path, relpath: str) -> Path:
    """``root / relpath`` for a report-relative path; ValueError for one that would leave
    ``root`` (absolute, ``..``, empty). The one rule for every file of a report: written
    fresh (``StagedReport.path_of``) or put back from the cache."""
    if not isinstance(relpath, str):
        raise ValueError(f"report path {relpath!r} is not a string")
    pure = PurePosixPath(relpath)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts or "\x00" in relpath:
        raise ValueError(f"report path {relpath!r} leaves the report folder")
    return root.joinpath(*pure.parts)


def read_regular_no_link(path: Path) -> bytes:
    """A kept file's bytes: a regular file, never through a symbolic link (OSError)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        return handle.read()
