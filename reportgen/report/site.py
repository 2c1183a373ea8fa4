"""Writing the pages of a report: the folder site (pages rendered in forked processes
when --jobs allows) or one self-contained file."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from reportgen.report import paths
from reportgen.report.data import (
    ReportData,
)

if TYPE_CHECKING:
    from reportgen.report.output import StagedReport


# Pages are pure Python (Jinja) work: below this many, forking costs more than it saves.
_PARALLEL_PAGES = 200


_SHARED_RENDER: tuple[Any, ...] | None = None


def write_single_file_report(
    data: ReportData, staged: StagedReport, build_manifest: Any, max_mb: float
) -> tuple[int, list[str]]:
    """The report as one file; its page count and what it had to say (pictures left
    out to stay under ``max_mb``)."""
    from reportgen.report.render import make_environment
    from reportgen.report.singlefile import write_single_file

    return write_single_file(data, staged, build_manifest, make_environment(), max_mb)


def write_site(data: ReportData, staged: StagedReport, jobs: int = 1) -> int:
    from reportgen.report import cards, tiles
    from reportgen.report.pages import render_pages
    from reportgen.report.render import make_environment, templates_dir

    # One stylesheet: the report's tile rules follow style.css in the same file, so no
    # page links a second one (a page's frame is repeated tens of thousands of times).
    style = (templates_dir() / "style.css").read_text(encoding="utf-8")
    from reportgen.report.strips import write_strips

    write_strips(data, staged)  # before the grids: strips and comparison sheets add theirs
    grids = tiles.report_grids(data)
    solo = tiles.solo_grids(data)
    css = tiles.stylesheet(grids, solo) if grids else ""
    css += cards.stylesheet(data)  # layer pages' cards draw their pictures with CSS
    staged.write(f"{paths.ASSETS}/style.css", style + css)
    for asset in ("app.js", "favicon.svg"):  # the report's own icon: no request for /favicon.ico
        staged.write(f"{paths.ASSETS}/{asset}", (templates_dir() / asset).read_bytes())
    csp = (
        "default-src 'none'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "base-uri 'none'; form-action 'none'"
    )
    workers = _render_workers(data, jobs)
    if workers <= 1:
        return render_pages(data, make_environment(), staged.write, csp)
    return render_in_processes(data, staged, csp, workers)


def _render_workers(data: ReportData, jobs: int) -> int:
    import multiprocessing

    if jobs <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    channels = sum(len(layer.channels) for model in data.models for layer in model.layers)
    return min(jobs, 8) if channels >= _PARALLEL_PAGES else 1


def _render_share(k: int, n: int) -> list[tuple[str, str, int]]:
    """In a forked worker: render every n-th page from the k-th and write it into the
    staging folder; what comes back is (path, sha256, bytes) of each, for the manifest
    (not the pages' text: sending megabytes of HTML back through a pipe costs time)."""
    from reportgen.report.pages import render_pages
    from reportgen.report.render import make_environment

    assert _SHARED_RENDER is not None
    data, staged, csp = _SHARED_RENDER
    written: list[tuple[str, str, int]] = []

    def write(path: str, text: str) -> None:
        staged.write(path, text)
        written.append((path, *staged.recorded(path)))

    render_pages(data, make_environment(), write, csp, share=(k, n))
    return written


def _end_with_parent(parent: int) -> None:
    """In a forked page worker: die with the process that forked it. A worker waits on
    a pipe whose other end it also holds (fork copies every descriptor), so it would
    never see its parent go: killed with SIGKILL, the parent would leave it waiting, for
    ever, with the report's files open. Linux sends the worker SIGKILL when its parent
    dies (prctl PR_SET_PDEATHSIG); elsewhere it stays as before."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


_PR_SET_PDEATHSIG = 1


def render_in_processes(data: ReportData, staged: StagedReport, csp: str, workers: int) -> int:
    """Pages rendered by ``workers`` processes (forked: they share the report data without
    copying it), each writing its own pages; this process renders its share too and
    lists every page for the manifest."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from reportgen.report.pages import render_pages
    from reportgen.report.render import make_environment

    global _SHARED_RENDER
    _SHARED_RENDER = (data, staged, csp)
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(
            max_workers=workers - 1,
            mp_context=context,
            initializer=_end_with_parent,
            initargs=(os.getpid(),),
        ) as pool:
            futures = [pool.submit(_render_share, k, workers) for k in range(1, workers)]
            count = render_pages(data, make_environment(), staged.write, csp, share=(0, workers))
            for future in futures:
                for path, digest, size in future.result():
                    staged.record(path, digest, size)
                    count += 1
    finally:
        _SHARED_RENDER = None
    return count
