"""The cache keys of a model's results share one definition of their parts
(``reportgen.compute.keys``): the per-input results' key, the feature visualisations'
key and the Dask workers' code check all change with it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from reportgen.compute import featurevis, keys
from reportgen.compute.cached import model_key
from reportgen.run_options import run_options
from reportgen.settings import RunSettings


@dataclass(frozen=True)
class Weights:
    path: Path | None = None

    def describe(self) -> str:
        return "random initialisation"


@dataclass(frozen=True)
class Preprocessing:
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.25, 0.25, 0.25)
    resize_size: tuple[int, ...] = (36,)
    crop_size: tuple[int, ...] = (32,)
    interpolation: str = "bilinear"

    def describe(self) -> str:
        return f"resize {self.resize_size[0]}, crop {self.crop_size[0]}"


@dataclass(frozen=True)
class Model:
    name: str = "tiny"
    weights: Weights = Weights()
    preprocessing: Preprocessing = Preprocessing()
    device: str = "cpu"


UNIT = featurevis.FvUnit("conv", 0, ((0, 1), (1, 1)))
SETTINGS = run_options(RunSettings(inputs=("x.png",), weights="none"), writes=False)


def _keys(model: Model) -> tuple[str, str]:
    return (
        model_key(model, SETTINGS.recorded, "pictures"),  # type: ignore[arg-type]
        featurevis.unit_key(model, UNIT, SETTINGS.feature_vis),  # type: ignore[arg-type]
    )


def test_each_part_of_the_model_changes_both_keys(tmp_path: Path) -> None:
    base = _keys(Model())
    checkpoint = tmp_path / "w.pth"
    checkpoint.write_bytes(b"weights")
    others = [
        Model(name="other"),
        Model(device="cuda:0"),
        Model(preprocessing=Preprocessing(crop_size=(28,))),
        Model(preprocessing=Preprocessing(mean=(0.4, 0.5, 0.5))),
        Model(weights=Weights(checkpoint)),
    ]
    for other in others:
        changed = _keys(other)
        assert changed[0] != base[0] and changed[1] != base[1], other
    with_file = _keys(others[-1])
    checkpoint.write_bytes(b"other weights")  # the same file, other content
    rewritten = _keys(Model(weights=Weights(checkpoint)))
    assert rewritten[0] != with_file[0] and rewritten[1] != with_file[1]
    assert _keys(Model()) == base


def test_the_three_keys_take_their_parts_from_one_place(monkeypatch: pytest.MonkeyPatch) -> None:
    before = (*_keys(Model()), keys.code_key())
    monkeypatch.setattr(keys, "code_parts", lambda: ["other code"])
    after_code = (*_keys(Model()), keys.code_key())
    assert all(a != b for a, b in zip(before, after_code))
    monkeypatch.setattr(keys, "model_parts", lambda model: ["another model"])
    after_model = _keys(Model())
    assert all(a != b for a, b in zip(after_code, after_model))
    assert after_model == _keys(Model(name="a name the parts no longer read"))
