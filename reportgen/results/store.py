"""The cache behind incremental re-runs: nothing here imports torch.

Two levels, both keyed by content:

* **per input and layer** (``InputCache``): the statistics of every channel and the
  encoded pictures (maps and overlays) of one layer for one input, and per
  input the network view and the top-5 predictions. The key hashes the input's sha256,
  the model, its weights, the layer, every setting that changes those results, the
  torch version and reportgen's own code. A run with one input added runs the network
  and the encoders for that input only; the others are read back.
* **per run** (``RunCache``): a finished report folder, kept as hard links (a copy where
  links are not possible) under a key of all inputs' contents, the settings, the weights
  files and reportgen's code. A re-run with nothing changed puts those files in place
  (each checked against the manifest's sha256) without loading torch or a model.

Location: ``--cache-dir``, else ``REPORTGEN_CACHE_DIR``, else ``$XDG_CACHE_HOME/reportgen``
(``~/.cache/reportgen``); ``--no-cache`` or ``REPORTGEN_CACHE_DIR=off`` turns it off.
Entries are written atomically (temporary file, then rename), so concurrent runs and
killed runs leave no half-written entry. Deleting the folder is always safe.

Nothing read back is trusted blindly: every per-input entry ends with the sha256 of all
its bytes (the entry format: ``results.entry_format``), and a kept run carries the
sha256 of its manifest (which lists the sha256 of each file). An entry that fails its
check (a flipped byte, a truncated file) is dropped and its result computed again; ``-v``
logs each one. Paths a kept run lists go through ``confined_path``
(``results.confinement``), the rule every report file is written by
(``StagedReport.path_of``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from reportgen.errors import ReportgenError
from reportgen.results.confinement import confined_path, read_regular_no_link
from reportgen.results.entry_format import (
    ENTRIES,
    ENTRY_FORMAT,
    DamagedEntry,
    Entry,
    EntryMismatch,
    entry_bytes,
    entry_relpath,
    pack,
    result_entry,
    result_from_entry,
    unpack,
)

# Here for the modules that import them from the cache: the entry format and the path
# rule live in results/entry_format.py and results/confinement.py.
__all__ = [
    "ENTRIES",
    "ENTRY_FORMAT",
    "DamagedEntry",
    "Entry",
    "EntryMismatch",
    "InputCache",
    "RunCache",
    "cache_root",
    "code_fingerprint",
    "confined_path",
    "digest",
    "entry_bytes",
    "entry_relpath",
    "pack",
    "result_entry",
    "result_from_entry",
    "unpack",
    "weights_file_identity",
    "weights_fingerprint",
]

log = logging.getLogger("reportgen")

CACHE_ENV = "REPORTGEN_CACHE_DIR"
OFF_WORDS = {"", "0", "off", "none", "false", "no"}
# 2: one entry per input and model, holding its InputResult; 3: entries end with the
# sha256 of their bytes, kept runs carry the sha256 of their manifest
FORMAT = 3
# Beside a kept run's files: {"format", "manifest_sha256"}; never part of a report.
RUN_SEAL = ".reportgen-run.json"


def cache_root(option: str | None, disabled: bool = False) -> Path | None:
    """The cache folder to use, or None when caching is off."""
    if disabled:
        return None
    value = option if option is not None else os.environ.get(CACHE_ENV)
    if value is not None:
        return None if value.strip().lower() in OFF_WORDS else Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "reportgen"


def tag_cache(root: Path | None) -> None:
    """Mark an existing cache folder as a cache (``inputs.discovery.CACHE_TAG``), so that a
    cache inside an input folder is never walked for inputs. Best effort: a cache that
    cannot be written is left as it is (it will not be written by the run either)."""
    from reportgen.inputs.discovery import CACHE_TAG, CACHE_TAG_SIGNATURE, is_tagged_cache

    if root is None or not root.is_dir() or is_tagged_cache(root):
        return
    text = CACHE_TAG_SIGNATURE + (
        b"\n# This file is a cache directory tag created by reportgen.\n"
        b"# For information about cache directory tags see https://bford.info/cachedir/\n"
    )
    with contextlib.suppress(OSError):
        _atomic_write(root / CACHE_TAG, text)


def digest(*parts: Any) -> str:
    """sha256 of a JSON rendering of ``parts`` (sorted keys: stable across runs)."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _stat_entry(path: Path) -> list[Any]:
    try:
        info = path.stat()
    except OSError:
        return [str(path), None]
    return [str(path), info.st_size, info.st_mtime_ns]


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """reportgen's version, its source files and templates (names and contents), and the
    versions of the libraries that compute or encode: a change to any of them is a miss.
    Contents, not file times: the same code checked out on another machine (a shard's CI
    job, the merge's) has the same fingerprint, so its results are found there."""
    package = Path(__file__).resolve().parent.parent
    folders = [package, *sorted(p.parent for p in package.glob("*/__init__.py"))]
    entries: list[Any] = []
    for folder in (*folders, package / "templates", package.parent / "templates"):
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                if path.is_file() and not path.name.endswith((".pyc", ".pyo")):
                    entries.append([_content_sha256(path), path.name, folder.name])
    versions: dict[str, str | None] = {}
    for dist in (
        *("reportgen", "torch", "torchvision", "numpy", "pillow", "jinja2", "matplotlib"),
        *("timm", "safetensors"),  # timm defines its models' networks and preprocessing
    ):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return digest(FORMAT, entries, versions)


