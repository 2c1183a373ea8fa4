"""Issue 12, part 5: any torchvision classifier makes a report.

A dozen diverse CNNs through the CLI (in-process), each on one small picture with
random weights, one early layer and few channels: each must exit 0 and write a report
whose manifest lists the model and its layer. ViT and Swin, with default layers, must
give a report or one clear ``Error:`` line, never a traceback. Then how networks are
built for torchvision's weights (offline, with made-up checkpoints): the builder of
the weights runs, as torchvision would run it. benchmarks/models_smoke.py runs every
model with default settings.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
from click.testing import Result
from PIL import Image
from torchvision.models import get_model, get_model_weights

from reportgen.errors import ReportgenError
from reportgen.nn import models as models_module
from reportgen.nn.models import build_module, load_model, reference_weights
from reportgen.nn.weights import ResolvedWeights
from tests.helpers import invoke, random_model

# name -> an early Conv2d: its maps are what the report is built of.
CNNS = {
    "resnet18": "conv1",
    "alexnet": "features.0",
    "vgg11": "features.0",
    "googlenet": "conv1.conv",
    "inception_v3": "Conv2d_1a_3x3.conv",
    "densenet121": "features.conv0",
    "squeezenet1_0": "features.0",
    "mobilenet_v3_small": "features.0.0",
    "efficientnet_b0": "features.0.0",
    "regnet_x_400mf": "stem.0",
    "convnext_tiny": "features.0.0",
    "shufflenet_v2_x0_5": "conv1.0",
}
# Over ~10 s each on 2 cores (building the network, its forward and Grad-CAM passes);
# the others take 3-9 s.
HEAVY = {"inception_v3", "convnext_tiny"}
FAST = ("--weights", "none", "--no-cache", "--device", "cpu", "--top-k", "2", "--examples", "0")


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    path = tmp_path / "small.png"
    Image.new("RGB", (48, 40), (150, 90, 40)).save(path)
    return path


def run(picture: Path, out: Path, name: str, *args: str) -> Result:
    return invoke("run", str(picture), "-m", name, "-o", str(out), *FAST, *args)


def no_traceback(result: Result) -> None:
    text = result.stderr + result.stdout
    assert "Traceback" not in text, text
    assert "internal error" not in text, text
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )


def manifest_of(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return data


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in CNNS],
)
def test_cnn_makes_a_report(name: str, picture: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = run(picture, out, name, "-l", CNNS[name])
    no_traceback(result)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    models = manifest_of(out)["models"]
    assert [m["name"] for m in models] == [name]
    layers = [layer["name"] for layer in models[0]["layers"]]
    assert layers == [CNNS[name]]
    assert models[0]["layers"][0]["type"] == "Conv2d"
    assert (out / "index.html").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vit_b_16", "swin_t"])
def test_transformer_makes_a_report_or_says_why(name: str, picture: Path, tmp_path: Path) -> None:
    """Default layers (every Conv2d: the patch embedding) and the default Grad-CAM."""
    out = tmp_path / "report"
    result = run(picture, out, name)
    no_traceback(result)
    if result.exit_code == 0:
        models = manifest_of(out)["models"]
        assert [m["name"] for m in models] == [name]
        assert models[0]["layers"], "a report with no layer"
    else:
        assert result.exit_code in (1, 2), (result.exit_code, result.stderr)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert lines and lines[-1].startswith("Error: "), result.stderr
        assert sum(line.startswith("Error:") for line in lines) == 1, result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "layer"),
    [
        ("inception_v3", "Mixed_6a.branch3x3dbl_1.conv"),
        ("maxvit_t", "blocks.0.layers.0.layers.MBconv.layers.conv_a.0"),
    ],
)
def test_layer_off_the_main_path_makes_a_report(
    name: str, layer: str, picture: Path, tmp_path: Path
) -> None:
    """Every Conv2d is the default: these two failed a default run of their model (a
    receptive-field box past the view's edge, refused by Pillow's crop); boxes are now
    clipped into the view."""
    out = tmp_path / "report"
    fast = [a for a in FAST if a not in ("--examples", "0")]  # the examples crop the field
    result = invoke("run", str(picture), "-m", name, "-o", str(out), *fast, "-l", layer)
    no_traceback(result)
    assert result.exit_code == 0, (result.stdout, result.stderr)


# ------------------------------------------------- building for torchvision's weights


def test_densenet_checkpoint_with_old_key_names_loads() -> None:
    """torchvision's DenseNet files name layers 'norm.1', 'conv.2'; its builder renames
    them. Building the bare network and loading strictly refused them."""
    torch.manual_seed(0)
    state = get_model("densenet121", weights=None).state_dict()
    old = {
        re.sub(r"(denselayer\d+\.(?:norm|conv))([12])\.", r"\1.\2.", key): value
        for key, value in state.items()
        if not key.endswith("num_batches_tracked")  # the old files have none
    }
    assert any(".norm.1." in key for key in old)
    member = get_model_weights("densenet121").DEFAULT
    module = build_module("densenet121", member, old, "densenet121-a639ec97.pth")
    built = module.state_dict()
    for key, value in state.items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(built[key], value), key


def test_googlenet_weights_build_torchvisions_network() -> None:
    """With its weights torchvision's GoogLeNet re-normalises its input and has no
    auxiliary heads; the bare network (random weights) keeps them."""
    checkpoint = torchvision.models.GoogLeNet(
        aux_logits=True, transform_input=True, init_weights=False
    ).state_dict()
    member = get_model_weights("googlenet").DEFAULT
    module = build_module("googlenet", member, checkpoint, "googlenet-1378be20.pth")
    assert module.transform_input is True
    assert module.aux1 is None and module.aux2 is None
    bare = build_module("googlenet")
    assert bare.transform_input is False and bare.aux1 is not None


@pytest.mark.slow
def test_vit_swag_weights_build_a_network_of_their_input_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ViT-B/16 SWAG end-to-end weights are for 384x384 inputs: the network is built for
    384 (the bare one takes 224, and its position embedding would not fit the file)."""
    member = torchvision.models.ViT_B_16_Weights.IMAGENET1K_SWAG_E2E_V1
    path = tmp_path / "vit_b_16_swag-9ac1b537.pth"
    torch.save(torchvision.models.vit_b_16(image_size=384).state_dict(), path)
    resolved = ResolvedWeights("torchvision", member.name, path, member)
    monkeypatch.setattr(models_module, "resolve_weights", lambda *args: resolved)
    loaded = load_model(
        "vit_b_16",
        member.name,
        weights_dir=None,
        offline=True,
        seed=0,
        device=torch.device("cpu"),
        model_id_="vit_b_16",
    )
    assert loaded.module.image_size == 384
    assert loaded.preprocessing.crop_size == (384,)
    with torch.no_grad():
        view = loaded.preprocessing.view(Image.new("RGB", (500, 400), (10, 20, 30)))
        logits = loaded.module(loaded.preprocessing.tensor(view)[None])
    assert tuple(logits.shape) == (1, 1000)


