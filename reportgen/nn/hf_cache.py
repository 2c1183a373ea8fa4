"""Hugging Face's hub cache on disk, read as ``huggingface_hub`` lays it out:
``<cache>/models--OWNER--NAME/refs/main`` holds a revision, and
``snapshots/<revision>/<file>`` is the file (a link into ``blobs/``).

Finding a file here needs no network and no ``huggingface_hub``; only a download
(when not offline) does. Nothing here imports torch: the run's cache key reads it too.
"""

from __future__ import annotations

import os
from pathlib import Path

from reportgen.errors import ReportgenError

OFFLINE_ENV = "REPORTGEN_OFFLINE"
_TRUE = ("1", "true", "yes", "on")


def hub_cache_dir() -> Path:
    """The folder ``huggingface_hub`` caches models in, from the environment as it reads
    it now (``HF_HUB_CACHE``, else ``HF_HOME/hub``, else ``~/.cache/huggingface/hub``)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "huggingface" / "hub"


def hub_offline(offline: bool) -> bool:
    """No network for weights: ``--offline``, ``REPORTGEN_OFFLINE`` or ``HF_HUB_OFFLINE``."""
    if offline:
        return True
    if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        return True
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def repo_folder(cache: Path, repo_id: str) -> Path:
    return cache / ("models--" + repo_id.replace("/", "--"))


def snapshot_folder(cache: Path, repo_id: str) -> Path | None:
    """The snapshot ``refs/main`` points at; without refs, the only snapshot there is."""
    folder = repo_folder(cache, repo_id)
    ref = folder / "refs" / "main"
    if ref.is_file():
        revision = ref.read_text(encoding="utf-8").strip()
        snapshot = folder / "snapshots" / revision
        return snapshot if revision and snapshot.is_dir() else None
    snapshots = folder / "snapshots"
    found = sorted(p for p in snapshots.iterdir() if p.is_dir()) if snapshots.is_dir() else []
    return found[0] if len(found) == 1 else None


def cached_file(cache: Path, repo_id: str, filenames: tuple[str, ...]) -> Path | None:
    """The first of ``filenames`` in the repository's cached snapshot, or None."""
    snapshot = snapshot_folder(cache, repo_id)
    if snapshot is None:
        return None
    for name in filenames:
        candidate = snapshot / name
        if candidate.is_file():
            return candidate
    return None


def download_file(cache: Path, repo_id: str, filenames: tuple[str, ...]) -> Path | None:
    """Fetch the first of ``filenames`` the hub has into ``cache``; None when the hub
    cannot be reached or has none of them."""
    import logging

    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError
    except ImportError:
        return None
    hub_log = logging.getLogger("huggingface_hub")
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)  # its "Retrying in 8s" lines are not the user's error
    try:
        for name in filenames:
            try:
                return Path(hf_hub_download(repo_id, name, cache_dir=str(cache)))
            except LocalEntryNotFoundError:
                return None  # the hub is not reachable: the next file would not be either
            except EntryNotFoundError:
                continue  # the repository has no such file: try the next name
            except Exception:  # noqa: BLE001 - no such repository, refused, ...
                return None
    finally:
        hub_log.setLevel(level)
    return None


def find_hub_weights(
    repo_id: str, filenames: tuple[str, ...], *, offline: bool, model: str
) -> Path:
    """The checkpoint of ``repo_id`` from the cache, downloaded first when allowed; an
    error naming the repository, the folder looked in and the ways out otherwise."""
    cache = hub_cache_dir()
    found = cached_file(cache, repo_id, filenames)
    no_network = hub_offline(offline)
    if found is None and not no_network:
        found = download_file(cache, repo_id, filenames)
    if found is not None:
        return found
    how = (
        "downloads are off (--offline, REPORTGEN_OFFLINE or HF_HUB_OFFLINE)"
        if no_network
        else "downloading it failed"
    )
    raise ReportgenError(
        f"weights for {model!r} (Hugging Face repository {repo_id}, {' or '.join(filenames)}) "
        f"not found in the cache {repo_folder(cache, repo_id)}, and {how}; fetch them once "
        f"where the hub is reachable (or set HF_HOME / HF_HUB_CACHE to a cache that has "
        f"them), use --weights PATH, or --weights none for random weights"
    )


def hub_fingerprint(repo_id: str) -> list[object]:
    """What a run reading ``repo_id`` from the cache depends on, without reading the
    weights: the cache folder, its revision and the snapshot's files (size, time)."""
    cache = hub_cache_dir()
    snapshot = snapshot_folder(cache, repo_id)
    if snapshot is None:
        return [str(cache), repo_id, None]
    files = []
    for path in sorted(snapshot.iterdir()):
        try:
            info = path.stat()
        except OSError:
            continue
        files.append([path.name, info.st_size, info.st_mtime_ns])
    return [str(cache), repo_id, snapshot.name, files]


def timm_hub_fingerprint(name: str) -> list[object]:
    """``hub_fingerprint`` of every cached repository ``-m timm/NAME`` may read: the
    tag's own, or for a name without a tag those of all the architecture's tags (which
    one is the default is timm's to say, and asking it would import torch)."""
    cache = hub_cache_dir()
    bare = name.removeprefix("timm/")
    if "." in bare:
        return [hub_fingerprint(f"timm/{bare}")]
    prefix = repo_folder(cache, f"timm/{bare}").name
    folders = sorted(cache.glob(prefix + ".*")) if cache.is_dir() else []
    repos = [f"timm/{folder.name[len('models--timm--') :]}" for folder in folders]
    return [str(cache), [hub_fingerprint(repo) for repo in repos]]
