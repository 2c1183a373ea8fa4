"""The report's folder on disk: built in a staging folder beside the target and
swapped into place at the end, so a report is complete or absent, never half-written."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from reportgen.errors import ReportgenError
from reportgen.report.manifest_file import MANIFEST, Manifest, read_manifest, unlisted_files
from reportgen.results.store import confined_path

STAGING_TAG = ".reportgen-staging-"
OLD_TAG = ".reportgen-old-"
# How a single-file report (``--single-file``) says that reportgen wrote it.
SINGLE_FILE_MARK = b'<meta name="generator" content="reportgen'

try:  # POSIX: a staging folder is locked while its run is alive (see _lock_folder)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def _lock_folder(folder: Path) -> int | None:
    """Hold an exclusive lock on ``folder`` (released by the kernel when the process dies,
    also on SIGKILL), so that another run never cleans up a staging folder in use."""
    if fcntl is None:
        return None
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd


def _in_use(folder: Path) -> bool:
    """True while a live run holds ``folder``'s lock."""
    try:
        fd = _lock_folder(folder)
    except OSError:
        return True
    if fd is not None:
        os.close(fd)
    return False


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the platform allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def report_manifest(folder: Path) -> Manifest | None:
    """The manifest of ``folder`` when it is a report that reportgen wrote, else None."""
    if not folder.is_dir():
        return None
    try:
        return read_manifest(folder)
    except ReportgenError:
        return None


def is_report(folder: Path) -> bool:
    """True when ``folder`` holds a manifest that reportgen wrote."""
    return report_manifest(folder) is not None


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
        if leftover.is_dir() and _in_use(leftover):
            continue  # another run, still alive, is writing there
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                leftover.unlink()


def is_single_file_report(path: Path) -> bool:
    """True when ``path`` is an HTML file that ``--single-file`` wrote."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    return SINGLE_FILE_MARK in head


def check_target(target: Path, single_file: bool = False) -> None:
    """Refuse to replace anything that is not a reportgen report, or that holds files
    reportgen did not write (it never deletes those)."""
    if single_file:
        if target.is_symlink() or target.is_dir():
            raise ReportgenError(
                f"output {str(target)!r} is a folder or a link; --single-file writes one "
                "HTML file: choose another -o path (e.g. analysis.html)"
            )
        if target.exists() and not is_single_file_report(target):
            raise ReportgenError(
                f"output {str(target)!r} exists and is not a reportgen single-file report; "
                "reportgen will not replace it: choose another -o path"
            )
    elif target.is_symlink() or (target.exists() and not target.is_dir()):
        raise ReportgenError(
            f"output {str(target)!r} exists and is not a folder; choose another -o path"
        )
    elif target.is_dir() and any(target.iterdir()):
        manifest = report_manifest(target)
        if manifest is None:
            raise ReportgenError(
                f"output {str(target)!r} is a non-empty folder that is not a reportgen report; "
                "reportgen will not replace it: choose another -o path (e.g. a new folder)"
            )
        foreign = unlisted_files(target, manifest.data)
        if foreign:
            shown = ", ".join(foreign[:5]) + (
                f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
            )
            raise ReportgenError(
                f"output {str(target)!r} is a reportgen report, but it also holds files "
                f"reportgen did not write ({shown}); move them out or choose another -o path"
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

    def __init__(self, target: Path, single_file: bool = False) -> None:
        self.target = Path(os.path.abspath(target))
        self.single_file = single_file
        recover_and_clean(self.target)
        check_target(self.target, single_file)
        self.root = Path(
            tempfile.mkdtemp(prefix=f".{self.target.name}{STAGING_TAG}", dir=self.target.parent)
        )
        try:
            self._lock_fd = _lock_folder(self.root)
        except OSError:
            self._lock_fd = None
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
        self._unlock()

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None

    def path_of(self, relpath: str) -> Path:
        """Absolute path of a report file; refuses anything that would leave the report
        (``results.store.confined_path``: the same rule for files put back from the cache)."""
        return confined_path(self.root, relpath)

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
        self.record(relpath, digest, len(payload))
        return relpath

    def record(self, relpath: str, digest: str, size: int) -> None:
        """List a file of the report for the manifest (``write`` does it; a worker
        process that wrote files into the staging folder reports them here)."""
        with self._lock:
            self._files[relpath] = (digest, size)

    def recorded(self, relpath: str) -> tuple[str, int]:
        """(sha256, bytes) of a file written into the report."""
        return self._files[relpath]

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

    def replace_file(self, relpath: str) -> None:
        """Put one staged file in place as ``target`` (``--single-file``): the file is
        synced, then renamed over the target in one step; the staging folder goes."""
        source = self.path_of(relpath)
        os.chmod(source, 0o666 & ~_current_umask())
        with source.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(source, self.target)
        _fsync_folder(self.target.parent)
        self.committed = True
        shutil.rmtree(self.root, ignore_errors=True)
        self._unlock()

    def _swap(self) -> None:
        # mkdtemp makes the staging folder private (0700); a published report is
        # readable like any folder the user creates.
        os.chmod(self.root, 0o777 & ~_current_umask())
        aside: Path | None = None
        if self.target.exists():
            aside = Path(
                tempfile.mkdtemp(prefix=f".{self.target.name}{OLD_TAG}", dir=self.target.parent)
            )
            aside.rmdir()
            os.rename(self.target, aside)
        try:
            os.rename(self.root, self.target)
        except BaseException:
            # Put the previous report back at once; if even that fails (or the process
            # dies here), the next run's recover_and_clean restores it.
            if aside is not None:
                with contextlib.suppress(OSError):
                    os.rename(aside, self.target)
            raise
        self._unlock()
        _fsync_folder(self.target.parent)
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
