"""Per-input results on a Dask cluster: ``reportgen run --cluster local:N|tcp://HOST:PORT``.

The optional extra (``pip install 'reportgen[dask]'``): nothing else in reportgen imports
this module, and it imports ``distributed`` only when a run asks for a cluster.

What runs where:

* the client (this process) finds and reads the inputs, plans the layers, keeps the
  cache, folds the results in input order, makes the dataset examples and writes the
  whole report in its staging folder, swapped into place as in any run;
* each worker process loads each model once (a per-process state, ``_worker_models``)
  and computes shards of a few batches: forward pass, statistics, selections and
  pictures, which come back as bytes inside the per-input results.

Pictures travel as bytes, not through a shared folder: a cluster then needs no storage
that the client and every worker see; only the client writes the report, so staging,
the swap and an interrupted run behave exactly as without a cluster; and a result is
bounded (a non-detail input's pictures are a view and Grad-CAM, tens of KB). The inputs
travel the same way (the client reads each file and sends its bytes), so workers on
other machines need the inputs at no path; they need reportgen, torch and any
``--weights`` file or custom model module where the client has them.

Shards are cut on ``--batch-size`` boundaries (``model_run.run_inputs``), the batches a
single process would run: the report is byte for byte the one a single process writes.
A worker that dies has its shards re-run by Dask on another worker; a shard that fails
anyway is re-run batch by batch, and a batch that still fails ends the run with one
error naming its inputs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reportgen.compute.batch import PassPlan, PictureOptions, finish_input, forward_batch
from reportgen.errors import ReportgenError, UsageError
from reportgen.inputs.files import InputFile
from reportgen.inputs.safe_read import read_input_bytes
from reportgen.nn.models import LoadedModel
from reportgen.options import ComputeOptions, ModelOptions
from reportgen.results.records import InputResult, ModelFacts
from reportgen.version import __version__

log = logging.getLogger("reportgen")
# An interrupted local cluster's semaphores are cleaned by multiprocessing's resource
# tracker, which warns on stderr after our one-line error; it takes this process's -W.
QUIET_TRACKER = "ignore::UserWarning:multiprocessing.resource_tracker"

INSTALL_HINT = "install the extra: pip install 'reportgen[dask]'"
# Batches of --batch-size per task: enough work to hide a task's round trip (milliseconds)
# behind the forward passes (a second or more), few enough to spread a run over workers.
SHARD_BATCHES = 4
# Shards in flight per worker: one computing, one queued, so no worker waits on the client.
SHARDS_PER_WORKER = 2


@dataclass(frozen=True)
class ClusterSpec:
    """``--cluster`` parsed: a local cluster of ``workers`` processes, or an address."""

    workers: int = 0
    address: str = ""


# local:N starts N worker processes here, each with its own torch and model: at most this
# many (a typo's 100000 would only grow the client, never start a worker).
MAX_LOCAL_WORKERS = 256
# tcp://HOST:PORT, HOST a name, an IPv4 address or a bracketed IPv6 one; ASCII only
# (str.isdigit takes "²", which int() does not).
_ADDRESS = re.compile(
    r"^tcp://(?P<host>[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{1,5}))?$"
)
_ASCII_COUNT = re.compile(r"^[0-9]{1,9}$")


def parse_cluster(text: str) -> ClusterSpec:
    """``local:N`` (1 <= N <= ``MAX_LOCAL_WORKERS``) or a scheduler's ``tcp://HOST:PORT``
    (port 1 to 65535; Dask's 8786 when left out); UsageError (exit 2) otherwise. Other
    Dask protocols are refused by name: ``tls://`` needs certificates, which reportgen
    has no option for, and ``ucx://`` a package of its own."""
    value = text.strip()
    if value.startswith("local:"):
        count = value.removeprefix("local:")
        if not _ASCII_COUNT.match(count) or not 1 <= int(count) <= MAX_LOCAL_WORKERS:
            raise UsageError(
                f"--cluster {text!r}: local:N needs a whole number of worker processes "
                f"from 1 to {MAX_LOCAL_WORKERS} (local:2)"
            )
        return ClusterSpec(workers=int(count))
    scheme, sep, rest = value.partition("://")
    if sep and scheme.lower() != "tcp":
        raise UsageError(
            f"--cluster {text!r}: reportgen reaches a scheduler over tcp:// only "
            f"(tcp://HOST:PORT), not {scheme[:20]}:// (tls:// needs certificates, which "
            "reportgen has no option for); or local:N"
        )
    found = _ADDRESS.match(value)
    if sep and found is None:
        raise UsageError(
            f"--cluster {text!r} is not a scheduler address tcp://HOST:PORT (a host name or "
            "IP address, a port from 1 to 65535)"
        )
    if found is not None:
        port = found.group("port")
        if port is not None and not 1 <= int(port) <= 65535:
            raise UsageError(f"--cluster {text!r}: the port must be from 1 to 65535, not {port}")
        return ClusterSpec(address=value)
    raise UsageError(
        f"--cluster {text!r} is neither local:N nor a scheduler address such as tcp://host:8786"
    )


def check_cluster(text: str) -> None:
    """Before any work: the extra is installed and the option parses."""
    _distributed()
    parse_cluster(text)


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise UsageError(f"--cluster needs Dask's distributed package: {INSTALL_HINT}") from exc
    _close_clusters_quietly_at_exit()
    return distributed


def _close_clusters_quietly_at_exit() -> None:
    """Dask closes at exit the local clusters still open (``close_clusters``, an atexit
    callback). One is left open only when a run was interrupted while Dask started or
    closed it, and then Dask's own callback meets it half made: it iterates a WeakSet
    that changes under it ("dictionary changed size during iteration") or asserts on a
    worker's state, and Python prints that as a traceback after reportgen's one line.
    The same is done here, without a word: the run has already said how it ended."""
    import atexit

    from distributed.deploy import spec

    atexit.unregister(spec.close_clusters)
    atexit.unregister(_close_clusters_quietly)
    atexit.register(_close_clusters_quietly)


def _close_clusters_quietly() -> None:
    from distributed.core import Status
    from distributed.deploy import spec

    logging.disable(logging.CRITICAL)  # Dask's and asyncio's complaints while closing
    clusters: list[Any] = []
    for _attempt in range(3):
        try:
            clusters = list(spec.SpecCluster._instances)
            break
        except RuntimeError:  # the WeakSet changed while it was read: again
            continue
    for cluster in clusters:
        with contextlib.suppress(Exception):
            if cluster.shutdown_on_close and cluster.status != Status.closed:
                cluster.close(timeout=10)


def _set_dask_log_level(distributed: Any, level: int) -> None:
    """Dask's config gives some of its loggers levels of their own: each is set."""
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] == "distributed"]
    for name in ["distributed", *names]:
        logging.getLogger(name).setLevel(level)


