"""timm models by name (``-m timm/NAME``): their statistics against a plain forward pass
on timm's own transform, weights from a Hugging Face cache on disk with no network, and
safetensors checkpoints against the same weights saved by torch.save.

The models are timm's own test networks (``test_convnext``: 160 px, bicubic, crop 0.95,
mean/std 0.5; under half a million parameters), so every run takes seconds."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.helpers import error_line, invoke, invoke_reproducible, snapshot, write_images

timm = pytest.importorskip("timm")
pytest.importorskip("safetensors")

import torch  # noqa: E402 - after the skip: without timm nothing here runs

CONVNEXT = "test_convnext.r160_in1k"
LAYERS = ["stem.0", "stages.1.blocks.0.conv_dw", "head.fc"]
QUICK = ["--top-k", "3", "--examples", "2", "--jobs", "1", "--no-gradcam"]


def _stats(report: Path) -> dict[str, np.ndarray]:
    manifest = json.loads((report / "manifest.json").read_text())
    return {
        layer["name"]: np.load(report / layer["stats_file"]["path"])
        for layer in manifest["models"][0]["layers"]
    }


def _pictures_and_stats(report: Path) -> dict[str, bytes]:
    return {
        name: data
        for name, data in snapshot(report).items()
        if name.endswith((".npy", ".png", ".jpg"))
    }


def _random_state(name: str, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return {k: v.clone().contiguous() for k, v in timm.create_model(name).state_dict().items()}


def test_statistics_are_a_plain_forward_pass_on_timms_own_transform(tmp_path: Path) -> None:
    from timm.data import create_transform, resolve_data_config

    images = write_images(tmp_path / "in", 3, (150, 230), grow=37, seed=4)
    out = tmp_path / "report"
    layer_args = [arg for layer in LAYERS for arg in ("-l", layer)]
    result = invoke(
        "run", str(images), "-m", f"timm/{CONVNEXT}", "--weights", "none", "--seed", "5",
        *layer_args, *QUICK, "-o", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr

    torch.manual_seed(5)
    model = timm.create_model(CONVNEXT).eval()
    config = resolve_data_config(model=model)
    # The model's own preprocessing, not torchvision's defaults (bilinear, 0.875, ImageNet).
    assert (config["interpolation"], config["crop_pct"], config["mean"]) != (
        "bilinear",
        0.875,
        (0.485, 0.456, 0.406),
    )
    transform = create_transform(**config)
    recorded: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    for name in LAYERS:
        modules[name].register_forward_hook(
            lambda _m, _i, output, name=name: recorded.__setitem__(name, output.detach().clone())
        )
    stats = _stats(out)
    for row, path in enumerate(sorted(images.iterdir())):
        with Image.open(path) as image:
            batch = transform(image.convert("RGB")).unsqueeze(0)
        with torch.no_grad():
            model(batch)
        for name in LAYERS:
            value = recorded[name][0]
            flat = value.reshape(value.shape[0], -1)
            expected = np.stack([flat.mean(1), flat.amax(1), flat.amin(1)], axis=1)
            np.testing.assert_allclose(stats[name][row, :, :3], expected, rtol=1e-4, atol=1e-5)
    manifest = json.loads((out / "manifest.json").read_text())
    head = next(layer for layer in manifest["models"][0]["layers"] if layer["name"] == "head.fc")
    assert head["class_units"] and head["channels"][1]["label"] == "goldfish"


def _hub_cache(root: Path, repo: str, files: dict[str, bytes]) -> Path:
    """A cache as huggingface_hub lays it out: blobs by sha256, a snapshot of links to
    them under a revision, and refs/main naming that revision."""
    folder = root / ("models--" + repo.replace("/", "--"))
    revision = hashlib.sha1(repo.encode()).hexdigest()
    (folder / "blobs").mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(revision)
    snapshot_dir = folder / "snapshots" / revision
    snapshot_dir.mkdir(parents=True)
    for name, data in files.items():
        blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot_dir / name).symlink_to(Path("..", "..", "blobs", blob.name))
    return root


@pytest.fixture
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every attempt to open a connection or resolve a name, refused and recorded (the
    code under test may swallow the refusal: the list is what the test checks)."""
    attempts: list[str] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(repr(args[:2]))
        raise OSError("network use in a test that must stay offline")

    for owner, attribute in (
        (socket.socket, "connect"),
        (socket.socket, "connect_ex"),
        (socket, "create_connection"),
        (socket, "getaddrinfo"),
    ):
        monkeypatch.setattr(owner, attribute, refuse)
    return attempts


