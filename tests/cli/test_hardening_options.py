"""Issue 15, class 2: options validated before any work.

Every number of a run is checked where the settings enter the pipeline
(``run_options``), whoever made them: finite decimals, whole numbers in range
(``--seed`` too); a config file's values are of exactly the option's kind (a float or a
boolean for a whole-number option is an error, not a silent ``int()``); config files and
manifests that nest too deeply are one ``Error:`` line, not a RecursionError.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path

import pytest
from PIL import Image

from reportgen.errors import UsageError
from reportgen.settings import INT_RANGES, RunSettings
from tests.helpers import error_line, invoke

FAST = ("-m", "alexnet", "-l", "features.0", "--weights", "none", "--device", "cpu")


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "in.png"
    Image.new("RGB", (40, 32), (90, 140, 200)).save(path)
    return path


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any input discovery (the first work of a run) fails the test."""
    import reportgen.pipeline.inputs

    def discover(*args: object, **kwargs: object) -> None:
        raise AssertionError("the run started work before its options were checked")

    monkeypatch.setattr(reportgen.pipeline.inputs, "discover_inputs", discover)


BAD_NUMBERS = {
    "interesting-mean nan": (("--interesting-mean", "nan"), "--interesting-mean must be a finite"),
    "interesting-mean inf": (("--interesting-mean", "inf"), "--interesting-mean must be a finite"),
    "interesting-max -inf": (("--interesting-max", "-inf"), "--interesting-max must be a finite"),
    "mean nan": (("--mean", "0.5,nan,0.5"), "--mean must be a finite number"),
    "std zero": (("--std", "0.2,0,0.2"), "--std must be greater than 0"),
    "std two numbers": (("--std", "0.2,0.2"), "--std takes 1 or 3 numbers"),
    "max-single-file-mb nan": (("--max-single-file-mb", "nan"), "--max-single-file-mb must be"),
    "max-single-file-mb inf": (("--max-single-file-mb", "inf"), "--max-single-file-mb must be"),
    "seed 2**64": (("--seed", str(2**64)), "--seed must be at most 4294967295"),
    "seed 2**64-1": (("--seed", str(2**64 - 1)), "--seed must be at most"),
    "seed negative": (("--seed", "-1"), "--seed must be at least 0"),
    "jobs zero": (("--jobs", "0"), "--jobs must be at least 1"),
    "jobs negative": (("--jobs", "-4"), "--jobs must be at least 1"),
    "batch size huge": (("--batch-size", "1000000"), "--batch-size must be at most"),
    "input size huge": (("--input-size", "100000"), "--input-size must be at most"),
    "fv size huge": (("--fv-size", "100000"), "--fv-size must be at most"),
    "examples huge": (("--examples", "100000"), "--examples must be at most"),
    "channel huge": (
        ("--strategy", "manual", "--channels", str(2**70)),
        "--channels must be non-negative",
    ),
}


@pytest.mark.parametrize("case", list(BAD_NUMBERS), ids=list(BAD_NUMBERS))
def test_bad_number_is_a_usage_error_before_any_work(
    image: Path, tmp_path: Path, no_work: None, case: str
) -> None:
    options, needle = BAD_NUMBERS[case]
    out = tmp_path / "out"
    error_line(invoke("run", str(image), "-o", str(out), *FAST, *options), 2, needle)
    assert not out.exists()


def test_the_largest_seed_in_range_is_taken(image: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    high = INT_RANGES["seed"][1]
    result = invoke("run", str(image), "-o", str(out), *FAST, "--jobs", "1", "--seed", str(high))
    assert result.exit_code == 0, result.stderr
    assert json.loads((out / "manifest.json").read_text())["settings"]["seed"] == high


@pytest.mark.parametrize(
    "field, value, needle",
    [
        ("seed", 2**64, "--seed must be at most"),
        ("top_k", 2.9, "--top-k must be a whole number, got 2.9"),
        ("top_k", True, "--top-k must be a whole number, got True"),
        ("batch_size", 4.0, "--batch-size must be a whole number"),
        ("interesting_mean", float("nan"), "--interesting-mean must be a finite number"),
        ("interesting_max", "2", "--interesting-max must be a number"),
        ("std", (1.0, float("inf"), 1.0), "--std must be a finite number"),
        ("channels", (1.5,), "--channels must be whole numbers"),
        ("jobs", 0, "--jobs must be at least 1"),
    ],
)
def test_settings_from_anywhere_are_checked(field: str, value: object, needle: str) -> None:
    """The API (and anything else that makes RunSettings) meets the same checks."""
    from reportgen.run_options import run_options

    extra = {"strategy": "manual"} if field == "channels" else {}
    settings = RunSettings(inputs=("x.png",), **{field: value}, **extra)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=needle.replace("(", r"\(")):
        run_options(settings, writes=False)


# ---------------------------------------------------------------- exact TOML types

