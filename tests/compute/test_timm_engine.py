"""A timm model through the whole run: Grad-CAM and dataset examples against a plain
forward and backward pass of ``timm.create_model``, a Dask run (``--cluster local:2``)
against one process, byte for byte, and the run's cache key against the hub cache.

The model is timm's own ``test_resnet`` (160 px, bilinear, crop 0.95, mean/std 0.5)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import REPO, REPRODUCIBLE_ENV, TESTS, invoke_reproducible, snapshot, write_images

timm = pytest.importorskip("timm")

import torch  # noqa: E402 - after the skip

MODEL = "test_resnet.r160_in1k"
LAYER = "layer2.0.conv1"
RUN = ["-m", f"timm/{MODEL}", "--weights", "none", "--seed", "3", "-l", LAYER]
RUN += ["--examples", "3", "--top-k", "3", "--batch-size", "2", "--jobs", "1"]


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_images(tmp_path_factory.mktemp("timm-inputs"), 5, (30, 44), grow=6, seed=8)


@pytest.fixture(scope="module")
def one_process(images: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("one") / "report"
    result = invoke_reproducible("run", str(images), *RUN, "-o", str(out))
    assert result.exit_code == 0, result.stderr
    return out


def _plain_model() -> torch.nn.Module:
    torch.manual_seed(3)
    return timm.create_model(MODEL).eval()


def _plain_batch(model: torch.nn.Module, paths: list[Path]) -> torch.Tensor:
    from timm.data import create_transform, resolve_data_config

    transform = create_transform(**resolve_data_config(model=model))
    pictures = []
    for path in paths:
        with Image.open(path) as image:
            pictures.append(transform(image.convert("RGB")))
    return torch.stack(pictures)


def _inputs(manifest: dict, images: Path) -> list[tuple[str, Path]]:
    return [(entry["id"], images / Path(entry["source"]).name) for entry in manifest["inputs"]]


def test_grad_cam_is_a_plain_backward_pass(one_process: Path, images: Path) -> None:
    manifest = json.loads((one_process / "manifest.json").read_text())
    model_entry = manifest["models"][0]
    inputs = _inputs(manifest, images)
    layer = next(iter(model_entry["gradcam"].values()))["layer"]
    model = _plain_model()
    kept: dict[str, torch.Tensor] = {}

    def keep(_module: object, _args: object, output: torch.Tensor) -> None:
        output.retain_grad()
        kept["value"] = output

    dict(model.named_modules())[layer].register_forward_hook(keep)
    for input_id, path in inputs:
        logits = model(_plain_batch(model, [path]))
        top = int(logits[0].argmax())
        model.zero_grad()
        logits[0, top].backward()
        value, grad = kept["value"][0].detach(), kept["value"].grad[0]
        cam = torch.relu((grad.mean(dim=(1, 2), keepdim=True) * value).sum(0)).numpy()
        expected = cam / cam.max() if cam.max() > 0 else cam
        entry = model_entry["gradcam"][input_id]
        assert entry["class_index"] == top
        np.testing.assert_allclose(np.array(entry["map"]), expected, atol=2e-3)
    # The default Grad-CAM layer is the last Conv2d that runs: timm's layer4.
    assert layer.startswith("layer4.")


def test_dataset_examples_are_the_inputs_with_the_highest_max(
    one_process: Path, images: Path
) -> None:
    manifest = json.loads((one_process / "manifest.json").read_text())
    layer = manifest["models"][0]["layers"][0]
    assert layer["name"] == LAYER and layer["receptive_field"]
    inputs = _inputs(manifest, images)
    model = _plain_model()
    recorded: list[torch.Tensor] = []
    dict(model.named_modules())[LAYER].register_forward_hook(
        lambda _m, _a, output: recorded.append(output.detach().clone())
    )
    with torch.no_grad():
        model(_plain_batch(model, [path for _, path in inputs]))
    maxima = recorded[0].amax(dim=(2, 3)).numpy()  # [inputs, channels]
    for channel in layer["channels"]:
        order = np.argsort(-maxima[:, channel["index"]], kind="stable")[:3]
        got = [example["input"] for example in channel["examples"]]
        assert got == [inputs[i][0] for i in order], channel["index"]
        values = [example["value"] for example in channel["examples"]]
        np.testing.assert_allclose(values, maxima[order, channel["index"]], rtol=1e-4)


@pytest.mark.slow
def test_a_dask_run_is_the_one_process_report(
    one_process: Path, images: Path, tmp_path: Path
) -> None:
    pytest.importorskip("distributed")
    limits = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_") and k not in limits}
    env.update(REPRODUCIBLE_ENV)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(REPO)])
    out = tmp_path / "report"
    command = [sys.executable, "-m", "reportgen", "run", str(images), *RUN, "-o", str(out)]
    done = subprocess.run(
        [*command, "--cluster", "local:2"], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert snapshot(out) == snapshot(one_process)


def test_the_run_key_follows_the_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reportgen.compute.cached import weights_fingerprints
    from reportgen.run_options import model_options
    from reportgen.settings import RunSettings

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    snapshot_dir = tmp_path / f"models--timm--{MODEL}" / "snapshots" / "abc"
    snapshot_dir.mkdir(parents=True)
    (tmp_path / f"models--timm--{MODEL}" / "refs").mkdir()
    (tmp_path / f"models--timm--{MODEL}" / "refs" / "main").write_text("abc")
    weights = snapshot_dir / "model.safetensors"
    weights.write_bytes(b"first")
    keys = []
    for name in (f"timm/{MODEL}", "timm/test_resnet"):
        settings = model_options(RunSettings(inputs=("x",), models=(name,)))
        first = weights_fingerprints(settings)
        weights.write_bytes(b"second, longer")
        keys.append((first, weights_fingerprints(settings)))
    assert all(before != after for before, after in keys)
    none = model_options(RunSettings(inputs=("x",), models=(f"timm/{MODEL}",), weights="none"))
    assert not any(key.endswith("=hub") for key in weights_fingerprints(none))


def test_shards_merged_are_the_one_process_report(
    one_process: Path, images: Path, tmp_path: Path
) -> None:
    parts = []
    for part in ("1/2", "2/2"):
        folder = tmp_path / f"part-{part[0]}"
        result = invoke_reproducible("shard", str(images), *RUN, "--part", part, "-o", str(folder))
        assert result.exit_code == 0, result.stderr
        parts.append(str(folder))
    merged = invoke_reproducible("merge", *parts, "-o", str(tmp_path / "merged"))
    assert merged.exit_code == 0, merged.stderr
    assert snapshot(tmp_path / "merged") == snapshot(one_process)
