"""Finding a run's inputs: files, folders (walked, sorted, never into a tagged cache) and
URLs (downloaded into a folder of this run), each with its stable id and the name a
report shows for it.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import re
import shutil
import tempfile
import urllib.parse
from collections.abc import Iterable, Iterator
from pathlib import Path

from reportgen.errors import ReportgenError
from reportgen.inputs import fetch
from reportgen.inputs.files import IMAGE_SUFFIXES, InputFile, SkippedInput
from reportgen.inputs.safe_read import (
    not_regular_reason,
    printable,
)


def input_id(source: str, unique: str | None = None) -> str:
    """A readable, file-name-safe id that differs for different sources.

    The stem keeps it readable; a hash of the whole source (or of ``unique``, e.g. a
    full URL) keeps ``a/cat.jpg`` and ``b/cat.jpg`` apart.
    """
    stem = Path(source).stem
    slug = re.sub(r"[^A-Za-z0-9]+", "-", stem).strip("-").lower()[:40] or "image"
    key = source if unique is None else unique
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{slug}-{digest}"


def shown_arguments(arguments: Iterable[str]) -> dict[str, str]:
    """How a report names each local input argument (URLs are left out: they are shown as
    they are). As typed when every one is a relative path inside the current folder;
    otherwise each relative to the folder that holds them all, so that no absolute path
    of the building machine is in a report, and the same inputs make the same report
    wherever they lie."""
    local = [a for a in arguments if not (fetch.is_url(a) or fetch.looks_like_other_url(a))]

    def inside(argument: str) -> bool:
        norm = os.path.normpath(argument)
        return not (
            os.path.isabs(argument) or norm == os.pardir or norm.startswith(os.pardir + os.sep)
        )

    if all(inside(a) for a in local):
        return {a: a for a in local}
    absolute = {a: os.path.abspath(a) for a in local}
    try:
        base = os.path.commonpath([os.path.dirname(p) for p in absolute.values()])
    except ValueError:  # paths on different drives (Windows): names alone
        return {a: os.path.basename(p) or p for a, p in absolute.items()}
    return {a: os.path.relpath(p, base) for a, p in absolute.items()}


def discover_inputs(arguments: Iterable[str]) -> tuple[list[InputFile], list[SkippedInput]]:
    """Expand files and folders into a sorted, de-duplicated list of image files.

    A folder is searched recursively for files with an image suffix; a file named
    directly is always tried, whatever its suffix. An argument that does not exist
    is skipped with a reason while other arguments give inputs, and raises when
    nothing else was found (so a lone typo fails at once); unreadable entries found
    inside folders are reported as skipped.
    """
    arguments = list(arguments)
    found = _Found(shown_arguments(arguments))  # what the report calls each one
    for argument in arguments:
        if fetch.is_url(argument):
            found.url(argument)
        elif fetch.looks_like_other_url(argument):
            raise ReportgenError(
                f"input {argument!r}: only http:// and https:// URLs can be inputs"
            )
        else:
            found.path(argument)
    if found.missing and not found.files:
        raise found.missing[0]
    return sorted(found.files.values(), key=lambda f: f.source), found.skipped


class _Found:
    """The inputs found so far, by the name the report gives them; the skipped ones and
    the arguments that name nothing."""

    def __init__(self, shown: dict[str, str]) -> None:
        self.shown = shown
        self.files: dict[str, InputFile] = {}
        self.skipped: list[SkippedInput] = []
        self.missing: list[ReportgenError] = []
        self.seen: set[str] = set()  # real paths: imgs/../imgs and imgs name the same files

    def _first_time(self, path: Path) -> bool:
        real = os.path.realpath(path)
        if real in self.seen:
            return False
        self.seen.add(real)
        return True

    def url(self, argument: str) -> None:
        if argument not in self.files:
            try:
                self.files[argument] = _download(argument)
            except ReportgenError as exc:
                self.skipped.append(SkippedInput(argument, str(exc)))

    def path(self, argument: str) -> None:
        path, name = Path(argument), self.shown[argument]
        if not path.exists():
            reason = (
                "is a symbolic link to nothing (or a link loop)"
                if path.is_symlink()
                else "does not exist"
            )
            self.missing.append(ReportgenError(f"input {argument!r} {reason}"))
            self.skipped.append(SkippedInput(printable(name), reason))
        elif path.is_dir():
            self._folder(path, name)
        elif name not in self.files:
            problem = _regular_file_problem(path)
            if problem is not None:
                self.missing.append(ReportgenError(f"input {printable(argument)!r} {problem}"))
                self.skipped.append(SkippedInput(printable(name), problem))
            elif self._first_time(path):
                self.files[name] = InputFile(path, printable(name), input_id(printable(name), name))

    def _folder(self, folder: Path, name: str) -> None:
        for file_path, problem in _walk_images(folder):
            raw = os.path.join(name, os.path.relpath(file_path, folder))
            if problem:
                self.skipped.append(SkippedInput(printable(raw), problem))
            elif raw not in self.files and self._first_time(file_path):
                self.files[raw] = InputFile(
                    file_path, printable(raw), input_id(printable(raw), raw)
                )


_download_dir: Path | None = None
_download_lock: int | None = None
DOWNLOADS_PREFIX = "reportgen-downloads-"
_DOWNLOADS_LOCK = ".in-use"


def _downloads() -> Path:
    """A private temporary folder for downloaded inputs, removed when Python exits. It is
    locked while this process lives (flock, dropped by the kernel at any death): a later
    run removes the folders that killed runs left (``sweep_downloads``)."""
    global _download_dir, _download_lock
    if _download_dir is None or not _download_dir.is_dir():
        sweep_downloads()
        _download_dir = Path(tempfile.mkdtemp(prefix=DOWNLOADS_PREFIX))
        _download_lock = _lock_file(_download_dir / _DOWNLOADS_LOCK)
        atexit.register(shutil.rmtree, _download_dir, True)
    return _download_dir


def _lock_file(path: Path) -> int | None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return None
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def sweep_downloads(folder: str | None = None) -> list[Path]:
    """Remove download folders of runs that are gone (their lock is free); returns them.
    Folders of live runs, and anything that is not reportgen's, stay."""
    removed = []
    base = Path(folder or tempfile.gettempdir())
    try:
        candidates = [p for p in base.iterdir() if p.name.startswith(DOWNLOADS_PREFIX)]
    except OSError:
        return []
    for candidate in candidates:
        if candidate == _download_dir or candidate.is_symlink() or not candidate.is_dir():
            continue
        lock = candidate / _DOWNLOADS_LOCK
        if not lock.is_file() or lock.is_symlink():
            continue  # not one this version of reportgen made
        fd = _lock_file(lock)
        if fd is None:
            continue  # a live run's
        try:
            shutil.rmtree(candidate, ignore_errors=True)
            removed.append(candidate)
        finally:
            os.close(fd)
    return removed


