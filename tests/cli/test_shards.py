"""``reportgen shard`` and ``reportgen merge`` (issue #14): shards merged in any order give
the bytes of one ``reportgen run``; a shard made twice is the same bytes; shards of
different runs, missing or repeated parts, damaged entries and bad --part values are
refused with one ``Error:`` line, and a failed merge leaves the report in place."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import error_line, invoke_reproducible, snapshot, write_images

# A tiny custom model on 32x32 views: each command takes about a second on 2 cores.
# Batches of 2: the 5 inputs are 3 batches, one per part (parts are whole batches).
OPTIONS = (
    "-m", "tests.tinynet_factory:build", "--weights", "none", "--input-size", "32",
    "--top-k", "2", "--examples", "2", "--device", "cpu", "--jobs", "1", "--batch-size", "2",
)  # fmt: skip
PARTS = 3
# The shards name a custom model: merge imports it only when told (a shard is data).
TRUSTED = ("-m", "tests.tinynet_factory:build")


def run_ok(*args: str) -> None:
    result = invoke_reproducible("-q", *args)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)


def make_shards(*extra: str, parts: int = PARTS, into: str = "part") -> list[str]:
    names = []
    for part in range(1, parts + 1):
        name = f"{into}-{part}"
        run_ok("shard", "images", "--part", f"{part}/{parts}", *OPTIONS, *extra, "-o", name)
        names.append(name)
    return names


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working folder with 5 small images, their single run's report and 3 shards."""
    folder = tmp_path_factory.mktemp("shards")
    write_images(folder / "images", 5, (36, 40), grow=4, seed=3)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setenv("REPORTGEN_CACHE_DIR", "off")
        patch.setenv("REPORTGEN_OFFLINE", "1")
        run_ok("run", "images", *OPTIONS, "-o", "single")
        make_shards()
    return folder


