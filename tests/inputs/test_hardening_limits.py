"""Issue 15, class 1: bounded work per input.

* pixels: a cap on every picture made from an input (the picture the preprocessing
  resizes to and the network's view), checked on the header before decoding and again
  before resizing; wide and tall strips alike;
* only regular files are read: FIFOs, character devices (also behind a symbolic link
  with an image name) and sockets are skipped with a reason, never opened for reading
  in a way that can block;
* a read size cap that does not trust ``st_size``.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from reportgen.errors import ReportgenError
from reportgen.inputs import files as files_module
from reportgen.inputs.discovery import discover_inputs, input_id
from reportgen.inputs.files import (
    MAX_VIEW_PIXELS,
    InputFile,
    check_view_size,
    load_image,
    resized_size,
)
from tests.helpers import invoke

FAST = ("-m", "alexnet", "-l", "features.0", "--weights", "none", "--device", "cpu", "--jobs", "1")
STANDARD = ((256,), (224,))  # torchvision's usual preprocessing: resize 256, crop 224


def file_input(path: Path) -> InputFile:
    return InputFile(path, str(path), input_id(str(path)))


def declared_png(width: int, height: int) -> bytes:
    """A PNG header declaring ``width`` x ``height`` RGB pixels, with a broken IDAT: it
    can only be refused by its size if nothing tries to decode it."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", b"not zlib")
        + chunk(b"IEND", b"")
    )


# ---------------------------------------------------------------- pixels after preprocessing