def test_imagenet_weights_come_from_the_hub_cache_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_sockets: list[str]
) -> None:
    from safetensors.torch import save as save_safetensors

    from reportgen.nn.timm_models import load_timm_model

    state = _random_state(CONVNEXT, seed=123)
    config = json.dumps({"architecture": "test_convnext", "num_classes": 1000}).encode()
    cache = _hub_cache(
        tmp_path / "hub",
        f"timm/{CONVNEXT}",
        {"model.safetensors": save_safetensors(state), "config.json": config},
    )
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("REPORTGEN_OFFLINE", raising=False)  # HF_HUB_OFFLINE alone suffices

    loaded = load_timm_model(
        f"timm/{CONVNEXT}", "imagenet", offline=False, seed=0, device="cpu", model_id_="m"
    )
    got = loaded.module.state_dict()
    assert set(got) == set(state)
    assert all(torch.equal(got[key], state[key]) for key in state)
    assert loaded.weights.path is not None and loaded.weights.path.name == "model.safetensors"

    images = write_images(tmp_path / "in", 1, (40, 40), seed=1)
    out = tmp_path / "report"
    result = invoke("run", str(images), "-m", f"timm/{CONVNEXT}", "-l", "stem.0", *QUICK,
                    "-o", str(out))  # fmt: skip
    assert result.exit_code == 0, result.stderr
    model = json.loads((out / "manifest.json").read_text())["models"][0]
    assert model["weights"] == f"timm {CONVNEXT}"
    assert model["weights_detail"] == f"timm {CONVNEXT} from model.safetensors"
    assert no_sockets == []


def test_weights_missing_from_the_cache_name_repo_folder_and_ways_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_sockets: list[str]
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("REPORTGEN_OFFLINE", raising=False)
    images = write_images(tmp_path / "in", 1, (32, 32))
    result = invoke("run", str(images), "-m", "timm/test_resnet.r160_in1k", "-o",
                    str(tmp_path / "out"))  # fmt: skip
    line = error_line(result, 1, "timm/test_resnet.r160_in1k", "HF_HUB_OFFLINE", "--weights none")
    assert str(tmp_path / "hf" / "hub" / "models--timm--test_resnet.r160_in1k") in line
    assert no_sockets == []
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("timm/resnet181", "closest: timm/resnet18"),
        ("timm/test_convnext.r16_in1k", "closest: timm/test_convnext.r160_in1k"),
        # A timm name without the prefix, and the colon of a factory: where timm is.
        ("convnext_atto", "timm has it: -m timm/convnext_atto"),
        ("timm:convnext_tiny", "timm has it: -m timm/convnext_tiny"),
    ],
)
def test_unknown_timm_names_get_the_closest(tmp_path: Path, name: str, needle: str) -> None:
    images = write_images(tmp_path / "in", 1, (32, 32))
    result = invoke("run", str(images), "-m", name, "-o", str(tmp_path / "out"))
    error_line(result, 1, needle)


def test_without_timm_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "timm", None)  # import timm raises ImportError
    images = write_images(tmp_path / "in", 1, (32, 32))
    result = invoke("run", str(images), "-m", "timm/resnet18", "-o", str(tmp_path / "out"))
    error_line(result, 1, "timm/resnet18", "pip install 'reportgen[timm]'")


