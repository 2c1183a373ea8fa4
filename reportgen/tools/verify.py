"""``reportgen verify``: is a report folder exactly what its manifest lists?

Every file named in ``manifest.json`` must be present with the listed size and
sha256, and no file may be there that the manifest does not list. The manifest
cannot list itself; its own sha256 is returned so that it can be recorded
elsewhere (a CI log, a release note) and compared later.

No torch here: verifying a report needs only the standard library. The manifest is
read by the report stage's one reader (reportgen.report.manifest_file).
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from reportgen.errors import UsageError
from reportgen.report.manifest_file import MANIFEST, present_files, read_manifest

_CHUNK = 1 << 20


@dataclass
class Difference:
    kind: str  # "missing", "changed", "extra", "invalid"
    path: str
    detail: str = ""

    def line(self) -> str:
        """One line for a log: the path and detail escaped (a file name with a newline
        cannot start a line of its own, such as a forged ``OK:``)."""
        from reportgen.inputs.safe_read import printable

        detail = f" ({printable(self.detail)})" if self.detail else ""
        return f"{self.kind}: {printable(self.path)}{detail}"


@dataclass
class VerifyResult:
    report: str
    manifest_sha256: str
    checked: int
    differences: list[Difference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def as_dict(self) -> dict[str, Any]:
        return {
            "report": self.report,
            "ok": self.ok,
            "manifest_sha256": self.manifest_sha256,
            "checked": self.checked,
            "differences": [
                {"kind": d.kind, "path": d.path, "detail": d.detail} for d in self.differences
            ],
        }


def file_sha256(path: Path) -> str:
    """The sha256 of a regular file; OSError for anything else (a FIFO is opened without
    blocking and refused, never read)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(f"not a regular file ({_kind(mode)})")
        digest = hashlib.sha256()
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _kind(mode: int) -> str:
    from reportgen.inputs.safe_read import not_regular_reason

    reason = not_regular_reason(mode) or ""
    return reason.removeprefix("is ").split(",")[0]


def _safe_relpath(value: Any) -> str | None:
    """A listed path, if it stays inside the report; None when it does not."""
    if not isinstance(value, str) or not value or "\\" in value:
        return None
    pure = PurePosixPath(value)
    if pure.is_absolute() or any(part in ("..", ".", "") for part in value.split("/")):
        return None
    return value


def verify_report(report: Path) -> VerifyResult:
    """Compare a report folder with its manifest; raises ReportgenError if it has none
    (a ManifestError from the report stage's reader when it is missing or bad)."""
    if not report.is_dir():
        raise UsageError(
            f"{str(report)!r} is not a folder: verify checks a report folder against its "
            f"{MANIFEST} (a --single-file report is one file: record and compare its sha256)"
        )
    manifest = read_manifest(report)
    entries = manifest.require("files", list, "to check against")
    present, links = present_files(report)
    result = VerifyResult(str(report), manifest.sha256, 0)
    listed: set[str] = set()
    for index, entry in enumerate(entries):
        relpath = _safe_relpath(entry.get("path")) if isinstance(entry, dict) else None
        if relpath is None or not isinstance(entry, dict):
            result.differences.append(
                Difference("invalid", f"files[{index}]", "entry without a path inside the report")
            )
            continue
        if relpath in listed:
            result.differences.append(Difference("invalid", relpath, "listed twice"))
            continue
        listed.add(relpath)
        result.checked += 1
        if relpath not in present:
            detail = "a symbolic link" if relpath in links else ""
            result.differences.append(Difference("missing", relpath, detail))
            continue
        path = report.joinpath(*relpath.split("/"))
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode):
            result.differences.append(
                Difference("changed", relpath, f"not a regular file ({_kind(info.st_mode)})")
            )
            continue
        size = info.st_size
        if size != entry.get("bytes"):
            result.differences.append(
                Difference("changed", relpath, f"{size} bytes, manifest says {entry.get('bytes')}")
            )
            continue
        try:
            digest = file_sha256(path)
        except OSError as exc:
            result.differences.append(Difference("changed", relpath, f"cannot be read ({exc})"))
            continue
        if digest != entry.get("sha256"):
            result.differences.append(Difference("changed", relpath, "sha256 differs"))
    for extra in sorted((present - listed - {MANIFEST}) | {p for p in links if p not in listed}):
        detail = "a symbolic link" if extra in links else "not in the manifest"
        result.differences.append(Difference("extra", extra, detail))
    order = {"invalid": 0, "missing": 1, "changed": 2, "extra": 3}
    result.differences.sort(key=lambda d: (order.get(d.kind, 9), d.path))
    return result
