"""Model registry, preprocessing, and where weights come from (all offline)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torchvision.models import (
    MobileNet_V2_Weights,
    ResNet18_Weights,
    SqueezeNet1_1_Weights,
    get_model,
    list_models,
)

from reportgen.errors import ReportgenError
from reportgen.nn.models import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    apply_state_dict,
    check_model_name,
    classification_models,
    default_preprocessing,
    load_model,
    model_id,
    preprocessing_from_transforms,
    select_device,
)
from reportgen.nn.weights import check_hash_prefix, load_state_dict, resolve_weights

SMALL = "squeezenet1_1"  # 1.2 M parameters: cheap to build and save
SMALL_FILE = "squeezenet1_1-b8a52dc0.pth"


def _picture(width: int, height: int, seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _load(name: str, spec: str, **kwargs: object) -> object:
    options: dict[str, object] = {
        "weights_dir": None,
        "offline": True,
        "seed": 0,
        "device": torch.device("cpu"),
        "model_id_": name,
    }
    options.update(kwargs)
    return load_model(name, spec, **options)  # type: ignore[arg-type]


# --- registry ---------------------------------------------------------------------------


def test_registry_is_torchvisions_classification_models() -> None:
    names = classification_models()
    assert names == sorted(list_models(module=torchvision.models))
    for name in ("resnet18", "alexnet", "mobilenet_v2", "vgg16", "squeezenet1_1"):
        assert name in names
    for other in ("fasterrcnn_resnet50_fpn", "deeplabv3_resnet50", "raft_large", "r3d_18"):
        assert other not in names


def test_unknown_model_names_the_closest_ones() -> None:
    check_model_name("resnet18")
    with pytest.raises(ReportgenError) as caught:
        check_model_name("resnet19")
    message = str(caught.value)
    assert "unknown model 'resnet19'" in message
    assert "closest:" in message and "resnet18" in message
    assert "reportgen models" in message
    with pytest.raises(ReportgenError, match="alexnet"):
        check_model_name("alexnt")


def test_model_ids_are_unique() -> None:
    assert model_id("alexnet", set()) == "alexnet"
    assert model_id("alexnet", {"alexnet"}) == "alexnet-2"
    assert model_id("alexnet", {"alexnet", "alexnet-2"}) == "alexnet-3"


def test_device_choice() -> None:
    assert select_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ReportgenError, match="--device cpu"):
            select_device("cuda")


# --- preprocessing ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "weights",
    [ResNet18_Weights.IMAGENET1K_V1, MobileNet_V2_Weights.IMAGENET1K_V2],
    ids=["resnet18-v1", "mobilenet_v2-v2-resize232"],
)
@pytest.mark.parametrize("size", [(300, 200), (120, 90), (224, 224), (500, 260)])
def test_view_and_tensor_equal_the_weights_transforms(
    weights: object, size: tuple[int, int]
) -> None:
    picture = _picture(*size)
    transforms = weights.transforms()  # type: ignore[attr-defined]
    prep = preprocessing_from_transforms(transforms)
    view = prep.view(picture)
    assert view.size == (224, 224)  # overlays are drawn on exactly this picture
    ours = prep.tensor(view)
    theirs = transforms(picture)
    assert ours.shape == theirs.shape == (3, 224, 224)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


def test_default_preprocessing_is_resize_256_crop_224_imagenet_stats() -> None:
    prep = default_preprocessing()
    assert prep.resize_size == (256,) and prep.crop_size == (224,)
    assert prep.mean == IMAGENET_MEAN and prep.std == IMAGENET_STD
    picture = _picture(320, 240, seed=3)
    expected = ResNet18_Weights.IMAGENET1K_V1.transforms()(picture)
    torch.testing.assert_close(prep.tensor(prep.view(picture)), expected, rtol=0, atol=1e-6)
    assert "resize 256" in prep.describe() and "crop 224" in prep.describe()


# --- weights: none, files ---------------------------------------------------------------


def test_weights_none_is_reproducible_with_the_seed() -> None:
    first = _load(SMALL, "none", seed=3)
    again = _load(SMALL, "none", seed=3)
    other = _load(SMALL, "none", seed=4)
    a, b, c = (m.module.state_dict() for m in (first, again, other))  # type: ignore[attr-defined]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())
    assert first.weights.kind == "none" and "seed 3" in first.weights.label  # type: ignore[attr-defined]
    assert not first.module.training  # type: ignore[attr-defined]
    # Random weights still get the architecture's DEFAULT transforms and class names.
    assert first.preprocessing == preprocessing_from_transforms(  # type: ignore[attr-defined]
        SqueezeNet1_1_Weights.DEFAULT.transforms()
    )
    assert first.label(281) == "tabby"  # type: ignore[attr-defined]


def _saved_small_state(tmp_path: Path, transform: object = None) -> tuple[Path, dict]:
    torch.manual_seed(11)
    state = get_model(SMALL, weights=None).state_dict()
    payload = transform(state) if transform else state  # type: ignore[operator]
    path = tmp_path / "my-weights.pt"
    torch.save(payload, path)
    return path, state


@pytest.mark.parametrize(
    "wrap",
    [
        None,
        lambda s: {"state_dict": s, "epoch": 3},
        lambda s: {f"module.{k}": v for k, v in s.items()},
    ],
    ids=["plain", "wrapped", "dataparallel"],
)
def test_state_dict_file_is_loaded(tmp_path: Path, wrap: object) -> None:
    path, state = _saved_small_state(tmp_path, wrap)
    loaded = _load(SMALL, str(path), seed=0)
    own = loaded.module.state_dict()  # type: ignore[attr-defined]
    assert all(torch.equal(own[k], state[k]) for k in state)
    assert loaded.weights.kind == "file" and loaded.weights.path == path  # type: ignore[attr-defined]


def test_state_dict_is_read_with_weights_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict] = []
    real_load = torch.load

    def spy(*args: object, **kwargs: object) -> object:
        calls.append(kwargs)
        return real_load(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(torch, "load", spy)
    path, _ = _saved_small_state(tmp_path)
    load_state_dict(path)
    assert calls and all(call.get("weights_only") is True for call in calls)


class _Payload:
    """Unpickling this runs code: it opens (creates) a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


