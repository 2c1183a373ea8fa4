"""Feature visualisation on a Dask cluster (``--cluster``): each unit of a model's pictures
(``compute.featurevis.FvUnit``, a batch of one layer's channels) is one task.

A worker optimises a unit with its own copy of the model, built once per run and shared
with the forward passes (``compute.dask_engine._worker_model``: the same seeded build,
the same code and device checks), with the client's torch thread count: its pixels are
those the client would have made. A task whose worker dies is run again by Dask on
another worker (its scheduler's ``allowed_failures``); a unit that keeps killing its
worker ends the run with one error naming its layer and channels.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reportgen.compute.dask_engine import SHARDS_PER_WORKER, ShardJob, _reason, _worker_model
from reportgen.compute.featurevis import FvUnit, Optimise, optimise_unit
from reportgen.errors import ReportgenError
from reportgen.nn.featurevis import Visualisation
from reportgen.options import FeatureVisOptions
from reportgen.results.records import ModelFacts

if TYPE_CHECKING:
    from reportgen.compute.dask_engine import DaskEngines


@dataclass(frozen=True)
class UnitJob:
    """What a worker needs for one unit: the run's model (as a shard of no inputs names
    it, with the client's threads, device, run key and code), the options and the unit."""

    model: ShardJob
    fv: FeatureVisOptions
    unit: FvUnit


def cluster_optimiser(
    engines: DaskEngines, model_id: str, facts: ModelFacts, fv: FeatureVisOptions
) -> tuple[Optimise, int]:
    """Units of ``model_id`` optimised on the cluster, and how many to keep in flight
    beyond the one awaited (two per worker thread, as for the forward passes)."""
    template = ShardJob(
        engines.models,
        engines.compute,
        engines.options,
        model_id,
        tuple(layer.name for layer in facts.layers),
        (),
        engines.torch_threads,
        engines.device,
        engines.run_key,
        engines.code,
    )

    def optimise(unit: FvUnit) -> Future[list[Visualisation]]:
        task = engines.client.submit(optimise_on_worker, UnitJob(template, fv, unit), pure=False)
        answer: Future[list[Visualisation]] = Future()
        task.add_done_callback(lambda done: _settle(done, answer, unit))
        return answer

    return optimise, SHARDS_PER_WORKER * engines.workers()


def _settle(task: Any, answer: Future[list[Visualisation]], unit: FvUnit) -> None:
    """The task's pictures into ``answer`` (on a client thread), or one error."""
    try:
        answer.set_result(task.result())
    except ReportgenError as exc:  # the user's problem, said by the worker: as it is
        answer.set_exception(exc)
    except BaseException as exc:  # a worker that died every time, or a bug
        channels = sorted({channel for channel, _ in unit.jobs})
        answer.set_exception(
            ReportgenError(
                f"feature visualisation of layer {unit.layer!r}, channels {channels[0]} to "
                f"{channels[-1]}: {_reason(exc)}"
            )
        )


def optimise_on_worker(job: UnitJob) -> list[Visualisation]:
    """One unit on a worker, with the run's model as this process built it."""
    import torch

    # As compute_shard: the client's thread count, so the pixels are the client's.
    if torch.get_num_threads() != job.model.torch_threads:
        torch.set_num_threads(job.model.torch_threads)
    planned = _worker_model(job.model)
    with planned.lock:
        return optimise_unit(planned.model, job.unit, job.fv)
