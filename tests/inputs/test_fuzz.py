"""Issue 4, part 6: property-based tests over file names and image bytes.

Whatever lands in the input folder: no traceback, exit code 0 while one usable
image is there, nothing written outside the output folder, every HTML page parses
(html5lib, strict) and carries no markup that came from a file name.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from reportgen.errors import ReportgenError
from reportgen.inputs.discovery import discover_inputs, input_id
from reportgen.inputs.files import InputFile, load_image
from tests.helpers import invoke

# A tiny model of the user's own (``module:factory``) keeps each whole run, and its
# pages, small; what is fuzzed is the input side, not the network.
SMALL = (
    "-m",
    "reportgen_fuzz_models:tiny_model",
    "--input-size",
    "64",
    "--weights",
    "none",
    "--device",
    "cpu",
    "--jobs",
    "1",
    "--top-k",
    "2",
)


def tiny_model() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, stride=2),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 5),
    )


# Registered under a fixed name: pytest's import mode decides this file's own name.
_models = types.ModuleType("reportgen_fuzz_models")
_models.tiny_model = tiny_model  # type: ignore[attr-defined]
sys.modules.setdefault("reportgen_fuzz_models", _models)


SUFFIXES = [".png", ".jpg", ".jpeg", ".gif", ".tif", ".bmp", ".webp", ".ppm"]
FUZZ = settings(
    max_examples=int(os.environ.get("REPORTGEN_FUZZ_EXAMPLES", "10")),
    deadline=None,
    database=None,  # no .hypothesis folder in the checkout
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Whole runs are slow (a model, a report): a few examples, each with up to six files.
# The input stage alone is fast: many examples. REPORTGEN_FUZZ_EXAMPLES raises both.
INPUT_FUZZ = settings(
    max_examples=4 * int(os.environ.get("REPORTGEN_FUZZ_EXAMPLES", "10")),
    deadline=None,
    database=None,  # no .hypothesis folder in the checkout
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

name_chars = st.characters(
    blacklist_categories=("Cs",),  # lone surrogates cannot be file names here
    blacklist_characters="/\x00",
)
stems = st.text(name_chars, min_size=1, max_size=30).filter(
    lambda s: s not in (".", "..") and len(s.encode("utf-8")) < 180
)
hostile_stems = st.sampled_from(
    [
        "<svg onload=alert(1)>",
        "<script>alert(1)<\\script>",
        "\"'><img src=x onerror=alert(1)>",
        "..%2f..%2fescape",
        "...",
        "..\\..\\win",
        "-rf",
        "a&amp;b",
        "{{ 7*7 }}",
        "{% raw %}",
        " spaced out ",
        "\u202egnp.exe",
        "con",
        "\t\n",
    ]
)


@st.composite
def image_bytes(draw: st.DrawFn) -> bytes:
    """A small valid image, a damaged one, or noise."""
    kind = draw(st.sampled_from(["valid", "mutated", "truncated", "noise"]))
    if kind == "noise":
        return draw(st.binary(max_size=256))
    mode = draw(st.sampled_from(["RGB", "L", "RGBA", "P", "1", "CMYK", "I;16", "LA"]))
    fmt = draw(st.sampled_from(["PNG", "GIF", "TIFF", "JPEG", "BMP", "WEBP"]))
    width, height = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    seed = draw(st.integers(0, 2**16))
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 4), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGBA").convert(mode if mode != "I;16" else "L")
    if mode == "I;16":
        image = Image.fromarray(np.asarray(image).astype(np.uint16) * 257)
    buffer = io.BytesIO()
    try:
        image.save(buffer, fmt)
    except (OSError, ValueError, KeyError):
        image.convert("RGB").save(buffer, "PNG")
    data = buffer.getvalue()
    if kind == "truncated":
        return data[: draw(st.integers(0, max(0, len(data) - 1)))]
    if kind == "mutated":
        flips = draw(
            st.lists(
                st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)),
                min_size=1,
                max_size=8,
            )
        )
        mutable = bytearray(data)
        for where, value in flips:
            mutable[where] = value
        return bytes(mutable)
    return data


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def check_pages(report: Path) -> int:
    import html5lib

    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
    pages = sorted(report.rglob("*.html"))
    for page in pages:
        text = page.read_text(encoding="utf-8")
        tree = parser.parse(text)  # raises ParseError on any error
        for element in tree.iter():
            for attribute, value in element.attrib.items():
                assert not attribute.lower().startswith("on"), (page, attribute)
                if attribute in ("href", "src"):
                    assert not value.strip().lower().startswith(("javascript:", "data:text")), value
            if element.tag == "script":  # only the report's own file, or inert JSON data
                if element.attrib.get("type") == "application/json":
                    assert "<" not in (element.text or ""), page
                    json.loads(element.text or "")
                else:
                    assert element.attrib.get("src", "").endswith("assets/app.js"), page
                    assert not (element.text or "").strip(), page
            assert element.tag not in ("iframe", "object", "embed", "svg:script"), page
    return len(pages)


@FUZZ
@given(
    entries=st.lists(
        st.tuples(st.one_of(stems, hostile_stems), st.sampled_from(SUFFIXES), image_bytes()),
        min_size=1,
        max_size=6,
    )
)
def test_fuzzed_folder_gives_a_report_and_nothing_escapes(
    entries: list[tuple[str, str, bytes]],
) -> None:
    with tempfile.TemporaryDirectory(prefix="reportgen-fuzz-") as temp:
        root = Path(temp)
        folder = root / "in"
        folder.mkdir()
        Image.new("RGB", (20, 16), (50, 100, 150)).save(folder / "anchor.png")
        for n, (stem, suffix, data) in enumerate(entries):
            sub = folder / f"d{n}"  # each in its own folder: names may repeat
            sub.mkdir()
            try:
                (sub / f"{stem}{suffix}").write_bytes(data)
            except OSError:  # a name this file system refuses (e.g. too long)
                continue
        before = files_under(root)
        cwd = os.getcwd()
        os.chdir(root)  # a relative path that escaped would land here
        try:
            result = invoke("run", "in", "-o", "out", *SMALL)
        finally:
            os.chdir(cwd)
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            result.exception
        )
        assert "Traceback" not in result.stderr + result.stdout
        assert result.exit_code == 0, result.stderr
        after = files_under(root)
        new = {p for p in after - before if p != "out" and not p.startswith("out/")}
        assert new == set(), new
        assert before <= after  # no input was touched or removed
        assert check_pages(root / "out") >= 5


@INPUT_FUZZ
@given(data=image_bytes(), stem=st.one_of(stems, hostile_stems))
def test_any_bytes_load_or_fail_with_a_reason(data: bytes, stem: str) -> None:
    """The input stage alone, many more cases: an image or a ReportgenError, never
    another exception; the reason names the input."""
    with tempfile.TemporaryDirectory(prefix="reportgen-fuzz-") as temp:
        path = Path(temp) / "x.png"
        path.write_bytes(data)
        source = f"{stem}.png"
        try:
            loaded = load_image(InputFile(path, source, input_id(source)))
        except ReportgenError as exc:
            assert repr(source) in str(exc) or source in str(exc)
            assert "\n" not in str(exc)  # one line, whatever the name or library says
        else:
            assert loaded.image.mode == "RGB"
            assert loaded.width >= 1 and loaded.height >= 1


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(stem=st.one_of(stems, hostile_stems))
def test_ids_are_safe_path_segments(stem: str) -> None:
    with tempfile.TemporaryDirectory(prefix="reportgen-fuzz-") as temp:
        folder = Path(temp)
        try:
            (folder / f"{stem}.png").write_bytes(b"x")
        except OSError:
            return
        files, _ = discover_inputs([str(folder)])
        assert len(files) == 1
        ident = files[0].id
        assert ident and ident.isascii() and "/" not in ident and not ident.startswith(".")
        assert all(ch.isalnum() or ch == "-" for ch in ident)
