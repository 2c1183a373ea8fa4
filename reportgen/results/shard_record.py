"""A ``shard.json`` checked as data before a merge uses any of it. No torch.

A shard travels between machines (a CI artifact, a Slurm array's scratch folder), so
its record is treated like a manifest from someone else's report: every field must be
of exactly its kind and in range (a damaged or hostile file is named in one line, not
met as a KeyError deep inside the merge), and its settings may only be those that
shape a report (``report_settings``). Settings that say *where* or *how* to run
(``--cluster``, ``--jobs``, the cache, ...) are never recorded by ``reportgen shard``:
a shard that holds one is refused. Code (a custom model, ``package.module:factory``)
runs only when merge's own command line names the same factory (``-m``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from reportgen.errors import ReportgenError, UsageError
from reportgen.settings import RUNTIME_FIELDS, RunSettings, report_settings

SHARD_FILE = "shard.json"
# --part K/N: at most this many parts (a part per input of a large run still fits).
MAX_PARTS = 100_000
# Counts a shard records: at most this (far above any run a machine can make).
MAX_COUNT = 2**40
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_text(value: Any) -> bool:
    # A NUL is in no path, name or option a shard can hold (the OS refuses it in paths).
    return isinstance(value, str) and "\x00" not in value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _list_of(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, list) and all(check(item) for item in value)


def _or_none(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


# What each RunSettings field may hold in a shard, by the field's annotation.
_BY_ANNOTATION: dict[str, Callable[[Any], bool]] = {
    "str": _is_text,
    "str | None": _or_none(_is_text),
    "int": _is_int,
    "int | None": _or_none(_is_int),
    "float": _is_number,
    "bool": lambda value: isinstance(value, bool),
    "tuple[str, ...]": _list_of(_is_text),
    "tuple[int, ...]": _list_of(_is_int),
    "tuple[float, ...]": _list_of(_is_number),
}
_KIND_WORDS = {
    "str": "a string",
    "str | None": "a string or null",
    "int": "a whole number",
    "int | None": "a whole number or null",
    "float": "a number",
    "bool": "true or false",
    "tuple[str, ...]": "a list of strings",
    "tuple[int, ...]": "a list of whole numbers",
    "tuple[float, ...]": "a list of numbers",
}


def _annotations() -> dict[str, str]:
    import dataclasses

    return {f.name: str(f.type) for f in dataclasses.fields(RunSettings)}


def shard_setting_names() -> frozenset[str]:
    """The settings a shard may record: those a report records as shaping it."""
    return frozenset(report_settings(RunSettings(inputs=())))


def check_record(name: str, record: dict[str, Any]) -> None:
    """Every field of ``record`` (a shard.json) of its kind and in range; a
    ReportgenError naming the shard and the field otherwise."""

    def bad(what: str) -> ReportgenError:
        return ReportgenError(f"shard {name!r}: {SHARD_FILE} has {what}")

    for key in ("reportgen", "code"):
        if not _is_text(record.get(key)):
            raise bad(f"no {key!r} of its format")
    part = record.get("part")
    if not (
        isinstance(part, list)
        and len(part) == 2
        and all(_is_int(v) for v in part)
        and 1 <= part[0] <= part[1] <= MAX_PARTS
    ):
        raise bad(f"a bad part {_shown(part)} (K/N with 1 <= K <= N <= {MAX_PARTS})")
    for key, low in (("inputs_found", 0), ("torch_threads", 1)):
        value: Any = record.get(key)
        if not (_is_int(value) and low <= value <= MAX_COUNT):
            raise bad(f"a bad {key!r} ({_shown(value)}): a whole number, at least {low}")
    if not isinstance(record.get("settings"), dict):
        raise bad("no 'settings' of its format")
    checked_settings(name, record["settings"])
    _check_list(record, "models", _model_problem, bad)
    _check_list(record, "inputs", _input_problem, bad)
    _check_list(record, "entries", _entry_problem, bad)


def _check_list(
    record: dict[str, Any],
    key: str,
    problem: Callable[[Any], str | None],
    bad: Callable[[str], ReportgenError],
) -> None:
    items = record.get(key)
    if not isinstance(items, list):
        raise bad(f"no {key!r} of its format")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise bad(f"a bad item {index} in {key!r} ({_shown(item)}): not a table")
        found = problem(item)
        if found:
            raise bad(f"a bad item {index} in {key!r}: {found}")


def _fields_problem(
    item: dict[str, Any], checks: Mapping[str, Callable[[Any], bool]]
) -> str | None:
    for field, check in checks.items():
        if not check(item.get(field)):
            return f"{field!r} is {_shown(item.get(field))}"
    return None


def _is_weights(value: Any) -> bool:
    """A model's weights as a shard records them: a description, or [name, size, sha256]."""
    if _is_text(value):
        return True
    return (
        isinstance(value, list)
        and len(value) == 3
        and _is_text(value[0])
        and _is_int(value[1])
        and isinstance(value[2], str)
        and bool(_SHA256.match(value[2]))
    )


