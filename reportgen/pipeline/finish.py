"""After every model: the report's data from the merged results (``report_data``), the
pages and manifest into the staging folder (``write_report``), and a kept report put in
place instead of a run (``replay_run``)."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reportgen.errors import UsageError
from reportgen.inputs.files import SkippedInput
from reportgen.pipeline.inputs import ReportOutput
from reportgen.pipeline.models import ModelRun
from reportgen.report.data import InputRecord, ModelRecord, ReportData, SkippedRecord
from reportgen.results.summary import RunSummary
from reportgen.version import __version__

Progress = Callable[[int], None]


def creation_time() -> str:
    """UTC creation time; ``SOURCE_DATE_EPOCH`` makes it reproducible."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        try:
            moment = _dt.datetime.fromtimestamp(int(epoch), tz=_dt.timezone.utc)
        except ValueError as exc:
            raise UsageError(
                f"SOURCE_DATE_EPOCH={epoch!r} is not a whole number of seconds"
            ) from exc
    else:
        moment = _dt.datetime.now(tz=_dt.timezone.utc).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


def environment(device: Any) -> dict[str, str]:
    import torch
    import torchvision

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "device": str(device),
    }


@dataclass(frozen=True)
class RunRecord:
    """What the report says about the run besides its results."""

    shown: Mapping[str, Any]  # the settings as the manifest records them
    device: Any
    sheets: bool  # maps tiled into sheets (folder reports)
    overlay_files: bool
    colorbar: str


def report_data(
    run: RunRecord,
    inputs: list[InputRecord],
    skipped: list[SkippedInput],
    runs: list[ModelRun],
    warnings: list[str],
) -> ReportData:
    from reportgen.report import statsfile
    from reportgen.report.classes import add_classes
    from reportgen.report.compare import compare_all
    from reportgen.report.records import model_record

    records: list[ModelRecord] = []
    for model_run in runs:
        tables = {name: table.read() for name, table in model_run.stats.items()}
        record = model_record(model_run.results, tables, run.sheets, run.overlay_files)
        add_classes(record, model_run.results, tables, model_run.results.facts.stats_fields)
        for layer in record.layers:
            table = model_run.stats[layer.name]
            if isinstance(table, statsfile.StatsFile):
                layer.stats_file = statsfile.describe(table.relpath, *table.shape[:2], table.fields)
        records.append(record)
    results = [model_run.results for model_run in runs]
    return ReportData(
        title="reportgen report",
        created=creation_time(),
        generator_version=__version__,
        environment=environment(run.device),
        settings=dict(run.shown),
        inputs=inputs,
        skipped=[SkippedRecord(s.source, s.reason) for s in skipped],
        models=records,
        warnings=warnings,
        colorbar=run.colorbar,
        comparisons=compare_all(
            [r.facts for r in results], records, {i.id for i in inputs if i.detail}
        ),
    )


def attach_statistics(analysis: dict[str, Any], runs: list[ModelRun]) -> None:
    """analyze(): every input's statistics as arrays [input, channel, field]."""
    for entry, model_run in zip(analysis["models"], runs):
        for layer in entry["layers"]:
            layer["stats"] = model_run.stats[layer["name"]].read()
            layer["stats_fields"] = list(model_run.stats[layer["name"]].fields)


@dataclass(frozen=True)
class Written:
    """Where and how the pages went."""

    output: str
    single_file: bool
    max_single_file_mb: float
    jobs: int
    started: float


def write_report(data: ReportData, staged: ReportOutput, how: Written) -> RunSummary:
    """Pages and manifest into the staging folder (committed: swapped into place when the
    staging context ends). The summary's ``extra`` carries the manifest (or, analysis
    only, the analysis)."""
    from reportgen.report.manifest import build_manifest
    from reportgen.report.output import StagedReport
    from reportgen.report.site import write_single_file_report, write_site

    extra: dict[str, Any] = {}
    if not isinstance(staged, StagedReport):  # analysis only
        pages, file_list = 0, list[dict[str, Any]]()
        extra["analysis"] = build_manifest(data, [])
    elif how.single_file:
        pages, notes = write_single_file_report(
            data, staged, build_manifest, how.max_single_file_mb
        )
        data.warnings.extend(notes)
        file_list = []
    else:
        pages = write_site(data, staged, how.jobs)
        file_list = staged.file_list()
        extra["manifest"] = build_manifest(data, file_list)
        staged.commit(extra["manifest"])
    return RunSummary(
        report=str(Path(how.output)),
        inputs=[i.source for i in data.inputs],
        skipped=[{"source": s.source, "reason": s.reason} for s in data.skipped],
        models=[m.id for m in data.models],
        layers={m.id: [layer.name for layer in m.layers] for m in data.models},
        warnings=data.warnings,
        pages=pages,
        files=1 if how.single_file else len(file_list) + 1,
        seconds=round(time.perf_counter() - how.started, 3),
        extra=extra,
    )


def replay_run(
    run_cache: Any, key: str, output: str, started: float, progress: Progress | None
) -> RunSummary | None:
    """A report kept in the cache under ``key``, put in place; None when there is none."""
    from reportgen.report.manifest_file import read_manifest
    from reportgen.report.output import StagedReport

    target = Path(output)
    with StagedReport(target) as staged:
        manifest = run_cache.replay(key, staged.path_of, lambda folder: read_manifest(folder).data)
        if manifest is None:
            return None
        staged.commit(manifest)  # writes manifest.json anew: the kept copy stays untouched
    if progress:
        progress(len(manifest["inputs"]))
    files = manifest["files"]
    return RunSummary(
        report=str(target),
        inputs=[i["source"] for i in manifest["inputs"]],
        skipped=[{"source": s["source"], "reason": s["reason"]} for s in manifest["skipped"]],
        models=[m["id"] for m in manifest["models"]],
        layers={m["id"]: [layer["name"] for layer in m["layers"]] for m in manifest["models"]},
        warnings=list(manifest["warnings"]),
        pages=sum(1 for f in files if f["path"].endswith(".html")),
        files=len(files) + 1,
        seconds=round(time.perf_counter() - started, 3),
        extra={"cache": "replayed"},
    )