BAD_TOML = {
    "float for an integer": ("top-k = 2.9", "'top-k' must be a whole number, got 2.9"),
    "boolean for an integer": ("top-k = true", "'top-k' must be a whole number, got true"),
    "float seed": ("seed = 1e30", "'seed' must be a whole number"),
    "string for a number": ('alpha = "0.5"', "'alpha' must be a number, got '0.5'"),
    "boolean for a number": ("alpha = false", "'alpha' must be a number, got false"),
    "number for a flag": ("offline = 1", "'offline' must be true or false, got 1"),
    "string for a flag": ('single-file = "yes"', "'single-file' must be true or false"),
    "number for a string": ("colormap = 5", "'colormap' must be a string, got 5"),
    "nested list": ('model = [["alexnet"]]', "'model' (each item) must be a string, got a list"),
    "number in a list of strings": ("layer = [1]", "'layer' (each item) must be a string"),
    "float channel": ('strategy = "manual"\nchannels = [0, 2.5]', "'channels' (each item)"),
    "boolean channel": ('strategy = "manual"\nchannels = [true]', "must be a whole number"),
    "string in mean": ('mean = ["a", 1, 1]', "'mean' (each item) must be a number"),
    "table for a value": ("top-k = {a = 1}", "'top-k' takes one value, got a table"),
    "nan": ("interesting-mean = nan", "--interesting-mean must be a finite number, got nan"),
    "inf": ("interesting-max = -inf", "--interesting-max must be a finite number"),
    "seed out of range": (f"seed = {2**40}", "--seed must be at most"),
}


@pytest.mark.parametrize("case", list(BAD_TOML), ids=list(BAD_TOML))
def test_config_values_of_the_wrong_kind(
    image: Path, tmp_path: Path, no_work: None, case: str
) -> None:
    text, needle = BAD_TOML[case]
    config = tmp_path / "run.toml"
    config.write_text(text + "\n")
    out = tmp_path / "out"
    result = invoke("run", str(image), "--config", str(config), "-o", str(out), *FAST)
    error_line(result, 2, needle)
    assert not out.exists()


def test_config_values_of_the_right_kind() -> None:
    from reportgen.cli.commands import run
    from reportgen.cli.config import normalise

    params = {p.name: p for p in run.params if p.name}
    values = normalise(
        {
            "top-k": 3,
            "alpha": 1,  # a whole number is a number
            "interesting-mean": 0.25,
            "offline": False,
            "channels": [0, 5],
            "mean": [0.5, 1, 0.5],
            "target-class": 281,  # an index or a label
            "model": "alexnet",
            "layer": ["features.0"],
        },
        params,
        "test",
    )
    assert values == {
        "top_k": 3,
        "alpha": 1,
        "interesting_mean": 0.25,
        "offline": False,
        "channels": "0,5",
        "mean": "0.5,1,0.5",
        "target_class": "281",
        "models": ["alexnet"],
        "layers": ["features.0"],
    }


@pytest.mark.parametrize("depth", [20, 100_000])
def test_deeply_nested_config_is_one_error_line(
    image: Path, tmp_path: Path, no_work: None, depth: int
) -> None:
    config = tmp_path / "deep.toml"
    config.write_text("layer = " + "[" * depth + '"x"' + "]" * depth + "\n")
    result = invoke("run", str(image), "--config", str(config), "-o", str(tmp_path / "o"), *FAST)
    error_line(result, 2, "nests lists or tables more than 16 deep")


def test_config_that_is_a_fifo_is_refused_at_once(image: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "run.toml"
    os.mkfifo(fifo)
    done = threading.Event()

    def release() -> None:  # an old reader blocked on the FIFO is let go after 5 s
        if not done.wait(5):
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    threading.Thread(target=release, daemon=True).start()
    try:
        result = invoke("run", str(image), "--config", str(fifo), "-o", str(tmp_path / "o"), *FAST)
    finally:
        done.set()
    error_line(result, 2, "FIFO")


# ---------------------------------------------------------------- manifests nest too


def deep_manifest(path: Path, depth: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = '{"generator": {"name": "reportgen"}, "settings": {}, "x": '
    path.write_text(body + "[" * depth + "]" * depth + "}")
    return path


@pytest.mark.parametrize("depth", [40, 100_000])
def test_deeply_nested_manifest_is_one_error_line(tmp_path: Path, depth: int) -> None:
    manifest = deep_manifest(tmp_path / "report" / "manifest.json", depth)
    error_line(invoke("verify", str(manifest.parent)), 1, "nests lists or objects more than 32")
    result = invoke(
        "run", "--from-manifest", str(manifest), "x.png", "-o", str(tmp_path / "o"), *FAST
    )
    error_line(result, 2, "nests lists or objects more than 32")


@pytest.mark.parametrize("inside", ["cache", "deep/er/cache", "."])
def test_a_cache_inside_the_output_is_a_usage_error(
    image: Path, tmp_path: Path, no_work: None, inside: str
) -> None:
    """The run replaces -o: a cache in there would be lost, or make the next run refuse."""
    out = tmp_path / "out"
    cache = out / inside
    result = invoke("run", str(image), "-o", str(out), "--cache-dir", str(cache), *FAST)
    error_line(result, 2, "is inside -o", "--cache-dir")
    assert not out.exists()


def test_a_cache_inside_the_output_from_the_environment(
    image: Path, tmp_path: Path, no_work: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    monkeypatch.setenv("REPORTGEN_CACHE_DIR", str(out / "cache"))
    error_line(invoke("run", str(image), "-o", str(out), *FAST), 2, "is inside -o")