class DaskEngines:
    """The cluster of a run, as a context: started (or connected to) on entry, closed on
    exit whatever happened; ``for_model`` gives each model its engine."""

    def __init__(
        self,
        cluster: str,
        models: ModelOptions,
        compute: ComputeOptions,
        options: PictureOptions,
        recorded: Mapping[str, Any],
    ) -> None:
        self.spec = parse_cluster(cluster)
        self.models, self.compute, self.options = models, compute, options
        self.cluster: Any = None
        self.client: Any = None
        self.closing = False
        import torch

        from reportgen.compute.cached import weights_fingerprints
        from reportgen.compute.keys import code_key
        from reportgen.nn.models import select_device
        from reportgen.results.store import digest

        self.torch_threads = torch.get_num_threads()
        self.device = str(select_device(models.device))
        self.code = code_key()
        # What the workers' models depend on: the settings but inputs and -o, the device,
        # the weights files' identities (a checkpoint rewritten in place is a new key).
        shaping = {k: v for k, v in recorded.items() if k != "inputs"}
        self.run_key = digest(shaping, self.device, weights_fingerprints(models))

    def __enter__(self) -> DaskEngines:
        distributed = _distributed()
        # Dask's own log (every worker started, lost, retired) is for -v only; its
        # errors reach the user as reportgen's one-line errors.
        quiet = logging.DEBUG if log.isEnabledFor(logging.DEBUG) else logging.CRITICAL
        _set_dask_log_level(distributed, quiet)
        # An interrupted start leaves Dask's tasks with errors nobody retrieves, which
        # asyncio logs as tracebacks.
        logging.getLogger("asyncio").setLevel(quiet)
        # Dask sets OMP_NUM_THREADS and more in this process's environment for its
        # workers, and leaves them: put back as it was on exit (later runs of a notebook).
        self.environ = dict(os.environ)
        if self.spec.workers:
            if QUIET_TRACKER not in sys.warnoptions:
                sys.warnoptions.append(QUIET_TRACKER)
            # One task at a time per worker: a model is never run by two tasks of one
            # process at once. torch's own threads are the client's count (compute_shard).
            import dask  # Dask's MALLOC_TRIM_THRESHOLD_ stops glibc's adaptive mmap: 4x slower

            dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None})
            self.cluster = distributed.LocalCluster(
                n_workers=self.spec.workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                scheduler_kwargs={"dashboard": False},  # no web server nobody asked for
                silence_logs=quiet,
            )
            try:
                self.client = distributed.Client(self.cluster)
            except BaseException:
                self.cluster.close()
                raise
        else:
            try:
                self.client = distributed.Client(self.spec.address, timeout=30)
            except (OSError, ValueError) as exc:
                raise ReportgenError(
                    f"--cluster {self.spec.address!r}: no Dask scheduler answered ({exc})"
                ) from exc
        log.info("computing on %s", self.client)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.closing = True  # shards that come back now settle nothing
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
            os.environ.clear()
            os.environ.update(self.environ)

    def workers(self) -> int:
        """Threads of the cluster's workers now (each runs one shard at a time)."""
        return max(1, sum(self.client.nthreads().values()))

    def for_model(self, model: LoadedModel, facts: ModelFacts) -> DaskEngine:
        return DaskEngine(self, model.id, facts)


