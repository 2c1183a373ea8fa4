"""Finding inputs and reading them as upright RGB pictures."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reportgen.errors import ReportgenError
from reportgen.inputs.discovery import discover_inputs, input_id
from reportgen.inputs.files import InputFile, load_image
from tests.helpers import write_images


def _file(path: Path) -> InputFile:
    return InputFile(path, str(path), input_id(str(path)))


def _save(path: Path, image: Image.Image, **kwargs: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)
    return path


def test_discovery_recurses_sorts_and_filters_by_suffix(tmp_path: Path) -> None:
    root = tmp_path / "pics"
    red = Image.new("RGB", (8, 8), (255, 0, 0))
    _save(root / "b.png", red)
    _save(root / "a.JPG", red, format="JPEG")
    _save(root / "sub" / "c.webp", red, format="WEBP")
    (root / "notes.txt").write_text("not a picture")
    (root / "sub" / "README").write_text("")
    files, skipped = discover_inputs([str(root)])
    # An absolute argument is named from the folder that holds it: no machine path.
    assert [f.source for f in files] == [
        os.path.join("pics", "a.JPG"),
        os.path.join("pics", "b.png"),
        os.path.join("pics", "sub", "c.webp"),
    ]
    assert skipped == []
    assert all(f.path.is_file() for f in files)


def test_a_file_named_directly_is_used_whatever_its_suffix(tmp_path: Path) -> None:
    odd = _save(tmp_path / "picture.data", Image.new("RGB", (4, 4)), format="PNG")
    files, _ = discover_inputs([str(odd), str(odd)])
    assert [f.source for f in files] == ["picture.data"]  # de-duplicated
    assert load_image(files[0]).image.size == (4, 4)


def test_missing_input_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ReportgenError, match="does not exist"):
        discover_inputs([str(tmp_path / "nope")])


def test_broken_symlink_in_a_folder_is_skipped_with_a_reason(tmp_path: Path) -> None:
    root = tmp_path / "pics"
    _save(root / "ok.png", Image.new("RGB", (4, 4)))
    (root / "gone.png").symlink_to(root / "missing.png")
    files, skipped = discover_inputs([str(root)])
    assert [f.path.name for f in files] == ["ok.png"]
    assert len(skipped) == 1 and "gone.png" in skipped[0].source
    assert "link" in skipped[0].reason


def test_ids_are_readable_stable_and_distinct() -> None:
    first, second = input_id("a/cat.jpg"), input_id("b/cat.jpg")
    assert first.startswith("cat-") and second.startswith("cat-")
    assert first != second
    assert input_id("a/cat.jpg") == first
    evil = input_id('x/"><img src=x onerror=alert(1)>.png')
    assert all(ch.isalnum() or ch == "-" for ch in evil)


def test_sha256_and_size_of_a_loaded_image(tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    path = _save(tmp_path / "x.png", Image.fromarray(pixels))
    loaded = load_image(_file(path))
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (loaded.width, loaded.height) == (20, 12)
    np.testing.assert_array_equal(np.asarray(loaded.image), pixels)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    # Stored 40 wide, 20 high: left half red, right half blue.
    stored = Image.new("RGB", (40, 20), (255, 0, 0))
    stored.paste((0, 0, 255), (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = _save(tmp_path / "turned.jpg", stored, format="JPEG", exif=exif, quality=95)
    loaded = load_image(_file(path))
    assert loaded.image.size == (20, 40)
    pixels = np.asarray(loaded.image).astype(int)
    # Turned clockwise, the stored left (red) side is on top.
    assert pixels[5, 10, 0] > 200 and pixels[5, 10, 2] < 60
    assert pixels[35, 10, 2] > 200 and pixels[35, 10, 0] < 60
    assert any("EXIF" in note for note in loaded.notes)


@pytest.mark.parametrize(
    ("mode", "colour"),
    [("L", 77), ("1", 1), ("CMYK", (0, 255, 0, 0)), ("P", 5), ("I;16", 65535), ("F", 128.0)],
)
def test_every_mode_becomes_8_bit_rgb(tmp_path: Path, mode: str, colour: object) -> None:
    image = Image.new(mode, (6, 5), colour)  # type: ignore[arg-type]
    fmt = "TIFF" if mode in ("CMYK", "I;16", "F") else "PNG"
    path = _save(tmp_path / f"m.{fmt.lower()}", image, format=fmt)
    loaded = load_image(_file(path))
    assert loaded.image.mode == "RGB" and loaded.image.size == (6, 5)
    pixels = np.asarray(loaded.image)
    expected = {
        "L": (77, 77, 77),
        "1": (255, 255, 255),
        "CMYK": (255, 0, 255),  # full magenta ink
        "P": tuple(image.convert("RGB").getpixel((0, 0))),
        "I;16": (255, 255, 255),
        "F": (128, 128, 128),
    }[mode]
    assert (pixels == np.array(expected, dtype=np.uint8)).all()


def test_transparency_is_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[0, 0] = (255, 0, 0, 0)  # fully transparent red: white
    rgba[0, 1] = (0, 0, 255, 255)  # opaque blue
    rgba[0, 2] = (0, 0, 0, 128)  # half-transparent black: mid grey
    rgba[1] = (0, 255, 0, 255)
    path = _save(tmp_path / "alpha.png", Image.fromarray(rgba, "RGBA"))
    loaded = load_image(_file(path))
    pixels = np.asarray(loaded.image).astype(int)
    assert tuple(pixels[0, 0]) == (255, 255, 255)
    assert tuple(pixels[0, 1]) == (0, 0, 255)
    assert all(abs(v - 127) <= 1 for v in pixels[0, 2])
    assert tuple(pixels[1, 1]) == (0, 255, 0)
    assert any("white" in note for note in loaded.notes)


def test_animated_gif_uses_the_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (5, 5), c) for c in ((255, 0, 0), (0, 255, 0))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    loaded = load_image(_file(path))
    assert tuple(np.asarray(loaded.image)[2, 2]) == (255, 0, 0)
    assert any("first of 2 frames" in note for note in loaded.notes)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"this is text, not a picture", "not an image"),
    ],
)
def test_unreadable_files_give_a_reason(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ReportgenError, match=message) as caught:
        load_image(_file(path))
    assert "bad.png" in str(caught.value)


def test_truncated_image_is_an_error(tmp_path: Path) -> None:
    path = write_images(tmp_path, 1, (64, 64), names=["cut.jpg"], seed=1) / "cut.jpg"
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ReportgenError, match="cut.jpg"):
        load_image(_file(path))


def test_inputs_are_named_without_machine_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative paths inside the current folder stay as typed; otherwise every input is
    named relative to the folder holding them all; URLs stay as they are."""
    from reportgen.inputs.discovery import shown_arguments

    monkeypatch.chdir(tmp_path)
    assert shown_arguments(["pics", "more/x.png"]) == {"pics": "pics", "more/x.png": "more/x.png"}
    a, b = str(tmp_path / "set" / "a"), str(tmp_path / "set" / "b.png")
    assert shown_arguments([a, b, "https://example.org/c.png"]) == {a: "a", b: "b.png"}
    # A path out of the current folder counts as absolute: named from the common folder.
    assert shown_arguments(["../up", a]) == {
        "../up": "up",
        a: os.path.join(tmp_path.name, "set", "a"),
    }
