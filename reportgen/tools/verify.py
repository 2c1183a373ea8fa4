"""``reportgen verify``: is a report folder exactly what its manifest lists?

Every file named in ``manifest.json`` must be present with the listed size and
sha256, and no file may be there that the manifest does not list. The manifest
cannot list itself; its own sha256 is returned so that it can be recorded
elsewhere (a CI log, a release note) and compared later.

No torch here: verifying a report needs only the standard library.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from reportgen.errors import ReportgenError, UsageError

MANIFEST = "manifest.json"
GENERATOR_NAME = "reportgen"
_CHUNK = 1 << 20


@dataclass
class Difference:
    kind: str  # "missing", "changed", "extra", "invalid"
    path: str
    detail: str = ""

    def line(self) -> str:
        return f"{self.kind}: {self.path}" + (f" ({self.detail})" if self.detail else "")


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
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(report: Path) -> tuple[dict[str, Any], str]:
    """The manifest of a report folder and the sha256 of its bytes; raises if none."""
    path = report / MANIFEST
    if not report.is_dir():
        raise UsageError(
            f"{str(report)!r} is not a folder: verify checks a report folder against its "
            "manifest.json (a --single-file report is one file: record and compare its sha256)"
        )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ReportgenError(
            f"{str(report)!r} has no readable {MANIFEST} ({exc.strerror or exc}); "
            "is it a reportgen report?"
        ) from exc
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        raise ReportgenError(f"{str(path)!r} is not valid JSON ({exc})") from exc
    if (
        not isinstance(manifest, dict)
        or not isinstance(manifest.get("generator"), dict)
        or (manifest["generator"].get("name") != GENERATOR_NAME)
    ):
        raise ReportgenError(f"{str(path)!r} was not written by reportgen")
    if not isinstance(manifest.get("files"), list):
        raise ReportgenError(f"{str(path)!r} has no 'files' list to check against")
    return manifest, hashlib.sha256(raw).hexdigest()


def _safe_relpath(value: Any) -> str | None:
    """A listed path, if it stays inside the report; None when it does not."""
    if not isinstance(value, str) or not value or "\\" in value:
        return None
    pure = PurePosixPath(value)
    if pure.is_absolute() or any(part in ("..", ".", "") for part in value.split("/")):
        return None
    return value


def present_files(report: Path) -> tuple[set[str], list[str]]:
    """Report-relative paths of the regular files in ``report``, and its symlinks.

    Symbolic links are never followed: a report that reportgen wrote has none.
    """
    files: set[str] = set()
    links: list[str] = []
    for root, dirs, names in os.walk(report, followlinks=False):
        rel_root = os.path.relpath(root, report)
        prefix = "" if rel_root == "." else rel_root.replace(os.sep, "/") + "/"
        for name in list(dirs):
            if os.path.islink(os.path.join(root, name)):
                links.append(prefix + name)
        for name in names:
            full = os.path.join(root, name)
            if os.path.islink(full):
                links.append(prefix + name)
            else:
                files.add(prefix + name)
    return files, sorted(links)


def unlisted_files(report: Path, manifest: dict[str, Any]) -> list[str]:
    """Files in ``report`` that its manifest does not list (and is not the manifest)."""
    listed = {entry.get("path") for entry in manifest.get("files", []) if isinstance(entry, dict)}
    files, links = present_files(report)
    return sorted((files - listed - {MANIFEST}) | set(links))


def verify_report(report: Path) -> VerifyResult:
    """Compare a report folder with its manifest; raises ReportgenError if it has none."""
    manifest, manifest_digest = read_manifest(report)
    present, links = present_files(report)
    result = VerifyResult(str(report), manifest_digest, 0)
    listed: set[str] = set()
    for index, entry in enumerate(manifest["files"]):
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
        size = path.stat().st_size
        if size != entry.get("bytes"):
            result.differences.append(
                Difference("changed", relpath, f"{size} bytes, manifest says {entry.get('bytes')}")
            )
            continue
        if file_sha256(path) != entry.get("sha256"):
            result.differences.append(Difference("changed", relpath, "sha256 differs"))
    for extra in sorted((present - listed - {MANIFEST}) | {p for p in links if p not in listed}):
        detail = "a symbolic link" if extra in links else "not in the manifest"
        result.differences.append(Difference("extra", extra, detail))
    order = {"invalid": 0, "missing": 1, "changed": 2, "extra": 3}
    result.differences.sort(key=lambda d: (order.get(d.kind, 9), d.path))
    return result
