"""Digits that are not ASCII are usage errors, never internal ones (issue 27, class 7):
``str.isdigit`` takes "²", which ``int()`` does not. Every option that takes a number
(or a count among names), given superscript or other non-ASCII digits, ends in one
``Error:`` line with exit 2 before any work, and -o is not created."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import error_line, invoke, write_images

MODEL = ("-m", "tests.tinynet_factory:build", "--weights", "none", "--input-size", "32",
         "--device", "cpu", "--jobs", "1")  # fmt: skip

OPTIONS = [
    ("shard", ("--part", "²/²")),
    ("shard", ("--part", "1/²")),
    ("run", ("--cluster", "local:²")),
    ("run", ("--cluster", "tcp://127.0.0.1:⁸⁷⁸⁶")),
    ("run", ("--target-class", "²")),
    ("run", ("--target-class", "-²")),
    ("run", ("--detail", "²")),
    ("run", ("--detail", "²", "--detail", "img0.png")),
    ("run", ("--top-k", "²")),
    ("run", ("--batch-size", "²")),
    ("run", ("--seed", "²")),
    ("run", ("--examples", "¹")),
    ("run", ("--strategy", "manual", "--channels", "0,²")),
    ("run", ("--mean", "0.5,²,0.5")),
    ("run", ("--jobs", "²")),
]


@pytest.mark.parametrize(("command", "option"), OPTIONS, ids=[" ".join(o) for _, o in OPTIONS])
def test_non_ascii_digits_are_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str, option: tuple[str, ...]
) -> None:
    monkeypatch.chdir(tmp_path)
    write_images(tmp_path / "images", 2, (36, 40))
    part = ("--part", "1/2") if command == "shard" and "--part" not in option else ()
    result = invoke(command, "images", *MODEL, *part, *option, "-o", "out")
    line = error_line(result, 2)
    assert "internal error" not in line
    assert not (tmp_path / "out").exists()