def test_a_label_and_per_model_weights_for_two_timm_checkpoints(tmp_path: Path) -> None:
    torch.save(_random_state(CONVNEXT, seed=9), tmp_path / "tuned.pth")
    images = write_images(tmp_path / "in", 2, (40, 48), seed=2)
    out = tmp_path / "report"
    result = invoke(
        "run", str(images), "-m", f"timm/{CONVNEXT}=none", "-m",
        f"timm/{CONVNEXT}={tmp_path / 'tuned.pth'}", "--label", "random", "--label", "tuned",
        "-l", "stem.0", *QUICK, "-o", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    models = json.loads((out / "manifest.json").read_text())["models"]
    assert [m["id"] for m in models] == ["random", "tuned"]
    assert (out / "comparison.html").is_file()
    first, second = (
        np.load(out / m["layers"][0]["stats_file"]["path"]) for m in models
    )  # fmt: skip
    assert not np.array_equal(first, second)


def test_a_fine_tuned_head_of_another_width_is_built_to_fit(tmp_path: Path) -> None:
    from reportgen.nn.timm_models import load_timm_model

    torch.manual_seed(3)
    tuned = timm.create_model(CONVNEXT, num_classes=7).state_dict()
    torch.save(tuned, tmp_path / "tuned.pth")
    loaded = load_timm_model(
        f"timm/{CONVNEXT}", str(tmp_path / "tuned.pth"), offline=True, seed=0, device="cpu",
        model_id_="m",
    )  # fmt: skip
    assert loaded.module.num_classes == 7 and loaded.categories is None
    assert torch.equal(loaded.module.state_dict()["head.fc.weight"], tuned["head.fc.weight"])


# --- safetensors everywhere ------------------------------------------------------------


def _same_weights_two_ways(folder: Path, state: dict[str, torch.Tensor]) -> tuple[Path, Path]:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, folder / "weights.pth")
    save_file(state, str(folder / "weights.safetensors"))
    return folder / "weights.pth", folder / "weights.safetensors"


@pytest.mark.parametrize(
    ("model", "layer"),
    [
        (f"timm/{CONVNEXT}", "stages.0.blocks.0.conv_dw"),
        ("tests.tinynet_factory:build", "conv2"),
        ("mobilenet_v3_small", "features.1.block.0.0"),
    ],
)
def test_safetensors_and_pth_give_the_same_report(tmp_path: Path, model: str, layer: str) -> None:
    if model.startswith("timm/"):
        state = _random_state(CONVNEXT, seed=11)
    else:
        torch.manual_seed(11)
        from reportgen.nn.models import build_custom_module, build_module

        net = build_custom_module(model) if ":" in model else build_module(model)
        state = {k: v.clone().contiguous() for k, v in net.state_dict().items()}
    pth, safe = _same_weights_two_ways(tmp_path / "w", state)
    images = write_images(tmp_path / "in", 2, (40, 52), seed=6)
    reports = []
    for weights in (pth, safe):
        out = tmp_path / weights.suffix[1:]
        result = invoke_reproducible(
            "run", str(images), "-m", model, "--weights", str(weights), "-l", layer, *QUICK,
            "--gradcam", "--overlay-files", "-o", str(out),
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        reports.append(_pictures_and_stats(out))
    assert reports[0] == reports[1]
    assert any(name.endswith(".npy") for name in reports[0])
    assert any(name.endswith(".png") for name in reports[0])


def test_the_format_is_judged_by_content_not_by_name(tmp_path: Path) -> None:
    from reportgen.nn.weights import load_state_dict

    state = {"a.weight": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2, dtype=torch.int64)}
    pth, safe = _same_weights_two_ways(tmp_path, state)
    swapped_pth = tmp_path / "really-safetensors.pth"
    swapped_pth.write_bytes(safe.read_bytes())
    swapped_safe = tmp_path / "really-pickle.safetensors"
    swapped_safe.write_bytes(pth.read_bytes())
    for path in (pth, safe, swapped_pth, swapped_safe):
        loaded = load_state_dict(path)
        assert set(loaded) == set(state)
        assert all(torch.equal(loaded[k], state[k]) for k in state)


def _damaged_files(folder: Path, good: Path) -> dict[str, tuple[Path, str]]:
    data = good.read_bytes()
    truncated = folder / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) - 100])
    header_cut = folder / "cut-header.safetensors"
    header_cut.write_bytes(data[:20])
    picture = folder / "picture.safetensors"
    Image.new("RGB", (4, 4)).save(picture, format="PNG")
    text = folder / "notes.safetensors"
    text.write_text("not weights at all\n")
    return {
        "truncated": (truncated, "truncated safetensors file"),
        "cut-header": (header_cut, "truncated safetensors file"),
        "picture": (picture, "not a safetensors file despite its name"),
        "text": (text, "not a safetensors file despite its name"),
    }


