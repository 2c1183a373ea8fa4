"""--cluster within bounds (issue 27, classes 3 and 7): local:N has an upper bound,
digits are ASCII, only tcp:// addresses are taken (tls:// and ucx:// named as not
supported) and a port out of range is refused at once, not after a 30 s connect
timeout. Each is one usage error line before any work, and nothing is written."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reportgen.compute.dask_engine import MAX_LOCAL_WORKERS, ClusterSpec, parse_cluster
from reportgen.errors import UsageError
from tests.helpers import error_line, invoke, write_images

pytest.importorskip("distributed")

MODEL = ("-m", "tests.tinynet_factory:build", "--weights", "none", "--input-size", "32")


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("local:100000", f"from 1 to {MAX_LOCAL_WORKERS}"),
        (f"local:{MAX_LOCAL_WORKERS + 1}", f"from 1 to {MAX_LOCAL_WORKERS}"),
        ("local:²", "local:N needs a whole number"),
        ("local:٣", "local:N needs a whole number"),
        ("local:99999999999999999999999", "local:N needs a whole number"),
        ("tls://127.0.0.1:8786", "tcp:// only"),
        ("ucx://127.0.0.1:8786", "not ucx://"),
        ("inproc://x", "not inproc://"),
        ("tcp://127.0.0.1:99999", "the port must be from 1 to 65535, not 99999"),
        ("tcp://127.0.0.1:0", "the port must be from 1 to 65535, not 0"),
        ("tcp://127.0.0.1:²", "is not a scheduler address"),
        ("tcp://[::1]:123456", "is not a scheduler address"),
        ("tcp://host:8786/path", "is not a scheduler address"),
        ("tcp://user@host:8786", "is not a scheduler address"),
    ],
)
def test_a_cluster_option_out_of_bounds_is_a_usage_error_at_once(
    value: str, needle: str, tmp_path: Path
) -> None:
    images = write_images(tmp_path / "images", 1, (36, 40))
    started = time.monotonic()
    result = invoke("run", str(images), *MODEL, "--cluster", value, "-o", str(tmp_path / "r"))
    error_line(result, 2, f"--cluster {value!r}", needle)
    assert time.monotonic() - started < 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]


@pytest.mark.parametrize(
    ("value", "spec"),
    [
        ("local:1", ClusterSpec(workers=1)),
        (f"local:{MAX_LOCAL_WORKERS}", ClusterSpec(workers=MAX_LOCAL_WORKERS)),
        ("tcp://127.0.0.1:8786", ClusterSpec(address="tcp://127.0.0.1:8786")),
        ("tcp://scheduler.example-1:65535", ClusterSpec(address="tcp://scheduler.example-1:65535")),
        ("tcp://[::1]:1", ClusterSpec(address="tcp://[::1]:1")),
        (" tcp://scheduler ", ClusterSpec(address="tcp://scheduler")),
    ],
)
def test_the_values_within_bounds_are_taken(value: str, spec: ClusterSpec) -> None:
    assert parse_cluster(value) == spec


def test_the_bounds_are_the_edges() -> None:
    for value in ("local:0", f"local:{MAX_LOCAL_WORKERS + 1}", "tcp://h:0", "tcp://h:65536"):
        with pytest.raises(UsageError):
            parse_cluster(value)
