"""A shard: part K of N of a run's per-input results, as ``reportgen shard`` writes them
and ``reportgen merge`` reads them. No torch.

A shard folder IS a cache root (``results.store``): its ``inputs/`` tree holds one entry
per input and model, in ``InputCache``'s layout and under the keys ``ResultStore`` gives
them, so a merge finds them through the one cache branch (and ``--cache-dir part-1``
would too). Beside it, ``shard.json`` (this module: the one writer and reader) says what
made the entries:

* ``format``, ``reportgen`` (version), ``code`` (``code_fingerprint``),
* ``part``: [K, N], ``inputs_found``: how many inputs the run's arguments gave,
* ``settings``: the run's settings as ``report_settings`` records them (no -o),
* ``models``: per model its id, spec, weights identity and result key,
* ``inputs``: the part's usable inputs (id, source, sha256),
* ``entries``: every entry file (path, model, input, bytes, sha256).

It records no time and no machine path beyond what the settings hold, so the same
shard made twice is the same bytes. The folder also has the ``manifest.json`` of every
report folder (``report.output.StagedReport`` builds it in staging and swaps it into
place), which is what lets ``reportgen verify`` check a shard too.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reportgen.errors import ReportgenError, UsageError
from reportgen.results.confinement import confined_path
from reportgen.results.shard_record import (
    MAX_PARTS,
    SHARD_FILE,
    check_record,
    checked_settings,
)
from reportgen.settings import RunSettings, option_name

SHARD_FORMAT = "reportgen-shard/1"
# The largest shard.json read (a million inputs' ids and hashes fit).
MAX_SHARD_FILE_BYTES = 512 * 1024 * 1024
# A number as --part takes it: ASCII digits, at most 9 of them (int() of a huge string
# is slow, and no part count needs more).
_ASCII_DIGITS = re.compile(r"^[0-9]{1,9}$")


def parse_part(text: str) -> tuple[int, int]:
    """``--part K/N`` as (K, N), 1 <= K <= N <= ``MAX_PARTS``; UsageError (exit 2)
    otherwise. Digits are ASCII only: ``str.isdigit`` also takes ``²``, which int()
    does not."""
    head, slash, tail = text.strip().partition("/")
    if not slash or not _ASCII_DIGITS.match(head) or not _ASCII_DIGITS.match(tail):
        raise UsageError(f"--part {text!r} is not K/N (e.g. --part 2/4)")
    part, count = int(head), int(tail)
    if count < 1 or not 1 <= part <= count:
        raise UsageError(f"--part {text!r}: K must be between 1 and N (1/{max(count, 1)} to N/N)")
    if count > MAX_PARTS:
        raise UsageError(f"--part {text!r}: N must be at most {MAX_PARTS:,}")
    return part, count


def part_slice(count_found: int, part: int, parts: int, batch_size: int = 1) -> slice:
    """Part K of N of ``count_found`` inputs: a contiguous block of whole batches, the
    blocks covering every input once, in order: batches ``(K-1)*B//N`` to ``K*B//N`` of
    the ``B`` batches of ``batch_size`` (with batch size 1, inputs ``(K-1)*n//N`` to
    ``K*n//N``). Whole batches because a convolution's last bits depend on what else is
    in its batch: a shard's batches must be the single run's for the merged report to be
    its bytes. (With more parts than batches, some parts are empty.)"""
    batches = -(-count_found // batch_size)
    start = (part - 1) * batches // parts * batch_size
    end = min(part * batches // parts * batch_size, count_found)
    return slice(start, end)


def shard_text(record: dict[str, Any]) -> str:
    """shard.json's bytes: sorted keys, one layout, so equal records are equal files."""
    return json.dumps(record, sort_keys=True, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


@dataclass(frozen=True)
class Shard:
    """One shard as read: its folder (as given) and its shard.json."""

    folder: Path
    name: str  # as given on the command line, for messages
    record: dict[str, Any]

    @property
    def part(self) -> tuple[int, int]:
        part, count = self.record["part"]
        return int(part), int(count)


def read_shard(folder: str | Path) -> Shard:
    """The shard in ``folder``; a ReportgenError whose one line names the shard and says
    what is wrong (no shard.json, not JSON, not a shard of this format)."""
    from reportgen.inputs.safe_read import FileTooLarge, NotRegularFile, read_regular_file

    name = str(folder)
    path = Path(folder) / SHARD_FILE
    if not Path(folder).is_dir():
        raise ReportgenError(f"shard {name!r} is not a folder (give the -o of a reportgen shard)")
    try:
        raw = read_regular_file(path, MAX_SHARD_FILE_BYTES)
    except FileNotFoundError:
        raise ReportgenError(
            f"shard {name!r} has no {SHARD_FILE}: is it a folder 'reportgen shard' wrote?"
        ) from None
    except (OSError, NotRegularFile, FileTooLarge) as exc:
        raise ReportgenError(f"shard {name!r}: cannot read {SHARD_FILE} ({exc})") from exc
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ReportgenError(f"shard {name!r}: {SHARD_FILE} is not valid JSON ({exc})") from exc
    except RecursionError as exc:
        # No shard.json nests more than four levels; the parser gives up long before a
        # hostile file's depth.
        raise ReportgenError(
            f"shard {name!r}: {SHARD_FILE} nests lists or tables too deep"
        ) from exc
    if not isinstance(record, dict) or record.get("format") != SHARD_FORMAT:
        found = record.get("format") if isinstance(record, dict) else None
        raise ReportgenError(
            f"shard {name!r}: {SHARD_FILE} is not a {SHARD_FORMAT} record (format {found!r})"
        )
    check_record(name, record)
    return Shard(Path(folder), name, record)


def check_same_run(shards: Sequence[Shard]) -> list[Shard]:
    """The shards of one run, every part once, in part order; else a ReportgenError
    naming the difference (settings, models and weights, code, version, parts)."""
    if not shards:
        raise UsageError("no shards given to merge")
    ordered = sorted(shards, key=lambda s: (s.part, s.name))
    first = ordered[0]
    for other in ordered[1:]:
        _check_same(first, other)
    count = first.part[1]
    seen: dict[int, Shard] = {}
    for shard in ordered:
        if shard.part[1] != count:
            raise ReportgenError(
                f"{shard.name} is part {shard.part[0]} of {shard.part[1]}, "
                f"{first.name} part {first.part[0]} of {count}: shards of one run have one N"
            )
        if shard.part[0] in seen:
            raise ReportgenError(
                f"part {shard.part[0]} of {count} is given twice "
                f"({seen[shard.part[0]].name} and {shard.name})"
            )
        seen[shard.part[0]] = shard
    for part in range(1, count + 1):
        if part not in seen:
            raise ReportgenError(f"part {part} of {count} is missing")
    return ordered


def _check_same(first: Shard, other: Shard) -> None:
    a, b = first.record, other.record
    if a["reportgen"] != b["reportgen"]:
        raise ReportgenError(
            f"{other.name} was made by reportgen {b['reportgen']}, "
            f"{first.name} by reportgen {a['reportgen']}"
        )
    for key in sorted(set(a["settings"]) | set(b["settings"])):
        mine, theirs = a["settings"].get(key), b["settings"].get(key)
        if mine != theirs:
            raise ReportgenError(
                f"{other.name} was made with {_shown_option(key, theirs)}, "
                f"{first.name} with {_shown_option(key, mine)}"
            )
    # Some layers' last bits depend on torch's thread count (a matrix product is split by
    # thread): shards made with other counts would merge into no run's bytes.
    if a.get("torch_threads") != b.get("torch_threads"):
        raise ReportgenError(
            f"{other.name} was computed with {b.get('torch_threads')} torch threads, "
            f"{first.name} with {a.get('torch_threads')}: give every shard the same number "
            "of cores (or OMP_NUM_THREADS)"
        )
    if a["inputs_found"] != b["inputs_found"]:
        raise ReportgenError(
            f"{other.name} found {b['inputs_found']} inputs, {first.name} "
            f"{a['inputs_found']}: the shards were made from different input folders"
        )
    if len(a["models"]) != len(b["models"]):
        raise ReportgenError(f"{other.name} and {first.name} were made with other models")
    for mine, theirs in zip(a["models"], b["models"]):
        if mine.get("id") != theirs.get("id") or mine.get("spec") != theirs.get("spec"):
            raise ReportgenError(
                f"{other.name} was made with model {theirs.get('spec')!r}, "
                f"{first.name} with {mine.get('spec')!r}"
            )
        if mine.get("weights") != theirs.get("weights"):
            raise ReportgenError(
                f"{other.name} was made with other weights for model {theirs.get('id')!r} "
                f"({_weights_shown(theirs)}) than {first.name} ({_weights_shown(mine)})"
            )
        if mine.get("result_key") != theirs.get("result_key"):
            # The key hashes what else shapes a result: torch's version, the device, the
            # preprocessing, the weights file (code and settings were compared above).
            raise ReportgenError(
                f"{other.name} and {first.name} computed model {theirs.get('id')!r} "
                "differently (another torch version, device or preprocessing)"
            )
    if a["code"] != b["code"]:
        raise ReportgenError(
            f"{other.name} was made by other reportgen code than {first.name} "
            "(code fingerprints differ: another version, a changed source file, or other "
            "torch/numpy/Pillow versions)"
        )


def _weights_shown(model: dict[str, Any]) -> str:
    weights = model.get("weights")
    if isinstance(weights, list) and len(weights) == 3:  # [file name, size, sha256]
        return f"{weights[0]}, sha256 {str(weights[2])[:12]}"
    return str(weights)


def _shown_option(key: str, value: Any) -> str:
    """A recorded setting as it is typed: ``--top-k 8``, ``--no-gradcam``, ``no --layer``."""
    from reportgen.settings import typed_options

    if key == "inputs":
        return "inputs " + " ".join(str(v) for v in value or [])
    typed = typed_options({key: value})
    if typed and typed[0].arguments:
        return " ".join(typed[0].arguments)
    return f"no {option_name(key)}"


def verify_entries(shard: Shard) -> None:
    """Every entry the shard lists is there, a regular file inside the shard, with the
    bytes and sha256 listed; else a ReportgenError naming the shard and the entry."""
    from reportgen.inputs.safe_read import FileTooLarge, NotRegularFile, read_regular_file

    for entry in shard.record["entries"]:
        relpath = entry["path"]
        try:
            path = confined_path(shard.folder, relpath)
            data = read_regular_file(path, int(entry["bytes"]) + 1)
        except ValueError as exc:
            raise ReportgenError(f"shard {shard.name!r}: {exc}") from exc
        except FileNotFoundError:
            raise ReportgenError(f"shard {shard.name!r}: entry {relpath} is missing") from None
        except (OSError, NotRegularFile, FileTooLarge) as exc:
            raise ReportgenError(
                f"shard {shard.name!r}: entry {relpath} cannot be read ({exc})"
            ) from exc
        if len(data) != entry["bytes"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise ReportgenError(
                f"shard {shard.name!r}: entry {relpath} does not match its sha256 in "
                f"{SHARD_FILE} (damaged; make the shard again)"
            )


def settings_of(shard: Shard, **runtime: Any) -> RunSettings:
    """The run's settings the shard records, with ``runtime`` (-o, --jobs, ...) added:
    the settings of the single run a merge of these shards equals. Only settings that
    shape a report are taken, each checked (``shard_record.checked_settings``)."""
    values = checked_settings(shard.name, shard.record["settings"])
    try:
        return RunSettings(**{**values, **runtime})
    except TypeError as exc:
        raise ReportgenError(f"shard {shard.name!r}: {SHARD_FILE} settings: {exc}") from exc