@pytest.mark.parametrize("kind", ["truncated", "cut-header", "picture", "text"])
def test_a_damaged_safetensors_file_is_one_error_line_and_the_report_stays(
    tmp_path: Path, kind: str
) -> None:
    from safetensors.torch import save_file

    from reportgen.nn.models import build_custom_module

    torch.manual_seed(0)
    state = build_custom_module("tests.tinynet_factory:build").state_dict()
    save_file(dict(state), str(tmp_path / "good.safetensors"))
    images = write_images(tmp_path / "in", 1, (32, 32))
    out = tmp_path / "report"
    common = ["run", str(images), "-m", "tests.tinynet_factory:build", *QUICK, "-o", str(out)]
    first = invoke(*common, "--weights", str(tmp_path / "good.safetensors"))
    assert first.exit_code == 0, first.stderr
    before = snapshot(out)
    path, needle = _damaged_files(tmp_path, tmp_path / "good.safetensors")[kind]
    result = invoke(*common, "--weights", str(path))
    error_line(result, 1, str(path), needle)
    assert snapshot(out) == before


def test_layers_and_models_list_timm(tmp_path: Path) -> None:
    from reportgen.nn.layers import trace_layers

    listing = invoke("layers", f"timm/{CONVNEXT}")
    assert listing.exit_code == 0, listing.stderr
    torch.manual_seed(0)
    # At the model's own input size (160), not torchvision's 224: 160 / 4 = 40.
    expected = trace_layers(timm.create_model(CONVNEXT).eval(), 160)
    stem = next(info for info in expected if info.name == "stem.0")
    assert stem.output_shape == (24, 40, 40)
    assert any(
        line.split()[:3] == ["stem.0", "Conv2d", "24x40x40"] for line in listing.stdout.splitlines()
    )
    models = invoke("models", "--timm", "convnext_at*")
    assert models.exit_code == 0, models.stderr
    assert models.stdout.split() == [f"timm/{n}" for n in timm.list_models("convnext_at*")]
    tags = invoke("models", "--timm", "resnet18.*").stdout.split()
    assert "timm/resnet18.a1_in1k" in tags and "timm/resnet18" not in tags
    plain = invoke("models", "resnet1*").stdout.split()
    assert plain == ["resnet101", "resnet152", "resnet18"]
    error_line(invoke("layers", "timm/convnext_tny"), 1, "closest: timm/convnext_tiny")


def test_filters_of_weight_standardised_convolutions_are_the_applied_kernels() -> None:
    from reportgen.nn.timm_models import applied_conv_weight

    torch.manual_seed(0)
    model = timm.create_model("test_nfnet.r160_in1k").eval()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    standardised = [m for m in convs if type(m).__name__.startswith(("StdConv", "ScaledStd"))]
    assert standardised
    for conv in standardised[:3]:
        inputs = torch.randn(2, conv.in_channels, 9, 9)
        kernel = applied_conv_weight(conv)
        assert not torch.allclose(kernel, conv.weight)
        plain = torch.nn.functional.conv2d(
            inputs, kernel, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups
        )
        torch.testing.assert_close(conv(inputs), plain)
    plain_conv = torch.nn.Conv2d(3, 4, 3)
    assert applied_conv_weight(plain_conv) is plain_conv.weight


@pytest.mark.slow  # huggingface_hub retries for about 20 s before it gives up
def test_online_a_failed_download_is_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_sockets: list[str]
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    for name in ("REPORTGEN_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    images = write_images(tmp_path / "in", 1, (32, 32))
    result = invoke("run", str(images), "-m", "timm/test_resnet.r160_in1k", "-o",
                    str(tmp_path / "out"))  # fmt: skip
    error_line(result, 1, "timm/test_resnet.r160_in1k", "downloading it failed", "--weights PATH")
    assert no_sockets, "the download was not tried"
    assert "Retrying" not in result.stderr, result.stderr


def test_without_safetensors_a_safetensors_file_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from safetensors.torch import save_file

    from reportgen.errors import ReportgenError
    from reportgen.nn.weights import load_state_dict

    save_file({"w": torch.zeros(2)}, str(tmp_path / "w.bin"))
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    with pytest.raises(ReportgenError, match=r"safetensors file.*pip install 'reportgen\[timm\]'"):
        load_state_dict(tmp_path / "w.bin")


@pytest.mark.parametrize(
    "config",
    [
        {"input_size": (3, 160, 160), "crop_pct": 0.95, "crop_mode": "center"},
        {"input_size": (3, 128, 160), "crop_pct": 0.9, "crop_mode": "center"},
        {"input_size": (3, 144, 144), "crop_pct": 1.0, "crop_mode": "squash"},
        {"input_size": (3, 144, 144), "crop_pct": 0.8, "crop_mode": "border"},
    ],
    ids=["center", "center-not-square", "squash", "border"],
)
def test_every_crop_mode_is_timms_own_transform(config: dict[str, Any]) -> None:
    from timm.data import create_transform, resolve_data_config

    from reportgen.nn.timm_models import timm_preprocessing

    module = torch.nn.Conv2d(3, 1, 1)
    module.pretrained_cfg = {  # type: ignore[assignment]
        **config,
        "interpolation": "bicubic",
        "mean": (0.5, 0.4, 0.3),
        "std": (0.2, 0.25, 0.3),
    }
    preprocessing = timm_preprocessing(module)
    transform = create_transform(**resolve_data_config(model=module))
    rng = np.random.default_rng(0)
    for size in ((97, 211), (300, 120)):
        image = Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8))
        view = preprocessing.view(image)
        assert (view.height, view.width) == tuple(config["input_size"][1:])
        assert torch.equal(preprocessing.tensor(view), transform(image))


