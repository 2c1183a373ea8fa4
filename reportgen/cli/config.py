"""Options of ``reportgen run`` from a TOML file or from an earlier report's manifest.

Both become click's ``default_map`` for the command, so an option given on the
command line always wins, then ``--config``, then ``--from-manifest``, then the
built-in defaults. Keys are the long option names, with ``-`` or ``_``
(``top-k`` or ``top_k``), and the singular or plural of repeatable ones
(``model`` or ``models``); values are TOML strings, numbers, booleans, or lists
for repeatable options. A ``[run]`` table is used if present, else the top level::

    # reportgen.toml
    inputs = ["sample_images"]
    model = ["resnet18", "alexnet"]
    layer = ["layer?.0.conv1"]
    weights = "none"
    top-k = 8
    output = "report"

No torch here.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import click

from reportgen.errors import ReportgenError, UsageError

# Plural parameter names of repeatable options, by the singular a user may write.
ALIASES = {"model": "models", "layer": "layers", "input": "inputs"}
# A manifest is data, maybe from someone else's report: of its settings only those that
# decide what the report shows are taken (manifest_options), never a file path to read
# (--labels, --weights-dir), a cache location, a job count, an output mode or -o. The
# weights and the inputs it names are checked too (check_manifest_values).
_PATHS_TO_READ = ("weights_dir", "labels_file")
# A torchvision weights name (IMAGENET1K_V1, DEFAULT), imagenet or none: not a file.
_WEIGHTS_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


# A config file is a few options: more than this is not one (and is not read whole).
MAX_CONFIG_BYTES = 1024 * 1024
# An option file needs two levels of nesting ([run], a list); deeper is refused, whatever
# the parser could take.
MAX_NESTING = 16


def load_toml(path: str | Path) -> dict[str, Any]:
    """The option table of a TOML config file (a regular file of at most
    ``MAX_CONFIG_BYTES``, nested at most ``MAX_NESTING`` deep)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ImportError as exc:
            raise UsageError(
                "--config needs Python 3.11 or later, or the 'tomli' package on 3.10"
            ) from exc
    from reportgen.inputs.safe_read import read_input_bytes

    where = f"--config {str(path)!r}"
    try:
        raw = read_input_bytes(Path(path), str(path), MAX_CONFIG_BYTES)
    except ReportgenError as exc:
        cause = exc.__cause__
        if isinstance(cause, OSError):
            raise UsageError(f"cannot read {where}: {cause.strerror or cause}") from exc
        raise UsageError(f"{where}: {exc}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UsageError(f"{where} is not valid TOML (not UTF-8 text: byte {exc.start})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{where} is not valid TOML: {exc}") from exc
    except RecursionError as exc:
        raise UsageError(f"{where} nests lists or tables more than {MAX_NESTING} deep") from exc
    from reportgen.report.manifest_file import nesting_depth

    if nesting_depth(data) > MAX_NESTING:
        raise UsageError(f"{where} nests lists or tables more than {MAX_NESTING} deep")
    table = data.get("run", data)
    if not isinstance(table, dict):
        raise UsageError(f"{where}: [run] must be a table of options")
    return table


def normalise(
    values: dict[str, Any], params: dict[str, Any], where: str, skip: Iterable[str] = ()
) -> dict[str, Any]:
    """Option values keyed by click parameter name, shaped as click expects them.

    ``params`` maps parameter names to click parameters (``multiple``/``nargs`` tell
    which take lists). Unknown keys are an error that lists the known ones.
    """
    skipped = set(skip)
    # Each parameter by its name and by its long option names: "json" is --json, whose
    # parameter is as_json; "label" is --label (model_labels).
    lookup: dict[str, str] = {}
    for name, param in params.items():
        lookup[name] = name
        for opt in getattr(param, "opts", []):
            if opt.startswith("--"):
                lookup.setdefault(opt[2:].replace("-", "_"), name)
    for alias, name in ALIASES.items():
        lookup.setdefault(alias, name)
    result: dict[str, Any] = {}
    for key, value in values.items():
        name = lookup.get(str(key).replace("-", "_").lower(), "")
        if name in skipped:
            continue
        param = params.get(name)
        if param is None:
            known = ", ".join(sorted(_long_name(p) for n, p in params.items() if n not in skipped))
            raise UsageError(f"{where}: unknown option {key!r}; known options: {known}")
        if value is None:
            continue  # the default (JSON null; TOML has none)
        value = exact_value(param, value, f"{where}: {key!r}")
        if value is None:
            continue
        result[name] = value
    return result


# List options given as one comma-separated string on the command line, and what each
# element of their list is: --channels 0,5,10 is channels = [0, 5, 10].
_LIST_ELEMENTS: dict[str, tuple[type, ...]] = {
    "channels": (int,),
    "mean": (int, float),
    "cam": (str,),
}
_LIST_ELEMENTS["std"] = _LIST_ELEMENTS["mean"]
# String options whose value may also be a whole number (a class index, a count).
_ALSO_INT = {"target_class", "detail"}


def exact_value(param: Any, value: Any, where: str) -> Any:
    """``value`` for click parameter ``param``, of exactly the kind it takes: a whole
    number for an integer option (not 2.9, not true), a number for a decimal one, true or
    false for a flag, a string for the rest; lists only for repeatable options and the
    comma-separated ones (their elements checked the same way). UsageError otherwise."""
    name = str(param.name)
    many = getattr(param, "multiple", False) or getattr(param, "nargs", 1) == -1
    if many:
        if not isinstance(value, list):
            value = [value]
        allowed: tuple[type, ...] = (str, int) if name in _ALSO_INT else (str,)
        for item in value:
            _require(item, allowed, f"{where} (each item)")
        return [str(v) for v in value]
    if name in _LIST_ELEMENTS:
        items = value if isinstance(value, list) else [value]
        allowed = _LIST_ELEMENTS[name] + (() if isinstance(value, list) else (str,))
        for item in items:
            _require(item, allowed, f"{where} (each item)" if isinstance(value, list) else where)
        return ",".join(str(v) for v in items) if items else None
    if isinstance(value, (list, dict)):
        raise UsageError(f"{where} takes one value, got {_shown(value)}")
    kind = getattr(param, "type", None)
    if isinstance(kind, click.types.BoolParamType):
        _require(value, (bool,), where)
    elif isinstance(kind, click.types.IntParamType):  # IntRange too
        _require(value, (int,), where)
    elif isinstance(kind, click.types.FloatParamType):  # FloatRange too
        _require(value, (int, float), where)
    else:
        _require(value, (str, int) if name in _ALSO_INT else (str,), where)
        value = str(value)
    return value


_KIND_WORDS = {
    (bool,): "true or false",
    (int,): "a whole number",
    (int, float): "a number",
    (str,): "a string",
    (str, int): "a string or a whole number",
    (int, str): "a whole number or a string",
    (int, float, str): "a number or a string",
}


def _require(value: Any, allowed: tuple[type, ...], where: str) -> None:
    """``value`` is of one of the ``allowed`` types, bool counting only as bool."""
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        wanted = _KIND_WORDS.get(allowed, " or ".join(t.__name__ for t in allowed))
        raise UsageError(f"{where} must be {wanted}, got {_shown(value)}")


def _shown(value: Any) -> str:
    """A value as the user wrote it, cut short (a value may be a huge nested list)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return f"a {'list' if isinstance(value, list) else 'table'}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _long_name(param: Any) -> str:
    longs = [opt[2:] for opt in getattr(param, "opts", []) if opt.startswith("--")]
    return longs[0] if longs else str(param.name).replace("_", "-")


def read_manifest_settings(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``settings`` of a report's manifest (a manifest.json, its report folder, or a
    --single-file report), and the whole manifest. Read by the report stage's one reader;
    its errors (same words as ``reportgen verify`` and the notebook view) become usage
    errors here: the manifest is the value of an option."""
    from reportgen.report.manifest_file import ManifestError, ManifestUnreadable, read_manifest

    try:
        manifest = read_manifest(path)
        settings = manifest.require("settings", dict, "to rebuild a report from")
    except ManifestUnreadable as exc:
        raise UsageError(f"cannot read --from-manifest {str(path)!r}: {exc.detail}") from exc
    except ManifestError as exc:
        raise UsageError(str(exc)) from exc
    return settings, manifest.data


def manifest_keys() -> frozenset[str]:
    """The RunSettings fields a manifest may set: those a report records as shaping it
    (``report_settings``), less the paths of files to read."""
    from reportgen.settings import RunSettings, report_settings

    return frozenset(report_settings(RunSettings(inputs=()))) - set(_PATHS_TO_READ)


def manifest_options(
    settings: dict[str, Any], params: dict[str, Any], where: str
) -> tuple[dict[str, Any], list[str]]:
    """The options a manifest's ``settings`` give a rebuild (as ``normalise`` shapes
    them), and the names of those it holds and is not allowed to set (ignored)."""
    allowed = manifest_keys()
    taken: dict[str, Any] = {}
    ignored: list[str] = []
    for key, value in settings.items():
        field = str(key).replace("-", "_").lower()
        field = ALIASES.get(field, field)
        if field in allowed:
            taken[key] = value
        elif value not in (None, False, [], ""):
            ignored.append(str(key))
    values = normalise(taken, params, where)
    return values, sorted(ignored)


def check_manifest_values(
    where: str,
    models: Iterable[str] | None,
    weights: str | None,
    inputs: Iterable[str] | None,
    allow_urls: bool,
) -> None:
    """What a rebuild took from a manifest (None: not from the manifest) names no code to
    import, no weights file to read and, unless ``allow_urls``, no URL to fetch."""
    from reportgen.inputs.fetch import is_url, looks_like_other_url

    if models is not None:
        refuse_code_in_manifest({"models": list(models)}, where)
        for spec in models:
            name, sep, own = str(spec).partition("=")
            if sep and own.strip() and not _WEIGHTS_NAME.match(own.strip()):
                raise UsageError(
                    f"--from-manifest {where!r} names the weights file {own.strip()!r} for "
                    f"{name.strip()!r}; reportgen does not read files a manifest names: give "
                    "-m NAME=PATH on the command line"
                )
    if weights is not None and not _WEIGHTS_NAME.match(weights):
        raise UsageError(
            f"--from-manifest {where!r} names the weights file {weights!r}; reportgen does "
            "not read files a manifest names: give --weights on the command line"
        )
    if inputs is not None and not allow_urls:
        urls = [i for i in inputs if is_url(i) or looks_like_other_url(i)]
        if urls:
            raise UsageError(
                f"--from-manifest {where!r} names URL inputs ({', '.join(map(repr, urls[:3]))}"
                f"{', ...' if len(urls) > 3 else ''}); reportgen fetches URLs from a "
                "manifest only with --allow-urls (or give them on the command line)"
            )


def refuse_code_in_manifest(settings: dict[str, Any], where: str) -> None:
    """A manifest is data, maybe from someone else's report: it may not name a custom
    model factory (``package.module:factory``), which would import and run code.
    Only -m on the command line (or in --config, the user's own file) may do that;
    the CLI calls this when the models of a run come from a manifest."""
    models = settings.get("models") or []
    if isinstance(models, str):
        models = [models]
    for spec in models:
        name = str(spec).partition("=")[0]
        if ":" in name:
            raise UsageError(
                f"--from-manifest {where!r} names the custom model {name!r}; reportgen does "
                "not import code named in a manifest: give it with -m on the command line"
            )


def rebuild_notes(manifest: dict[str, Any], inputs: Iterable[str]) -> list[str]:
    """Why a rebuild from ``manifest`` may not give the same files: inputs that changed
    or are gone, and library versions that differ from those that made the report."""
    from reportgen.inputs.discovery import discover_inputs

    notes: list[str] = []
    recorded = {
        i.get("source"): i.get("sha256") for i in manifest.get("inputs", []) if isinstance(i, dict)
    }
    try:
        files, _skipped = discover_inputs(list(inputs))
    except ReportgenError:
        files = []
    from reportgen.inputs.safe_read import read_input_bytes

    found = {}
    for file in files:
        try:
            found[file.source] = hashlib.sha256(
                read_input_bytes(file.path, file.source)
            ).hexdigest()
        except ReportgenError:
            continue
    for source, digest in sorted(recorded.items(), key=lambda item: str(item[0])):
        if source not in found:
            notes.append(f"input {source!r} of the manifest is not found from here")
        elif found[source] != digest:
            notes.append(f"input {source!r} has changed since the report was made")
    for source in sorted(set(found) - set(recorded)):
        notes.append(f"input {source!r} was not in the report the manifest describes")
    environment = manifest.get("environment", {})
    generator = manifest.get("generator", {})
    wanted = {
        "reportgen": generator.get("version") if isinstance(generator, dict) else None,
        "torch": environment.get("torch") if isinstance(environment, dict) else None,
        "torchvision": environment.get("torchvision") if isinstance(environment, dict) else None,
    }
    for package, version in wanted.items():
        if not version:
            continue
        try:
            have = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
        if have.split("+")[0] != str(version).split("+")[0]:  # "+cu130" builds alike
            notes.append(
                f"the report was made with {package} {version}, this is {package} {have}: "
                "files may differ"
            )
    return notes
