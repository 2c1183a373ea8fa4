"""How the pipeline uses the cache: keys for whole runs and per-input results,
replaying a finished report, looking results up and storing them."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reportgen.compute.model_setup import split_model_spec
from reportgen.inputs.files import (
    InputFile,
    SkippedInput,
)
from reportgen.results.summary import RunSummary
from reportgen.settings import RunSettings, maps_in_sheets, report_settings

if TYPE_CHECKING:
    from reportgen.compute.model_pass import LayerPlan

Progress = Callable[[int], None]


def run_cache_key(
    settings: RunSettings, files: list[InputFile], skipped: list[SkippedInput]
) -> str:
    """Everything that shapes a report, hashed without torch: reportgen's code, every
    setting but -o, each input's id, source and content, the weights files."""
    import hashlib

    from reportgen.results.store import code_fingerprint, digest, weights_fingerprint

    contents = []
    for file in files:
        try:
            content = hashlib.sha256(file.path.read_bytes()).hexdigest()
        except OSError as exc:
            content = f"unreadable: {exc}"
        contents.append([file.id, file.source, content])
    specs = {settings.weights, *(split_model_spec(m, settings.weights)[1] for m in settings.models)}
    shape = {"single_file": settings.single_file, "strict": settings.strict}
    return digest(
        "run",
        code_fingerprint(),
        report_settings(settings),
        shape,
        contents,
        [[s.source, s.reason] for s in skipped],
        {spec: weights_fingerprint(spec, settings.weights_dir) for spec in sorted(specs)},
        os.environ.get("SOURCE_DATE_EPOCH"),
        os.environ.get("REPORTGEN_OFFLINE"),
        settings.device,
    )


def replay_run(
    run_cache: Any, key: str, settings: RunSettings, started: float, progress: Progress | None
) -> RunSummary | None:
    """A report kept in the cache under ``key``, put in place; None when there is none."""
    from reportgen.report.output import StagedReport

    target = Path(settings.output)
    with StagedReport(target) as staged:
        manifest = run_cache.replay(key, staged.root)
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


STAT_ARRAYS = ("mean", "max", "min", "std", "sparsity", "argmax_y", "argmax_x")


class InputCacheContext:
    """The per-input cache as the pipeline uses it (``None`` root: caching off)."""

    def __init__(self, root: Path | None, input_sha: dict[str, str] | None = None) -> None:
        from reportgen.results.store import InputCache

        self.store = InputCache(root)
        self.input_sha = input_sha or {}

    @property
    def enabled(self) -> bool:
        return self.store.enabled

    def model_key(self, model: Any, settings: RunSettings) -> str:
        if not self.enabled:
            return ""
        import torch

        from reportgen.results.store import code_fingerprint, digest, weights_file_identity

        weights = model.weights
        identity = weights_file_identity(weights)
        recorded = {k: v for k, v in report_settings(settings).items() if k not in NOT_IN_INPUT_KEY}
        return digest(
            "input-results",
            code_fingerprint(),
            torch.__version__,
            model.name,
            weights.describe(),
            identity,
            model.preprocessing.describe(),
            str(model.device),
            recorded,
            "map sheets" if maps_in_sheets(settings) else "map files",
        )

    def _key(self, model_key: str, input_id: str, part: str) -> str:
        from reportgen.results.store import digest

        return digest(model_key, part, self.input_sha.get(input_id, input_id))

    def lookup(self, model_key: str, input_id: str, plans: list[LayerPlan]) -> Any:
        """The input's cached results for every planned layer, or None (then all are
        computed again: the network runs for the whole input anyway)."""
        if not self.enabled or input_id not in self.input_sha:
            return None
        from reportgen.analysis.stats import ChannelStats
        from reportgen.results.store import Entry

        top = self.store.load(self._key(model_key, input_id, "input"))
        if top is None or "view" not in top.blobs:
            return None
        layers = {}
        for plan in plans:
            entry = self.store.load(self._key(model_key, input_id, layer_part(plan)))
            if entry is None or any(name not in entry.arrays for name in STAT_ARRAYS):
                return None
            stats = ChannelStats(
                **{name: entry.arrays[name] for name in STAT_ARRAYS},
                map_size=tuple(entry.header["map_size"]),
            )
            layers[plan.name] = {
                "stats": stats,
                "range": tuple(entry.header.get("range", (0.0, 0.0))),
                "blobs": entry.blobs,
            }
        header = {
            "predictions": top.header["predictions"],
            "gradcam": top.header.get("gradcam", []),
            "layers": layers,
        }
        return Entry(header, {}, top.blobs)

    def builder(self, model_key: str, input_id: str, part: str, header: dict[str, Any]) -> Any:
        if not self.enabled or input_id not in self.input_sha:
            return None
        from reportgen.results.store import Entry, EntryBuilder

        return EntryBuilder(self.store, self._key(model_key, input_id, part), Entry(dict(header)))


def layer_part(plan: LayerPlan) -> str:
    return f"layer:{plan.name}:{list(plan.output_shape)}"


# Options that change no per-input result (or are keyed otherwise: the model, weights).
NOT_IN_INPUT_KEY = {
    "inputs",
    "output",
    "models",
    "model_labels",
    "batch_size",
    "weights",
    "weights_dir",
    # Feature visualisation changes no per-input result; its own entries carry these.
    "feature_vis",
    "fv_steps",
    "fv_size",
    "fv_channels",
    "fv_negative",
}