class _Reached(Exception):
    pass


def _layer_output(model: torch.nn.Module, layer: str, image: torch.Tensor) -> torch.Tensor:
    """``layer``'s output for ``image``; the forward pass stops there."""
    seen: dict[str, torch.Tensor] = {}

    def stop(_module: object, _inputs: object, output: torch.Tensor) -> None:
        seen["out"] = output
        raise _Reached

    handle = dict(model.named_modules())[layer].register_forward_hook(stop)
    try:
        model(image)
    except _Reached:
        pass
    finally:
        handle.remove()
    return seen["out"]


def _measured_box(model: torch.nn.Module, layer: str, size: int) -> list[int]:
    """[x0, y0, x1, y1] of the input pixels whose gradient reaches the centre cell of
    ``layer``: every weight positive on a positive picture, so every activation before it
    is positive and passes its gradient on."""
    import copy

    probe = copy.deepcopy(model).eval()
    with torch.no_grad():
        for parameter in probe.parameters():
            parameter.copy_(parameter.abs() + 0.01)
    image = torch.rand(1, 3, size, size, requires_grad=True)
    out = _layer_output(probe, layer, image)
    y, x = out.shape[2] // 2, out.shape[3] // 2
    (gradient,) = torch.autograd.grad(out[0, :, y, x].sum(), image)
    rows, cols = (gradient[0].abs().sum(0) > 0).nonzero(as_tuple=True)
    return [int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1]


@pytest.mark.parametrize(
    ("name", "layers", "kind"),
    [
        # TensorFlow's SAME padding, done in the forward of timm's Conv2dSame.
        ("tf_mobilenetv3_small_minimal_100", ["conv_stem", "blocks.1.0.conv_dw"], "Conv2dSame"),
        # Anti-aliased downsampling: a fixed blur filter of stride 2, not an nn.Conv2d.
        ("resnetblur18", ["layer1.0.conv1", "layer2.0.conv2", "layer3.0.conv1"], "BlurPool2d"),
        # TResNet's stem: space to depth, 4x4 pixels to one cell.
        ("tresnet_m", ["body.conv1.conv"], "SpaceToDepth"),
    ],
)
def test_receptive_fields_of_timms_own_downsampling_sit_where_the_gradient_is(
    name: str, layers: list[str], kind: str
) -> None:
    from reportgen.nn.receptive import receptive_fields

    torch.manual_seed(0)
    model = timm.create_model(name).eval()
    assert any(type(m).__name__ == kind for m in model.modules())
    size = 65 if kind == "Conv2dSame" else 64  # odd: SAME then pads a pixel before, too
    fields = receptive_fields(model, layers, size)
    for layer in layers:
        with torch.no_grad():
            out = _layer_output(model, layer, torch.zeros(1, 3, size, size))
        expected = fields[layer].box(out.shape[2] // 2, out.shape[3] // 2, (size, size))
        assert _measured_box(model, layer, size) == expected, layer


def test_cached_weights_of_another_network_are_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safetensors.torch import save as save_safetensors

    other = save_safetensors(_random_state("test_resnet.r160_in1k", seed=1))
    cache = _hub_cache(tmp_path / "hub", f"timm/{CONVNEXT}", {"model.safetensors": other})
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    images = write_images(tmp_path / "in", 1, (32, 32))
    out = tmp_path / "out"
    result = invoke("run", str(images), "-m", f"timm/{CONVNEXT}", "-o", str(out))
    error_line(result, 1, f"weights for timm model '{CONVNEXT}' do not fit it")
    assert not out.exists()
