"""Which layers a run shows when -l is not given: every Conv2d whose output is a map;
the gates ([C, 1, 1] outputs, such as squeeze-and-excitation) only with -l conv."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from reportgen.nn.layers import LayerInfo, default_layers, gate_layers, resolve_layers, trace_layers
from tests.helpers import TESTS


def _info(name: str, shape: tuple[int, ...] | None, conv: bool = True) -> LayerInfo:
    kind = "Conv2d" if conv else "Linear"
    return LayerInfo(name, kind, shape, is_conv=conv, is_leaf=True, value=f"output of {kind}")


def test_gates_are_left_out_of_the_default_and_kept_by_conv() -> None:
    infos = [
        _info("a", (8, 16, 16)),
        _info("se.fc1", (4, 1, 1)),
        _info("se.fc2", (8, 1, 1)),
        _info("b", (6, 4, 4)),
        _info("aux", None),  # never reached
        _info("head", (3,), conv=False),
    ]
    assert gate_layers(infos) == ["se.fc1", "se.fc2"]
    assert default_layers(infos) == ["a", "b"]
    assert resolve_layers(infos, (), "m") == ["a", "b"]
    assert resolve_layers(infos, ("conv",), "m") == ["a", "se.fc1", "se.fc2", "b"]


def test_a_model_whose_every_conv_is_a_gate_shows_them_all() -> None:
    infos = [_info("c1", (4, 1, 1)), _info("c2", (2, 1, 1))]
    assert default_layers(infos) == ["c1", "c2"]


@pytest.fixture
def factories(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(TESTS))
    sys.modules.pop("fieldnet_factory", None)


def test_a_squeeze_and_excitation_model_traced(factories: None) -> None:
    import fieldnet_factory

    infos = trace_layers(fieldnet_factory.gated().eval(), 16)
    assert gate_layers(infos) == ["se.fc1", "se.fc2"]
    assert default_layers(infos) == ["conv1", "conv2"]


def test_the_report_says_what_the_default_left_out(factories: None, tmp_path: Path) -> None:
    import json

    from tests.helpers import invoke_reproducible, write_images

    images = write_images(tmp_path / "in", 2, (16, 16))
    out = tmp_path / "report"
    args = ["run", str(images), "-m", "fieldnet_factory:gated", "--weights", "none"]
    args += ["--input-size", "16", "--jobs", "1", "-o", str(out)]
    assert invoke_reproducible(*args).exit_code == 0
    model = json.loads((out / "manifest.json").read_text())["models"][0]
    assert [layer["name"] for layer in model["layers"]] == ["conv1", "conv2"]
    assert any(
        "2 Conv2d layers with a 1x1 output" in note and "-l conv" in note for note in model["notes"]
    )
    assert "-l conv shows every Conv2d" in (out / "index.html").read_text() + "".join(
        p.read_text() for p in out.glob("models/*/index.html")
    )
    assert invoke_reproducible(*args, "-l", "conv").exit_code == 0
    model = json.loads((out / "manifest.json").read_text())["models"][0]
    assert [layer["name"] for layer in model["layers"]] == ["conv1", "se.fc1", "se.fc2", "conv2"]
    assert not any("1x1 output" in note for note in model["notes"])