@pytest.mark.parametrize("size", [(30000, 1), (1, 30000), (100000, 3), (5, 70000)])
def test_strip_is_refused_from_its_header_before_decoding(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    path = tmp_path / "strip.png"
    path.write_bytes(declared_png(*size))
    assert size[0] * size[1] <= files_module.MAX_PIXELS  # the input limit lets it in
    with pytest.raises(ReportgenError) as caught:
        load_image(file_input(path), views=[STANDARD])
    message = str(caught.value)
    assert str(path) in message and f"{size[0]}x{size[1]}" in message
    assert "more than the limit" in message and "broken" not in message


def test_every_preprocessing_of_the_run_is_checked(tmp_path: Path) -> None:
    """A picture fine for one model's resize and too large for another's is refused."""
    path = tmp_path / "panorama.png"
    Image.new("RGB", (1200, 12), (1, 2, 3)).save(path)
    assert load_image(file_input(path), views=[STANDARD]).width == 1200  # 25600x256: fine
    big = ((600,), (600,))  # 60000x600 = 36 Mpx
    with pytest.raises(ReportgenError, match="60000x600"):
        load_image(file_input(path), views=[STANDARD, big])


def test_ordinary_pictures_pass(tmp_path: Path) -> None:
    for size in [(4000, 3000), (3000, 4000), (64, 48), (2000, 30)]:
        check_view_size("ok.png", *size, STANDARD)
    check_view_size("ok.png", 8000, 8000, ((224, 224), (224, 224)))


def test_the_crop_is_capped_too() -> None:
    with pytest.raises(ReportgenError, match="centre crop"):
        check_view_size("a.png", 100, 100, ((256,), (5000,)))


def test_resized_size_follows_torchvision() -> None:
    from torchvision.transforms import functional as F

    for width, height in [(30000, 1), (1, 30000), (640, 480), (333, 777), (256, 256)]:
        for resize in ([256], [232], [300, 200]):
            expected = F._compute_resized_output_size((height, width), resize)  # [h, w]
            assert resized_size(width, height, resize) == (expected[1], expected[0])


@pytest.mark.parametrize("size", [(8000, 1), (1, 8000)])
def test_view_refuses_before_resizing(
    monkeypatch: pytest.MonkeyPatch, size: tuple[int, int]
) -> None:
    from torchvision.transforms import functional as F

    from reportgen.nn.models import default_preprocessing

    def resize(*args: object, **kwargs: object) -> None:
        raise AssertionError("resized a picture that is over the limit")

    monkeypatch.setattr(F, "resize", resize)
    with pytest.raises(ReportgenError) as caught:
        default_preprocessing().view(Image.new("RGB", size), "strip.png")
    assert "'strip.png'" in str(caught.value) and f"{size[0]}x{size[1]}" in str(caught.value)
    assert str(MAX_VIEW_PIXELS // 1000) in str(caught.value).replace(",", "")


@pytest.mark.parametrize("size", [(4000, 4), (4, 4000)])
def test_run_with_a_strip_never_builds_the_huge_view(tmp_path: Path, size: tuple[int, int]) -> None:
    """Wide and tall: the run skips the strip, before decoding it, with a reason naming it
    and its size; it never resizes it, and the other input makes the report."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.new("RGB", (40, 32), (9, 99, 199)).save(folder / "good.png")
    Image.new("RGB", size, (200, 10, 10)).save(folder / "strip.png")
    out = tmp_path / "out"
    result = invoke("run", str(folder), "-o", str(out), *FAST)
    wanted = f"{size[0]}x{size[1]}"
    assert result.exit_code == 0, result.output
    import json

    manifest = json.loads((out / "manifest.json").read_text())
    reasons = [s["reason"] for s in manifest["skipped"] if "strip.png" in s["source"]]
    assert reasons and wanted in reasons[0] and "limit" in reasons[0], manifest["skipped"]


# ---------------------------------------------------------------- only regular files


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    """A FIFO named like an image; whatever blocks on it is released after a few
    seconds (by a writer that opens and closes it), so a test fails instead of hanging."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    path = folder / "x.png"
    os.mkfifo(path)
    done = threading.Event()

    def release() -> None:
        if done.wait(5):
            return
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            return  # nobody is reading: nothing blocks
        os.close(fd)

    releaser = threading.Thread(target=release, daemon=True)
    releaser.start()
    yield path
    done.set()
    releaser.join(10)


def test_fifo_in_a_folder_is_skipped_with_a_reason(fifo: Path) -> None:
    Image.new("RGB", (20, 20)).save(fifo.parent / "good.png")
    found, skipped = discover_inputs([str(fifo.parent)])
    assert [f.path.name for f in found] == ["good.png"]
    assert [(Path(s.source).name, s.reason) for s in skipped] == [
        ("x.png", "is a FIFO (named pipe), not a regular file; not read")
    ]


def test_fifo_named_directly_is_refused(fifo: Path) -> None:
    with pytest.raises(ReportgenError, match="FIFO"):
        discover_inputs([str(fifo)])


def test_loading_a_fifo_does_not_block(fifo: Path) -> None:
    """Even one that became a FIFO after it was found (the file is checked once open)."""
    with pytest.raises(ReportgenError, match="FIFO"):
        load_image(file_input(fifo))


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null", "/dev/urandom"])
def test_character_device_behind_an_image_name_is_skipped(tmp_path: Path, device: str) -> None:
    if not os.path.exists(device):
        pytest.skip(f"{device} is missing here")
    folder = tmp_path / "imgs"
    (folder / "deep").mkdir(parents=True)
    Image.new("RGB", (20, 20)).save(folder / "good.png")
    (folder / "deep" / "zero.png").symlink_to(device)
    found, skipped = discover_inputs([str(folder)])
    assert [f.path.name for f in found] == ["good.png"]
    assert len(skipped) == 1 and "character device" in skipped[0].reason
    with pytest.raises(ReportgenError, match="character device"):
        discover_inputs([str(folder / "deep" / "zero.png")])


def test_loading_a_device_reads_nothing() -> None:
    with pytest.raises(ReportgenError, match="character device"):
        load_image(InputFile(Path("/dev/null"), "null.png", "null"))


def test_socket_is_skipped(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.new("RGB", (20, 20)).save(folder / "good.png")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(folder / "s.png"))
        found, skipped = discover_inputs([str(folder)])
    finally:
        server.close()
    assert [f.path.name for f in found] == ["good.png"]
    assert len(skipped) == 1 and "socket" in skipped[0].reason


def test_run_with_special_files_finishes(fifo: Path, tmp_path: Path) -> None:
    """The CLI: a FIFO and a device among the inputs are listed as skipped; the run ends."""
    folder = fifo.parent
    Image.new("RGB", (40, 32), (9, 99, 199)).save(folder / "good.png")
    (folder / "sub").mkdir()
    (folder / "sub" / "null.png").symlink_to("/dev/null")
    out = tmp_path / "out"
    result = invoke("run", str(folder), "-o", str(out), *FAST)
    assert result.exit_code == 0, result.stderr
    import json

    skipped = json.loads((out / "manifest.json").read_text())["skipped"]
    assert sorted(Path(s["source"]).name for s in skipped) == ["null.png", "x.png"]
    assert all("not a regular file" in s["reason"] for s in skipped), skipped


# ---------------------------------------------------------------- read size cap


def test_read_cap_does_not_trust_st_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """/proc files say they are 0 bytes long and are not: the cap counts what is read."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        pytest.skip("no /proc here")
    link = tmp_path / "maps.png"
    link.symlink_to(maps)
    monkeypatch.setattr(files_module, "MAX_FILE_BYTES", 64)
    assert maps.stat().st_size == 0
    with pytest.raises(ReportgenError, match="more than the limit of 64 bytes"):
        load_image(file_input(link))


def test_read_cap_by_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.png"
    Image.effect_noise((64, 64), 80).convert("RGB").save(path)
    assert path.stat().st_size > 100
    monkeypatch.setattr(files_module, "MAX_FILE_BYTES", 100)
    with pytest.raises(ReportgenError, match="more than the limit of 100"):
        load_image(file_input(path))