@dataclass(frozen=True)
class ShardJob:
    """What a worker needs for one shard: the run's model options name the models (each
    worker builds them itself), ``model_id`` which one; what to compute; each batch's
    inputs with their bytes."""

    models: ModelOptions
    compute: ComputeOptions
    options: PictureOptions
    model_id: str
    layer_names: tuple[str, ...]
    batches: tuple[tuple[tuple[InputFile, bytes], ...], ...]
    # torch's thread count in the client: some layers' last bits depend on it (a Linear
    # layer's matrix product is split by thread), so workers compute with the same.
    torch_threads: int = 1
    device: str = "cpu"  # the client's device, resolved: the workers compute on it
    run_key: str = ""  # the run's models (settings but inputs and -o; weights files)
    code: str = ""  # the client's code_key (compute.keys): the workers' must be the same
    version: str = __version__


class DaskEngine:
    """One model's per-input results computed on the cluster, a shard per task.

    ``compute`` (called by the one cache branch for a batch's missing inputs) only holds
    the batch back and hands out a Future per input; ``flush`` sends the held batches as
    one task, whose results settle those Futures, in this process, when it comes back."""

    batches_per_shard = SHARD_BATCHES

    def __init__(self, engines: DaskEngines, model_id: str, facts: ModelFacts) -> None:
        self.engines = engines
        self.model_id = model_id
        self.layer_names = tuple(layer.name for layer in facts.layers)
        self.lookahead = SHARDS_PER_WORKER * engines.workers()
        self.held: list[tuple[list[InputFile], list[Future[InputResult]]]] = []

    def compute(self, files: list[InputFile]) -> list[Future[InputResult]]:
        futures: list[Future[InputResult]] = [Future() for _ in files]
        self.held.append((files, futures))
        return futures

    def flush(self) -> None:
        if self.held:
            held, self.held = self.held, []
            self._submit(held, split_on_failure=len(held) > 1)
        # An adaptive cluster (dask-jobqueue, Kubernetes) grows while the run goes on.
        self.lookahead = SHARDS_PER_WORKER * self.engines.workers()

    def _submit(
        self,
        held: list[tuple[list[InputFile], list[Future[InputResult]]]],
        split_on_failure: bool,
    ) -> None:
        job = ShardJob(
            self.engines.models,
            self.engines.compute,
            self.engines.options,
            self.model_id,
            self.layer_names,
            tuple(
                tuple((f, read_input_bytes(f.path, f.source)) for f in files) for files, _ in held
            ),
            self.engines.torch_threads,
            self.engines.device,
            self.engines.run_key,
            self.engines.code,
        )
        try:
            task = self.engines.client.submit(compute_shard, job, pure=False)
        except Exception as exc:  # the client closed: the run is ending, with its error
            _fail(held, ReportgenError(f"the Dask client could not send a shard: {exc}"))
            return
        task.add_done_callback(lambda done: self._settle(done, held, split_on_failure))

    def _settle(
        self,
        task: Any,
        held: list[tuple[list[InputFile], list[Future[InputResult]]]],
        split_on_failure: bool,
    ) -> None:
        """The shard's results into its Futures (on a client thread): on failure, each
        batch once more as its own task, then the batch's error."""
        if self.engines.closing:
            _fail(held, ReportgenError("the run ended before this shard came back"))
            return
        try:
            per_batch = task.result()
        except ReportgenError as exc:  # the user's problem, said by the worker: as it is
            _fail(held, exc)
        except BaseException as exc:  # a dead worker (KilledWorker), or a bug
            if split_on_failure:
                log.warning("a shard failed; running its %d batches one by one", len(held))
                for batch in held:
                    self._submit([batch], split_on_failure=False)
                return
            files = held[0][0]
            named = repr(files[0].source) + (
                f" (and the {len(files) - 1} other inputs of its batch)" if len(files) > 1 else ""
            )
            _fail(held, ReportgenError(f"input {named}: {_reason(exc)}"))
        else:
            for (_, futures), results in zip(held, per_batch):
                for future, result in zip(futures, results):
                    future.set_result(result)


