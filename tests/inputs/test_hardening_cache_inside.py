"""The cache is never read as input (issue 27, class 6): with the cache inside an input
folder (``XDG_CACHE_HOME=./.cache``, ``--cache-dir``, an old cache made before caches were
tagged), a second run finds the same inputs as the first and writes the same report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from reportgen.inputs.discovery import CACHE_TAG, discover_inputs
from tests.helpers import invoke_reproducible, snapshot, write_images

OPTIONS = (
    "-m", "tests.tinynet_factory:build", "--weights", "none", "--input-size", "32",
    "--device", "cpu", "--top-k", "2", "--examples", "2", "--jobs", "1",
)  # fmt: skip


def run(*args: str, env: dict[str, str | None]) -> None:
    result = invoke_reproducible("-q", "run", "proj", *OPTIONS, *args, env=env)
    assert result.exit_code == 0, result.stderr


def inputs_of(report: Path) -> list[str]:
    manifest = json.loads((report / "manifest.json").read_text())
    return [item["source"] for item in manifest["inputs"]]


CASES = {
    "XDG_CACHE_HOME=proj/.cache": ({"XDG_CACHE_HOME": "proj/.cache"}, (), "proj/.cache/reportgen"),
    "REPORTGEN_CACHE_DIR=proj/sub/c": ({"REPORTGEN_CACHE_DIR": "proj/sub/c"}, (), "proj/sub/c"),
    "--cache-dir proj/c": ({}, ("--cache-dir", "proj/c"), "proj/c"),
}


@pytest.mark.parametrize("untagged", [False, True], ids=["tagged", "made before tags"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_cache_inside_an_input_folder_is_not_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, untagged: bool
) -> None:
    variables, args, cache = CASES[case]
    monkeypatch.chdir(tmp_path)
    write_images(tmp_path / "proj", 3, (36, 40), grow=4, seed=6)
    env: dict[str, str | None] = {"REPORTGEN_CACHE_DIR": None, **variables}
    run(*args, "-o", "first", env=env)
    assert Path(cache).is_dir() and list(Path(cache).rglob("*.png"))  # pictures cached
    if untagged:
        (Path(cache) / CACHE_TAG).unlink(missing_ok=True)
    for output in ("second", "third"):
        run(*args, "-o", output, env=env)
        assert inputs_of(tmp_path / output) == ["proj/img0.png", "proj/img1.png", "proj/img2.png"]
        assert snapshot(tmp_path / output) == snapshot(tmp_path / "first")
    assert (Path(cache) / CACHE_TAG).is_file()


def test_any_tagged_cache_folder_is_skipped_and_a_false_tag_is_not(tmp_path: Path) -> None:
    write_images(tmp_path / "proj", 2, (8, 8))
    shutil.copytree(tmp_path / "proj", tmp_path / "proj" / "pip-cache")
    (tmp_path / "proj" / "pip-cache" / CACHE_TAG).write_bytes(
        b"Signature: 8a477f597d28d172789f06886806bc55\n"
    )
    shutil.copytree(
        tmp_path / "proj", tmp_path / "proj" / "photos", ignore=lambda *_: ["pip-cache"]
    )
    (tmp_path / "proj" / "photos" / CACHE_TAG).write_text("not the signature\n")
    files, _ = discover_inputs([str(tmp_path / "proj")])
    names = sorted(str(f.path.relative_to(tmp_path / "proj")) for f in files)
    assert names == ["img0.png", "img1.png", "photos/img0.png", "photos/img1.png"]
