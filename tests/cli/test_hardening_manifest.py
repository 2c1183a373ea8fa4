"""Issue 15, class 4 (the command line): a manifest is data.

``--from-manifest`` takes only the settings that decide what a report shows. Paths of
files to read (``labels_file``, ``weights_dir``), cache locations, job counts and output
modes in a (tampered) manifest are ignored, with a warning naming them; a weights file
or a custom model it names is refused; its URL inputs are fetched only with
``--allow-urls``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from reportgen.inputs import fetch as fetch_module
from tests.helpers import error_line, invoke

FAST = ("-m", "alexnet", "-l", "features.0", "--weights", "none", "--device", "cpu", "--jobs", "1")


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("manifest-data")
    image = root / "in.png"
    Image.new("RGB", (40, 32), (90, 140, 200)).save(image)
    result = invoke("run", str(image), "-o", str(root / "report"), *FAST)
    assert result.exit_code == 0, result.stderr
    manifest = json.loads((root / "report" / "manifest.json").read_text())
    return root, manifest


@pytest.fixture(autouse=True)
def _in_the_inputs_folder(
    made: tuple[Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manifest names its inputs from the folder that holds them (a report holds no path
    of the machine that made it): a rebuild runs there."""
    monkeypatch.chdir(made[0])


def tampered(made: tuple[Path, dict[str, Any]], tmp_path: Path, **settings: Any) -> Path:
    _, manifest = made
    changed = json.loads(json.dumps(manifest))
    changed["settings"].update(settings)
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(changed))
    return path


@pytest.fixture
def no_fetch(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every URL reportgen tries to fetch, refused (nothing leaves the machine)."""
    asked: list[str] = []

    def refuse(url: str, **kwargs: object) -> None:
        asked.append(url)
        raise fetch_module.FetchError(f"{url!r}: not fetched in tests")

    monkeypatch.setattr(fetch_module, "fetch", refuse)
    return asked


def test_paths_caches_jobs_and_output_modes_are_not_taken(
    made: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-LINE-1\nSECRET-LINE-2\n")
    cache = tmp_path / "planted-cache"
    manifest = tampered(
        made,
        tmp_path,
        labels_file=str(secret),
        weights_dir=str(tmp_path / "planted-weights"),
        cache_dir=str(cache),
        no_cache=False,
        jobs=1000,
        json=True,
        single_file=True,
        max_single_file_mb=0.001,
        strict=True,
        output=str(tmp_path / "elsewhere"),
    )
    out = tmp_path / "rebuilt"
    result = invoke("run", "--from-manifest", str(manifest), "-o", str(out))
    assert result.exit_code == 0, result.stderr
    warning = next(line for line in result.stderr.splitlines() if "not taken from" in line)
    for name in ("labels_file", "weights_dir", "cache_dir", "jobs", "json", "single_file"):
        assert name in warning, warning
    assert (out / "index.html").is_file()  # a folder report, not --single-file
    assert not result.stdout.lstrip().startswith("{")  # no --json
    pages = "".join(p.read_text(encoding="utf-8") for p in out.rglob("*.html"))
    assert "SECRET-LINE" not in pages
    assert not cache.exists() and not (tmp_path / "elsewhere").exists()
    rebuilt = json.loads((out / "manifest.json").read_text())
    assert rebuilt["settings"]["labels_file"] is None


def test_labels_file_named_by_a_manifest_is_never_opened(
    made: tuple[Path, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/dev/zero as labels would read without end: it is not even opened."""
    import reportgen.nn.models

    def read_labels(path: str) -> list[str]:
        raise AssertionError(f"read the labels file {path!r} a manifest named")

    monkeypatch.setattr(reportgen.nn.models, "read_labels", read_labels)
    manifest = tampered(made, tmp_path, labels_file="/dev/zero")
    result = invoke("run", "--from-manifest", str(manifest), "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize(
    "settings, needle",
    [
        ({"weights": "/etc/passwd"}, "names the weights file '/etc/passwd'"),
        ({"weights": "../weights.pth"}, "names the weights file"),
        ({"models": ["alexnet=/tmp/x.pth"]}, "names the weights file '/tmp/x.pth'"),
        ({"models": ["os.path:join"]}, "names the custom model"),
    ],
)
def test_files_and_code_named_by_a_manifest_are_refused(
    made: tuple[Path, dict[str, Any]], tmp_path: Path, settings: dict[str, Any], needle: str
) -> None:
    manifest = tampered(made, tmp_path, **settings)
    result = invoke("run", "--from-manifest", str(manifest), "-o", str(tmp_path / "out"))
    error_line(result, 2, needle)
    assert not (tmp_path / "out").exists()


def test_the_command_line_may_still_name_a_weights_choice(
    made: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """The refusal is about what the manifest names: -m and --weights given here win."""
    manifest = tampered(made, tmp_path, weights="/etc/passwd")
    result = invoke(
        "run", "--from-manifest", str(manifest), "--weights", "none", "-o", str(tmp_path / "o")
    )
    assert result.exit_code == 0, result.stderr


def test_url_inputs_of_a_manifest_need_allow_urls(
    made: tuple[Path, dict[str, Any]], tmp_path: Path, no_fetch: list[str]
) -> None:
    root, manifest_data = made
    local = manifest_data["settings"]["inputs"]
    url = "http://127.0.0.1:9/planted.png"
    manifest = tampered(made, tmp_path, inputs=[*local, url])
    result = invoke("run", "--from-manifest", str(manifest), "-o", str(tmp_path / "out"))
    error_line(result, 2, "--allow-urls", url)
    assert no_fetch == []
    result = invoke(
        "run", "--from-manifest", str(manifest), "--allow-urls", "-o", str(tmp_path / "out")
    )
    assert result.exit_code == 0, result.stderr
    assert no_fetch and set(no_fetch) == {url}


def test_urls_on_the_command_line_need_no_flag(
    made: tuple[Path, dict[str, Any]], tmp_path: Path, no_fetch: list[str]
) -> None:
    root, manifest_data = made
    manifest = tampered(made, tmp_path)
    url = "http://127.0.0.1:9/given.png"
    local = manifest_data["settings"]["inputs"]
    result = invoke(
        "run", "--from-manifest", str(manifest), *local, url, "-o", str(tmp_path / "out")
    )
    assert result.exit_code == 0, result.stderr
    assert url in no_fetch


def test_a_manifest_cannot_turn_on_allow_urls(
    made: tuple[Path, dict[str, Any]], tmp_path: Path, no_fetch: list[str]
) -> None:
    root, manifest_data = made
    url = "http://127.0.0.1:9/planted.png"
    manifest = tampered(
        made, tmp_path, inputs=[*manifest_data["settings"]["inputs"], url], allow_urls=True
    )
    result = invoke("run", "--from-manifest", str(manifest), "-o", str(tmp_path / "out"))
    error_line(result, 2, "--allow-urls")
    assert no_fetch == []
