"""A report can be shared: no path of the machine that built it is in any of its files,
and its settings read as the command that built it (issue 16, part 3)."""

from __future__ import annotations

import html
import re
import shlex
from pathlib import Path

import pytest

from tests.helpers import invoke, write_images


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, mobilenet_weights_dir: Path) -> Path:
    """MobileNetV2 offline with its IMAGENET1K_V1 file from a folder of this machine (the
    fallback whose warning named the file's full path), inputs and output given by
    absolute paths in a temporary folder."""
    base = tmp_path_factory.mktemp("shareable")
    images = write_images(base / "photos", 2, (40, 56), names=["cat_chelsea.png", "a-b.c.png"])
    result = invoke(
        "run", str(images), "-m", "mobilenet_v2", "--weights-dir", str(mobilenet_weights_dir),
        "-l", "features.0.0", "-l", "features.1.conv.0.0", "--top-k", "3",
        "-o", str(base / "report"),
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "IMAGENET1K_V1" in result.stderr  # the fallback's warning, on the terminal too
    return base / "report"


def test_no_machine_path_in_any_file(built: Path, mobilenet_weights_dir: Path) -> None:
    folder = str(built.parent).encode()
    needles = [folder, str(mobilenet_weights_dir).encode(), b"site-packages"]
    home = str(Path.home())
    if home not in ("/", ""):
        needles.append(home.encode())
    files = [p for p in built.rglob("*") if p.is_file()]
    assert len(files) > 50
    for path in files:
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, f"{path.relative_to(built)} holds {needle!r}"
    index = (built / "index.html").read_text(encoding="utf-8")
    # The warning still says which file was used: by its name.
    assert "using IMAGENET1K_V1 from mobilenet_v2-b0353104.pth" in index


def test_settings_are_the_command_that_built_it(built: Path) -> None:
    from reportgen.cli.commands import run

    index = (built / "index.html").read_text(encoding="utf-8")
    section = index[index.index('id="settings-h"') : index.index("<h3>Environment</h3>")]
    command = html.unescape(re.search(r'<pre class="command"><code>(.*?)</code>', section)[1])
    # The weights the run used (the fallback IMAGENET1K_V1), not `imagenet` as typed: pasted,
    # `imagenet` would ask for DEFAULT (IMAGENET1K_V2), a file the reader does not have.
    assert shlex.split(command) == [
        "reportgen", "run", "photos", "--model", "mobilenet_v2", "--weights", "IMAGENET1K_V1",
        "--weights-dir", "weights", "--layer", "features.0.0", "--layer",
        "features.1.conv.0.0", "--top-k", "3",
    ]  # fmt: skip
    supply = html.unescape(re.search(r'<ul class="supply">(.*?)</ul>', section, re.S)[1])
    assert "photos" in supply and "a folder weights holding mobilenet_v2-b0353104.pth" in supply
    # No Python in sight: every row is an option of `reportgen run`, as typed.
    assert not re.search(r"None|\[\]|\['|True|False", section)
    options = {
        o for p in run.params for o in getattr(p, "opts", []) + getattr(p, "secondary_opts", [])
    }
    rows = re.findall(r'<tr><th scope="row"><code>([^<]*)</code></th><td>(.*?)</td></tr>', section)
    assert len(rows) > 30
    for option, shown in rows:
        assert option in options, option
        typed = re.findall(r"<code>([^<]*)</code>", shown)
        assert typed or "not given" in shown, (option, shown)
        for word in shlex.split(html.unescape(" ".join(typed))):
            if word.startswith("--"):
                assert word in options, (option, word)
    assert '<code>--weights imagenet</code> <span class="meta">(default)</span>' in section
    assert "<code>--layer features.0.0 --layer features.1.conv.0.0</code>" in section


@pytest.mark.slow
def test_the_rebuild_command_works_when_pasted(
    built: Path, mobilenet_weights_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index's command, run in a folder holding what the index says to supply, builds
    the report again with the same weights (it failed before: it asked for V2's file)."""
    import json
    import shutil

    index = (built / "index.html").read_text(encoding="utf-8")
    command = html.unescape(re.search(r'<pre class="command"><code>(.*?)</code>', index)[1])
    shutil.copytree(built.parent / "photos", tmp_path / "photos")
    (tmp_path / "weights").symlink_to(mobilenet_weights_dir, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    words = shlex.split(command)
    assert words[:2] == ["reportgen", "run"]
    result = invoke(*words[1:], "--offline", "-o", "again", catch_exceptions=False)
    assert result.exit_code == 0, result.output
    first = json.loads((built / "manifest.json").read_text())
    again = json.loads((tmp_path / "again" / "manifest.json").read_text())
    assert [m["weights_detail"] for m in again["models"]] == [
        m["weights_detail"] for m in first["models"]
    ]
    assert list(again["models"][0]["predictions"].values()) == list(
        first["models"][0]["predictions"].values()
    )
