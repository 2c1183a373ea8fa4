"""Issue 4, part 3: unknown models and layers, wrong or hostile weights files,
a missing CUDA device, and no network with no cached weights.

Each case goes through the CLI and checks the contract: one ``Error:`` line that
names the input and the reason, exit code 1, no traceback, no report written.
"""

from __future__ import annotations

import pickle
import urllib.error
from pathlib import Path

import pytest
import torch
from click.testing import Result
from PIL import Image

from reportgen.errors import ReportgenError
from reportgen.nn.layers import resolve_layers, trace_layers
from reportgen.nn.weights import load_state_dict
from tests.helpers import error_line, invoke

CPU = ("--device", "cpu", "--jobs", "2")


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "in.png"
    Image.new("RGB", (40, 30), (120, 60, 30)).save(path)
    return path


def run(image: Path, tmp_path: Path, *args: str) -> Result:
    return invoke("run", str(image), "-o", str(tmp_path / "report"), *CPU, *args)


# ---------------------------------------------------------------- names


def test_unknown_model_shows_closest_names(image: Path, tmp_path: Path) -> None:
    line = error_line(run(image, tmp_path, "-m", "resnet181", "--weights", "none"))
    assert "unknown model 'resnet181'" in line
    assert "closest:" in line and "resnet18" in line
    assert "reportgen models" in line
    assert not (tmp_path / "report").exists()


def test_unknown_layer_shows_closest_names(image: Path, tmp_path: Path) -> None:
    line = error_line(run(image, tmp_path, "-m", "alexnet", "--weights", "none", "-l", "feature.0"))
    assert "layer 'feature.0' matches nothing in 'alexnet'" in line
    assert "closest:" in line and "features.0" in line
    assert "reportgen layers alexnet" in line


class _Branchy(torch.nn.Module):
    """A network with a layer its forward pass never calls (like GoogLeNet's aux heads
    in eval mode, which take GoogLeNet's slow initialisation to show)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.unused = torch.nn.Conv2d(4, 4, 3)
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.conv(x)), 1))


def test_layer_never_reached_by_the_forward_pass() -> None:
    infos = trace_layers(_Branchy(), 32)
    with pytest.raises(ReportgenError, match=r"layer 'unused' of 'branchy' is never reached"):
        resolve_layers(infos, ("unused",), "branchy")
    with pytest.raises(ReportgenError, match=r"'unuse\*' only matches .* never reaches"):
        resolve_layers(infos, ("unuse*",), "branchy")
    # The default, 'conv' and wide patterns leave the unreached layer out.
    assert resolve_layers(infos, (), "branchy") == ["conv"]
    assert resolve_layers(infos, ("conv",), "branchy") == ["conv"]
    assert resolve_layers(infos, ("*",), "branchy") == ["conv", "pool", "fc"]


# ---------------------------------------------------------------- weights files


def test_weights_for_another_architecture_name_the_keys(image: Path, tmp_path: Path) -> None:
    from torchvision.models import get_model

    other = tmp_path / "mobilenet_v3_small.pth"
    torch.save(get_model("mobilenet_v3_small", weights=None).state_dict(), other)
    line = error_line(
        run(image, tmp_path, "-m", "squeezenet1_1", "-l", "features.0", "--weights", str(other))
    )
    assert str(other) in line and "does not fit this architecture" in line
    assert "missing keys (features.0.weight" in line
    assert "unexpected keys (features.0.0.weight" in line


def test_file_that_is_not_a_checkpoint(image: Path, tmp_path: Path) -> None:
    # A picture passed as --weights: a common slip.
    line = error_line(
        run(image, tmp_path, "-m", "alexnet", "-l", "features.0", "--weights", str(image))
    )
    assert f"weights file {image} is not a PyTorch checkpoint" in line


def test_checkpoint_without_a_state_dict(tmp_path: Path) -> None:
    odd = tmp_path / "numbers.pt"
    torch.save({"epoch": 3, "lr": 0.1}, odd)
    with pytest.raises(ReportgenError, match="holds no state dict"):
        load_state_dict(odd)


class _Payload:
    """Unpickling this object opens (creates) the marker file: code run from a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("container", ["torch.save", "plain pickle"])
