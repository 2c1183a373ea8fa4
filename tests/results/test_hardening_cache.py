"""Issue 15, class 5: cache integrity.

Every per-input entry carries the sha256 of its bytes and every kept run the sha256 of
its manifest, checked on read. A damaged entry (any flipped byte: statistics, pictures,
the header, the seal) is dropped, computed again and logged with ``-v``: the report is
the one a run without the cache makes. Paths a kept run lists go through the same
confinement as freshly written files, so a tampered run cache cannot write outside -o.
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from reportgen.results import store as cache

FAST = ("-m", "alexnet", "-l", "features.0", "--weights", "none", "--device", "cpu", "--jobs", "1")


def entry_bytes() -> bytes:
    arrays = {"mean": np.linspace(0, 1, 16), "argmax_y": np.arange(16, dtype=np.int64)}
    return cache.pack({"range": [0.0, 1.5]}, arrays, {"map0": b"\x89PNG picture bytes"})


def test_round_trip() -> None:
    header, arrays, blobs = cache.unpack(entry_bytes())
    assert header == {"range": [0.0, 1.5]} and blobs == {"map0": b"\x89PNG picture bytes"}
    np.testing.assert_array_equal(arrays["mean"], np.linspace(0, 1, 16))


def test_every_flipped_byte_is_caught() -> None:
    payload = entry_bytes()
    for position in range(len(payload)):
        for bit in (0x01, 0x80):
            damaged = bytearray(payload)
            damaged[position] ^= bit
            with pytest.raises(cache.DamagedEntry):
                cache.unpack(bytes(damaged))


@pytest.mark.parametrize("keep", [0, 3, 12, 40, -1])
def test_truncated_entries_are_caught(keep: int) -> None:
    payload = entry_bytes()
    with pytest.raises(cache.DamagedEntry):
        cache.unpack(payload[:keep])


def test_a_damaged_entry_is_dropped_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = cache.InputCache(tmp_path)
    key = "cd" * 32
    store.store(key, cache.Entry({"a": 1}, {"mean": np.arange(8.0)}, {"p": b"png"}))
    path = next((tmp_path / "inputs").rglob("*.bin"))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.INFO, logger="reportgen"):
        assert store.load(key) is None
    assert not path.exists()  # dropped: the next store writes it anew
    assert store.damaged == [key]
    assert "damaged" in caplog.text and key[:16] in caplog.text


def test_replayed_paths_are_confined() -> None:
    root = Path("/tmp/report")
    assert cache.confined_path(root, "a/b.png") == root / "a" / "b.png"
    for bad in ("../x", "a/../../x", "/etc/passwd", "", "a/\x00b"):
        with pytest.raises(ValueError):
            cache.confined_path(root, bad)


# ---------------------------------------------------------------- whole runs


def invoke(*args: str) -> Result:
    from reportgen.cli.commands import main

    env = {"SOURCE_DATE_EPOCH": "1700000000", "REPORTGEN_OFFLINE": "1"}
    return CliRunner().invoke(main, list(args), env=env)


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(2):
        pixels = rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"p{i}.png")
    return folder


def run(images: Path, out: Path, cache_dir: Path, *extra: str) -> Result:
    args = ("run", str(images), "-o", str(out), "--cache-dir", str(cache_dir), *FAST)
    result = invoke(*extra, *args)
    assert result.exit_code == 0, (result.stderr, result.exception)
    return result


def run_verbose(images: Path, out: Path, cache_dir: Path) -> str:
    """``reportgen -v run ...`` in its own process (its logging set up as a user's is):
    what it prints on stderr."""
    import os
    import subprocess
    import sys

    args = ("run", str(images), "-o", str(out), "--cache-dir", str(cache_dir), *FAST)
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000", "REPORTGEN_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "reportgen", "-v", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def flip_inside(path: Path, what: str) -> None:
    """Flip one byte in the middle of an entry's statistics array or its first picture."""
    data = bytearray(path.read_bytes())
    (size,) = struct.unpack(">Q", data[4:12])
    layout = json.loads(data[12 : 12 + size])["layout"]
    body = 12 + size
    if what == "statistics":
        name = next(n for n in layout["arrays"] if n.endswith("\x1fmax"))
        _dtype, _shape, offset, length = layout["arrays"][name]
    else:
        offset, length = next(iter(layout["blobs"].values()))
    data[body + offset + length // 2] ^= 0x40
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("what", ["statistics", "picture"])
def test_damaged_input_entries_are_recomputed(images: Path, tmp_path: Path, what: str) -> None:
    cache_dir = tmp_path / "cache"
    first = tmp_path / "first"
    run(images, first, cache_dir)
    entries = sorted((cache_dir / "inputs").rglob("*.bin"))
    assert entries
    for entry in entries:
        flip_inside(entry, what)
    for kept in (cache_dir / "runs").iterdir():  # make the run read its input entries
        import shutil

        shutil.rmtree(kept)
    second = tmp_path / "second"
    assert "dropped damaged entry" in run_verbose(images, second, cache_dir)
    assert files_of(second) == files_of(first)
    assert invoke("verify", str(second)).exit_code == 0


def kept_run(cache_dir: Path) -> Path:
    (folder,) = [p for p in (cache_dir / "runs").iterdir() if not p.name.startswith(".tmp")]
    return folder


def test_a_damaged_kept_manifest_is_not_replayed(
    images: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache_dir = tmp_path / "cache"
    first = tmp_path / "first"
    run(images, first, cache_dir)
    expected = files_of(first)  # before the damage: kept files are hard links of these
    manifest = kept_run(cache_dir) / "manifest.json"
    text = manifest.read_text(encoding="utf-8")
    # A flipped digit in a statistic: still valid JSON, every file's sha256 unchanged.
    changed = text.replace('"max":', '"max":9', 1)
    assert changed != text
    manifest.write_text(changed, encoding="utf-8")
    second = tmp_path / "second"
    with caplog.at_level(logging.INFO, logger="reportgen"):
        run(images, second, cache_dir)
    assert "dropped damaged kept report" in caplog.text
    assert files_of(second) == expected


def test_a_tampered_kept_run_cannot_write_outside_the_report(
    images: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Even a consistent one: its manifest, the file and the seal all agree."""
    cache_dir = tmp_path / "cache"
    out = tmp_path / "x" / "y" / "z" / "out"
    out.parent.mkdir(parents=True)
    run(images, out, cache_dir)
    folder = kept_run(cache_dir)
    planted = b"planted by someone who can write the cache"
    # From the kept run (tmp/cache/runs/KEY) this is tmp/a/planted.txt; from the staging
    # folder beside -o (tmp/x/y/z/.out...), tmp/x/a/planted.txt.
    escape = "../../../a/planted.txt"
    escaped = tmp_path / "x" / "a" / "planted.txt"
    (folder / escape).parent.mkdir(parents=True, exist_ok=True)
    (folder / escape).write_bytes(planted)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"].append(
        {"path": escape, "sha256": hashlib.sha256(planted).hexdigest(), "bytes": len(planted)}
    )
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    seal_path = folder / cache.RUN_SEAL
    if seal_path.exists():
        seal = json.loads(seal_path.read_text())
        seal["manifest_sha256"] = hashlib.sha256(
            (folder / "manifest.json").read_bytes()
        ).hexdigest()
        seal_path.write_text(json.dumps(seal))
    before = files_of(out)
    with caplog.at_level(logging.INFO, logger="reportgen"):
        run(images, out, cache_dir)
    assert not escaped.exists()
    assert "leaves the report folder" in caplog.text
    assert files_of(out).keys() == before.keys()
    assert invoke("verify", str(out)).exit_code == 0