def _is_sha256(value: Any) -> bool:
    return isinstance(value, str) and bool(_SHA256.match(value))


def _model_problem(item: dict[str, Any]) -> str | None:
    checks = {"id": _is_text, "spec": _is_text, "weights": _is_weights, "result_key": _is_text}
    return _fields_problem(item, checks)


def _input_problem(item: dict[str, Any]) -> str | None:
    return _fields_problem(item, {"id": _is_text, "source": _is_text, "sha256": _is_sha256})


def _entry_problem(item: dict[str, Any]) -> str | None:
    checks = {
        "path": _is_text,
        "model": _is_text,
        "input": _is_text,
        "bytes": lambda v: _is_int(v) and 0 <= v <= MAX_COUNT,
        "sha256": _is_sha256,
    }
    return _fields_problem(item, checks)


def checked_settings(name: str, recorded: dict[str, Any]) -> dict[str, Any]:
    """The shard's settings as RunSettings values (lists as tuples): only settings that
    shape a report, each of its field's kind; a ReportgenError naming the shard and the
    setting otherwise."""
    allowed = shard_setting_names()
    annotations = _annotations()
    where = f"shard {name!r}: {SHARD_FILE}"
    for key in sorted(recorded):
        if key in allowed:
            continue
        if key in RUNTIME_FIELDS or key == "output":
            raise ReportgenError(
                f"{where} records {key!r}, which a shard never holds (where and how to run "
                "is merge's own command line): refused"
            )
        raise ReportgenError(f"{where} records settings this reportgen does not know ({key})")
    values: dict[str, Any] = {}
    for key, value in recorded.items():
        kind = annotations[key]
        if not _BY_ANNOTATION[kind](value):
            raise ReportgenError(
                f"{where} has a bad setting {key!r}: {_shown(value)} (must be {_KIND_WORDS[kind]})"
            )
        values[key] = tuple(value) if isinstance(value, list) else value
    return values


def check_factories(name: str, models: Iterable[str], factories: Iterable[str]) -> None:
    """Each custom model (``package.module:factory``) the shard names is among
    ``factories`` (merge's own ``-m``): UsageError otherwise, before anything is imported."""
    given = {_factory_of(spec) for spec in factories}
    for spec in models:
        factory = _factory_of(spec)
        if ":" in factory and factory not in given:
            raise UsageError(
                f"shard {name!r} names the custom model {factory!r}; merge imports code only "
                f"when its own command line names it: add -m {factory} if you trust it"
            )


def _factory_of(spec: str) -> str:
    """The model part of a -m spec (``pkg.mod:build=weights.pth``: ``pkg.mod:build``)."""
    return spec.partition("=")[0].strip()


def _shown(value: Any) -> str:
    """A value for a message, cut short (a hostile one may be huge or nested)."""
    if isinstance(value, (list, dict)):
        items = list(value.values() if isinstance(value, dict) else value)
        if len(items) > 3 or any(isinstance(item, (list, dict)) for item in items):
            kind = "list" if isinstance(value, list) else "table"
            return f"a {kind} of {len(items)} items"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
