"""The cache behind incremental re-runs: what is recomputed, what is replayed, and that
cached output is byte for byte the output of a run without the cache."""

from __future__ import annotations

import dataclasses
import filecmp
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reportgen.api import build_report as _build_report
from reportgen.results import store as cache
from reportgen.settings import RunSettings
from tests.helpers import write_images

LAYERS = ("features.0", "features.3")


def build_report(settings: RunSettings) -> Any:
    return _build_report(settings=settings)


def _settings(images: Path, out: Path, cache_dir: Path | None, **options: Any) -> RunSettings:
    cache: dict[str, Any] = {"cache_dir": str(cache_dir)} if cache_dir else {"no_cache": True}
    return RunSettings(
        inputs=(str(images),),
        output=str(out),
        models=("alexnet",),
        weights="none",
        layers=LAYERS,
        **cache,
        **options,
    )


@pytest.fixture(autouse=True)
def _fixed_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")


def _same_tree(a: Path, b: Path) -> None:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    _, mismatch, errors = filecmp.cmpfiles(a, b, [str(p) for p in files_a], shallow=False)
    assert mismatch == [] and errors == []


def test_unchanged_rerun_replays_the_same_report_without_the_network(
    small_images: Path, tmp_path: Path, forward_passes: list[int]
) -> None:
    plain = tmp_path / "plain"
    build_report(_settings(small_images, plain, None))
    forward_passes.clear()
    cached = tmp_path / "cached"
    store = tmp_path / "cache"
    first = build_report(_settings(small_images, cached, store))
    assert sum(forward_passes) == 3 and first.extra.get("cache") != "replayed"
    _same_tree(plain, cached)
    forward_passes.clear()
    again = build_report(_settings(small_images, cached, store))
    assert again.extra.get("cache") == "replayed"
    assert forward_passes == []  # no model, no network
    assert again.pages == first.pages and again.files == first.files
    assert again.inputs == first.inputs and again.layers == first.layers
    _same_tree(plain, cached)
    # Another output folder gets the same files.
    elsewhere = tmp_path / "elsewhere"
    build_report(_settings(small_images, elsewhere, store))
    _same_tree(plain, elsewhere)


def test_an_added_input_is_the_only_one_computed(
    small_images: Path, tmp_path: Path, forward_passes: list[int]
) -> None:
    store = tmp_path / "cache"
    out = tmp_path / "report"
    build_report(_settings(small_images, out, store, batch_size=1))
    assert forward_passes == [1, 1, 1]
    write_images(small_images, 1, (40, 56), names=["img9.png"], seed=9)
    forward_passes.clear()
    summary = build_report(_settings(small_images, out, store, batch_size=1))
    assert forward_passes == [1]  # only the new input ran through the network
    assert len(summary.inputs) == 4
    plain = tmp_path / "plain"
    build_report(_settings(small_images, plain, None, batch_size=1))
    _same_tree(plain, out)


def test_cached_inputs_in_a_mixed_batch_keep_input_order(
    small_images: Path, tmp_path: Path, forward_passes: list[int]
) -> None:
    store = tmp_path / "cache"
    out = tmp_path / "report"
    build_report(_settings(small_images, out, store))
    # sorts between cached inputs
    write_images(small_images, 1, (40, 56), names=["img0a.png"], seed=5)
    forward_passes.clear()
    build_report(_settings(small_images, out, store))
    assert forward_passes == [1]
    plain = tmp_path / "plain"
    build_report(_settings(small_images, plain, None))
    manifest = (out / "manifest.json").read_text()
    expected = (plain / "manifest.json").read_text()
    # Same structure and order; values may differ in the last float bits only where the
    # batch composition differs, which json would show: compare the parsed shapes.
    import json

    got, want = json.loads(manifest), json.loads(expected)
    assert [i["id"] for i in got["inputs"]] == [i["id"] for i in want["inputs"]]
    for g_model, w_model in zip(got["models"], want["models"]):
        assert list(g_model["predictions"]) == list(w_model["predictions"])
        assert list(g_model["gradcam"]) == list(w_model["gradcam"])
        for g_layer, w_layer in zip(g_model["layers"], w_model["layers"]):
            assert list(g_layer["selected"]) == list(w_layer["selected"])
            assert list(g_layer["detail_pages"]) == list(w_layer["detail_pages"])
            g_stats = np.load(out / g_layer["stats_file"]["path"])
            w_stats = np.load(plain / w_layer["stats_file"]["path"])
            assert np.allclose(g_stats, w_stats, atol=1e-4, equal_nan=True)


