"""The report's folder on disk: built in a staging folder beside the target and
swapped into place at the end, so a report is complete or absent, never half-written.

What a run may touch in ``-o`` is what it owns: the files the previous report's manifest
lists and the manifest itself. Anything else found there, at the start or when the new
report is swapped in (a ``notes.txt`` added during the run, a folder, a link), stops the
run with an error and is left in place, with the previous report. One run at a time:
a lock file beside ``-o`` (holding its PID) makes a second run fail at once. The swap is
not split by SIGINT/SIGTERM (they are held until it is done), and ``committed_target``
tells the command line which report is in place when a run is interrupted. Recovery
after a kill restores the newest previous report whose files match its manifest.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from reportgen.errors import ReportgenError
from reportgen.report.manifest_file import MANIFEST
from reportgen.report.run_lock import HELD_LOCKS, RunLock, lock_folder
from reportgen.report.target import (
    OLD_TAG,
    SHARD_FILES_FORMAT,
    SINGLE_FILE_MARK,
    STAGING_TAG,
    check_parent,
    check_target,
    current_umask,
    foreign_entries,
    fsync_folder,
    is_report,
    is_single_file_report,
    recover_and_clean,
    remove_owned,
    report_manifest,
    shown_names,
)
from reportgen.results.store import confined_path

log = logging.getLogger("reportgen")

__all__ = [
    "MANIFEST",
    "OLD_TAG",
    "SHARD_FILES_FORMAT",
    "SINGLE_FILE_MARK",
    "STAGING_TAG",
    "RunLock",
    "StagedReport",
    "check_target",
    "committed_target",
    "forget_commits",
    "is_report",
    "is_single_file_report",
    "recover_and_clean",
    "signals_held",
]


# --- signals during the swap ----------------------------------------------------------

_committed: list[Path] = []


def committed_target() -> Path | None:
    """The report this process last swapped into place since ``forget_commits`` (the
    command line asks when a run is interrupted: which report is in place now)."""
    return _committed[-1] if _committed else None


def forget_commits() -> None:
    _committed.clear()


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block is done, then arrive as usual (on the main
    thread, where Python runs its handlers; elsewhere the block runs as it is)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def hold(signum: int, _frame: Any) -> None:
        caught.append(signum)

    previous: dict[signal.Signals, Any] = {}
    for held in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError, OSError):
            previous[held] = signal.signal(held, hold)
    try:
        yield
    finally:
        for held, handler in previous.items():
            signal.signal(held, handler)
        if caught:
            signal.raise_signal(caught[0])


class StagedReport:
    """Files written under a staging folder; ``commit`` swaps them into ``target``.

    Leaving the ``with`` block without ``commit`` (an exception, Ctrl-C) removes the
    staging folder and leaves ``target`` as it was.
    """

    def __init__(self, target: Path, single_file: bool = False, shard: bool = False) -> None:
        self.target = Path(os.path.abspath(target))
        self.single_file = single_file
        check_parent(self.target)
        self._run_lock = RunLock(self.target)
        self._run_lock.acquire()  # before anything beside -o is looked at or changed
        try:
            recover_and_clean(self.target)
            check_target(self.target, single_file, shard)
            self.root = Path(
                tempfile.mkdtemp(prefix=f".{self.target.name}{STAGING_TAG}", dir=self.target.parent)
            )
        except BaseException:
            self._run_lock.release()
            raise
        try:
            self._lock_fd = lock_folder(self.root)
        except OSError:
            self._lock_fd = None
        if self._lock_fd is not None:
            HELD_LOCKS.add(self._lock_fd)
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
        self._run_lock.release()

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            HELD_LOCKS.discard(self._lock_fd)
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

    def read_back(self, relpath: str) -> bytes:
        """A file this run wrote into the report, read back: at most its recorded size,
        from the staging folder itself (whatever ``path_of`` is made to say)."""
        _, size = self._files[relpath]
        with confined_path(self.root, relpath).open("rb") as handle:
            return handle.read(size)

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
        os.chmod(source, 0o666 & ~current_umask())
        with source.open("rb") as handle:
            os.fsync(handle.fileno())
        with signals_held():
            # What is at -o now must still be a report reportgen wrote (or nothing).
            check_target(self.target, single_file=True)
            os.replace(source, self.target)
            self.committed = True
            _committed.append(self.target)
        fsync_folder(self.target.parent)
        shutil.rmtree(self.root, ignore_errors=True)
        self._unlock()

    def _swap(self) -> None:
        """Move aside what the run owns at -o, put the staging folder in its place, delete
        what was moved aside (only what the previous manifest lists). Anything else at -o
        stops the run before anything moves: ReportgenError, -o left as it is."""
        # mkdtemp makes the staging folder private (0700); a published report is
        # readable like any folder the user creates.
        os.chmod(self.root, 0o777 & ~current_umask())
        with signals_held():
            aside, previous = self._move_aside()
            try:
                os.rename(self.root, self.target)
            except BaseException:
                # Put the previous report back at once; if even that fails (or the process
                # dies here), the next run's recover_and_clean restores it.
                if aside is not None:
                    with contextlib.suppress(OSError):
                        os.rename(aside, self.target)
                raise
            self.committed = True
            _committed.append(self.target)
            self._unlock()
            fsync_folder(self.target.parent)
            if aside is not None and previous is not None:
                stayed = remove_owned(aside, previous)
                if stayed:
                    log.warning(
                        "files appeared in the previous report while it was replaced (%s); "
                        "kept in %s",
                        shown_names(stayed),
                        aside,
                    )

    def _move_aside(self) -> tuple[Path | None, dict[str, Any] | None]:
        """The previous report renamed beside -o, and its manifest (None, None: none)."""
        target = self.target
        if not os.path.lexists(target):
            return None, None
        if target.is_symlink() or not target.is_dir():
            raise ReportgenError(
                f"output {str(target)!r} was replaced by something that is not a folder "
                "while this run was going; it was left in place and the new report was not "
                "put there"
            )
        manifest = report_manifest(target) if any(target.iterdir()) else None
        if manifest is None and any(target.iterdir()):
            raise ReportgenError(
                f"output {str(target)!r} no longer holds a reportgen manifest (changed while "
                "this run was going); it was left in place and the new report was not put there"
            )
        owned = manifest.data if manifest is not None else {"files": []}
        self._refuse_foreign(target, owned)
        aside = Path(tempfile.mkdtemp(prefix=f".{target.name}{OLD_TAG}", dir=target.parent))
        aside.rmdir()
        os.rename(target, aside)
        try:  # anything that arrived between the check and the rename
            self._refuse_foreign(aside, owned)
        except BaseException:
            os.rename(aside, target)
            raise
        return aside, owned

    def _refuse_foreign(self, folder: Path, manifest: dict[str, Any]) -> None:
        foreign = foreign_entries(folder, manifest)
        if foreign:
            raise ReportgenError(
                f"output {str(self.target)!r} gained files reportgen did not write while "
                f"this run was going ({shown_names(foreign)}); they and the previous report were "
                "left in place and the new report was not put there: move them out and run "
                "again"
            )