def _content_sha256(path: Path) -> str | None:
    try:
        return _sha256_of_file(str(path), *_stat_entry(path)[1:])
    except OSError:
        return None


@lru_cache(maxsize=256)
def _sha256_of_file(path: str, size: int | None, mtime_ns: int | None) -> str:
    """sha256 of a file's bytes, read once per process while its size and time stay."""
    digest_ = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest_.update(block)
    return digest_.hexdigest()


def weights_file_identity(weights: Any) -> list[Any] | None:
    """[name, size, sha256] of a loaded model's weights file (None without a file): a
    changed or replaced checkpoint must miss every cache entry made with the old one. By
    content, not path and time: the same checkpoint downloaded on another machine (a
    shard's) is the same weights."""
    path = getattr(weights, "path", None)
    if path is None:
        return None
    info = Path(path).stat()
    return [Path(path).name, info.st_size, _sha256_of_file(str(path), *_stat_entry(Path(path))[1:])]


def weights_fingerprint(spec: str, weights_dir: str | None) -> Any:
    """What ``--weights`` may read, without importing torch: a file's identity, or the
    checkpoint folders torchvision weights are looked up in."""
    if spec.lower() == "none":
        return "none"
    candidate = Path(spec).expanduser()
    if candidate.is_file():
        return ["file", _stat_entry(candidate.resolve())]
    folders = [weights_dir, os.environ.get("REPORTGEN_WEIGHTS_DIR")]
    torch_home = os.environ.get("TORCH_HOME") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "torch"
    )
    folders.append(str(Path(torch_home) / "hub" / "checkpoints"))
    listing = []
    for folder in folders:
        if folder and Path(folder).is_dir():
            listing.append([folder, sorted(_stat_entry(p) for p in Path(folder).iterdir())])
    return [spec, listing]