def _fail(held: list[tuple[list[InputFile], list[Future[InputResult]]]], exc: Exception) -> None:
    for _, futures in held:
        for future in futures:
            future.set_exception(exc)


def _reason(exc: BaseException) -> str:
    if type(exc).__name__ == "KilledWorker":
        return (
            "the Dask worker computing it died each time it was tried (killed, crashed "
            "or out of memory)"
        )
    return f"{type(exc).__name__} on a Dask worker: {exc}"


# --- on the workers ---------------------------------------------------------------------

_worker_lock = threading.Lock()
# This process's models: those of the latest run only (a long-lived worker serves many
# runs), keyed by ShardJob.run_key; per model id, the model, its facts, its pass plan
# (Grad-CAM layer, target, contributions), and a lock: a worker with several threads
# runs two shards at once, and a model's hooks must see one forward pass at a time.
_worker_run: dict[str, Any] = {"key": None, "models": {}}


@dataclass
class _WorkerModel:
    model: LoadedModel
    facts: ModelFacts
    plan: PassPlan
    lock: threading.Lock


def _worker_model(job: ShardJob) -> _WorkerModel:
    """This process's copy of the job's model, built and planned on the run's first shard
    (every model of the run at once: they are built in one seeded sequence), reused by
    every later shard of the run."""
    with _worker_lock:
        if _worker_run["key"] != job.run_key:
            _worker_run["key"], _worker_run["models"] = None, {}  # the previous run's go
            _worker_run["models"] = _load_on_worker(job)
            _worker_run["key"] = job.run_key
        return _worker_run["models"][job.model_id]


def _load_on_worker(job: ShardJob) -> dict[str, _WorkerModel]:
    import torch

    from reportgen.compute.keys import code_key
    from reportgen.compute.model_run import pass_plan, plan_layers
    from reportgen.compute.model_setup import load_models

    if job.version != __version__ or job.code != code_key():
        raise ReportgenError(
            f"a Dask worker runs other reportgen code than this client (reportgen "
            f"{__version__} against {job.version}, or other files or torch, numpy, Pillow "
            "versions): install the same on every worker"
        )
    torch.manual_seed(job.models.seed)  # as the client's run does before building models
    # The client's device, not the worker's own choice: the results are cached under the
    # client's key and must be the numbers a one-process run makes.
    device = torch.device(job.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ReportgenError(
            f"this run computes on {job.device} (the client's device) but a Dask worker "
            "sees no CUDA device"
        )
    models = {}
    for model in load_models(job.models, device)[0]:
        facts, _ = plan_layers(model, job.compute)
        models[model.id] = _WorkerModel(
            model, facts, pass_plan(model, job.compute), threading.Lock()
        )
    planned = models.get(job.model_id)
    if planned is None or tuple(layer.name for layer in planned.facts.layers) != job.layer_names:
        raise ReportgenError(
            f"{job.model_id}: a Dask worker resolves other layers than the client "
            "(another torchvision or model code on the worker?)"
        )
    return models


def compute_shard(job: ShardJob) -> list[list[InputResult]]:
    """One shard on a worker: each batch through the model, each input's complete
    result (pictures as bytes), batch by batch as the client cut them."""
    import torch

    # Dask starts workers with one thread (OMP_NUM_THREADS=1); the numbers must be the
    # client's: each worker computes with the client's thread count.
    if torch.get_num_threads() != job.torch_threads:
        torch.set_num_threads(job.torch_threads)
    planned = _worker_model(job)
    results = []
    with planned.lock, tempfile.TemporaryDirectory(prefix="reportgen-shard-") as folder:
        for number, batch in enumerate(job.batches):
            files = [
                _written(Path(folder), number, k, f, data) for k, (f, data) in enumerate(batch)
            ]
            outputs = forward_batch(planned.model, planned.facts.layers, files, planned.plan)
            results.append(
                [
                    finish_input(output, planned.facts.layers, job.compute.selection, job.options)
                    for output in outputs
                ]
            )
            for file in files:
                os.unlink(file.path)
    return results


def _written(folder: Path, batch: int, position: int, file: InputFile, data: bytes) -> InputFile:
    """The client's input as a file of this worker (the decoder reads files); its id and
    source stay the client's, which is all a result names."""
    path = folder / f"{batch}-{position}{file.path.suffix}"
    path.write_bytes(data)
    return InputFile(path=path, source=file.source, id=file.id)
