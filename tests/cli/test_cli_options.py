"""Issue 12: every option of ``reportgen run`` has one default (RunSettings') and works
the same on the command line, through ``make_settings`` and ``reportgen.build_report``.

The tables below are checked against the click command itself, so an option added to
``run`` without an entry here fails these tests.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
from pathlib import Path
from typing import Any

import click
import pytest
from PIL import Image

import reportgen
from reportgen import api
from reportgen.cli.commands import run
from reportgen.settings import SINGLE_FILE_OUTPUT, RunSettings, default_of
from tests.helpers import invoke

FIELDS = {f.name for f in dataclasses.fields(RunSettings)}
# Parameters of `run` that are no RunSettings field, and why.
NOT_SETTINGS = {
    "config": "reads other options' values from a TOML file",
    "from_manifest": "reads other options' values from an earlier report",
    "as_json": "how the command prints its summary",
    "allow_urls": "lets --from-manifest fetch the URL inputs a manifest names",
    "verbose": "how much the command prints (also before the subcommand)",
    "quiet": "how little the command prints (also before the subcommand)",
}
# RunSettings fields without an option: "inputs" is run's argument (INPUTS...).
NOT_OPTIONS = {"inputs"}

# Each option's python name: its command-line arguments, a value for the API and the
# value that must arrive in RunSettings. Every value differs from the default.
NON_DEFAULT: dict[str, tuple[list[str], Any, Any]] = {
    "output": (["-o", "elsewhere"], "elsewhere", "elsewhere"),
    "models": (["-m", "alexnet", "-m", "vgg11"], ["alexnet", "vgg11"], ("alexnet", "vgg11")),
    "model_labels": (["--label", "before"], "before", ("before",)),
    "weights": (["--weights", "none"], "none", "none"),
    "weights_dir": (["--weights-dir", "ckpts"], Path("ckpts"), "ckpts"),
    "offline": (["--offline"], True, True),
    "layers": (["-l", "features.0"], "features.0", ("features.0",)),
    "device": (["--device", "cpu"], "cpu", "cpu"),
    "seed": (["--seed", "3"], 3, 3),
    "batch_size": (["--batch-size", "2"], 2, 2),
    "jobs": (["--jobs", "2"], 2, 2),
    "cache_dir": (["--cache-dir", "cache"], "cache", "cache"),
    "no_cache": (["--no-cache"], True, True),
    "strategy": (["--strategy", "manual"], "manual", "manual"),
    "top_k": (["--top-k", "5"], 5, 5),
    "channels": (["--channels", "0,5"], "0,5", (0, 5)),
    "interesting_mean": (["--interesting-mean", "0.5"], 0.5, 0.5),
    "interesting_max": (["--interesting-max", "3"], 3, 3.0),
    "colormap": (["--colormap", "viridis"], "viridis", "viridis"),
    "alpha": (["--alpha", "0.25"], 0.25, 0.25),
    "overlay_files": (["--overlay-files"], True, True),
    "scale": (["--scale", "layer"], "layer", "layer"),
    "gradcam": (["--no-gradcam"], False, False),
    "cam": (["--cam", "gradcam,layercam"], "gradcam,layercam", ("gradcam", "layercam")),
    "contributions": (["--no-contributions"], False, False),
    "gradcam_layer": (["--gradcam-layer", "features.0"], "features.0", "features.0"),
    "target_class": (["--target-class", "281"], 281, "281"),
    "examples": (["--examples", "0"], 0, 0),
    "detail": (
        ["--detail", "a*.png", "--detail", "b.jpg"],
        ["a*.png", "b.jpg"],
        ("a*.png", "b.jpg"),
    ),
    "input_size": (["--input-size", "64"], 64, 64),
    "mean": (["--mean", "0.5,0.4,0.3"], [0.5, 0.4, 0.3], (0.5, 0.4, 0.3)),
    "std": (["--std", "0.2"], 0.2, (0.2,)),
    "labels_file": (["--labels", "names.txt"], Path("names.txt"), "names.txt"),
    "feature_vis": (["--feature-vis"], True, True),
    "fv_steps": (["--fv-steps", "8"], 8, 8),
    "fv_size": (["--fv-size", "64"], 64, 64),
    "fv_channels": (["--fv-channels", "all"], "all", "all"),
    "fv_negative": (["--fv-negative"], True, True),
    "fv_batch": (["--fv-batch", "8"], 8, 8),
    "fv_diversity": (["--fv-diversity", "3"], 3, 3),
    "strict": (["--strict"], True, True),
    "single_file": (["--single-file"], True, True),
    "max_single_file_mb": (["--max-single-file-mb", "5"], 5, 5.0),
    "cluster": (["--cluster", "local:2"], "local:2", "local:2"),
}


def _options() -> list[click.Option]:
    return [p for p in run.params if isinstance(p, click.Option)]


def _settings_options() -> list[str]:
    return [str(p.name) for p in _options() if p.name not in NOT_SETTINGS]


def _capture(monkeypatch: pytest.MonkeyPatch) -> list[RunSettings]:
    """The RunSettings that `reportgen run` and reportgen.build_report() hand over to
    the pipeline, which is not run (the CLI calls reportgen.api.build_report)."""
    seen: list[RunSettings] = []

    def cut(settings: RunSettings, writes: bool = True) -> RunSettings:
        seen.append(settings)
        return settings

    def pipeline(options: Any, progress: Any = None, analysis_only: bool = False) -> Any:
        return None

    # The settings are taken where they are cut into the stages' options; a stand-in
    # pipeline module: neither torch nor the pipeline's own imports are needed here.
    monkeypatch.setattr("reportgen.run_options.run_options", cut)
    fake = types.ModuleType("reportgen.pipeline")
    fake.build_report = pipeline  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "reportgen.pipeline", fake)
    return seen


def _cli(*args: str) -> None:
    # -q: the command prints nothing about the (not built) report.
    result = invoke("-q", "run", "in.png", *args, catch_exceptions=False)
    assert result.exit_code == 0, result.output


# --- one default per option ------------------------------------------------------------


def test_tables_cover_every_option_of_run() -> None:
    assert sorted(NON_DEFAULT) == sorted(_settings_options())
    names = {str(p.name) for p in _options()}
    assert [p.name for p in run.params if not isinstance(p, click.Option)] == ["inputs"]
    assert set(NOT_SETTINGS) <= names
    assert FIELDS - names == NOT_OPTIONS
    assert names - FIELDS == set(NOT_SETTINGS)


@pytest.mark.parametrize("name", _settings_options())
def test_each_option_default_is_run_settings_default(name: str) -> None:
    param = next(p for p in _options() if p.name == name)
    ctx = click.Context(run)
    # What the command receives when the option is not given (after its callback:
    # --channels "" is parsed to ()).
    value = param.process_value(ctx, param.get_default(ctx))
    assert value == default_of(name)
    assert type(value) is type(default_of(name))


def test_defaults_on_the_command_line_are_run_settings_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = _capture(monkeypatch)
    _cli()
    _cli("--single-file")
    assert seen == [
        RunSettings(inputs=("in.png",)),
        RunSettings(inputs=("in.png",), output=SINGLE_FILE_OUTPUT, single_file=True),
    ]
    assert api.make_settings("in.png") == seen[0]
    assert api.make_settings("in.png", single_file=True) == seen[1]


def test_help_shows_the_defaults_of_run_settings() -> None:
    text = " ".join(invoke("run", "--help").stdout.split())
    assert f"[default: {default_of('top_k')}]" in text
    assert f"[default: {', '.join(default_of('models'))}]" in text
    assert f"default {SINGLE_FILE_OUTPUT}" in text
    assert f"[default: {default_of('max_single_file_mb')};" in text  # and its range


# --- every option through the command line, make_settings and build_report ----------------


@pytest.mark.parametrize("name", _settings_options())
def test_each_option_arrives_from_every_entry(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    args, value, expected = NON_DEFAULT[name]
    assert expected != default_of(name)
    made = api.make_settings(["in.png"], **{name: value})
    assert getattr(made, name) == expected
    # Nothing else changed (but -o, which follows --single-file).
    changed: dict[str, Any] = {name: expected}
    if name == "single_file":
        changed["output"] = SINGLE_FILE_OUTPUT
    assert made == RunSettings(inputs=("in.png",), **changed)
    seen = _capture(monkeypatch)
    reportgen.build_report(["in.png"], **{name: value})
    _cli(*args)
    assert seen == [made, made]


@pytest.mark.parametrize("param", _options(), ids=lambda p: str(p.name))
def test_long_option_spellings_are_api_names(param: click.Option) -> None:
    """--model is model= as well as models=, --labels is labels= (labels_file=)."""
    for opt in param.opts + param.secondary_opts:
        if not opt.startswith("--") or opt.startswith("--no-"):
            continue
        spelling = opt[2:].replace("-", "_")
        if param.name in NOT_SETTINGS:
            assert spelling in api.CLI_ONLY
        else:
            assert api.LONG_NAMES.get(spelling, spelling) == param.name
            args, value, expected = NON_DEFAULT[str(param.name)]
            made = api.make_settings("in.png", **{spelling: value})
            assert getattr(made, str(param.name)) == expected


def test_single_file_through_the_api_writes_report_html(monkeypatch: pytest.MonkeyPatch) -> None:
    """The defect of issue 12: single_file=True was refused."""
    seen = _capture(monkeypatch)
    reportgen.build_report("in.png", single_file=True)
    reportgen.build_report("in.png", "mine.html", single_file=True)
    assert [(s.single_file, s.output) for s in seen] == [
        (True, SINGLE_FILE_OUTPUT),
        (True, "mine.html"),
    ]


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("models", "alexnet", ("alexnet",)),
        ("models", ("alexnet", "vgg11=ckpt.pth"), ("alexnet", "vgg11=ckpt.pth")),
        ("model", ["alexnet"], ("alexnet",)),
        ("layers", "layer?.0.conv1", ("layer?.0.conv1",)),  # a pattern is not split
        ("layer", ["conv1", "layer1.0.conv1"], ("conv1", "layer1.0.conv1")),
        ("layers", None, ()),
        ("model_labels", ("a", "b"), ("a", "b")),
        ("label", "a", ("a",)),
        ("channels", 5, (5,)),
        ("channels", "0, 5,10", (0, 5, 10)),
        ("channels", [0, "5"], (0, 5)),
        ("channels", range(3), (0, 1, 2)),
        ("mean", "0.5,0.5,0.5", (0.5, 0.5, 0.5)),
        ("mean", [1, 0.5], (1.0, 0.5)),
        ("std", 0.25, (0.25,)),
        ("labels", Path("names.txt"), "names.txt"),
        ("weights", Path("model.pth"), "model.pth"),
        ("target_class", "tabby", "tabby"),
        ("jobs", None, None),
    ],
)
def test_list_and_path_values(name: str, value: Any, expected: Any) -> None:
    made = api.make_settings([Path("a.png"), "b.png"], **{name: value})
    assert made.inputs == ("a.png", "b.png")
    assert getattr(made, api.LONG_NAMES.get(name, name)) == expected


def test_inputs_as_one_path_or_string() -> None:
    assert api.make_settings(Path("in.png")).inputs == ("in.png",)
    assert api.make_settings("images").inputs == ("images",)


@pytest.mark.parametrize("name", sorted(api.CLI_ONLY))
def test_command_line_only_options_are_a_clear_type_error(name: str) -> None:
    option: dict[str, Any] = {name: True}
    with pytest.raises(TypeError, match=f"{name}= is an option of the command line only"):
        api.make_settings("in.png", **option)
    with pytest.raises(TypeError, match=name):
        reportgen.build_report("in.png", **option)


@pytest.mark.parametrize(
    ("options", "error", "needle"),
    [
        ({"colour": "red"}, TypeError, "unknown option colour=; known options: alpha"),
        ({"model": "alexnet", "models": ["vgg11"]}, TypeError, "as model= and as models="),
        ({"top_k": "8"}, TypeError, "top_k= takes int, got str"),
        ({"top_k": 2.5}, TypeError, "top_k= takes int"),
        ({"gradcam": 0}, TypeError, "gradcam= takes bool"),
        ({"single_file": "yes"}, TypeError, "single_file= takes bool"),
        ({"alpha": True}, TypeError, "alpha= takes float"),
        ({"colormap": None}, TypeError, "colormap= takes str"),
        ({"channels": "0,a"}, ValueError, "channels= takes numbers, got 'a'"),
        ({"channels": [1.5]}, TypeError, "channels= takes int"),
        ({"models": 3}, TypeError, "models= takes a list of str"),
    ],
)
def test_wrong_values_are_named(options: dict[str, Any], error: type, needle: str) -> None:
    with pytest.raises(error, match=needle.replace("?", r"\?")):
        api.make_settings("in.png", **options)


def test_build_report_takes_settings_or_options_not_both() -> None:
    settings = RunSettings(inputs=("in.png",))
    with pytest.raises(TypeError, match="not both"):
        api.build_report(settings=settings, top_k=3)
    with pytest.raises(TypeError, match="needs inputs or settings"):
        api.build_report()


def test_a_manifests_settings_rebuild_the_same_run_settings() -> None:
    settings = api.make_settings(["a.png"], **{n: v for n, (_, v, _) in NON_DEFAULT.items()})
    recorded = json.loads(json.dumps(settings.as_manifest()))  # lists, as in manifest.json
    runtime = {n: getattr(settings, n) for n in FIELDS - set(recorded)}
    assert api.make_settings(**recorded, **runtime) == settings


# --- tiny real runs through the API -----------------------------------------------------

TINY = {
    "models": "alexnet",
    "weights": "none",
    "layers": "features.0",
    "gradcam": False,
    "no_cache": True,
    "examples": 0,
    "jobs": 1,
    "device": "cpu",
}


@pytest.fixture(scope="module")
def picture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("api") / "in.png"
    Image.new("RGB", (40, 32), (200, 120, 40)).save(path)
    return path


def test_analyze_runs(picture: Path) -> None:
    analysis: Any = reportgen.analyze([picture], **TINY)
    (model,) = analysis["models"]
    assert [layer["name"] for layer in model["layers"]] == ["features.0"]


def test_build_report_single_file_runs(picture: Path, tmp_path: Path) -> None:
    out = tmp_path / "one.html"
    summary: Any = reportgen.build_report([picture], out, single_file=True, **TINY)
    assert summary.report == str(out)
    assert out.is_file() and out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_cluster_comes_from_dask_scheduler_address_and_an_empty_value_turns_it_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = _capture(monkeypatch)
    env = {"DASK_SCHEDULER_ADDRESS": "tcp://scheduler:8786"}
    for args in ([], ["--cluster", ""], ["--cluster", "local:3"]):
        result = invoke("-q", "run", "in.png", *args, env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    assert [s.cluster for s in seen] == ["tcp://scheduler:8786", None, "local:3"]