def test_pickled_code_payload_is_refused_without_running_it(
    image: Path, tmp_path: Path, container: str
) -> None:
    marker = tmp_path / "payload-ran"
    evil = tmp_path / "evil.pth"
    state = {"features.0.weight": torch.zeros(64, 3, 11, 11), "x": _Payload(marker)}
    if container == "torch.save":
        torch.save(state, evil)
    else:
        # A plain pickle of a tensor would itself need a torch global; leave it out.
        evil.write_bytes(pickle.dumps({"x": _Payload(marker)}, protocol=2))
    line = error_line(
        run(image, tmp_path, "-m", "alexnet", "-l", "features.0", "--weights", str(evil))
    )
    assert f"refusing weights file {evil}" in line and "weights_only=True" in line
    assert "io.open" in line and "nothing in it was run" in line
    assert not marker.exists()
    assert not (tmp_path / "report").exists()


def test_the_payload_is_live_so_the_refusal_means_something(tmp_path: Path) -> None:
    """Loaded without weights_only, the same file runs its code: the test above guards
    against a real attack, not against a harmless file."""
    marker = tmp_path / "payload-ran"
    evil = tmp_path / "evil.pth"
    torch.save({"x": _Payload(marker)}, evil)
    torch.load(evil, weights_only=False)
    assert marker.exists()


# ---------------------------------------------------------------- device and network


def test_device_cuda_without_cuda(
    image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = invoke(
        "run",
        str(image),
        "-o",
        str(tmp_path / "report"),
        "-m",
        "alexnet",
        "-l",
        "features.0",
        "--weights",
        "none",
        "--device",
        "cuda",
    )
    line = error_line(result)
    assert "--device cuda" in line and "no CUDA device" in line
    assert "--device cpu" in line


def test_offline_and_no_cached_weights(image: Path, tmp_path: Path) -> None:
    # conftest: REPORTGEN_OFFLINE=1 and an empty TORCH_HOME.
    line = error_line(run(image, tmp_path, "-m", "alexnet", "-l", "features.0"))
    assert "alexnet-owt-7be5be79.pth" in line and "not found in" in line
    assert "checkpoints" in line  # where it looked
    assert "--weights-dir" in line and "--weights none" in line  # the ways out
    assert "--offline" in line


def test_no_network_and_no_cached_weights(
    image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REPORTGEN_OFFLINE")
    calls: list[str] = []

    def unreachable(url: str, *args: object, **kwargs: object) -> None:
        calls.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", unreachable)
    line = error_line(run(image, tmp_path, "-m", "alexnet", "-l", "features.0"))
    assert calls == ["https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"]
    assert "alexnet-owt-7be5be79.pth" in line
    assert "downloading https://download.pytorch.org/models/alexnet-owt-7be5be79.pth failed" in line
    assert "--weights-dir" in line and "--weights none" in line
    assert not list(tmp_path.rglob("*.pth"))


def test_manifest_cannot_name_code_to_run(
    image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manifest is data from a report, possibly someone else's: the custom-model
    factories it names must not be imported (only -m on the command line may)."""
    import json
    import sys

    marker = tmp_path / "module-ran"
    code = tmp_path / "code"
    code.mkdir()
    (code / "manifest_payload.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "import torch\n"
        "def build():\n"
        "    return torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Flatten())\n"
    )
    monkeypatch.syspath_prepend(str(code))  # e.g. the current folder with python -m
    monkeypatch.delitem(sys.modules, "manifest_payload", raising=False)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        json.dumps(
            {
                "format": 1,
                "generator": {"name": "reportgen", "version": "0"},
                "settings": {"models": ["manifest_payload:build"], "weights": "none"},
            }
        )
    )
    result = invoke(
        "run",
        str(image),
        "-o",
        str(tmp_path / "report"),
        "--from-manifest",
        str(manifest),
        *CPU,
    )
    assert not marker.exists()
    line = error_line(result, 2)
    assert "manifest_payload:build" in line
