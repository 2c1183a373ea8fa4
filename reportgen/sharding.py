"""``reportgen shard`` and ``reportgen merge``: one run's per-input work split over
machines, then one report made from the parts (docs/scaling.md).

* ``build_shard``: the inputs are found as ``run`` finds them; part K of N (a
  contiguous block) goes through the normal local computation (the network, the
  encoders, the user's cache through the one cache branch), and every complete result
  is written as a cache entry into the shard folder, beside its ``shard.json``
  (``results.shards``). Built in staging and swapped into place like a report.
* ``merge_shards``: the shards are read and checked (one run, every part once, each
  entry as listed), and the report is built by the normal pipeline with the shards as
  read-only result stores that must hold every result: no forward pass over an input.

Orchestration beside ``pipeline``: it joins the computation and the result format.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from reportgen.errors import ReportgenError, UsageError
from reportgen.pipeline import (
    DiscardedOutput,
    Progress,
    build_report,
    check_usable,
    cluster_engines,
    find_inputs,
    load_planned_models,
    model_engine,
    picture_options,
    pictures_label,
    prepare_inputs,
    validate_settings,
)
from reportgen.report.output import SHARD_FILES_FORMAT
from reportgen.results.shards import (
    SHARD_FILE,
    SHARD_FORMAT,
    check_same_run,
    part_slice,
    read_shard,
    settings_of,
    shard_text,
    verify_entries,
)
from reportgen.results.summary import RunSummary
from reportgen.settings import DETAIL_DEFAULT, RunSettings, report_settings
from reportgen.version import __version__


@dataclasses.dataclass(frozen=True)
class ShardSummary:
    shard: str
    part: tuple[int, int]
    inputs: list[str]  # the part's usable inputs
    skipped: list[dict[str, str]]
    models: list[str]
    entries: int
    warnings: list[str]


def build_shard(
    settings: RunSettings, part: int, parts: int, progress: Progress | None = None
) -> ShardSummary:
    """Compute part ``part`` of ``parts`` of the run ``settings`` describes and put it, as
    a shard, at ``settings.output``."""
    from reportgen.compute.encoding import ImageEncoder
    from reportgen.report.output import StagedReport
    from reportgen.results.store import cache_root, code_fingerprint

    if settings.single_file:
        raise UsageError("--single-file makes a report; a shard holds results (use it on run)")
    validate_settings(settings)
    files, _ = find_inputs(settings)
    mine = files[part_slice(len(files), part, parts, settings.batch_size)]
    warnings: list[str] = []
    _, models, facts = load_planned_models(settings, warnings)
    views = [(m.preprocessing.resize_size, m.preprocessing.crop_size) for m in models]
    cache_dir = cache_root(settings.cache_dir, settings.no_cache)
    jobs = settings.jobs or os.cpu_count() or 1
    with StagedReport(Path(settings.output), shard=True) as staged:
        entries = _ShardEntries(staged)
        encoder = ImageEncoder(jobs)
        try:
            records, usable, skipped = prepare_inputs(mine, [], DiscardedOutput(), encoder, views)
            if settings.strict and skipped:
                check_usable(settings, mine, [], usable, skipped)  # raises: --strict
            warnings += [f"skipped input {item.source!r}: {item.reason}" for item in skipped]
            detail = frozenset(_detail_of_run(files, views, settings))
            options = picture_options(settings, detail, encode=True)
            input_sha = {r.id: r.sha256 for r in records}
            with cluster_engines(settings, options) as engines:
                model_records = [
                    _shard_model(
                        model,
                        model_facts,
                        usable,
                        settings,
                        options,
                        input_sha,
                        cache_dir,
                        model_engine(engines, model, model_facts, settings, options, encoder),
                        entries,
                        progress,
                    )  # fmt: skip
                    for model, model_facts in zip(models, facts)
                ]
            encoder.drain()
        finally:
            encoder.close()
        record = {
            "format": SHARD_FORMAT,
            "reportgen": __version__,
            "code": code_fingerprint(),
            "part": [part, parts],
            "inputs_found": len(files),
            "torch_threads": _torch_threads(),
            "settings": report_settings(settings),
            "models": model_records,
            "inputs": [{"id": r.id, "source": r.source, "sha256": r.sha256} for r in records],
            "entries": entries.listed,
        }
        staged.write(SHARD_FILE, shard_text(record))
        staged.commit(
            {
                "format": SHARD_FILES_FORMAT,
                "generator": {"name": "reportgen", "version": __version__},
                "files": staged.file_list(),
            }
        )
    return ShardSummary(
        shard=str(Path(settings.output)),
        part=(part, parts),
        inputs=[r.source for r in records],
        skipped=[{"source": s.source, "reason": s.reason} for s in skipped],
        models=[f.id for f in facts],
        entries=len(entries.listed),
        warnings=warnings,
    )


class _ShardEntries:
    """The shard's result entries, written into its staging folder and listed with their
    hashes, one per content (inputs with the same bytes share a result, as in the cache)."""

    def __init__(self, staged: Any) -> None:
        self.staged = staged
        self.listed: list[dict[str, Any]] = []
        self._paths: set[str] = set()

    def add(self, key: str, model_id: str, result: Any) -> None:
        from reportgen.results.store import entry_bytes, entry_relpath, result_entry

        relpath = entry_relpath(key)
        if relpath in self._paths:
            return
        self._paths.add(relpath)
        self.staged.write(relpath, entry_bytes(result_entry(result)))
        digest, size = self.staged.recorded(relpath)
        self.listed.append(
            {"path": relpath, "model": model_id, "input": result.input_id, "bytes": size,
             "sha256": digest}
        )  # fmt: skip


def _shard_model(
    model: Any,
    facts: Any,
    usable: list[Any],
    settings: RunSettings,
    options: Any,
    input_sha: dict[str, str],
    cache_dir: Path | None,
    engine: Any,
    entries: _ShardEntries,
    progress: Progress | None,
) -> dict[str, Any]:
    """One model's results of the part into the shard (through the one cache branch, in
    input order: the entry list is deterministic); its record for shard.json."""
    from reportgen.compute.cached import ResultStore, model_key
    from reportgen.compute.model_run import run_inputs
    from reportgen.results.store import weights_file_identity

    key = model_key(model, settings, pictures_label(options))
    store = ResultStore(cache_dir, key, input_sha, facts.layers, options.detail)

    def keep(result: Any, _index: int) -> None:
        entries.add(str(store.input_key(result.input_id)), facts.id, result)

    run_inputs(facts, usable, settings, options, store, engine, keep, progress)
    return {
        "id": facts.id,
        "spec": model.name,
        "weights": weights_file_identity(model.weights) or model.weights.describe(),
        "result_key": key,
    }


def _detail_of_run(files: list[Any], views: list[Any], settings: RunSettings) -> set[str]:
    """The run's detail inputs, as ``run`` chooses them among its usable inputs (a detail
    input's result holds every map, and is keyed so). "The first N" needs to know which
    of the first inputs are usable: those are read until N are found, whatever part
    this is; names, globs and "all" need no reading."""
    from reportgen.inputs.detail import detail_inputs
    from reportgen.inputs.files import load_image

    words = [d.strip() for d in settings.detail]
    if words and not (len(words) == 1 and words[0].isdigit()):
        return detail_inputs(files, settings.detail, DETAIL_DEFAULT)
    wanted = int(words[0]) if words else DETAIL_DEFAULT
    usable: list[Any] = []
    for file in files:
        if len(usable) >= wanted:
            break
        try:
            load_image(file, views)
        except ReportgenError:
            continue
        usable.append(file)
    return detail_inputs(usable, settings.detail, DETAIL_DEFAULT)


def merge_shards(
    folders: list[str], progress: Progress | None = None, **runtime: Any
) -> RunSummary:
    """The report of the run the shards in ``folders`` are parts of (in any order), at
    ``runtime["output"]``: byte for byte the report ``reportgen run`` with the same
    settings writes. The inputs and weights must be where the shards' run found them
    (the same paths, relative to the working folder): they are read again (thumbnails,
    sha256, dataset-example crops, the model's filters), but not run through the
    network."""
    from reportgen.results.store import code_fingerprint

    shards = check_same_run([read_shard(folder) for folder in folders])
    output = os.path.realpath(runtime["output"])
    for shard in shards:
        folder = os.path.realpath(shard.folder)
        if output == folder or output.startswith(folder + os.sep):
            raise UsageError(
                f"-o {runtime['output']!r} is the shard {shard.name!r}, which the merge "
                "reads: choose another -o"
            )
    for shard in shards:
        verify_entries(shard)
    first = shards[0]
    if first.record["reportgen"] != __version__:
        raise ReportgenError(
            f"{first.name} was made by reportgen {first.record['reportgen']}; this is "
            f"reportgen {__version__}: merge with the version that made the shards"
        )
    if first.record["code"] != code_fingerprint():
        raise ReportgenError(
            f"{first.name} was made by other reportgen code than this one (code "
            "fingerprints differ: a changed source file, or other torch/numpy/Pillow "
            "versions): merge with the installation that made the shards"
        )
    # The merge reads only the shards: the cache is neither read nor written.
    settings = settings_of(first, **runtime, no_cache=True)
    _check_inputs_unchanged(shards, settings)
    return build_report(settings, progress, shard_roots=tuple(s.folder for s in shards))


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _check_inputs_unchanged(shards: list[Any], settings: RunSettings) -> None:
    """The inputs the merge finds are those the shards were cut from: an input added or
    removed since moves every part's boundaries (and the report would silently be
    another run's)."""
    from reportgen.inputs.files import discover_inputs

    files, _ = discover_inputs(settings.inputs)
    found = len(files)  # as build_shard counts them
    expected = shards[0].record["inputs_found"]
    ids = {f.id for f in files}
    missing = sorted(i["source"] for s in shards for i in s.record["inputs"] if i["id"] not in ids)
    if found != expected or missing:
        detail = f"; missing: {missing[0]!r}" if missing else ""
        raise ReportgenError(
            f"the inputs changed since the shards were made: the merge finds {found}, "
            f"the shards were cut from {expected}{detail}; make the shards again"
        )
