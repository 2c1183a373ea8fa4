"""Issue 4, part 1: every kind of bad or unusual input file.

Decoding is tested on the functions (fast, exact pixel checks); the CLI contract
(one ``Error:`` line, exit code, skipped inputs listed in the report) on a few
small runs with random weights and one small layer.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import Result
from PIL import Image

from reportgen.errors import ReportgenError
from reportgen.inputs.discovery import discover_inputs, input_id
from reportgen.inputs.files import MAX_PIXELS, InputFile, decode_rgb, load_image
from tests.helpers import REPO, error_line, invoke

FAST = ("-m", "alexnet", "-l", "features.0", "--weights", "none", "--device", "cpu", "--jobs", "2")
HTML_NAME = "<svg onload=alert(1)>.png"


def png_bytes(image: Image.Image, fmt: str = "PNG", **save: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save)
    return buffer.getvalue()


def good_png(path: Path, colour: tuple[int, int, int] = (10, 200, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 32), colour).save(path)
    return path


def file_input(path: Path) -> InputFile:
    return InputFile(path, str(path), input_id(str(path)))


# ---------------------------------------------------------------- not there / empty


def test_missing_path_is_one_error_line(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.jpg")
    result = invoke("run", missing, "-o", str(tmp_path / "out"), *FAST)
    error_line(result, 1, missing, "does not exist")
    assert not (tmp_path / "out").exists()


def test_missing_path_among_usable_ones_is_skipped(tmp_path: Path) -> None:
    good = good_png(tmp_path / "good.png")
    missing = str(tmp_path / "typo.png")
    files, skipped = discover_inputs([str(good), missing])
    assert [f.path for f in files] == [good]
    # Absolute paths are named relative to the folder holding every input.
    assert [(s.source, s.reason) for s in skipped] == [("typo.png", "does not exist")]


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = invoke("run", str(tmp_path / "empty"), "-o", str(tmp_path / "out"), *FAST)
    error_line(result, 1, "no image files found", "empty")


def test_folder_of_non_images(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    (folder / "data.csv").write_text("a,b\n1,2\n")
    result = invoke("run", str(folder), "-o", str(tmp_path / "out"), *FAST)
    error_line(result, 1, "no image files found", ".png")


def test_zero_byte_file(tmp_path: Path) -> None:
    empty = tmp_path / "zero.png"
    empty.write_bytes(b"")
    with pytest.raises(ReportgenError, match=r"zero\.png.*empty \(0 bytes\)"):
        load_image(file_input(empty))
    result = invoke("run", str(empty), "-o", str(tmp_path / "out"), *FAST)
    error_line(result, 1, "zero.png", "0 bytes")


def test_truncated_jpeg(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    data = png_bytes(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)), "JPEG")
    broken = tmp_path / "cut.jpg"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(ReportgenError, match=r"cut\.jpg.*truncated"):
        load_image(file_input(broken))


def test_text_file_named_jpg(tmp_path: Path) -> None:
    fake = tmp_path / "fake.jpg"
    fake.write_text("this is not a picture\n")
    with pytest.raises(ReportgenError, match=r"fake\.jpg.*not an image"):
        load_image(file_input(fake))


def test_all_inputs_unusable_fails_naming_the_first(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.jpg").write_text("text")
    (folder / "b.png").write_bytes(b"")
    result = invoke("run", str(folder), "-o", str(tmp_path / "out"), *FAST)
    line = error_line(result, 1, "none of the 2 inputs could be used", "a.jpg")
    assert "not an image" in line
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- decompression bomb


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int, height: int) -> bytes:
    """A PNG of a few hundred bytes whose header declares ``width`` x ``height`` RGB."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\0" * (1 + 3 * min(width, 1000)) * 4, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", rows)
        + _png_chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("side", [9_000, 50_000, 1_000_000])
def test_decompression_bomb_fails_fast_with_bounded_memory(side: int) -> None:
    data = bomb_png(side, side)
    assert len(data) < 20_000
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(ReportgenError, match="limit|bomb"):
        decode_rgb(data, [])
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert seconds < 2.0
    assert peak < 5 * 1024 * 1024  # Python-side; the C side is checked below
    assert side * side > MAX_PIXELS


