"""Custom models for the Dask engine's tests (``-m clusternet_factory:NAME``).

Each is TinyNet (same numbers) plus an observable side effect, driven by environment
variables that the workers inherit from the client:

* ``CLUSTERNET_MARKS``: a folder; every build() and every forward pass leaves a file
  named by the process id (and the pass's batch size), so a test sees which process
  built and ran the model, and how many batches were computed;
* ``CLUSTERNET_DELAY``: seconds each forward pass sleeps (keeps shards in flight long
  enough for a test to kill a worker);
* ``dying``: a forward pass over an all-black picture ends its process at once, as a
  crash in a C extension would (mean < -0.9 after --mean 0.5 --std 0.5).
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import torch
from tinynet_factory import TinyNet


def _mark(kind: str, batch: int = 0) -> None:
    folder = os.environ.get("CLUSTERNET_MARKS")
    if folder:
        Path(folder, f"{kind}-{os.getpid()}-{batch}-{uuid.uuid4().hex[:8]}").touch()


class ObservedNet(TinyNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _mark("forward", int(x.shape[0]))  # planning passes have a batch of one
        time.sleep(float(os.environ.get("CLUSTERNET_DELAY", "0")))
        return super().forward(x)


class DyingNet(ObservedNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool((x.flatten(1).mean(dim=1) < -0.9).any()):
            os._exit(3)
        return super().forward(x)


def observed() -> torch.nn.Module:
    _mark("build")
    return ObservedNet()


def dying() -> torch.nn.Module:
    _mark("build")
    return DyingNet()
