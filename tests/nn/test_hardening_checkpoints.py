"""Checkpoints read within bounds, and networks whose numbers are not finite (issue 27,
class 2): a zip bomb in ``--weights`` is refused at once without being inflated; NaN
or infinity in the weights, or weights so large that float32 overflows, end in one
named ``Error:`` line, no numpy warning, and the previous report byte for byte."""

from __future__ import annotations

import io
import time
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from reportgen.errors import ReportgenError
from reportgen.nn.checkpoint_limits import MAX_PICKLE_BYTES
from reportgen.nn.weights import load_state_dict
from tests.helpers import error_line, invoke_reproducible, snapshot, write_images
from tests.tinynet_factory import build

OPTIONS = ("-m", "tests.tinynet_factory:build", "--input-size", "32", "--device", "cpu",
           "--top-k", "2", "--examples", "2", "--jobs", "1")  # fmt: skip


def checkpoint_bytes() -> dict[str, bytes]:
    """The records of a real torch.save of TinyNet's state dict (seed 0), by name."""
    buffer = io.BytesIO()
    torch.manual_seed(0)
    torch.save(build().state_dict(), buffer)
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def rezipped(path: Path, replace: Callable[[str, bytes], bytes | None]) -> Path:
    """A copy of TinyNet's checkpoint with some records replaced and deflated
    (``replace`` gives the new bytes of a record, or None to keep it stored as it was)."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in checkpoint_bytes().items():
            new = replace(name, data)
            if new is None:
                archive.writestr(name, data)
            else:
                archive.writestr(name, new, compress_type=zipfile.ZIP_DEFLATED)
    return path


def pickle_of_opcodes(size: int) -> bytes:
    """A pickle that is nothing but ``size`` bytes of small-int pushes into a list:
    harmless to a restricted unpickler, but slow in proportion to its size."""
    return b"\x80\x02(" + b"K\x01" * (size // 2) + b"l."


@pytest.mark.parametrize(
    ("inflated", "needle"),
    [
        pytest.param(512 * 1024 * 1024, "its pickle", marks=pytest.mark.slow, id="512 MiB"),
        pytest.param(MAX_PICKLE_BYTES // 2, "its record", id="4 MiB, inflated 1000 times"),
    ],
)
def test_a_pickle_bomb_is_refused_without_being_inflated(
    tmp_path: Path, inflated: int, needle: str
) -> None:
    payload = pickle_of_opcodes(inflated)
    path = rezipped(
        tmp_path / "bomb.pth", lambda n, _d: payload if n.endswith("data.pkl") else None
    )
    assert path.stat().st_size < inflated // 100
    started = time.monotonic()
    with pytest.raises(ReportgenError, match=f"refusing weights file .*bomb.pth: {needle}"):
        load_state_dict(path)
    assert time.monotonic() - started < 2


def test_a_tensor_record_bomb_is_refused(tmp_path: Path) -> None:
    """A storage record that inflates to 64 MiB of zeros (the pickle is the real one)."""
    zeros = bytes(64 * 1024 * 1024)
    path = rezipped(tmp_path / "bomb.pth", lambda n, _d: zeros if "/data/" in n else None)
    with pytest.raises(ReportgenError, match="its record .* inflates from"):
        load_state_dict(path)


def test_a_deflated_checkpoint_of_plain_size_still_loads(tmp_path: Path) -> None:
    """Compression alone is no crime: a re-zipped checkpoint whose records inflate to a
    plausible size loads as the original."""
    path = rezipped(tmp_path / "deflated.pth", lambda _n, data: data)
    state = load_state_dict(path)
    torch.manual_seed(0)
    expected = build().state_dict()
    assert sorted(state) == sorted(expected)
    assert all(torch.equal(state[k], expected[k]) for k in expected)


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Images, a good checkpoint and its report at ``report``."""
    monkeypatch.chdir(tmp_path)
    write_images(tmp_path / "images", 2, (36, 40), grow=4, seed=2)
    torch.manual_seed(0)
    torch.save(build().state_dict(), "good.pth")
    result = invoke_reproducible("-q", "run", "images", *OPTIONS, "--weights", "good.pth")
    assert result.exit_code == 0, result.stderr
    return tmp_path


def spoiled(change: Callable[[dict[str, torch.Tensor]], None]) -> str:
    state = torch.load("good.pth", weights_only=True)
    change(state)
    torch.save(state, "bad.pth")
    return "bad.pth"


def nan_filter_and_inf_row(state: dict[str, torch.Tensor]) -> None:
    state["conv1.weight"][2] = float("nan")
    state["head.weight"][1] = float("inf")


def inf_row(state: dict[str, torch.Tensor]) -> None:
    state["head.weight"][1] = float("inf")


def overflowing(state: dict[str, torch.Tensor]) -> None:
    state["conv1.weight"] *= 1e38  # finite, but the sums overflow float32


def inf_bias(state: dict[str, torch.Tensor]) -> None:
    state["conv2.bias"][0] = -float("inf")


@pytest.mark.parametrize(
    ("change", "needles"),
    [
        (nan_filter_and_inf_row, ("bad.pth", "NaN in 'conv1.weight'")),
        (inf_row, ("not finite", "in its class scores")),
        (overflowing, ("not finite", "at layer 'conv1'", "images/img0.png")),
        (inf_bias, ("not finite", "at layer 'conv2'")),
    ],
)
def test_weights_that_are_not_finite_end_in_one_error_and_no_warning(
    work: Path, change: Callable[[dict[str, torch.Tensor]], None], needles: tuple[str, ...]
) -> None:
    before = snapshot(work / "report")
    weights = spoiled(change)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = invoke_reproducible("run", "images", *OPTIONS, "--weights", weights)
    error_line(result, 1, *needles)
    assert "Warning" not in result.stderr
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []
    assert snapshot(work / "report") == before
    assert sorted(p.name for p in work.iterdir()) == ["bad.pth", "good.pth", "images", "report"]