def test_decompression_bomb_under_an_address_space_limit(tmp_path: Path) -> None:
    """In a child limited to 1 GiB of address space (Pillow's C allocations count too),
    a file declaring 2.5 G pixels (7.5 GB decoded) is refused, not decoded."""
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bomb_png(50_000, 50_000))
    code = (
        "import resource, sys\n"
        "from pathlib import Path\n"
        "from reportgen.inputs.files import InputFile, load_image\n"
        "from reportgen.errors import ReportgenError\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "path = Path(sys.argv[1])\n"
        "try:\n"
        "    load_image(InputFile(path, 'bomb.png', 'bomb'))\n"
        "except ReportgenError as exc:\n"
        "    print('refused:', exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(bomb)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("refused: 'bomb.png'"), done.stdout
    assert "limit" in done.stdout or "bomb" in done.stdout


# ---------------------------------------------------------------- modes to RGB


def test_16_bit_greyscale_scaled_to_8_bits() -> None:
    values = np.array([[0, 32768, 65535]], dtype=np.uint16)
    data = png_bytes(Image.fromarray(values))
    notes: list[str] = []
    rgb = decode_rgb(data, notes)
    assert rgb.mode == "RGB"
    assert [rgb.getpixel((x, 0)) for x in range(3)] == [(0, 0, 0), (128, 128, 128), (255,) * 3]
    assert any("8 bits" in n for n in notes)


def test_greyscale() -> None:
    rgb = decode_rgb(png_bytes(Image.new("L", (4, 4), 77)), [])
    assert rgb.mode == "RGB" and rgb.getpixel((1, 1)) == (77, 77, 77)


def test_palette() -> None:
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))
    image.putpixel((0, 0), 0)
    image.putpixel((1, 0), 1)
    rgb = decode_rgb(png_bytes(image), [])
    assert rgb.getpixel((0, 0)) == (255, 0, 0)
    assert rgb.getpixel((1, 0)) == (0, 0, 255)


def test_palette_with_transparency_composited_on_white() -> None:
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))
    image.putpixel((1, 0), 1)
    data = png_bytes(image, transparency=0)
    notes: list[str] = []
    rgb = decode_rgb(data, notes)
    assert rgb.getpixel((0, 0)) == (255, 255, 255)
    assert rgb.getpixel((1, 0)) == (0, 0, 255)
    assert any("white" in n for n in notes)


def test_rgba_composited_on_stated_white_background() -> None:
    image = Image.new("RGBA", (3, 1))
    image.putpixel((0, 0), (255, 0, 0, 0))  # fully transparent red: white
    image.putpixel((1, 0), (255, 0, 0, 255))  # opaque red
    image.putpixel((2, 0), (0, 0, 255, 128))  # half blue over white
    notes: list[str] = []
    rgb = decode_rgb(png_bytes(image), notes)
    assert rgb.getpixel((0, 0)) == (255, 255, 255)
    assert rgb.getpixel((1, 0)) == (255, 0, 0)
    r, g, b = rgb.getpixel((2, 0))
    assert abs(r - 127) <= 1 and abs(g - 127) <= 1 and b == 255
    assert "transparent pixels composited on white" in notes


def test_la_greyscale_with_alpha() -> None:
    image = Image.new("LA", (2, 1))
    image.putpixel((0, 0), (0, 0))
    image.putpixel((1, 0), (100, 255))
    notes: list[str] = []
    rgb = decode_rgb(png_bytes(image), notes)
    assert rgb.getpixel((0, 0)) == (255, 255, 255)
    assert rgb.getpixel((1, 0)) == (100, 100, 100)
    assert any("white" in n for n in notes)


def test_cmyk_jpeg_and_tiff() -> None:
    image = Image.new("CMYK", (2, 1))
    image.putpixel((0, 0), (0, 0, 0, 0))  # no ink: white
    image.putpixel((1, 0), (255, 0, 0, 0))  # cyan
    notes: list[str] = []
    rgb = decode_rgb(png_bytes(image, "TIFF"), notes)
    assert rgb.getpixel((0, 0)) == (255, 255, 255)
    assert rgb.getpixel((1, 0)) == (0, 255, 255)
    assert "CMYK converted to RGB" in notes
    solid = decode_rgb(png_bytes(Image.new("CMYK", (16, 16), (0, 0, 0, 255)), "JPEG"), [])
    assert max(solid.getpixel((8, 8))) < 10  # full black ink stays black


def test_one_bit() -> None:
    image = Image.new("1", (2, 1))
    image.putpixel((1, 0), 1)
    rgb = decode_rgb(png_bytes(image), [])
    assert rgb.getpixel((0, 0)) == (0, 0, 0)
    assert rgb.getpixel((1, 0)) == (255, 255, 255)


