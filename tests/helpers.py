"""Small helpers shared by the tests: the one CLI runner, the CLI error contract,
reproducible runs, small random pictures, the shared small report, maps."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SAMPLE_IMAGES = REPO / "sample_images"

# What makes two runs comparable byte for byte: a fixed creation time, offline, no cache.
REPRODUCIBLE_ENV = {
    "SOURCE_DATE_EPOCH": "1700000000",
    "REPORTGEN_OFFLINE": "1",
    "REPORTGEN_CACHE_DIR": "off",
}


def invoke(
    *args: str,
    env: Mapping[str, str | None] | None = None,
    input: str | bytes | None = None,
    catch_exceptions: bool = True,
) -> Result:
    """``reportgen ARGS`` in-process, with stdout and stderr kept apart.

    ``env`` is set for the run only; ``catch_exceptions=False`` lets an exception that
    escapes the command propagate (the test errors with its traceback). With the default,
    click keeps it in ``result.exception``: check it where the test needs to."""
    from reportgen.cli.commands import main

    return CliRunner().invoke(
        main, list(args), input=input, env=env, catch_exceptions=catch_exceptions
    )


def invoke_reproducible(
    *args: str,
    env: Mapping[str, str | None] | None = None,
    input: str | bytes | None = None,
    catch_exceptions: bool = True,
) -> Result:
    """``invoke`` with ``REPRODUCIBLE_ENV`` (and ``env`` on top), so two runs can be
    compared byte for byte."""
    return invoke(
        *args,
        env={**REPRODUCIBLE_ENV, **(env or {})},
        input=input,
        catch_exceptions=catch_exceptions,
    )


def error_line(result: Result, code: int | None = 1, *needles: str) -> str:
    """The user-error contract: exit ``code`` (any, when None), one ``Error:`` line and it
    comes last, no traceback; each of ``needles`` in that line. Returns the line."""
    if code is not None:
        assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def write_images(
    folder: Path,
    count: int = 3,
    size: tuple[int, int] = (48, 64),
    *,
    grow: int = 0,
    names: Sequence[str] | None = None,
    seed: int = 0,
    prefix: str = "img",
    suffix: str = ".png",
) -> Path:
    """``count`` pictures of random RGB noise in ``folder`` (made if missing); returns it.

    ``size`` is (height, width) of the first; each next one is ``grow`` pixels taller.
    The pixels come one picture after the other from ``numpy.random.default_rng(seed)``.
    Named ``names[i]`` (a name may hold a sub-folder), else ``{prefix}{i}{suffix}``; the
    format follows the name's suffix (Pillow's defaults)."""
    if names is not None:
        assert len(names) == count, (names, count)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    height, width = size
    for i in range(count):
        pixels = rng.integers(0, 256, size=(height + grow * i, width, 3), dtype=np.uint8)
        path = folder / (names[i] if names is not None else f"{prefix}{i}{suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` with its bytes, to show a report was left untouched."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def map_tile(sheet: Path, entry: dict[str, Any], channel: int) -> Any:
    """Channel ``channel``'s map cut out of a map sheet (a PIL image), by the manifest's
    description of the layout, written out here rather than taken from reportgen.imaging.sheets."""
    pad, width, height = entry["pad"], entry["tile_width"], entry["tile_height"]
    column, row = channel % entry["columns"], channel // entry["columns"]
    x0, y0 = column * (width + 2 * pad) + pad, row * (height + 2 * pad) + pad
    with Image.open(sheet) as image:
        image.load()
        return image.crop((x0, y0, x0 + width, y0 + height))


# --- the small report shared by the HTML, browser and notebook tests ----------------------

ODD_NAME = '<b>odd & "q".png'
_FAILED: list[str] = []


def build_small_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small report per test session (shared by the HTML, browser and notebook tests):
    AlexNet with random weights, two conv layers and one Linear layer, two inputs, one of
    them with HTML in its file name."""
    # Cached in the session's temporary folder (module globals are not shared when
    # pytest imports test modules on its own, e.g. --import-mode=importlib).
    base = tmp_path_factory.getbasetemp() / "reportgen-small-report"
    if (base / "report" / "manifest.json").is_file():
        return base / "report"
    if _FAILED:
        pytest.fail(f"the small report could not be built: {_FAILED[0]}")
    base.mkdir(parents=True, exist_ok=True)
    images = write_images(base / "images", 2, (40, 56), grow=8, names=["a.png", ODD_NAME], seed=1)
    out = base / "report"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REPORTGEN_OFFLINE", "1")
        mp.setenv("REPORTGEN_CACHE_DIR", "off")  # computed, never replayed
        mp.setenv("TORCH_HOME", str(base / "torch-home"))
        result = invoke(
            "run",
            str(images),
            "--weights",
            "none",
            "-m",
            "alexnet",
            "-l",
            "features.0",
            "-l",
            "features.3",
            "-l",
            "classifier.6",
            "--top-k",
            "4",
            "-o",
            str(out),
            catch_exceptions=False,
        )
    if result.exit_code != 0:
        _FAILED.append(result.output)
        pytest.fail(f"the small report could not be built: {result.output}")
    return out


def weights_view_of(page: Path) -> dict[str, list[tuple[int, str, str | None]]]:
    """A channel page's weights view as shown: per sign ("Positive", "Negative"), its
    (input channel, weight text, link or None) in order."""
    text = page.read_text(encoding="utf-8")
    found: dict[str, list[tuple[int, str, str | None]]] = {}
    for sign, items in re.findall(r"<h3>(\w+)</h3>\n<ol class=.weights.>(.*?)</ol>", text):
        found[sign] = [
            (int(number), value, link or None)
            for link, number, value in re.findall(
                # a kernel picture and the channel's number, or (1x1 kernels, no picture)
                # "channel N" and "weight" before the number
                r'<li>(?:<a href="([^"]*)">)?(?:<span[^>]*><img[^>]*></span>|channel )?(\d+)'
                r'(?:</a>)? (?:<span class="meta">weight</span> )?([^<]*)</li>',
                items,
            )
        ]
    return found


def random_model(name: str) -> Any:
    """A torchvision model with seeded random weights, loaded as the run loads it (on the
    CPU, offline, its id its name). torch is imported here: helpers serve torch-free
    tests too."""
    import torch

    from reportgen.nn.models import load_model

    return load_model(
        name,
        "none",
        weights_dir=None,
        offline=True,
        seed=0,
        device=torch.device("cpu"),
        model_id_=name,
    )