def test_a_checkpoint_holding_code_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pth"
    torch.save({"conv.weight": torch.zeros(1), "x": _Payload(marker)}, path)
    with pytest.raises(ReportgenError, match="weights_only"):
        load_state_dict(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"PK\x03\x04 not really a zip file",
        b"hello",
    ],
    ids=["empty", "broken-zip", "text"],
)
def test_files_that_are_not_checkpoints(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.pth"
    path.write_bytes(content)
    with pytest.raises(ReportgenError, match="not a PyTorch checkpoint"):
        load_state_dict(path)


def test_checkpoint_that_is_not_a_state_dict(tmp_path: Path) -> None:
    listing = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], listing)
    with pytest.raises(ReportgenError, match="no state dict"):
        load_state_dict(listing)


def test_state_dict_of_another_architecture_names_the_keys(tmp_path: Path) -> None:
    model = get_model(SMALL, weights=None)
    state = dict(model.state_dict())
    removed = next(iter(state))
    del state[removed]
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(ReportgenError) as caught:
        apply_state_dict(model, state, tmp_path / "w.pt")
    message = str(caught.value)
    assert "1 missing keys" in message and removed in message
    assert "1 unexpected keys" in message and "extra.weight" in message


def test_weights_spec_that_is_neither_name_nor_file(tmp_path: Path) -> None:
    with pytest.raises(ReportgenError, match="did you mean.*IMAGENET1K_V1"):
        resolve_weights("resnet18", "IMAGENET1K_V3", None, True, 0)
    with pytest.raises(ReportgenError, match="not a file"):
        resolve_weights("resnet18", str(tmp_path), None, True, 0)


# --- weights: torchvision files in --weights-dir ------------------------------------------


def test_hash_prefix_in_the_file_name_is_checked(tmp_path: Path) -> None:
    data = b"some checkpoint bytes"
    digest = hashlib.sha256(data).hexdigest()
    good = tmp_path / f"net-{digest[:8]}.pth"
    good.write_bytes(data)
    check_hash_prefix(good)  # no error
    bad = tmp_path / f"net-{'0' if digest[0] != '0' else '1'}{digest[1:8]}.pth"
    bad.write_bytes(data)
    with pytest.raises(ReportgenError, match="damaged"):
        check_hash_prefix(bad)


def test_damaged_file_in_weights_dir_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / SMALL_FILE).write_bytes(b"truncated download")
    with pytest.raises(ReportgenError) as caught:
        resolve_weights(SMALL, "imagenet", str(folder), True, 0)
    message = str(caught.value)
    assert "damaged" in message and SMALL_FILE in message and "b8a52dc0" in message


def test_weights_dir_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "env-weights"
    folder.mkdir()
    (folder / SMALL_FILE).write_bytes(b"not the real file")
    monkeypatch.setenv("REPORTGEN_WEIGHTS_DIR", str(folder))
    with pytest.raises(ReportgenError, match="damaged"):
        resolve_weights(SMALL, "IMAGENET1K_V1", None, True, 0)


def test_missing_weights_offline_say_where_and_what_to_do(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    with pytest.raises(ReportgenError) as caught:
        resolve_weights("resnet18", "imagenet", str(folder), True, 0)
    message = str(caught.value)
    assert "resnet18-f37072fd.pth" in message
    assert str(folder) in message  # where it was looked for
    assert "checkpoints" in message  # ... and the torch hub cache
    for way_out in ("--weights-dir", "--weights PATH", "--weights none"):
        assert way_out in message


def test_weights_names_are_case_insensitive_and_default_works(tmp_path: Path) -> None:
    for spec in ("imagenet1k_v1", "DEFAULT", "default"):
        with pytest.raises(ReportgenError, match="resnet18-f37072fd.pth"):
            resolve_weights("resnet18", spec, str(tmp_path), True, 0)
