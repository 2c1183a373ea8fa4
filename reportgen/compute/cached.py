"""The cache, as the computation sees it: keys for whole runs and per-input results, and
the ONE branch: each input's stored result, else compute it and store it.

Nothing else in the computation knows about the cache: a stored result and a computed
one are the same ``InputResult``, and go the same way to the report."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from functools import partial
from pathlib import Path
from typing import Any

from reportgen.compute.model_setup import split_model_spec
from reportgen.errors import ReportgenError
from reportgen.inputs.files import InputFile, SkippedInput
from reportgen.inputs.safe_read import read_input_bytes
from reportgen.nn.models import LoadedModel
from reportgen.options import ModelOptions, RunOptions
from reportgen.results.records import InputResult, LayerFacts
from reportgen.results.store import (
    EntryMismatch,
    InputCache,
    result_entry,
    result_from_entry,
)


def run_cache_key(options: RunOptions, files: list[InputFile], skipped: list[SkippedInput]) -> str:
    """Everything that shapes a report, hashed without torch: reportgen's code, every
    setting but -o, each input's id, source and content, the weights files."""
    import hashlib

    from reportgen.results.store import code_fingerprint, digest

    contents = []
    for file in files:
        try:
            content = hashlib.sha256(read_input_bytes(file.path, file.source)).hexdigest()
        except (OSError, ReportgenError) as exc:
            content = f"unreadable: {exc}"
        contents.append([file.id, file.source, content])
    shape = {"single_file": options.report.single_file, "strict": options.inputs.strict}
    return digest(
        "run",
        code_fingerprint(),
        dict(options.recorded),
        shape,
        contents,
        [[s.source, s.reason] for s in skipped],
        weights_fingerprints(options.models),
        os.environ.get("SOURCE_DATE_EPOCH"),
        os.environ.get("REPORTGEN_OFFLINE"),
        options.models.device,
    )


def weights_fingerprints(models: ModelOptions) -> dict[str, Any]:
    """Every weights file or folder the run's models may read, by its identity
    (``results.store.weights_fingerprint``), without torch."""
    from reportgen.results.store import weights_fingerprint

    specs = {models.weights, *(split_model_spec(m, models.weights)[1] for m in models.specs)}
    found = {spec: weights_fingerprint(spec, models.weights_dir) for spec in sorted(specs)}
    found.update(timm_hub_fingerprints(models))
    return found


def timm_hub_fingerprints(models: ModelOptions) -> dict[str, Any]:
    """The Hugging Face cache folders that ``-m timm/NAME`` models with ``imagenet``
    weights read (by their files' sizes and times), keyed ``NAME=hub``."""
    from reportgen.nn.hf_cache import timm_hub_fingerprint

    found: dict[str, Any] = {}
    for spec in models.specs:
        name, weights = split_model_spec(spec, models.weights)
        if name.startswith("timm/") and weights.lower() in ("imagenet", "default"):
            found[f"{name}=hub"] = timm_hub_fingerprint(name)
    return found


class ResultStore:
    """Per-input results of one model in the cache (``root`` None: caching off).

    ``read_only_roots``: shards (cache roots that ``reportgen shard`` wrote), looked in
    after ``root`` and never written. ``complete``: every result must be found (a merge
    computes none); a missing one is an error naming the input."""

    def __init__(
        self,
        root: Path | None,
        model_key: str,
        input_sha: dict[str, str],
        layers: tuple[LayerFacts, ...],
        detail: frozenset[str] = frozenset(),
        read_only_roots: tuple[Path, ...] = (),
        complete: bool = False,
        contributions: tuple[str, ...] = (),
    ) -> None:
        self.cache = InputCache(root, read_only_roots)
        self.detail = detail  # detail inputs' results hold every map: keyed apart
        self.model_key = model_key
        self.input_sha = input_sha
        self.layer_names = [layer.name for layer in layers]
        self.shape = [[layer.name, list(layer.output_shape)] for layer in layers]
        self.complete = complete
        self.contributions = contributions  # the contribution fields each result holds

    def _key(self, input_id: str) -> str | None:
        if not self.cache.enabled:
            return None
        return self.input_key(input_id)

    def input_key(self, input_id: str) -> str | None:
        """The key of an input's result (whether or not caching is on): a shard stores
        its results under exactly these keys."""
        if input_id not in self.input_sha:
            return None
        from reportgen.results.store import digest

        detail = input_id in self.detail
        return digest(self.model_key, "input", self.input_sha[input_id], self.shape, detail)

    def load(self, input_id: str) -> InputResult | None:
        key = self._key(input_id)
        entry = self.cache.load(key) if key else None
        if entry is None:
            return None
        try:
            result = result_from_entry(entry, self.layer_names, self.contributions)
        except EntryMismatch as exc:
            assert key is not None
            self.cache.mismatched(key, str(exc))
            return None
        # The key is the input's content: an entry made for another file with the same
        # bytes is this input's result too (a result names its input, nothing else).
        return (
            result
            if result.input_id == input_id
            else dataclasses.replace(result, input_id=input_id)
        )

    def save(self, result: InputResult) -> None:
        key = self._key(result.input_id)
        if key:
            self.cache.store(key, result_entry(result))


Compute = Callable[[list[InputFile]], list["Future[InputResult]"]]


def stored_else_computed(
    store: ResultStore, files: list[InputFile], compute: Compute
) -> list[Future[InputResult]]:
    """The one cache branch: each input's stored result, else compute it (the missing
    inputs of the batch together) and store it once it is complete. In input order.
    A ``complete`` store (a merge's shards) computes nothing: a missing result is an
    error naming the input."""
    stored = {f.id: store.load(f.id) for f in files}
    missing = [f for f in files if stored[f.id] is None]
    if missing and store.complete:
        raise ReportgenError(
            f"input {missing[0].source!r} has no result in the shards: no part holds it "
            "(were the shards made from other inputs, or another torch, weights or device?)"
        )
    computed = dict(zip([f.id for f in missing], compute(missing))) if missing else {}
    for future in computed.values():
        future.add_done_callback(partial(_save_when_done, store))
    return [computed[f.id] if stored[f.id] is None else _done(stored[f.id]) for f in files]


def _save_when_done(store: ResultStore, future: Future[InputResult]) -> None:
    if not future.cancelled() and future.exception() is None:
        store.save(future.result())


def _done(result: InputResult | None) -> Future[InputResult]:
    future: Future[InputResult] = Future()
    future.set_result(result)  # type: ignore[arg-type]
    return future


def model_key(model: LoadedModel, recorded: Mapping[str, Any], pictures: str) -> str:
    """What every per-input result of a model depends on besides the input: reportgen's
    code, torch, the model and its weights file, preprocessing, device, the options that
    change results, and which pictures are made (``pictures``)."""
    from reportgen.compute.keys import code_parts, model_parts
    from reportgen.results.store import digest

    shaping = {k: v for k, v in recorded.items() if k not in NOT_IN_INPUT_KEY}
    return digest("input-results", code_parts(), model_parts(model), shaping, pictures)


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
    "fv_batch",
    "fv_diversity",
    # Dataset examples are made after all inputs, from their statistics.
    "examples",
}
