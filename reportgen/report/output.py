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
from reportgen.report.manifest_file import MANIFEST, Manifest, read_manifest
from reportgen.results.store import confined_path

log = logging.getLogger("reportgen")

STAGING_TAG = ".reportgen-staging-"
OLD_TAG = ".reportgen-old-"
LOCK_TAG = ".reportgen-lock"
# How a single-file report (``--single-file``) says that reportgen wrote it.
SINGLE_FILE_MARK = b'<meta name="generator" content="reportgen'

try:  # POSIX: a staging folder is locked while its run is alive (see _lock_folder)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


# Lock descriptors this process holds (its RunLock, its staging folder). A process forked
# from it (a page worker) must not hold them too: a flock belongs to the open file, so a
# forked child that outlived its killed parent would keep -o locked for the next run.
_HELD_LOCKS: set[int] = set()


def _close_held_locks_in_child() -> None:
    for fd in list(_HELD_LOCKS):
        with contextlib.suppress(OSError):
            os.close(fd)  # the child's copy only: the parent's lock stays
    _HELD_LOCKS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_held_locks_in_child)


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
    """Undo what a killed run left (call it holding the run lock): when ``-o`` is gone (a
    kill between the two renames of the swap), put back the newest previous report that
    is intact (every file as its manifest lists it); then remove the other leftovers,
    only what reportgen owns in them."""
    old = [p for p in _siblings(target, OLD_TAG) if p.is_dir() and not p.is_symlink()]
    if old and not os.path.lexists(target):
        intact = []
        for folder in old:
            manifest = report_manifest(folder)
            if manifest is not None and _intact(folder, manifest.data):
                created = str(manifest.data.get("created", ""))
                intact.append((created, folder.stat().st_mtime_ns, str(folder), folder))
        if intact:
            best = max(intact)[-1]
            os.rename(best, target)
            log.info("restored the previous report %s from %s", target, best.name)
            old.remove(best)
    for folder in old:
        manifest = report_manifest(folder)
        if manifest is None:
            if _holds_no_file(folder):  # a removal cut short after its manifest went
                shutil.rmtree(folder, ignore_errors=True)
            else:
                log.warning("left %s in place: it holds no readable reportgen manifest", folder)
            continue
        leftovers = remove_owned(folder, manifest.data)
        if leftovers:
            log.warning(
                "kept %s: it holds files reportgen did not write (%s)",
                folder,
                _shown(leftovers),
            )
    _drop_stale_lock(target)
    for leftover in _siblings(target, STAGING_TAG):
        if leftover.is_dir() and _in_use(leftover):
            continue  # another run, still alive, is writing there
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                leftover.unlink()


def _holds_no_file(folder: Path) -> bool:
    """Only (empty) folders below ``folder``: no file, no link."""
    for _root, dirs, names in os.walk(folder, followlinks=False):
        if names or any(os.path.islink(os.path.join(_root, d)) for d in dirs):
            return False
    return True


def _drop_stale_lock(target: Path) -> None:
    """Remove the lock file a killed run left (one nobody holds; never a live one, this
    process's own included: a second lock on it fails)."""
    path = RunLock(target).path
    if fcntl is None or not path.is_file():
        return
    try:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return  # held: a live run
    with contextlib.suppress(OSError):
        if os.path.samestat(os.fstat(fd), os.stat(path)):
            os.unlink(path)
    os.close(fd)