def _atomic_write(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


class InputCache:
    """Per-input, per-layer results. ``root`` None: every lookup misses, nothing is stored.

    ``read_only_roots``: more cache roots (shards) looked in after ``root``; never
    written, and an entry there that fails its check is a miss, left in place."""

    def __init__(self, root: Path | None, read_only_roots: tuple[Path, ...] = ()) -> None:
        self.root = root / ENTRIES if root is not None else None
        self.read_only_roots = tuple(read_only_roots)
        self.hits = 0
        self.misses = 0
        self.damaged: list[str] = []  # keys of entries dropped because they failed a check
        self.other_format: list[str] = []  # keys of intact entries of another format
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.root is not None or bool(self.read_only_roots)

    def _path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / key[:2] / f"{key}.bin"

    def load(self, key: str) -> Entry | None:
        dropped = False
        if self.root is not None:
            try:
                header, arrays, blobs = unpack(self._path(key).read_bytes())
            except OSError:
                pass
            except DamagedEntry as exc:
                self.drop(key, str(exc))  # counts the miss
                dropped = True
            else:
                return self._hit(header, arrays, blobs)
        for root in self.read_only_roots:
            try:
                header, arrays, blobs = unpack(confined_path(root, entry_relpath(key)).read_bytes())
            except OSError:
                continue
            except DamagedEntry as exc:
                log.info("cache: entry %s in %s is damaged (%s)", key[:16], root, exc)
                continue
            return self._hit(header, arrays, blobs)
        if not dropped:
            with self._lock:
                self.misses += 1
        return None

    def _hit(
        self, header: dict[str, Any], arrays: dict[str, np.ndarray], blobs: dict[str, bytes]
    ) -> Entry:
        with self._lock:
            self.hits += 1
        return Entry(header, arrays, blobs)

    def mismatched(self, key: str, reason: str) -> None:
        """A loaded entry of another format (``EntryMismatch``): a miss, not a hit; the
        result computed instead replaces it. Said with -v."""
        with self._lock:
            self.hits -= 1
            self.misses += 1
            self.other_format.append(key)
        log.info("cache: entry %s is of another format (%s); computing it again", key[:16], reason)

    def drop(self, key: str, reason: str) -> None:
        """Remove a damaged entry (its result is computed again) and say so with -v."""
        if self.root is None:
            return
        with contextlib.suppress(OSError):
            self._path(key).unlink()
        with self._lock:
            self.misses += 1
            self.damaged.append(key)
        log.info("cache: dropped damaged entry %s (%s); computing it again", key[:16], reason)

    def store(self, key: str, entry: Entry) -> None:
        if self.root is None:
            return
        # A cache that cannot be written is only a slower next run.
        with contextlib.suppress(OSError):
            _atomic_write(self._path(key), entry_bytes(entry))


class RunCache:
    """Finished reports, replayed when nothing that shapes them has changed."""

    def __init__(self, root: Path | None) -> None:
        self.root = root / "runs" if root is not None else None

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def folder(self, key: str) -> Path | None:
        return None if self.root is None else self.root / key

    def save(self, key: str, report: Path, manifest: dict[str, Any], keep: int = 8) -> None:
        """Keep ``report``'s files under ``key`` (hard links where possible)."""
        folder = self.folder(key)
        if folder is None:
            return
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            temp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
            try:
                _link_files(
                    report, temp, [f["path"] for f in manifest["files"]] + ["manifest.json"]
                )
                seal = {
                    "format": FORMAT,
                    "manifest_sha256": _sha256_file(temp / "manifest.json"),
                }
                _atomic_write(temp / RUN_SEAL, json.dumps(seal).encode("utf-8"))
                if folder.exists():
                    shutil.rmtree(folder, ignore_errors=True)
                os.replace(temp, folder)
            except BaseException:
                shutil.rmtree(temp, ignore_errors=True)
                raise
            self._prune(keep)
        except OSError:
            pass

    def _prune(self, keep: int) -> None:
        assert self.root is not None
        runs = [p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")]
        runs.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        for old in runs[keep:]:
            shutil.rmtree(old, ignore_errors=True)

    def replay(
        self,
        key: str,
        into: Path | Callable[[str], Path],
        read_manifest: Callable[[Path], dict[str, Any]],
    ) -> dict[str, Any] | None:
        """Put a kept report's files under ``into``; its manifest, or None on a miss, a
        manifest that does not match the sha256 kept with it, a path that leaves the
        report, or any file that no longer matches its sha256 (then the kept report is
        dropped). ``into``: the staging folder, or its ``path_of`` (where each report
        path goes; a folder gets ``confined_path``, the same rule).
        ``read_manifest``: the report stage's one manifest reader (raises on a bad one)."""
        folder = self.folder(key)
        if folder is None or not (folder / "manifest.json").is_file():
            return None
        place = into if callable(into) else (lambda relpath: confined_path(into, relpath))
        try:
            seal = json.loads(read_regular_no_link(folder / RUN_SEAL))
            if not isinstance(seal, dict) or seal.get("format") != FORMAT:
                raise DamagedEntry("kept by another version of reportgen")
            if _sha256_file(folder / "manifest.json") != seal.get("manifest_sha256"):
                raise DamagedEntry("its manifest.json does not match its sha256")
            manifest = read_manifest(folder)
            files = manifest["files"]
            pairs = []
            for item in files:
                relpath = item["path"]
                if relpath in ("manifest.json", RUN_SEAL):
                    raise DamagedEntry(f"it lists {relpath!r} as a file of the report")
                source, target = confined_path(folder, relpath), place(relpath)
                data = read_regular_no_link(source)
                if len(data) != item["bytes"] or hashlib.sha256(data).hexdigest() != item["sha256"]:
                    raise DamagedEntry(f"{relpath} does not match its sha256")
                pairs.append((source, target))
            _link_pairs(pairs)
            os.utime(folder)
        except (OSError, ValueError, KeyError, TypeError, ReportgenError) as exc:
            shutil.rmtree(folder, ignore_errors=True)
            if not isinstance(exc, FileNotFoundError) or exc.filename != str(folder / RUN_SEAL):
                log.info("cache: dropped damaged kept report %s (%s)", key[:16], exc)
            return None
        return manifest


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(read_regular_no_link(path)).hexdigest()


def _link_files(source: Path, target: Path, relpaths: Iterable[str]) -> None:
    _link_pairs(
        (confined_path(source, relpath), confined_path(target, relpath)) for relpath in relpaths
    )


def _link_pairs(pairs: Iterable[tuple[Path, Path]]) -> None:
    """Hard-link (else copy) each source file to its target."""
    made: set[Path] = set()
    link: Callable[[Any, Any], Any] = os.link
    for src, dst in pairs:
        if dst.parent not in made:
            dst.parent.mkdir(parents=True, exist_ok=True)
            made.add(dst.parent)
        try:
            link(src, dst)
        except OSError:
            link = shutil.copyfile  # another file system, or no links: copy from now on
            link(src, dst)