def test_exif_rotated_jpeg_is_upright() -> None:
    # Stored 40 wide, 20 high: left half red, right half blue. Orientation 6 means
    # "rotate 90 degrees clockwise to show": upright it is 20 wide, 40 high, red on top.
    stored = Image.new("RGB", (40, 20), (255, 0, 0))
    stored.paste((0, 0, 255), (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    notes: list[str] = []
    rgb = decode_rgb(png_bytes(stored, "JPEG", exif=exif.tobytes(), quality=95), notes)
    assert rgb.size == (20, 40)
    top, bottom = rgb.getpixel((10, 5)), rgb.getpixel((10, 35))
    assert top[0] > 200 and top[2] < 60, top
    assert bottom[2] > 200 and bottom[0] < 60, bottom
    assert any("EXIF orientation (6)" in n for n in notes)


def test_animated_gif_first_frame_said_so() -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    data = png_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    notes: list[str] = []
    rgb = decode_rgb(data, notes)
    assert rgb.getpixel((4, 4)) == (255, 0, 0)
    assert "first of 3 frames used" in notes


def test_multi_page_tiff_first_page_said_so() -> None:
    pages = [Image.new("RGB", (8, 8), c) for c in ((0, 128, 0), (9, 9, 9))]
    data = png_bytes(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    notes: list[str] = []
    rgb = decode_rgb(data, notes)
    assert rgb.getpixel((4, 4)) == (0, 128, 0)
    assert "first of 2 frames used" in notes


# ---------------------------------------------------------------- names, duplicates, links


def test_duplicate_names_from_different_folders_kept_apart(tmp_path: Path) -> None:
    good_png(tmp_path / "a" / "cat.png", (255, 0, 0))
    good_png(tmp_path / "b" / "cat.png", (0, 0, 255))
    files, skipped = discover_inputs([str(tmp_path / "a"), str(tmp_path / "b")])
    assert not skipped
    assert len(files) == 2
    assert len({f.id for f in files}) == 2
    assert {f.source for f in files} == {os.path.join("a", "cat.png"), os.path.join("b", "cat.png")}


def test_symlink_loop_in_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    good_png(folder / "ok.png")
    (folder / "sub").mkdir()
    (folder / "sub" / "back").symlink_to(folder, target_is_directory=True)  # folder loop
    (folder / "self.png").symlink_to(folder / "self.png")  # a link to itself
    started = time.perf_counter()
    files, skipped = discover_inputs([str(folder)])
    assert time.perf_counter() - started < 5
    assert [f.path.name for f in files] == ["ok.png"]
    assert [Path(s.source).name for s in skipped] == ["self.png"]
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    with pytest.raises(ReportgenError, match="link"):
        discover_inputs([str(loop)])


def test_unreadable_file_is_skipped_with_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """chmod 000 does not stop root, so the refusal the kernel would give is simulated."""
    locked = good_png(tmp_path / "locked.png")
    real_open = os.open

    def refusing_open(path: object, flags: int, *args: int) -> int:
        if Path(str(path)) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", refusing_open)
    with pytest.raises(ReportgenError, match=r"cannot read .*locked\.png.*Permission denied"):
        load_image(file_input(locked))


UNREADABLE_CHILD = r"""
import os, sys
from pathlib import Path
from reportgen.errors import ReportgenError
from reportgen.inputs.files import InputFile, load_image

path, warm = Path(sys.argv[1]), Path(sys.argv[2])
load_image(InputFile(warm, "warm.png", "warm"))  # lazy imports while still root
if os.geteuid() == 0:
    os.setgid(65534)
    os.setuid(65534)
try:
    load_image(InputFile(path, "locked.png", "locked"))
    print("read it")
except ReportgenError as exc:
    print(f"refused: {exc}")
"""


def test_unreadable_file_chmod_000_for_real(tmp_path: Path) -> None:
    """A real mode-000 file; as root, the check runs in a child that became 'nobody'."""
    scratch = Path(tempfile.mkdtemp(prefix="reportgen-unreadable-"))  # outside 0700 trees
    try:
        os.chmod(scratch, 0o755)
        locked = good_png(scratch / "locked.png")
        warm = good_png(scratch / "warm.png")
        locked.chmod(0)
        done = subprocess.run(
            [sys.executable, "-c", UNREADABLE_CHILD, str(locked), str(warm)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip() == "refused: cannot read 'locked.png': Permission denied"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# ---------------------------------------------------------------- one mixed run


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    """One report over awkward names, duplicates and broken files among good ones."""
    root = tmp_path_factory.mktemp("mixed")
    folder = root / "in"
    good_png(folder / HTML_NAME, (200, 10, 10))
    good_png(folder / "café ü 猫.png", (10, 200, 10))
    good_png(folder / "with spaces & quotes'\".png", (10, 10, 200))
    good_png(folder / "a" / "dup.png", (1, 2, 3))
    good_png(folder / "b" / "dup.png", (4, 5, 6))
    # Names that are not text: a terminal escape, a newline, a byte that is not UTF-8.
    good_png(Path(os.fsdecode(os.fsencode(folder) + b"/ctl\x1b[31m\nred\xff.png")))
    (folder / "broken.jpg").write_text("not an image")
    (folder / "empty.png").write_bytes(b"")
    (folder / "<b>bad<i>.gif").write_bytes(b"GIF89a garbage")
    result = invoke("run", str(folder), "-o", str(root / "report"), *FAST)
    return root, result


def test_mixed_run_succeeds_and_warns_naming_skipped(mixed_run: tuple[Path, Result]) -> None:
    root, result = mixed_run
    assert result.exit_code == 0, (result.stderr, result.exception)
    assert "Traceback" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    for name in ("broken.jpg", "empty.png", "<b>bad<i>.gif"):
        assert any(name in w and "skipped input" in w for w in warnings), result.stderr


def test_report_lists_skipped_inputs_with_reasons(mixed_run: tuple[Path, Result]) -> None:
    root, _ = mixed_run
    index = (root / "report" / "index.html").read_text(encoding="utf-8")
    assert "Skipped inputs" in index
    section = index.split("Skipped inputs", 1)[1]
    assert "broken.jpg" in section and "not an image" in section
    assert "empty.png" in section and "0 bytes" in section
    assert "&lt;b&gt;bad&lt;i&gt;.gif" in section
    manifest = json.loads((root / "report" / "manifest.json").read_text(encoding="utf-8"))
    assert len(manifest["inputs"]) == 6


def test_html_in_file_names_is_escaped_in_every_page(mixed_run: tuple[Path, Result]) -> None:
    import html5lib

    root, _ = mixed_run
    pages = sorted((root / "report").rglob("*.html"))
    assert len(pages) > 10
    shown = 0
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "<svg onload" not in text and "<b>bad" not in text, page
        shown += "&lt;svg onload=alert(1)&gt;" in text
        tree = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(text)
        assert tree.find(".//svg[@onload]") is None
        for element in tree.iter():
            assert not any(name.lower().startswith("on") for name in element.attrib), page
    assert shown >= 1  # the name is shown, as text


def test_unicode_and_spaces_in_names(mixed_run: tuple[Path, Result]) -> None:
    root, _ = mixed_run
    manifest = json.loads((root / "report" / "manifest.json").read_text(encoding="utf-8"))
    names = {Path(i["source"]).name for i in manifest["inputs"]}
    assert {"café ü 猫.png", "with spaces & quotes'\".png", HTML_NAME} <= names
    for item in manifest["inputs"]:
        assert all(ch.isalnum() or ch == "-" for ch in item["id"]), item["id"]
        assert item["id"].isascii()
    index = (root / "report" / "index.html").read_text(encoding="utf-8")
    assert "café ü 猫.png" in index
    assert "with spaces &amp; quotes&#39;&#34;.png" in index


def test_duplicates_in_report_are_two_inputs(mixed_run: tuple[Path, Result]) -> None:
    root, _ = mixed_run
    manifest = json.loads((root / "report" / "manifest.json").read_text(encoding="utf-8"))
    dups = [i for i in manifest["inputs"] if Path(i["source"]).name == "dup.png"]
    assert len(dups) == 2
    assert dups[0]["id"] != dups[1]["id"]
    assert dups[0]["sha256"] != dups[1]["sha256"]
    for item in dups:
        assert (root / "report" / "inputs" / f"{item['id']}.jpg").is_file()


def test_names_that_are_not_text_are_shown_escaped(mixed_run: tuple[Path, Result]) -> None:
    root, result = mixed_run
    manifest = json.loads((root / "report" / "manifest.json").read_text(encoding="utf-8"))
    names = {Path(i["source"]).name for i in manifest["inputs"]}
    assert "ctl\\x1b[31m\\nred\\xff.png" in names
    index = (root / "report" / "index.html").read_text(encoding="utf-8")
    assert "ctl\\x1b[31m\\nred\\xff.png" in index
    assert "\x1b" not in index and "\x1b" not in result.stderr + result.stdout


def test_strict_fails_at_the_first_unusable_input(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    good_png(folder / "a-good.png")
    (folder / "b-broken.jpg").write_text("not an image")
    (folder / "c-empty.png").write_bytes(b"")
    result = invoke("run", str(folder), "-o", str(tmp_path / "out"), "--strict", *FAST)
    line = error_line(result, 1, "b-broken.jpg", "not an image")
    assert "c-empty.png" not in line
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if ".reportgen-" in p.name]


@pytest.mark.parametrize("verbose", [False, True], ids=["plain", "-v"])
def test_traceback_only_with_verbose(tmp_path: Path, verbose: bool) -> None:
    """A real process: one Error line; the traceback is there with -v and only then."""
    missing = str(tmp_path / "nope.png")
    flags = ["-v"] if verbose else []
    done = subprocess.run(
        [sys.executable, "-m", "reportgen", *flags, "run", missing, "-o", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[-1] == f"Error: input {missing!r} does not exist"
    assert sum(line.startswith("Error:") for line in lines) == 1
    assert ("Traceback" in done.stderr) is verbose
    assert done.stdout == ""
