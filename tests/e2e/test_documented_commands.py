"""Issue 25, part 4: documentation that runs. Every ``reportgen`` command in a shell block
of README.md and docs/*.md runs, in the order the document shows them, in a folder with
small inputs under the names the document uses, and must exit 0.

What is changed to run here, and why (nothing else is):
* ``--weights none --offline`` on ``run`` and ``shard`` (``=imagenet`` on a ``-m`` becomes
  ``=none``): no download; ``--device cuda`` becomes ``cpu`` where there is no GPU;
* feature visualisation runs 4 steps at 64 px, ``--cluster local:N`` one worker;
* ``shard --part K/N`` runs every part 1..N (``merge`` needs them all), a batch each;
* commands that need a machine of their own are listed in ``NEEDS_ELSEWHERE``.
The TOML example of docs/archiving.md is the ``--config`` file of both documents.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, write_images

DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
INPUT_FOLDERS = ("sample_images", "imgs", "images", "val", "photos", "x")
NEEDS_ELSEWHERE = {
    "--cluster tcp://sched:8786": "a running Dask scheduler",
    "DASK_SCHEDULER_ADDRESS=tcp://sched:8786": "a running Dask scheduler",
}


def shell_commands(document: Path) -> list[str]:
    """The reportgen command lines of a document's shell blocks, comments cut off."""
    commands, inside, language = [], False, ""
    for line in document.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            inside, language = not inside, line[3:].strip()
            continue
        if not inside or language not in ("", "sh", "bash", "console", "shell"):
            continue
        command = line.strip().removeprefix("$ ").split(" #")[0].strip()
        if re.match(r"(\w+=\S+ )*(python -m )?reportgen\b|mkdir ", command):
            commands.append(command)
    return commands


def toml_example() -> str:
    text = (REPO / "docs" / "archiving.md").read_text(encoding="utf-8")
    return re.search(r"```toml\n(.*?)```", text, re.S)[1]


def runnable(command: str) -> list[str]:
    """The command as run here (see the module's docstring)."""
    command = command.replace("python -m reportgen", "reportgen")
    if re.search(r"\breportgen (run|shard)\b", command):
        command = re.sub(r"(-m \w+)=imagenet\b", r"\1=none", command)
        models = re.findall(r"-m (\S+)", command)
        if not models or any("=" not in spec for spec in models):
            command += " --weights none"
        command += " --offline"
        if "--feature-vis" in command:
            command += " --fv-steps 4 --fv-size 64"
        command = re.sub(r"--cluster local:\d+", "--cluster local:1", command)
        try:
            import torch

            gpu = torch.cuda.is_available()
        except ImportError:  # pragma: no cover
            gpu = False
        if not gpu:
            command = command.replace("--device cuda", "--device cpu")
    part = re.search(r"--part (\d+)/(\d+)", command)
    if part:
        total = int(part[2])
        return [
            re.sub(r"--part \d+/\d+ (.*)-o part-\d+", rf"--part {k}/{total} \1-o part-{k}", command)
            + " --batch-size 1"
            for k in range(1, total + 1)
        ]
    return [command]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Inputs under every name the documents use, a report to verify and rebuild, the
    TOML example and a weights file of resnet18 (random, as finetuned.pth)."""
    base = tmp_path_factory.mktemp("documented")
    for name in INPUT_FOLDERS:
        write_images(base / name, 4, (40, 56), seed=len(name))
    (base / "reportgen.toml").write_text(toml_example())
    (base / "run.toml").write_text(toml_example())
    import torch
    import torchvision

    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), base / "finetuned.pth")
    _safetensors_files(base)
    return base


def _safetensors_files(base: Path) -> None:
    """The safetensors checkpoints and class names README's timm section names: random
    weights of resnet18 and of timm's efficientnet_b0, 1000 class names."""
    try:
        import timm
        from safetensors.torch import save_file
    except ImportError:  # the timm extra is not installed: those commands fail, as they should
        return
    import torch
    import torchvision

    torch.manual_seed(0)
    save_file(torchvision.models.resnet18().state_dict(), str(base / "resnet18.safetensors"))
    tuned = timm.create_model("efficientnet_b0", pretrained=False)
    save_file(tuned.state_dict(), str(base / "finetuned.safetensors"))
    (base / "classes.txt").write_text("".join(f"class {i}\n" for i in range(1000)))


def _run(line: str, folder: Path) -> subprocess.CompletedProcess[str]:
    bin_dir = folder / ".bin"
    bin_dir.mkdir(exist_ok=True)
    launcher = bin_dir / "reportgen"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m reportgen "$@"\n')
    launcher.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
        "REPORTGEN_CACHE_DIR": "off",
        "REPORTGEN_OFFLINE": "1",
    }
    return subprocess.run(
        ["bash", "-c", line], cwd=folder, env=env, capture_output=True, text=True, timeout=900
    )


@pytest.mark.slow
@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_documented_command_runs(document: Path, workspace: Path, tmp_path: Path) -> None:
    commands = shell_commands(document)
    if not commands:
        pytest.skip(f"{document.name} shows no reportgen command")
    folder = tmp_path / "here"
    shutil.copytree(workspace, folder)
    # `verify report` and `--from-manifest report/...` need a report before any run makes one
    first = _run("reportgen run imgs -m resnet18 -l conv1 --weights none -o report", folder)
    assert first.returncode == 0, first.stderr
    ran = 0
    for number, command in enumerate(commands):
        elsewhere = [need for text, need in NEEDS_ELSEWHERE.items() if text in command]
        if elsewhere:
            continue
        for line in runnable(command):
            done = _run(line, folder)
            assert done.returncode == 0, (
                f"{document.name}: `{command}` (run as `{line}`) exited {done.returncode}:\n"
                f"{done.stderr[-2000:]}"
            )
            ran += 1
        _remove_outputs_no_later_command_reads(command, commands[number + 1 :], folder)
    assert ran, document


def _remove_outputs_no_later_command_reads(command: str, later: list[str], folder: Path) -> None:
    """Frees the disk as the document goes: some of its reports are hundreds of MB (a
    single file of every channel page), and a whole document's at once is the likely
    cause of a CI run that failed on a full disk."""
    words = {word.split("/")[0] for line in later for word in line.split()}
    for output in re.findall(r"-o (\S+)", command):
        if output == "report" or any(fnmatch.fnmatch(output, word) for word in words):
            continue
        path = folder / output
        if path.is_dir():
            shutil.rmtree(path)
        elif path.is_file():
            path.unlink()


def test_the_commands_are_found() -> None:
    readme = shell_commands(REPO / "README.md")
    assert "reportgen layers resnet18" in readme
    assert "reportgen merge part-* -o report" in readme
    assert any(c.startswith("DASK_SCHEDULER_ADDRESS=") for c in readme)
    assert runnable("reportgen run val/ -m resnet18 --cluster local:4") == [
        "reportgen run val/ -m resnet18 --cluster local:1 --weights none --offline"
    ]
    assert runnable("reportgen run images -m resnet18=imagenet -m resnet18=finetuned.pth")[0] == (
        "reportgen run images -m resnet18=none -m resnet18=finetuned.pth --offline"
    )
    assert len(runnable("reportgen shard images --part 2/4 -m resnet18 -o part-2")) == 4
