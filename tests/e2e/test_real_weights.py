"""Real ImageNet weights, offline: torchvision's MobileNetV2 IMAGENET1K_V1 checkpoint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import Result
from PIL import Image
from torchvision.models import MobileNet_V2_Weights, mobilenet_v2

from reportgen.errors import ReportgenError
from reportgen.nn.models import load_model
from reportgen.nn.weights import resolve_weights
from tests.helpers import invoke

pytestmark = pytest.mark.slow

CHECKPOINT = "mobilenet_v2-b0353104.pth"
CATEGORIES = MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]
CAT_CLASSES = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}
PHOTOS = {"cat": "cat_chelsea.png", "coffee": "coffee.png"}


@pytest.fixture(scope="module")
def report(
    mobilenet_weights_dir: Path, sample_images: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Result, dict[str, Any]]:
    out = tmp_path_factory.mktemp("real") / "report"
    photos = [str(sample_images / name) for name in PHOTOS.values()]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REPORTGEN_OFFLINE", "1")
        patch.setenv("REPORTGEN_CACHE_DIR", "off")  # computed, never replayed
        patch.setenv("TORCH_HOME", str(out.parent / "torch-home"))
        result = invoke(
            "run", *photos, "-m", "mobilenet_v2", "--weights-dir", str(mobilenet_weights_dir),
            "-l", "features.0.0", "--top-k", "2", "-o", str(out),
            catch_exceptions=False,
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    return result, json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def _top1(manifest: dict[str, Any], photo: str) -> dict[str, Any]:
    (item,) = [i for i in manifest["inputs"] if i["source"].endswith(PHOTOS[photo])]
    return manifest["models"][0]["predictions"][item["id"]][0]


def test_cat_photo_is_a_cat_and_coffee_is_espresso(report: tuple[Result, dict]) -> None:
    _, manifest = report
    cat = _top1(manifest, "cat")
    assert cat["label"] in CAT_CLASSES
    assert CATEGORIES[cat["index"]] == cat["label"]
    coffee = _top1(manifest, "coffee")
    assert coffee["label"] == "espresso" and coffee["index"] == 967
    assert coffee["probability"] > 0.3


def test_imagenet_falls_back_to_v1_and_says_so(report: tuple[Result, dict]) -> None:
    result, manifest = report
    model = manifest["models"][0]
    assert model["weights"] == "IMAGENET1K_V1"
    notes = " ".join([*manifest["warnings"], *model.get("notes", [])])
    assert "IMAGENET1K_V2" in notes and "IMAGENET1K_V1" in notes
    assert "DEFAULT" in notes
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert any("IMAGENET1K_V1" in line and "IMAGENET1K_V2" in line for line in warnings)


def test_predictions_equal_torchvisions_own_model(
    report: tuple[Result, dict], mobilenet_weights_dir: Path, sample_images: Path
) -> None:
    _, manifest = report
    model = mobilenet_v2(weights=None)
    state = torch.load(mobilenet_weights_dir / CHECKPOINT, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.eval()
    transforms = MobileNet_V2_Weights.IMAGENET1K_V1.transforms()
    for photo, name in PHOTOS.items():
        with Image.open(sample_images / name) as image:
            x = transforms(image.convert("RGB"))[None]
        with torch.no_grad():
            probabilities = torch.softmax(model(x)[0], dim=0)
        top = torch.topk(probabilities, 5)
        (item,) = [i for i in manifest["inputs"] if i["source"].endswith(name)]
        got = manifest["models"][0]["predictions"][item["id"]]
        assert [p["index"] for p in got] == top.indices.tolist(), photo
        for p, expected in zip(got, top.values.tolist()):
            assert p["probability"] == pytest.approx(expected, rel=1e-3, abs=1e-5)


def test_resolution_of_each_weights_spelling(mobilenet_weights_dir: Path) -> None:
    folder = str(mobilenet_weights_dir)
    fallback = resolve_weights("mobilenet_v2", "imagenet", folder, True, 0)
    assert fallback.enum_member is MobileNet_V2_Weights.IMAGENET1K_V1
    assert fallback.path == mobilenet_weights_dir / CHECKPOINT
    assert fallback.note and "IMAGENET1K_V2" in fallback.note
    explicit = resolve_weights("mobilenet_v2", "IMAGENET1K_V1", folder, True, 0)
    assert explicit.enum_member is MobileNet_V2_Weights.IMAGENET1K_V1 and explicit.note is None
    with pytest.raises(ReportgenError, match="mobilenet_v2-7ebf99e0.pth"):
        resolve_weights("mobilenet_v2", "IMAGENET1K_V2", folder, True, 0)
    with pytest.raises(ReportgenError, match="mobilenet_v2-7ebf99e0.pth"):
        resolve_weights("mobilenet_v2", "DEFAULT", folder, True, 0)


def test_the_checkpoint_given_as_a_path(mobilenet_weights_dir: Path, sample_images: Path) -> None:
    """torchvision's file given by its path is known by its content: torchvision's
    weights (see the next test), and it classifies the coffee."""
    loaded = load_model(
        "mobilenet_v2", str(mobilenet_weights_dir / CHECKPOINT), weights_dir=None, offline=True,
        seed=0, device=torch.device("cpu"), model_id_="m",
    )  # fmt: skip
    assert loaded.weights.kind == "torchvision" and loaded.weights.label == "IMAGENET1K_V1"
    with Image.open(sample_images / PHOTOS["coffee"]) as image:
        view = loaded.preprocessing.view(image.convert("RGB"))
    with torch.no_grad():
        logits = loaded.module(loaded.preprocessing.tensor(view)[None])
    assert loaded.label(int(logits.argmax())) == "espresso"


def test_a_damaged_copy_is_refused(mobilenet_weights_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "weights"
    folder.mkdir()
    copy = folder / CHECKPOINT
    shutil.copyfile(mobilenet_weights_dir / CHECKPOINT, copy)
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    copy.write_bytes(bytes(data))
    with pytest.raises(ReportgenError, match="damaged") as caught:
        resolve_weights("mobilenet_v2", "imagenet", str(folder), True, 0)
    assert "b0353104" in str(caught.value)
    # The intact file in the same place is accepted again.
    shutil.copyfile(mobilenet_weights_dir / CHECKPOINT, copy)
    assert resolve_weights("mobilenet_v2", "imagenet", str(folder), True, 0).path == copy


def test_a_renamed_copy_of_torchvisions_file_is_recognised_by_its_content(
    mobilenet_weights_dir: Path, tmp_path: Path
) -> None:
    """--weights PATH naming torchvision's checkpoint under another name is built as
    torchvision builds those weights (what DenseNet's old key names and GoogLeNet's
    transform_input need), with its categories; any other file stays a plain file."""
    copy = tmp_path / "student.pth"
    shutil.copyfile(mobilenet_weights_dir / CHECKPOINT, copy)
    resolved = resolve_weights("mobilenet_v2", str(copy), None, True, 0)
    assert resolved.kind == "torchvision" and resolved.label == "IMAGENET1K_V1"
    assert resolved.enum_member is MobileNet_V2_Weights.IMAGENET1K_V1
    assert resolved.note is not None and "student.pth" in resolved.note
    assert resolved.path == copy
    other = tmp_path / "other.pth"
    torch.save(mobilenet_v2().state_dict(), other)
    assert resolve_weights("mobilenet_v2", str(other), None, True, 0).kind == "file"