def test_checkpoint_that_does_not_fit_the_builder_is_one_clear_error() -> None:
    member = get_model_weights("resnet18").DEFAULT
    other = get_model("resnet34", weights=None).state_dict()
    with pytest.raises(ReportgenError) as caught:
        build_module("resnet18", member, other, "resnet18-f37072fd.pth")
    message = str(caught.value)
    assert "resnet18-f37072fd.pth" in message and "IMAGENET1K_V1" in message
    assert "Unexpected key(s)" in message and "\n" not in message


def test_torchvisions_loader_is_put_back() -> None:
    import torchvision.models._api as api

    original = api.load_state_dict_from_url
    member = get_model_weights("resnet18").DEFAULT
    with pytest.raises(ReportgenError):
        build_module("resnet18", member, {}, "empty.pth")
    assert api.load_state_dict_from_url is original


class _Sized:
    """Stands for a network that takes one input size only (a ViT's ``image_size``)."""

    def __init__(self, size: int) -> None:
        self.image_size = size


def test_random_vit_borrows_preprocessing_of_its_input_size() -> None:
    """vit_h_14's DEFAULT weights crop 518, the network built without weights takes
    224: its preprocessing comes from the 224 weights, not DEFAULT."""
    enum = torchvision.models.ViT_H_14_Weights
    assert list(enum.DEFAULT.transforms().crop_size) == [518]
    chosen = reference_weights(enum, _Sized(224))
    assert chosen is not None and list(chosen.transforms().crop_size) == [224]
    assert reference_weights(enum, _Sized(300)) is None  # then the plain 224 crop
    resnet = torchvision.models.ResNet50_Weights
    assert reference_weights(resnet, torch.nn.Identity()) is resnet.DEFAULT
    assert reference_weights(None, torch.nn.Identity()) is None


@pytest.mark.parametrize("name", ["googlenet", "inception_v3"])
def test_random_googlenet_and_inception_build_without_a_warning(name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_module(name)


@pytest.mark.slow
def test_random_vit_h_14_runs_on_its_preprocessing() -> None:
    """The real thing (632 M parameters, about 2.5 GB): it used to fail with 'Wrong image
    height! Expected 224 but got 518'."""
    loaded = random_model("vit_h_14")
    assert loaded.preprocessing.crop_size == (224,)
    with torch.no_grad():
        view = loaded.preprocessing.view(Image.new("RGB", (64, 64), (10, 20, 30)))
        logits = loaded.module(loaded.preprocessing.tensor(view)[None])
    assert tuple(logits.shape) == (1, 1000)