_downloaded: dict[str, InputFile] = {}


def _download(url: str) -> InputFile:
    """Fetch an image URL (within fetch's limits) into a temporary file, once per
    process: a second discovery of the same URL (e.g. a rebuild check) reuses it."""
    known = _downloaded.get(url)
    if known is not None and known.path.is_file():
        return known
    fetched = fetch.fetch(url)
    ident = input_id(urllib.parse.urlsplit(url).path or url, url)
    target = _downloads() / f"{ident}.download"
    target.write_bytes(fetched.data)
    _downloaded[url] = InputFile(target, printable(url), ident)
    return _downloaded[url]


# A cache folder says so with a tag file (https://bford.info/cachedir/, which tar's
# --exclude-caches and backup tools honour): its pictures are never inputs, also when the
# cache lies inside an input folder (XDG_CACHE_HOME=./.cache). reportgen tags its own
# (results.store.tag_cache).
CACHE_TAG = "CACHEDIR.TAG"
CACHE_TAG_SIGNATURE = b"Signature: 8a477f597d28d172789f06886806bc55"


def is_tagged_cache(directory: Path) -> bool:
    """``directory`` holds a cache directory tag (a regular file that starts with the
    signature)."""
    try:
        with (directory / CACHE_TAG).open("rb") as handle:
            return handle.read(len(CACHE_TAG_SIGNATURE)) == CACHE_TAG_SIGNATURE
    except OSError:
        return False


def _walk_images(folder: Path) -> Iterator[tuple[Path, str | None]]:
    """Image files below ``folder`` in sorted order; symlink loops are not followed, and
    cache folders below it (``is_tagged_cache``) are not entered."""
    seen_dirs: set[tuple[int, int]] = set()

    def visit(directory: Path) -> Iterator[tuple[Path, str | None]]:
        try:
            stat = directory.stat()
        except OSError as exc:
            yield directory, f"cannot read folder: {exc.strerror or exc}"
            return
        key = (stat.st_dev, stat.st_ino)
        if key in seen_dirs:
            return  # a symlink back to a folder already visited
        seen_dirs.add(key)
        try:
            entries = sorted(directory.iterdir(), key=lambda p: p.name)
        except OSError as exc:
            yield directory, f"cannot read folder: {exc.strerror or exc}"
            return
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError as exc:  # e.g. a symlink that loops onto itself
                yield entry, f"cannot read: {exc.strerror or exc}"
                continue
            if is_dir:
                if not is_tagged_cache(entry):
                    yield from visit(entry)
            elif entry.suffix.lower() in IMAGE_SUFFIXES:
                if not entry.exists():
                    yield entry, "broken symbolic link"
                else:
                    yield entry, _regular_file_problem(entry)

    yield from visit(folder)


def _regular_file_problem(path: Path) -> str | None:
    """Why ``path`` (links followed) is not read as an image; None for a regular file."""
    try:
        return not_regular_reason(path.stat().st_mode)
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
