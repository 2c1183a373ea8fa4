"""What is at ``-o`` before a run writes it: a report of ours (its manifest), the
leftovers of a killed run (recovered: the newest previous report whose files match its
manifest), and anything that is not ours, which stops the run and is left in place."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from reportgen.errors import ReportgenError
from reportgen.report.manifest_file import MANIFEST, Manifest, read_manifest
from reportgen.report.run_lock import drop_stale_lock, in_use
from reportgen.results.store import confined_path

log = logging.getLogger("reportgen")

STAGING_TAG = ".reportgen-staging-"
OLD_TAG = ".reportgen-old-"
# How a single-file report (``--single-file``) says that reportgen wrote it.
SINGLE_FILE_MARK = b'<meta name="generator" content="reportgen'


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_folder(folder: Path) -> None:
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
                shown_names(leftovers),
            )
    drop_stale_lock(target)
    for leftover in _siblings(target, STAGING_TAG):
        if leftover.is_dir() and in_use(leftover):
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


def shown_names(names: list[str], limit: int = 5) -> str:
    from reportgen.inputs.safe_read import printable

    shown = ", ".join(printable(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


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
                f"reportgen did not write ({shown_names(foreign)}); move them out or choose "
                "another -o path"
            )
    check_parent(target)


def check_parent(target: Path) -> None:
    parent = target.parent
    if not parent.is_dir():
        raise ReportgenError(f"output folder's parent {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ReportgenError(f"cannot write in {str(parent)!r} (permission denied)")