@pytest.fixture
def work(made: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of ``made`` to change, as the working folder."""
    copy = tmp_path / "work"
    shutil.copytree(made, copy)
    monkeypatch.chdir(copy)
    return copy


def test_shards_merged_in_any_order_are_the_single_run_byte_for_byte(
    work: Path, forward_passes: list[int]
) -> None:
    run_ok("merge", *TRUSTED, "part-3", "part-1", "part-2", "-o", "merged")
    assert forward_passes == []  # every result came from the shards
    assert snapshot(work / "merged") == snapshot(work / "single")
    # The report records the run it equals: its settings and the command that remakes it.
    manifest = json.loads((work / "merged" / "manifest.json").read_text())
    assert manifest["settings"]["inputs"] == ["images"]
    # The statistics files compared hold the channel contributions (issue 23).
    assert all(
        "contribution" in layer["stats_file"]["fields"] for layer in manifest["models"][0]["layers"]
    )
    assert "reportgen run images" in (work / "merged" / "index.html").read_text()


def test_class_pages_of_shards_merged_in_another_order_are_the_single_runs(work: Path) -> None:
    """The class-wide statistics (class pages, what channel pages say a channel drives,
    the manifest's classes) come out of merged shards as out of one run."""
    run_ok("merge", *TRUSTED, "part-2", "part-3", "part-1", "-o", "merged")
    merged, single = snapshot(work / "merged"), snapshot(work / "single")
    classes = sorted(p for p in single if "/classes/" in p)
    assert classes and {p: merged.get(p) for p in classes} == {p: single[p] for p in classes}
    manifest = json.loads(single["manifest.json"])
    (model,) = manifest["models"]
    assert model["classes"] and all(c["channels"] for c in model["classes"])
    assert merged == single


def test_a_shard_made_twice_is_the_same_bytes_whatever_the_time(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(work / "part-2")
    result = invoke_reproducible(
        "-q", "shard", "images", "--part", "2/3", *OPTIONS, "-o", "part-2",
        env={"SOURCE_DATE_EPOCH": "1800000000"},
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert snapshot(work / "part-2") == before
    record = json.loads((work / "part-2" / "shard.json").read_text())
    assert record["part"] == [2, 3] and record["inputs_found"] == 5
    assert [i["source"] for i in record["inputs"]] == ["images/img2.png", "images/img3.png"]
    assert len(record["entries"]) == 2 and "output" not in record["settings"]
    # The shard is a folder reportgen verify can check (its manifest lists every file).
    verified = invoke_reproducible("verify", "part-2")
    assert verified.exit_code == 0, verified.stdout


def test_shards_of_different_settings_are_refused_naming_the_difference(work: Path) -> None:
    run_ok("shard", "images", "--part", "2/3", *OPTIONS, "--top-k", "3", "-o", "part-2")
    result = invoke_reproducible("merge", *TRUSTED, "part-1", "part-2", "part-3", "-o", "merged")
    error_line(result, 1, "Error: part-2 was made with --top-k 3, part-1 with --top-k 2")
    assert not (work / "merged").exists()


def test_shards_of_different_models_are_refused(work: Path) -> None:
    other = [*OPTIONS]
    other[1] = "tests.weightsnet_factory:build"
    run_ok("shard", "images", "--part", "3/3", *other, "-o", "part-3")
    result = invoke_reproducible("merge", *TRUSTED, "part-1", "part-2", "part-3", "-o", "merged")
    error_line(
        result,
        1,
        "part-3 was made with --model tests.weightsnet_factory:build, "
        "part-1 with --model tests.tinynet_factory:build",
    )


def test_missing_and_repeated_parts_are_refused(work: Path) -> None:
    error_line(
        invoke_reproducible("merge", *TRUSTED, "part-3", "part-1", "-o", "merged"),
        1,
        "Error: part 2 of 3 is missing",
    )
    shutil.copytree("part-1", "part-1-again")
    error_line(
        invoke_reproducible(
            "merge", *TRUSTED, "part-1", "part-2", "part-3", "part-1-again", "-o", "m"
        ),
        1,
        "part 1 of 3 is given twice (part-1 and part-1-again)",
    )
    error_line(
        invoke_reproducible("merge", *TRUSTED, "part-1", "part-2", "images", "-o", "merged"),
        1,
        "shard 'images' has no shard.json",
    )


@pytest.mark.parametrize("part", ["0/3", "4/3", "x", "1/0", "2"])
def test_a_bad_part_is_a_usage_error(work: Path, part: str) -> None:
    result = invoke_reproducible("shard", "images", "--part", part, *OPTIONS)
    error_line(result, 2, f"--part {part!r}")
    assert not Path("part-0").exists() and not Path("part-4").exists()


def test_a_damaged_entry_is_refused_and_the_report_in_place_stays(work: Path) -> None:
    run_ok("merge", *TRUSTED, "part-1", "part-2", "part-3", "-o", "merged")
    before = snapshot(work / "merged")
    record = json.loads((work / "part-2" / "shard.json").read_text())
    entry = work / "part-2" / record["entries"][0]["path"]
    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0xFF
    entry.write_bytes(bytes(data))
    result = invoke_reproducible("merge", *TRUSTED, "part-1", "part-2", "part-3", "-o", "merged")
    error_line(result, 1, "shard 'part-2'", record["entries"][0]["path"], "sha256")
    assert snapshot(work / "merged") == before
    (work / "part-3" / "shard.json").write_text("{not json")
    result = invoke_reproducible("merge", *TRUSTED, "part-1", "part-3", "-o", "merged")
    error_line(result, 1, "shard 'part-3': shard.json is not valid JSON")
    assert snapshot(work / "merged") == before


def test_inputs_added_or_removed_since_the_shards_are_refused(work: Path) -> None:
    """The inputs changed after the shards were made (every part's boundaries moved):
    the merge says so, computing nothing and replacing nothing."""
    run_ok("merge", *TRUSTED, "part-1", "part-2", "part-3", "-o", "merged")
    before = snapshot(work / "merged")
    write_images(work / "images", 1, (36, 40), seed=9, prefix="new")
    result = invoke_reproducible("merge", *TRUSTED, "part-1", "part-2", "part-3", "-o", "merged")
    error_line(result, 1, "the inputs changed since the shards were made", "finds 6", "from 5")
    (work / "images" / "new0.png").unlink()
    removed = sorted((work / "images").iterdir())[-1]
    removed.unlink()
    result = invoke_reproducible("merge", *TRUSTED, "part-1", "part-2", "part-3", "-o", "merged")
    error_line(result, 1, "the inputs changed", f"missing: 'images/{removed.name}'")
    assert snapshot(work / "merged") == before


def test_an_input_no_shard_holds_is_named(work: Path) -> None:
    """The same number of inputs, one of them replaced by another picture: the one cache
    branch finds no result for it, and the merge names it, computing nothing."""
    replaced = sorted((work / "images").iterdir())[2]
    write_images(work / "images", 1, (36, 40), seed=11, names=[replaced.name])
    result = invoke_reproducible("merge", *TRUSTED, "part-1", "part-2", "part-3", "-o", "merged")
    error_line(result, 1, f"input 'images/{replaced.name}' has no result in the shards")


def test_inputs_with_the_same_bytes_in_one_part_and_in_two(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Copies of one picture (in one part, and in two parts) share one result entry, as
    they share a cache entry: the merge is still the single run."""
    images = write_images(tmp_path / "images", 3, (36, 40), seed=4)
    for name in ("copy-a.png", "copy-b.png", "copy-c.png"):
        shutil.copyfile(images / "img1.png", images / name)
    monkeypatch.chdir(tmp_path)
    run_ok("run", "images", *OPTIONS, "-o", "single")
    names = make_shards(parts=2)
    run_ok("merge", *TRUSTED, *names, "-o", "merged")
    assert snapshot(tmp_path / "merged") == snapshot(tmp_path / "single")


def test_a_failed_shard_leaves_the_previous_one(work: Path) -> None:
    before = snapshot(work / "part-1")
    result = invoke_reproducible(
        "shard", "images", "--part", "1/3", *OPTIONS, "-l", "no_such_layer", "-o", "part-1"
    )
    error_line(result, None)
    assert snapshot(work / "part-1") == before


def test_parts_are_contiguous_blocks_of_whole_batches_covering_every_input_once() -> None:
    from reportgen.results.shards import part_slice

    for count in (0, 1, 5, 17, 64):
        for parts in (1, 2, 3, 7):
            for batch in (1, 2, 8):
                slices = [part_slice(count, k, parts, batch) for k in range(1, parts + 1)]
                covered = [i for s in slices for i in range(count)[s]]
                assert covered == list(range(count))
                assert all(s.start % batch == 0 for s in slices)
    # Batches of one: the K-th of N blocks of n inputs, (K-1)*n//N to K*n//N.
    assert [part_slice(10, k, 4) for k in (1, 2, 3, 4)] == [
        slice(0, 2),
        slice(2, 5),
        slice(5, 7),
        slice(7, 10),
    ]


def test_a_shard_and_a_report_never_replace_each_other(work: Path) -> None:
    before = snapshot(work / "part-1")
    result = invoke_reproducible("merge", *TRUSTED, "part-1", "part-2", "part-3", "-o", "part-1")
    error_line(result, 2, "-o 'part-1' is the shard 'part-1'")
    assert snapshot(work / "part-1") == before
    report = snapshot(work / "single")
    result = invoke_reproducible("shard", "images", "--part", "1/3", *OPTIONS, "-o", "single")
    error_line(result, 1, "single' is a reportgen report, not a shard")
    assert snapshot(work / "single") == report
    # Nor does a report replace a shard (run, or merge into another shard).
    result = invoke_reproducible("run", "images", *OPTIONS, "-o", "part-1")
    error_line(result, 1, "part-1' is a shard (reportgen shard)")
    shutil.copytree(work / "part-1", work / "part-9")
    result = invoke_reproducible("merge", *TRUSTED, "part-1", "part-2", "part-3", "-o", "part-9")
    error_line(result, 1, "part-9' is a shard (reportgen shard)")
    assert snapshot(work / "part-1") == before


def test_shards_of_different_weights_files_are_refused(work: Path) -> None:
    """The same -m and --weights path, but the file changed between the parts."""
    import torch

    from tests.tinynet_factory import build

    options = [o for o in OPTIONS if o != "none"]
    options[options.index("--weights") + 1 : options.index("--weights") + 1] = ["w.pt"]
    for seed, parts in ((1, ("1",)), (2, ("2", "3"))):
        torch.manual_seed(seed)
        torch.save(build().state_dict(), "w.pt")
        for part in parts:
            run_ok("shard", "images", "--part", f"{part}/3", *options, "-o", f"part-{part}")
    result = invoke_reproducible("merge", *TRUSTED, "part-1", "part-2", "part-3", "-o", "merged")
    error_line(result, 1, "part-2 was made with other weights for model", "w.pt, sha256")


def test_shards_of_other_torch_thread_counts_are_refused(work: Path) -> None:
    """Some layers' last bits depend on torch's thread count: the merge compares the
    counts the shards recorded (a shard made on a machine with other cores)."""
    from reportgen.results.shards import Shard, check_same_run, read_shard

    shards = [read_shard(name) for name in ("part-1", "part-2", "part-3")]
    assert all(isinstance(s.record["torch_threads"], int) for s in shards)
    assert check_same_run(shards)  # as made: one count
    other = Shard(shards[1].folder, "part-2", {**shards[1].record, "torch_threads": 64})
    with pytest.raises(Exception, match="part-2 was computed with 64 torch threads"):
        check_same_run([shards[0], other, shards[2]])


# Every channel of TinyNet's two layers (8 and 6), in batches of 4: 4 units of feature
# visualisation (2 and 2), shared out as inputs are: 1, 1 and 2 per part.
FEATURE_VIS = (
    "--feature-vis", "--fv-channels", "all", "--fv-steps", "3", "--fv-size", "32",
    "--fv-batch", "4",
)  # fmt: skip


def test_feature_visualisations_are_shared_out_and_merged_into_the_single_run(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reportgen.compute import featurevis

    run_ok("run", "images", *OPTIONS, *FEATURE_VIS, "-o", "single-fv")
    names = make_shards(*FEATURE_VIS, into="fv")
    units = [
        [e for e in json.loads((work / n / "shard.json").read_text())["entries"]
         if e["input"].startswith("featurevis ")]
        for n in names
    ]  # fmt: skip
    assert [len(u) for u in units] == [1, 1, 2]
    assert len({e["path"] for u in units for e in u}) == 4  # each unit in one shard only

    def not_here(*_args: object) -> None:
        raise AssertionError("the merge optimised a unit the shards hold")

    monkeypatch.setattr(featurevis, "optimise_unit", not_here)
    for order, out in ((names[::-1], "merged-fv"), ([names[1], names[2], names[0]], "again")):
        run_ok("merge", *TRUSTED, *order, "-o", out)
        assert snapshot(work / out) == snapshot(work / "single-fv")
    manifest = json.loads((work / "merged-fv" / "manifest.json").read_text())
    pictures = [
        c["feature_vis"] for m in manifest["models"] for la in m["layers"]
        for c in la["channels"] if c.get("feature_vis")
    ]  # fmt: skip
    assert len(pictures) == 14  # every channel of the two layers