def _intact(folder: Path, manifest: dict[str, Any]) -> bool:
    """Every file the manifest lists is in ``folder``, a regular file, as listed."""
    from reportgen.report.manifest_file import read_regular

    files = manifest.get("files")
    if not isinstance(files, list):
        return False
    for entry in files:
        try:
            path = confined_path(folder, entry["path"])
            if path.is_symlink():
                return False
            data = read_regular(path, int(entry["bytes"]))
        except (OSError, ValueError, KeyError, TypeError):
            return False
        if len(data) != entry["bytes"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
            return False
    return True


def _owned_paths(manifest: dict[str, Any]) -> set[str]:
    """Report-relative paths a report owns: what its manifest lists, and the manifest."""
    from reportgen.report.manifest_file import listed_paths

    return listed_paths(manifest) | {MANIFEST}


def _needed_dirs(owned: set[str]) -> set[str]:
    """The folders the owned paths lie in (``a``, ``a/b`` for ``a/b/c.png``)."""
    return {"/".join(p.split("/")[:i]) for p in owned for i in range(1, p.count("/") + 1)}


def foreign_entries(folder: Path, manifest: dict[str, Any]) -> list[str]:
    """What ``folder`` holds that its report does not own: files its manifest does not
    list, symbolic links, folders that hold none of its files (empty ones too). A foreign
    folder is named once, not each file in it."""
    owned = _owned_paths(manifest)
    needed_dirs = _needed_dirs(owned)
    foreign: list[str] = []
    for root, dirs, names in os.walk(folder, followlinks=False):
        rel_root = os.path.relpath(root, folder)
        prefix = "" if rel_root == "." else rel_root.replace(os.sep, "/") + "/"
        for name in list(dirs):
            rel = prefix + name
            if os.path.islink(os.path.join(root, name)) or rel not in needed_dirs:
                foreign.append(rel + ("" if os.path.islink(os.path.join(root, name)) else "/"))
                dirs.remove(name)
        for name in names:
            rel = prefix + name
            if rel not in owned or os.path.islink(os.path.join(root, name)):
                foreign.append(rel)
    return sorted(foreign)


def remove_owned(folder: Path, manifest: dict[str, Any]) -> list[str]:
    """Delete what the report in ``folder`` owns (its listed files, its manifest, then
    the folders they leave empty); anything else stays. Returns what stayed (nothing:
    ``folder`` itself is gone too)."""
    owned = _owned_paths(manifest)
    # The manifest goes last: a removal cut short (SIGKILL) leaves it, so the next run
    # can still tell what the rest belongs to and finish.
    for relpath in [*sorted(owned - {MANIFEST}), MANIFEST]:
        with contextlib.suppress(OSError, ValueError):
            path = confined_path(folder, relpath)
            if not path.is_dir() or path.is_symlink():
                path.unlink()
    for relpath in sorted(_needed_dirs(owned), key=lambda d: d.count("/"), reverse=True):
        with contextlib.suppress(OSError, ValueError):
            path = confined_path(folder, relpath)
            if not path.is_symlink():
                path.rmdir()  # only when empty: a foreign file in it keeps it
    with contextlib.suppress(OSError):
        os.rmdir(folder)
    if not os.path.lexists(folder):
        return []
    stayed: list[str] = []
    for root, dirs, names in os.walk(folder, followlinks=False):
        rel_root = os.path.relpath(root, folder)
        prefix = "" if rel_root == "." else rel_root.replace(os.sep, "/") + "/"
        stayed.extend(prefix + n for n in names)
        stayed.extend(prefix + d + "/" for d in dirs if not os.listdir(os.path.join(root, d)))
    return sorted(stayed)


def _shown(names: list[str], limit: int = 5) -> str:
    from reportgen.inputs.safe_read import printable

    shown = ", ".join(printable(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


# --- one run at a time per -o ---------------------------------------------------------


class RunLock:
    """``.<name>.reportgen-lock`` beside ``target``: held (flock) for as long as a run may
    write ``target``, with the holder's PID in it. A second run fails at once, naming the
    PID; a lock left by a killed run is free (the kernel drops a dead process's locks)."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.path = target.parent / f".{target.name}{LOCK_TAG}"
        self._fd: int | None = None

    def acquire(self) -> None:
        while True:
            try:
                flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
                fd = os.open(self.path, flags, 0o644)
            except OSError as exc:
                raise ReportgenError(
                    f"cannot write in {str(self.path.parent)!r} ({exc.strerror or exc})"
                ) from exc
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    holder = _read_pid(fd)
                    os.close(fd)
                    who = f"(PID {holder}) " if holder else ""
                    raise ReportgenError(
                        f"another reportgen run {who}is writing {str(self.target)!r}; "
                        "wait for it to finish or choose another -o"
                    ) from None
            # The file may have been removed by the run that held it: lock the one in place.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except OSError:
                same = False
            if same:
                break
            os.close(fd)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        except OSError as exc:  # a full disk: no lock file left behind either
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            os.close(fd)
            raise ReportgenError(
                f"cannot write in {str(self.path.parent)!r} ({exc.strerror or exc})"
            ) from exc
        self._fd = fd
        _HELD_LOCKS.add(fd)

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        _HELD_LOCKS.discard(self._fd)
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = None


def _read_pid(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if text.isdigit():
            return text
    return ""


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


def is_single_file_report(path: Path) -> bool:
    """True when ``path`` is an HTML file that ``--single-file`` wrote."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    return SINGLE_FILE_MARK in head


# What a shard folder's manifest.json says it is (``reportgen shard``; a report's says
# "reportgen-manifest/2"): a shard is replaced only by a shard.
SHARD_FILES_FORMAT = "reportgen-shard-files/1"


def check_target(target: Path, single_file: bool = False, shard: bool = False) -> None:
    """Refuse to replace anything that is not a reportgen report (``shard``: a shard), or
    that holds files reportgen did not write (it never deletes those)."""
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
        if (manifest.data.get("format") == SHARD_FILES_FORMAT) != shard:
            what = "a shard (reportgen shard)" if not shard else "a reportgen report, not a shard"
            raise ReportgenError(
                f"output {str(target)!r} is {what}; it is not replaced by "
                f"{'a shard' if shard else 'a report'}: choose another -o path"
            )
        foreign = foreign_entries(target, manifest.data)
        if foreign:
            raise ReportgenError(
                f"output {str(target)!r} is a reportgen report, but it also holds files "
                f"reportgen did not write ({_shown(foreign)}); move them out or choose "
                "another -o path"
            )
    check_parent(target)


def check_parent(target: Path) -> None:
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
            self._lock_fd = _lock_folder(self.root)
        except OSError:
            self._lock_fd = None
        if self._lock_fd is not None:
            _HELD_LOCKS.add(self._lock_fd)
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
            _HELD_LOCKS.discard(self._lock_fd)
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
        with signals_held():
            # What is at -o now must still be a report reportgen wrote (or nothing).
            check_target(self.target, single_file=True)
            os.replace(source, self.target)
            self.committed = True
            _committed.append(self.target)
        _fsync_folder(self.target.parent)
        shutil.rmtree(self.root, ignore_errors=True)
        self._unlock()

    def _swap(self) -> None:
        """Move aside what the run owns at -o, put the staging folder in its place, delete
        what was moved aside (only what the previous manifest lists). Anything else at -o
        stops the run before anything moves: ReportgenError, -o left as it is."""
        # mkdtemp makes the staging folder private (0700); a published report is
        # readable like any folder the user creates.
        os.chmod(self.root, 0o777 & ~_current_umask())
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
            _fsync_folder(self.target.parent)
            if aside is not None and previous is not None:
                stayed = remove_owned(aside, previous)
                if stayed:
                    log.warning(
                        "files appeared in the previous report while it was replaced (%s); "
                        "kept in %s",
                        _shown(stayed),
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
                f"this run was going ({_shown(foreign)}); they and the previous report were "
                "left in place and the new report was not put there: move them out and run "
                "again"
            )
