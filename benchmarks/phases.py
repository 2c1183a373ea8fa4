"""Where the time of one ``reportgen run`` goes: wall-clock seconds per phase.

Runs the CLI in this process with the pipeline's phases wrapped in timers (nothing in
reportgen is changed), then prints one line per phase. Phases overlap with the encoder
threads (pictures are encoded while the network runs), so "encoding backlog" is the wait
for the pictures still queued when the last forward pass is done.

Usage: python benchmarks/phases.py reportgen run IMAGES -m alexnet ... (the usual arguments)
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from typing import Any

TIMES: dict[str, float] = {}


def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            TIMES[name] = TIMES.get(name, 0.0) + time.perf_counter() - started

    return wrapper


def main(argv: list[str]) -> None:
    started = time.perf_counter()
    import reportgen.pipeline as pipeline
    from reportgen.cli import commands as cli
    from reportgen.compute import encoding, model_run, model_setup
    from reportgen.report import output, site

    # The pipeline imports these where it calls them: patching their modules times them.
    model_setup.load_models = timed("load models", model_setup.load_models)
    model_run.plan_layers = timed("plan layers (trace)", model_run.plan_layers)
    pipeline.run_model = timed(  # type: ignore[attr-defined]
        "inputs: forward passes, statistics, pictures; examples", pipeline.run_model
    )
    encoding.ImageEncoder.drain = timed("encoding backlog", encoding.ImageEncoder.drain)
    site.write_site = timed("pages", site.write_site)
    output.StagedReport.commit = timed("manifest and swap into place", output.StagedReport.commit)
    imported = time.perf_counter()
    try:
        cli.main(argv, prog_name="reportgen", standalone_mode=False)
    finally:
        total = time.perf_counter() - started
        print(f"{'importing reportgen (not torch)':48s} {imported - started:7.2f} s")
        for name, seconds in TIMES.items():
            print(f"{name:48s} {seconds:7.2f} s")
        print(f"{'whole run in this process':48s} {total:7.2f} s")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["reportgen"]:
        args = args[1:]
    main(args)