def test_a_changed_setting_recomputes_everything(
    small_images: Path, tmp_path: Path, forward_passes: list[int]
) -> None:
    store = tmp_path / "cache"
    build_report(_settings(small_images, tmp_path / "a", store))
    forward_passes.clear()
    build_report(_settings(small_images, tmp_path / "b", store, colormap="viridis"))
    assert sum(forward_passes) == 3


def test_a_changed_report_file_is_not_replayed(
    small_images: Path, tmp_path: Path, forward_passes: list[int]
) -> None:
    store = tmp_path / "cache"
    out = tmp_path / "report"
    build_report(_settings(small_images, out, store))
    plain = tmp_path / "plain"
    build_report(_settings(small_images, plain, None))
    # The report's files may be hard links into the cache: editing one edits the kept copy.
    index = out / "index.html"
    with index.open("r+b") as handle:
        handle.write(b"XX")
    forward_passes.clear()
    summary = build_report(_settings(small_images, out, store))
    assert summary.extra.get("cache") != "replayed"
    assert forward_passes == []  # per-input results still come from the cache
    _same_tree(plain, out)


def test_no_cache_writes_nothing(small_images: Path, tmp_path: Path) -> None:
    store = tmp_path / "cache"
    settings = dataclasses.replace(_settings(small_images, tmp_path / "r", store), no_cache=True)
    build_report(settings)
    assert not store.exists()


def test_cache_root_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert cache.cache_root(str(tmp_path)) == tmp_path
    assert cache.cache_root(str(tmp_path), disabled=True) is None
    monkeypatch.setenv("REPORTGEN_CACHE_DIR", "off")
    assert cache.cache_root(None) is None
    monkeypatch.setenv("REPORTGEN_CACHE_DIR", str(tmp_path / "x"))
    assert cache.cache_root(None) == tmp_path / "x"
    monkeypatch.delenv("REPORTGEN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_root(None) == tmp_path / "xdg" / "reportgen"


def test_entries_round_trip_and_damaged_entries_miss(tmp_path: Path) -> None:
    store = cache.InputCache(tmp_path)
    arrays = {"mean": np.arange(5, dtype=np.float64), "argmax_y": np.arange(5, dtype=np.int64)}
    store.store("ab" * 32, cache.Entry({"range": [0.0, 1.5]}, arrays, {"map0": b"\x89PNG"}))
    entry = store.load("ab" * 32)
    assert entry is not None
    assert entry.header == {"range": [0.0, 1.5]} and entry.blobs == {"map0": b"\x89PNG"}
    np.testing.assert_array_equal(entry.arrays["argmax_y"], np.arange(5))
    path = next((tmp_path / "inputs").rglob("*.bin"))
    path.write_bytes(b"garbage")
    assert store.load("ab" * 32) is None
    assert cache.InputCache(None).load("ab" * 32) is None


def test_kept_runs_are_pruned(tmp_path: Path) -> None:
    runs = cache.RunCache(tmp_path)
    report = tmp_path / "report"
    report.mkdir()
    (report / "a.txt").write_text("a")
    (report / "manifest.json").write_text("{}")
    manifest = {"files": [{"path": "a.txt", "sha256": "x", "bytes": 1}]}
    for i in range(4):
        runs.save(f"key{i}", report, manifest, keep=2)
    assert len([p for p in (tmp_path / "runs").iterdir() if not p.name.startswith(".")]) == 2
    shutil.rmtree(report)
