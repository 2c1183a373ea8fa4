"""Defects the stage split brought to light (issue 12), each with the test that failed
before: analyze() encoded pictures, the target-class pass recorded every layer again,
the default Grad-CAM layer of GoogLeNet never ran."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import PIL.Image
import pytest

import reportgen
from reportgen.imaging import pictures
from tests.helpers import invoke

ENCODERS = [
    name
    for name in dir(pictures)
    if callable(getattr(pictures, name))
    and (name.endswith(("_png", "_jpeg", "_pngs")) or name.startswith("encode"))
]


def test_the_spy_sees_every_encoder() -> None:
    assert {"encode_png", "map_sheet_png", "overlay_jpeg", "tiles_strip_jpeg"} <= set(ENCODERS)


def test_analyze_encodes_no_picture_at_all(
    monkeypatch: pytest.MonkeyPatch, small_images: Path
) -> None:
    calls: Counter[str] = Counter()
    for name in ENCODERS:
        original = getattr(pictures, name)

        def spy(*args: Any, _name: str = name, _original: Any = original, **kw: Any) -> Any:
            calls[_name] += 1
            return _original(*args, **kw)

        monkeypatch.setattr(pictures, name, spy)
    saved: list[str] = []
    original_save = PIL.Image.Image.save
    monkeypatch.setattr(
        PIL.Image.Image,
        "save",
        lambda self, fp, *a, **kw: (saved.append(str(fp)), original_save(self, fp, *a, **kw))[1],
    )
    result = reportgen.analyze(
        [str(small_images)],
        models=["alexnet"],
        weights="none",
        layers=["features.0", "features.3", "classifier.6"],
        target_class="3",
        overlay_files=True,
        examples=2,
    )
    assert calls == Counter() and saved == []
    model = result["models"][0]
    assert len(model["predictions"]) == 3 and len(model["gradcam"]) == 3
    channel = model["layers"][0]["channels"][0]
    assert len(channel["examples"]) == 2  # and where their sheet would go:
    assert model["layers"][0]["images"]["examples_sheet"].endswith("examples-{sheet:03d}.jpg")


def test_the_target_class_pass_records_no_layer(
    monkeypatch: pytest.MonkeyPatch, small_images: Path
) -> None:
    """The target class's Grad-CAM and contributions come from the same forward pass as
    the top class's (a backward pass of their own): each layer runs once per batch."""
    from reportgen.nn import gradients

    recorded: Counter[str] = Counter()

    class CountingHooks(gradients.ForwardHooks):  # the batch pass's hooks only
        def __init__(self, targets: Any, hook: Any) -> None:
            def spy(name: str, *args: Any) -> Any:
                recorded[name] += 1
                return hook(name, *args)

            super().__init__(targets, spy)

    monkeypatch.setattr(gradients, "ForwardHooks", CountingHooks)
    reportgen.analyze(
        [str(small_images)],
        models=["alexnet"],
        weights="none",
        layers=["features.0", "classifier.6"],
        target_class="7",
        batch_size=2,
    )
    # 3 inputs in batches of 2: two passes, each layer copied once per pass.
    assert recorded["features.0"] == 2 and recorded["classifier.6"] == 2


def test_googlenet_runs_with_its_default_gradcam_layer(small_images: Path, tmp_path: Path) -> None:
    result = invoke(
        "run",
        str(small_images / "img0.png"),
        "-m",
        "googlenet",
        "--weights",
        "none",
        "-l",
        "conv1.conv",
        "-o",
        str(tmp_path / "r"),
    )
    assert result.exit_code == 0, result.stderr
    assert "inception5b" in (tmp_path / "r" / "manifest.json").read_text()
