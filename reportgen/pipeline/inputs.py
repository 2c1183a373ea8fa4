"""A run's inputs, read once: found (``find_inputs``), each decoded for its facts and
thumbnail or set aside with the reason (``prepare_inputs``), and the unusable ones
weighed against ``--strict`` (``usable_warnings``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from reportgen.compute.encoding import ImageEncoder
from reportgen.errors import ReportgenError
from reportgen.imaging import pictures as imaging
from reportgen.inputs.discovery import discover_inputs
from reportgen.inputs.files import IMAGE_SUFFIXES, InputFile, SkippedInput, load_image
from reportgen.options import InputOptions
from reportgen.report import paths
from reportgen.report.data import InputRecord

if TYPE_CHECKING:
    from reportgen.report.output import StagedReport

log = logging.getLogger("reportgen")


def find_inputs(
    inputs: InputOptions, cache_dir: Path | None
) -> tuple[list[InputFile], list[SkippedInput]]:
    """The run's inputs in run order (and those found but unusable), or an error when
    there is no image at all. The cache (``cache_dir``) is tagged first: inside an input
    folder, it is not walked for inputs."""
    from reportgen.results.store import tag_cache

    tag_cache(cache_dir)
    files, skipped_found = discover_inputs(inputs.arguments)
    if not files and not skipped_found:
        raise ReportgenError(
            f"no image files found in {', '.join(repr(i) for i in inputs.arguments)} "
            f"(looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return files, skipped_found


class DiscardedOutput:
    """Stands in for the report folder when only the analysis is wanted (``analyze``):
    nothing is encoded or written."""

    def __enter__(self) -> DiscardedOutput:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def write(self, relpath: str, data: bytes | str) -> str:
        raise AssertionError(f"analysis only: nothing is written ({relpath})")


# Where a run's files go: the staging folder of the report, or nowhere (``analyze``).
ReportOutput: TypeAlias = "StagedReport | DiscardedOutput"


def prepare_inputs(
    files: list[InputFile],
    skipped_found: list[SkippedInput],
    staged: ReportOutput,
    encoder: ImageEncoder,
    views: list[Any],
) -> tuple[list[InputRecord], list[InputFile], list[SkippedInput]]:
    """Read every input once: its facts and thumbnail, or why it is skipped (``views``:
    each model's (resize, crop); an input too large for one is skipped before decoding)."""
    records: list[InputRecord] = []
    usable: list[InputFile] = []
    skipped = list(skipped_found)
    write = not isinstance(staged, DiscardedOutput)
    for file in files:
        try:
            loaded = load_image(file, views)
        except ReportgenError as exc:
            log.warning("skipping %s: %s", file.source, exc)
            skipped.append(SkippedInput(file.source, str(exc)))
            continue
        thumbnail = paths.input_thumbnail(file.id)
        if write:
            encoder.submit(_write_thumbnail, staged, thumbnail, loaded.image)
        records.append(
            InputRecord(
                file.id,
                file.source,
                loaded.sha256,
                loaded.width,
                loaded.height,
                thumbnail,
                loaded.notes,
            )
        )
        usable.append(file)
    return records, usable, skipped


def _write_thumbnail(staged: ReportOutput, path: str, image: Any) -> None:
    staged.write(path, imaging.thumbnail_jpeg(image))


def usable_warnings(
    inputs: InputOptions,
    found: int,
    usable: list[InputFile],
    skipped: list[SkippedInput],
) -> list[str]:
    """The run's warnings for the skipped inputs, or its error: with ``--strict`` at the
    first unusable input, or when none of the ``found`` inputs is usable."""
    if inputs.strict and skipped:
        raise ReportgenError(f"input {skipped[0].source!r}: {skipped[0].reason}")
    if not usable:
        raise ReportgenError(
            f"none of the {found} inputs could be used; "
            f"first problem: {skipped[0].source!r}: {skipped[0].reason}"
        )
    return [f"skipped input {item.source!r}: {item.reason}" for item in skipped]
