"""One run at a time per ``-o``: a lock file beside it, held (flock) with the holder's PID
in it, and the staging folder locked while its run is alive; a forked child (a page
worker) holds neither."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from reportgen.errors import ReportgenError

log = logging.getLogger("reportgen")

LOCK_TAG = ".reportgen-lock"

try:  # POSIX: a staging folder is locked while its run is alive (see lock_folder)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


# Lock descriptors this process holds (its RunLock, its staging folder). A process forked
# from it (a page worker) must not hold them too: a flock belongs to the open file, so a
# forked child that outlived its killed parent would keep -o locked for the next run.
HELD_LOCKS: set[int] = set()


def close_held_locks_in_child() -> None:
    for fd in list(HELD_LOCKS):
        with contextlib.suppress(OSError):
            os.close(fd)  # the child's copy only: the parent's lock stays
    HELD_LOCKS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=close_held_locks_in_child)


def lock_folder(folder: Path) -> int | None:
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


def in_use(folder: Path) -> bool:
    """True while a live run holds ``folder``'s lock."""
    try:
        fd = lock_folder(folder)
    except OSError:
        return True
    if fd is not None:
        os.close(fd)
    return False


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
        HELD_LOCKS.add(fd)

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        HELD_LOCKS.discard(self._fd)
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = None


def _read_pid(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if text.isdigit():
            return text
    return ""


def drop_stale_lock(target: Path) -> None:
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
