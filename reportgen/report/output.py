"""The report's folder on disk: built in a staging folder beside the target and
swapped into place at the end, so a report is complete or absent, never half-written."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any

from reportgen.errors import ReportgenError
from reportgen.report.paths import MANIFEST

STAGING_TAG = ".reportgen-staging-"
OLD_TAG = ".reportgen-old-"
GENERATOR_NAME = "reportgen"


def is_report(folder: Path) -> bool:
    """True when ``folder`` holds a manifest that reportgen wrote."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("generator", {}).get("name") == GENERATOR_NAME


def _siblings(target: Path, tag: str) -> list[Path]:
    prefix = f".{target.name}{tag}"
    try:
        return sorted(p for p in target.parent.iterdir() if p.name.startswith(prefix))
    except OSError:
        return []


def recover_and_clean(target: Path) -> None:
    """Undo what a killed run left: restore a report moved aside, drop staging folders."""
    old = _siblings(target, OLD_TAG)
    if old and not target.exists():
        # Killed between the two renames of the swap: the previous report is intact.
        os.rename(old[-1], target)
        old = old[:-1]
    for leftover in [*old, *_siblings(target, STAGING_TAG)]:
        shutil.rmtree(leftover, ignore_errors=True)


def check_target(target: Path) -> None:
    """Refuse to replace anything that is not a reportgen report."""
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise ReportgenError(
            f"output {str(target)!r} exists and is not a folder; choose another -o path"
        )
    if target.is_dir() and any(target.iterdir()) and not is_report(target):
        raise ReportgenError(
            f"output {str(target)!r} is a non-empty folder that is not a reportgen report; "
            "reportgen will not replace it: choose another -o path (e.g. a new folder)"
        )
    parent = target.parent
    if not parent.is_dir():
        raise ReportgenError(f"output folder's parent {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ReportgenError(f"cannot write in {str(parent)!r} (permission denied)")


class StagedReport:
    """Files written under a staging folder; ``commit`` swaps them into ``target``.

    Leaving the ``with`` block without ``commit`` (an exception, Ctrl-C) removes the
    staging folder and leaves ``target`` as it was.
    """

    def __init__(self, target: Path) -> None:
        self.target = Path(os.path.abspath(target))
        recover_and_clean(self.target)
        check_target(self.target)
        self.root = Path(
            tempfile.mkdtemp(prefix=f".{self.target.name}{STAGING_TAG}", dir=self.target.parent)
        )
        self._files: dict[str, tuple[str, int]] = {}
        self._lock = threading.Lock()
        self._made_dirs: set[Path] = set()
        self.committed = False

    def __enter__(self) -> StagedReport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.committed:
            shutil.rmtree(self.root, ignore_errors=True)

    def path_of(self, relpath: str) -> Path:
        """Absolute path of a report file; refuses anything that would leave the report."""
        pure = PurePosixPath(relpath)
        if pure.is_absolute() or ".." in pure.parts or not pure.parts:
            raise ValueError(f"report path {relpath!r} leaves the report folder")
        return self.root.joinpath(*pure.parts)

    def write(self, relpath: str, data: bytes | str) -> str:
        """Write one file of the report; returns ``relpath`` for chaining into records."""
        payload = data.encode("utf-8") if isinstance(data, str) else data
        path = self.path_of(relpath)
        try:
            if path.parent not in self._made_dirs:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._made_dirs.add(path.parent)
            with path.open("wb") as handle:
                handle.write(payload)
        except OSError as exc:
            raise ReportgenError(
                f"cannot write the report in {str(self.root.parent)!r}: {exc.strerror or exc}"
            ) from exc
        digest = hashlib.sha256(payload).hexdigest()
        with self._lock:
            self._files[relpath] = (digest, len(payload))
        return relpath

    def file_list(self) -> list[dict[str, Any]]:
        return [
            {"path": path, "sha256": digest, "bytes": size}
            for path, (digest, size) in sorted(self._files.items())
        ]

    def commit(self, manifest: dict[str, Any]) -> None:
        """Write the manifest last, then swap the staging folder into place."""
        # Compact JSON: the C encoder is many times faster than the indenting one.
        text = json.dumps(manifest, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        manifest_path = self.path_of(MANIFEST)
        try:
            with manifest_path.open("w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise ReportgenError(
                f"cannot write the report in {str(self.root.parent)!r}: {exc.strerror or exc}"
            ) from exc
        self._swap()
        self.committed = True

    def _swap(self) -> None:
        aside: Path | None = None
        if self.target.exists():
            aside = Path(
                tempfile.mkdtemp(prefix=f".{self.target.name}{OLD_TAG}", dir=self.target.parent)
            )
            aside.rmdir()
            os.rename(self.target, aside)
        os.rename(self.root, self.target)
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
