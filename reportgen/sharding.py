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
from typing import TYPE_CHECKING, Any

from reportgen.errors import ReportgenError, UsageError
from reportgen.options import DETAIL_DEFAULT, InputOptions, RunOptions
from reportgen.pipeline import Progress, build_report
from reportgen.pipeline.inputs import (
    DiscardedOutput,
    find_inputs,
    prepare_inputs,
    usable_warnings,
)
from reportgen.pipeline.models import (
    WorkerSetup,
    cluster_engines,
    load_planned_models,
    model_engine,
    picture_options,
    pictures_label,
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
from reportgen.run_options import run_options
from reportgen.settings import RunSettings
from reportgen.version import __version__

if TYPE_CHECKING:
    from reportgen.compute.model_run import Engine
    from reportgen.nn.models import LoadedModel
    from reportgen.report.output import StagedReport
    from reportgen.results.records import ModelFacts


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
    from reportgen.report.output import StagedReport

    if settings.single_file:
        raise UsageError("--single-file makes a report; a shard holds results (use it on run)")
    options = run_options(settings)
    from reportgen.results.store import cache_root

    cache_dir = cache_root(options.engine.cache_dir, options.engine.no_cache)
    files, _ = find_inputs(options.inputs, cache_dir)
    mine = files[part_slice(len(files), part, parts, options.compute.batch_size)]
    _, models, facts, warnings = load_planned_models(options.models, options.compute)
    with StagedReport(Path(options.report.output), shard=True) as staged:
        entries = _ShardEntries(staged)
        computed = _compute_part(
            options, (files, mine), (models, facts), entries, (cache_dir, (part, parts)), progress
        )
        records, skipped, model_records, notes = computed
        warnings.extend(notes)
        record = {
            "format": SHARD_FORMAT,
            "reportgen": __version__,
            "code": _code_fingerprint(),
            "part": [part, parts],
            "inputs_found": len(files),
            "torch_threads": _torch_threads(),
            "settings": dict(options.recorded),
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
        shard=str(Path(options.report.output)),
        part=(part, parts),
        inputs=[r.source for r in records],
        skipped=[{"source": s.source, "reason": s.reason} for s in skipped],
        models=[f.id for f in facts],
        entries=len(entries.listed),
        warnings=warnings,
    )


def _code_fingerprint() -> str:
    from reportgen.results.store import code_fingerprint

    return code_fingerprint()


def _compute_part(
    options: RunOptions,
    found: tuple[list[Any], list[Any]],
    planned: tuple[list[LoadedModel], list[ModelFacts]],
    entries: _ShardEntries,
    where: tuple[Path | None, tuple[int, int]],
    progress: Progress | None,
) -> tuple[list[Any], list[Any], list[dict[str, Any]], list[str]]:
    """The part's inputs (``found``: the run's and the part's) through every model
    (``planned``: the models and their layers) into ``entries``, and its share of the
    feature visualisations (``where``: the cache folder, the part K of N): the inputs'
    records, the skipped ones, each model's record for shard.json, and the warnings."""
    from reportgen.compute.encoding import ImageEncoder

    files, mine = found
    models, facts = planned
    cache_dir, share = where

    views = [(m.preprocessing.resize_size, m.preprocessing.crop_size) for m in models]
    encoder = ImageEncoder(options.engine.workers(os.cpu_count()))
    try:
        records, usable, skipped = prepare_inputs(mine, [], DiscardedOutput(), encoder, views)
        if options.inputs.strict and skipped:
            usable_warnings(options.inputs, len(mine), usable, skipped)
        warnings = [f"skipped input {item.source!r}: {item.reason}" for item in skipped]
        detail = frozenset(_detail_of_run(files, views, options.inputs))
        pictures = picture_options(options.pictures, detail, encode=True)
        work = WorkerSetup(options.models, options.compute, pictures, options.recorded)
        input_sha = {r.id: r.sha256 for r in records}
        with cluster_engines(options.engine, work) as engines:
            model_records = [
                _shard_model(
                    _ShardModel(model, model_facts, work, input_sha, cache_dir),
                    usable,
                    model_engine(engines, model, model_facts, work, encoder),
                    entries,
                    progress,
                )
                for model, model_facts in zip(models, facts)
            ]
            warnings.extend(_shard_feature_vis(options, planned, engines, entries, where))
        encoder.drain()
    finally:
        encoder.close()
    return records, skipped, model_records, warnings


class _ShardEntries:
    """The shard's result entries, written into its staging folder and listed with their
    hashes, one per content (inputs with the same bytes share a result, as in the cache)."""

    def __init__(self, staged: StagedReport) -> None:
        self.staged = staged
        self.listed: list[dict[str, Any]] = []
        self._paths: set[str] = set()

    def add(self, key: str, model_id: str, result: Any) -> None:
        from reportgen.results.store import result_entry

        self.write(key, model_id, result.input_id, result_entry(result))

    def write(self, key: str, model_id: str, what: str, entry: Any) -> None:
        """An entry under ``key``, listed with ``what`` it holds (an input's id, or a
        unit of feature visualisations)."""
        from reportgen.results.store import entry_bytes, entry_relpath

        relpath = entry_relpath(key)
        if relpath in self._paths:
            return
        self._paths.add(relpath)
        self.staged.write(relpath, entry_bytes(entry))
        digest, size = self.staged.recorded(relpath)
        self.listed.append(
            {"path": relpath, "model": model_id, "input": what, "bytes": size,
             "sha256": digest}
        )  # fmt: skip


def _shard_feature_vis(
    options: RunOptions,
    planned: tuple[list[LoadedModel], list[ModelFacts]],
    engines: Any,
    entries: _ShardEntries,
    where: tuple[Path | None, tuple[int, int]],
) -> list[str]:
    """With ``--fv-channels all``, the part's share of the run's units of feature
    visualisation (every model's, in order, cut as inputs are: ``part_slice``) into the
    shard, each through the one cache branch; where a merge finds them. With
    ``selected`` the channels are chosen over every part's inputs: the merge optimises
    them (a warning says so). Returns the warnings."""
    from reportgen.compute.featurevis import (
        local_optimiser,
        plan_units,
        stored_else_optimised,
        unit_entry,
        unit_key,
    )
    from reportgen.results.store import InputCache

    fv = options.feature_vis
    if not fv.enabled:
        return []
    if fv.channels != "all":
        return [
            "--fv-channels selected chooses channels over every part's inputs: the merge "
            "optimises the feature visualisations (--fv-channels all shares them out)"
        ]
    cache_dir, (part, parts) = where
    work = [
        (model, unit)
        for model, facts in zip(*planned)
        for unit in plan_units([(la.name, list(range(la.channels))) for la in facts.layers], fv)
    ]
    mine = work[part_slice(len(work), part, parts)]
    store = InputCache(cache_dir)
    for model in planned[0]:
        units = [unit for owner, unit in mine if owner is model]
        if engines is None:
            optimiser = (local_optimiser(model, fv), 0)
        else:
            from reportgen.compute.fv_tasks import cluster_optimiser

            facts = planned[1][planned[0].index(model)]
            optimiser = cluster_optimiser(engines, model.id, facts, fv)
        keys = [unit_key(model, unit, fv) for unit in units]
        for unit, key, found in stored_else_optimised(units, keys, store, *optimiser):
            label = f"featurevis {unit.layer} from {unit.start}"
            entries.write(str(key), model.id, label, unit_entry(found))
    return []


@dataclasses.dataclass(frozen=True)
class _ShardModel:
    """One model of the part, with what its results are keyed by."""

    model: LoadedModel
    facts: ModelFacts
    work: WorkerSetup
    input_sha: dict[str, str]
    cache_dir: Path | None


def _shard_model(
    shard_model: _ShardModel,
    usable: list[Any],
    engine: Engine,
    entries: _ShardEntries,
    progress: Progress | None,
) -> dict[str, Any]:
    """One model's results of the part into the shard (through the one cache branch, in
    input order: the entry list is deterministic); its record for shard.json."""
    from reportgen.compute.cached import ResultStore, model_key
    from reportgen.compute.model_run import run_inputs
    from reportgen.results.store import weights_file_identity

    model, facts, work = shard_model.model, shard_model.facts, shard_model.work
    key = model_key(model, work.recorded, pictures_label(work.pictures))
    store = ResultStore(
        shard_model.cache_dir,
        key,
        shard_model.input_sha,
        facts.layers,
        work.pictures.detail,
        contributions=facts.contribution_fields,
    )

    def keep(result: Any, _index: int) -> None:
        entries.add(str(store.input_key(result.input_id)), facts.id, result)

    run_inputs(facts, usable, work.compute, work.pictures.detail, store, engine, keep, progress)
    return {
        "id": facts.id,
        "spec": model.name,
        "weights": weights_file_identity(model.weights) or model.weights.describe(),
        "result_key": key,
    }


def _detail_of_run(files: list[Any], views: list[Any], inputs: InputOptions) -> set[str]:
    """The run's detail inputs, as ``run`` chooses them among its usable inputs (a detail
    input's result holds every map, and is keyed so). "The first N" needs to know which
    of the first inputs are usable: those are read until N are found, whatever part
    this is; names, globs and "all" need no reading."""
    from reportgen.inputs.detail import detail_inputs, is_count
    from reportgen.inputs.files import load_image

    words = [d.strip() for d in inputs.detail]
    if words and not (len(words) == 1 and is_count(words[0])):
        return detail_inputs(files, inputs.detail, DETAIL_DEFAULT)
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
    return detail_inputs(usable, inputs.detail, DETAIL_DEFAULT)


def merge_shards(
    folders: list[str],
    progress: Progress | None = None,
    factories: tuple[str, ...] = (),
    **runtime: Any,
) -> RunSummary:
    """The report of the run the shards in ``folders`` are parts of (in any order), at
    ``runtime["output"]``: byte for byte the report ``reportgen run`` with the same
    settings writes. The inputs and weights must be where the shards' run found them
    (the same paths, relative to the working folder): they are read again (thumbnails,
    sha256, dataset-example crops, the model's filters), but not run through the
    network. A shard is data: code it names (a custom model) is imported only when it
    is among ``factories`` (merge's own -m)."""
    from reportgen.results.shard_record import check_factories
    from reportgen.results.store import code_fingerprint

    shards = check_same_run([read_shard(folder) for folder in folders])
    for shard in shards:
        check_factories(shard.name, shard.record["settings"].get("models", []), factories)
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
    try:
        run_options(settings, writes=False)
    except UsageError as exc:  # the shard's values: damaged, not mistyped by the user
        raise ReportgenError(f"shard {first.name!r}: {SHARD_FILE} settings: {exc}") from exc
    options = run_options(settings)  # and now where the merge writes
    _check_inputs_unchanged(shards, options.inputs)
    return build_report(options, progress, shard_roots=tuple(s.folder for s in shards))


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _check_inputs_unchanged(shards: list[Any], inputs: InputOptions) -> None:
    """The inputs the merge finds are those the shards were cut from: an input added or
    removed since moves every part's boundaries (and the report would silently be
    another run's)."""
    from reportgen.inputs.discovery import discover_inputs

    files, _ = discover_inputs(inputs.arguments)
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
