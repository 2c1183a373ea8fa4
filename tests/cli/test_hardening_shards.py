"""A shard is data, not instructions (issue 27, class 1): a hostile or damaged
``shard.json`` never imports code the merge's command line does not name, never
connects anywhere, and ends in one named ``Error:`` line with the report at -o left
byte for byte as it was. Also --part with digits that are not ASCII (class 7)."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import error_line, invoke_reproducible, snapshot, write_images

OPTIONS = (
    "-m", "tests.tinynet_factory:build", "--weights", "none", "--input-size", "32",
    "--top-k", "2", "--examples", "2", "--device", "cpu", "--jobs", "1", "--batch-size", "2",
)  # fmt: skip
TRUSTED = ("-m", "tests.tinynet_factory:build")
SHARDS = ("part-1", "part-2")


def run_ok(*args: str) -> None:
    result = invoke_reproducible("-q", *args)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 small images, two shards of them, and their merged report at ``report``."""
    folder = tmp_path_factory.mktemp("hostile-shards")
    write_images(folder / "images", 4, (36, 40), grow=4, seed=5)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setenv("REPORTGEN_CACHE_DIR", "off")
        patch.setenv("REPORTGEN_OFFLINE", "1")
        for part in (1, 2):
            run_ok("shard", "images", "--part", f"{part}/2", *OPTIONS, "-o", f"part-{part}")
        run_ok("merge", *TRUSTED, *SHARDS, "-o", "report")
    return folder


@pytest.fixture
def work(made: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    copy = tmp_path / "work"
    shutil.copytree(made, copy)
    monkeypatch.chdir(copy)
    return copy


def tamper(change: Callable[[dict[str, Any]], None], shards: tuple[str, ...] = SHARDS) -> None:
    """Change each shard's record (the entries stay as listed: only shard.json lies)."""
    for shard in shards:
        path = Path(shard) / "shard.json"
        record = json.loads(path.read_text())
        change(record)
        path.write_text(json.dumps(record))


def set_setting(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda record: record["settings"].__setitem__(key, value)


def merge_refused(work: Path, code: int, *needles: str, trusted: bool = True) -> str:
    """The merge fails with one Error line (no internal error), the report stays."""
    before = snapshot(work / "report")
    result = invoke_reproducible("merge", *(TRUSTED if trusted else ()), *SHARDS, "-o", "report")
    line = error_line(result, code, *needles)
    assert "internal error" not in line
    assert snapshot(work / "report") == before
    assert sorted(p.name for p in work.iterdir()) == ["images", "part-1", "part-2", "report"]
    return line


def test_the_untampered_shards_merge_only_when_merge_names_their_factory(work: Path) -> None:
    before = snapshot(work / "report")
    merge_refused(work, 2, "custom model 'tests.tinynet_factory:build'", "-m", trusted=False)
    run_ok("merge", *TRUSTED, *SHARDS, "-o", "report")
    assert snapshot(work / "report") == before


@pytest.mark.parametrize("spec", ["sys:exit", "os:abort=x.pth", " builtins:exit "])
def test_a_shard_naming_a_factory_merge_was_not_given_imports_nothing(
    work: Path, spec: str
) -> None:
    tamper(set_setting("models", [spec]))
    merge_refused(work, 2, f"custom model {spec.partition('=')[0].strip()!r}")


def test_a_shard_naming_where_to_run_is_refused_and_connects_nowhere(work: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(0.5)
        tamper(set_setting("cluster", f"tcp://127.0.0.1:{server.getsockname()[1]}"))
        merge_refused(work, 1, "records 'cluster', which a shard never holds")
        with pytest.raises(socket.timeout):
            server.accept()  # nobody knocked


@pytest.mark.parametrize(
    ("key", "value"),
    [("no_cache", False), ("cache_dir", "elsewhere"), ("jobs", 100000), ("output", "/tmp/x")],
)
def test_a_shard_naming_how_to_run_is_refused(work: Path, key: str, value: Any) -> None:
    tamper(set_setting(key, value))
    merge_refused(work, 1, f"records {key!r}, which a shard never holds")
    assert not (work / "elsewhere").exists()


def _nested(depth: int, opener: str = "[", closer: str = "]") -> str:
    return opener * depth + closer * depth


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (set_setting("models", [1]), "bad setting 'models': [1]"),
        (set_setting("inputs", ["images", 2]), "bad setting 'inputs'"),
        (set_setting("inputs", ["ima\x00ges"]), "bad setting 'inputs'"),
        (set_setting("top_k", "3"), "bad setting 'top_k': '3' (must be a whole number)"),
        (set_setting("alpha", True), "bad setting 'alpha'"),
        (set_setting("layers", [[[["x"]]]]), "bad setting 'layers': a list of 1 items"),
        (set_setting("top_k", 0), "--top-k must be at least 1"),
        (set_setting("strategy", "evil"), "unknown --strategy 'evil'"),
        (lambda r: r.__setitem__("inputs", [1]), "bad item 0 in 'inputs'"),
        (lambda r: r.__setitem__("inputs", [{}]), "bad item 0 in 'inputs': 'id' is None"),
        (lambda r: r["inputs"][0].__setitem__("sha256", 7), "'sha256' is 7"),
        (lambda r: r.__setitem__("models", [{"id": "m"}]), "bad item 0 in 'models'"),
        (lambda r: r["models"][0].__setitem__("weights", {}), "'weights' is {}"),
        (lambda r: r["entries"][0].__setitem__("bytes", "12"), "'bytes' is '12'"),
        (lambda r: r["entries"][0].__setitem__("bytes", -1), "'bytes' is -1"),
        (lambda r: r.__setitem__("part", [1, 10**12]), "a bad part"),
        (lambda r: r.__setitem__("torch_threads", "4"), "'torch_threads'"),
        (lambda r: r.__setitem__("inputs_found", 2.0), "'inputs_found'"),
    ],
)
def test_damaged_fields_are_named_not_internal_errors(
    work: Path, change: Callable[[dict[str, Any]], None], needle: str
) -> None:
    tamper(change)
    merge_refused(work, 1, "shard 'part-1'", needle)


@pytest.mark.parametrize("text", [_nested(100_000), _nested(100_000, '{"a":', "}"), "[" * 50_000])
def test_json_nested_beyond_any_shard_is_named(work: Path, text: str) -> None:
    Path("part-1", "shard.json").write_text(f'{{"format": "reportgen-shard/1", "x": {text}}}')
    merge_refused(work, 1, "shard 'part-1'", "shard.json")


@pytest.mark.parametrize("part", ["²/²", "1/٣", "１/2", "1/1000000", "1/99999999999999999999"])
def test_a_part_in_other_digits_or_too_many_parts_is_a_usage_error(work: Path, part: str) -> None:
    result = invoke_reproducible("shard", "images", "--part", part, *OPTIONS, "-o", "part-9")
    error_line(result, 2, f"--part {part!r}")
    assert not (work / "part-9").exists()


def test_every_setting_a_shard_records_has_a_kind_it_is_checked_against() -> None:
    """A new report setting needs a kind in results.shard_record, or merges would fail."""
    from reportgen.results.shard_record import _BY_ANNOTATION, _annotations, shard_setting_names

    annotations = _annotations()
    unchecked = {n: annotations[n] for n in shard_setting_names()}.items()
    assert [(n, kind) for n, kind in unchecked if kind not in _BY_ANNOTATION] == []
    assert "cluster" not in shard_setting_names() and "jobs" not in shard_setting_names()
