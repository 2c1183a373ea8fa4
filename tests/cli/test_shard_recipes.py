"""The recipes of docs/scaling.md, run here: the GitHub Actions workflow's ``run:`` lines
that call reportgen, once per matrix part, each shard job in a workspace of its own and
its part handed to the merge job as the artifact steps would; and the Slurm job array's
script once per array task, then the merge script. With tiny inputs and options (the
recipes' INPUTS and REPORTGEN_OPTIONS set for the test), and ``reportgen`` this
checkout. The merged report must be the single run's, byte for byte. What is not run:
the actions themselves (checkout, setup-python, pip install, artifacts, Pages), sbatch."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import REPO, REPRODUCIBLE_ENV, snapshot, write_images

RECIPES = REPO / "docs" / "recipes"
TINY_OPTIONS = (
    "-m tests.tinynet_factory:build --weights none --input-size 32 --top-k 2 "
    "--examples 2 --device cpu --batch-size 2"
)
EXPRESSION = re.compile(r"\$\{\{\s*([a-z]+)\.([A-Za-z_]+)\s*\}\}")


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The recipes' environment: ``reportgen`` on PATH is this checkout's; tiny options."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    wrapper = bin_dir / "reportgen"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m reportgen "$@"\n')
    wrapper.chmod(0o755)
    return {
        **os.environ,
        **REPRODUCIBLE_ENV,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
        "INPUTS": "images",
        "REPORTGEN_OPTIONS": TINY_OPTIONS,
        "MERGE_OPTIONS": "-m tests.tinynet_factory:build",  # the shards' custom model
        **extra,
    }


def shell(line: str, cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", line],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (line, done.stdout, done.stderr)


def workspace(root: Path, name: str) -> Path:
    """A fresh folder holding the inputs (a job's checkout)."""
    folder = root / name
    write_images(folder / "images", 5, (36, 40), grow=4, seed=3)
    return folder


def substituted(line: str, values: dict[str, dict[str, Any]]) -> str:
    return EXPRESSION.sub(lambda m: str(values[m.group(1)][m.group(2)]), line)


def reportgen_lines(job: dict[str, Any]) -> list[str]:
    """The job's ``run:`` lines that call reportgen (the install step is this checkout)."""
    lines = [step["run"] for step in job["steps"] if "run" in step]
    return [line for line in lines if line.strip().startswith("reportgen ")]


def single_run(root: Path, env: dict[str, str]) -> dict[str, bytes]:
    folder = workspace(root, "single")
    shell("reportgen run $INPUTS $REPORTGEN_OPTIONS -o report", folder, env)
    return snapshot(folder / "report")


def test_the_github_actions_workflow_run_lines_make_the_single_runs_report(
    tmp_path: Path,
) -> None:
    workflow = yaml.safe_load((RECIPES / "github-actions.yml").read_text())
    jobs = workflow["jobs"]
    parts = jobs["shard"]["strategy"]["matrix"]["part"]
    assert int(workflow["env"]["PARTS"]) == len(parts) == max(parts)
    assert jobs["merge"]["needs"] == "shard" and jobs["deploy"]["needs"] == "merge"
    uses = [step.get("uses", "") for job in jobs.values() for step in job["steps"]]
    for action in ("upload-artifact", "download-artifact", "upload-pages-artifact"):
        assert any(f"actions/{action}@" in u for u in uses), action
    assert any("actions/deploy-pages@" in u for u in uses)
    env = environment(tmp_path)
    merge_job = workspace(tmp_path, "merge-job")
    for part in parts:
        job = workspace(tmp_path, f"shard-job-{part}")
        values = {"matrix": {"part": part}, "env": workflow["env"]}
        for line in reportgen_lines(jobs["shard"]):
            shell(substituted(line, values), job, env)
        # upload-artifact part-K, then download-artifact into shards/part-K
        shutil.copytree(job / f"part-{part}", merge_job / "shards" / f"part-{part}")
    for line in reportgen_lines(jobs["merge"]):
        shell(substituted(line, {"env": workflow["env"]}), merge_job, env)
    assert snapshot(merge_job / "report") == single_run(tmp_path, env)


def test_the_slurm_job_array_and_merge_scripts_make_the_single_runs_report(
    tmp_path: Path,
) -> None:
    shards_script = RECIPES / "slurm-shards.sbatch"
    merge_script = RECIPES / "slurm-merge.sbatch"
    array = re.search(r"^#SBATCH --array=1-(\d+)$", shards_script.read_text(), re.M)
    assert array is not None
    assert "--dependency=afterok:" in merge_script.read_text()
    count = int(array.group(1))
    folder = workspace(tmp_path, "submit-dir")
    env = environment(tmp_path, SLURM_SUBMIT_DIR=str(folder), SLURM_CPUS_PER_TASK="1")
    for task in range(1, count + 1):  # the array's tasks, one after the other
        task_env = {**env, "SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_COUNT": str(count)}
        shell(f"bash {shards_script}", folder, task_env)
    shell(f"bash {merge_script}", folder, env)
    assert sorted(p.name for p in (folder / "shards").iterdir()) == [
        f"part-{k}" for k in range(1, count + 1)
    ]
    assert snapshot(folder / "report") == single_run(tmp_path, env)
