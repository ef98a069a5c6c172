"""Chunks of paths on a Dask cluster: a scheduler and worker processes, local or remote.

Dask is an optional dependency (``pip install stresslab[distributed]``): this module imports
``distributed`` only inside the functions that use it, so ``import stresslab`` never needs it.

The model is scattered once to every worker; each chunk of paths is one pure task
``_chunk(model, seed, start, stop) -> Outputs`` with a deterministic key. Results are
copied into the full arrays at their path offset as they arrive. Every random number is a
pure function of (seed, path, loan, month, purpose) and a path's sums are in loan order, so
the result is bitwise identical to :func:`stresslab.run.runner.run_paths` whatever the chunking,
the number of workers, the order of arrival, or workers lost and chunks recomputed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numba
from tqdm.auto import tqdm

from stresslab._kernels.arrays import Outputs
from stresslab.compile.model import CompiledModel
from stresslab.errors import StresslabError
from stresslab.run.runner import (
    allocate,
    check_int,
    default_chunk_size,
    numba_threads,
    run_chunk,
)

if TYPE_CHECKING:
    import distributed

__all__ = ["run_paths_dask", "connect", "warm_up", "worker_threads"]

_INSTALL_HINT = "pip install stresslab[distributed]"
_KEY_PREFIX = "stresslab-chunk"
_CHUNKS_PER_THREAD = 4  # enough tasks per worker thread to balance uneven workers
_LOCAL_DASHBOARD = "127.0.0.1:0"  # the dashboard of a local cluster: this machine only, any free port


def run_paths_dask(
    model: CompiledModel,
    seed: int,
    n_paths: int,
    *,
    chunk_size: int | None = None,
    client: distributed.Client,
    progress: bool = False,
) -> Outputs:
    """Simulate paths 0..n_paths-1 of a compiled model on the workers of a Dask cluster.

    Parameters
    ----------
    model : CompiledModel
        The compiled book and scenario (:func:`stresslab.compile.model.compile_model`).
    seed : int
        Seed in [0, 2**63).
    n_paths : int
        Number of paths (>= 1).
    chunk_size : int, optional
        Paths per task. Default: about 2e8 loan-months per task (as
        :func:`stresslab.run.runner.default_chunk_size` for one thread), but at least four
        tasks per worker thread so that the load balances.
    client : distributed.Client
        A client connected to the cluster (see :func:`connect`).
    progress : bool
        Show a progress bar (paths done, ETA) on stderr.

    Returns
    -------
    Outputs
        Arrays of shape (n_paths, ...), bitwise identical to
        ``runner.run_paths(model, seed, n_paths)``.

    Notes
    -----
    The model is scattered to every worker (broadcast) once per call. Task keys are
    ``stresslab-chunk-<start>-<stop>-<hash of model and seed>`` and tasks are pure, so
    the scheduler recomputes the chunks of a worker that dies before its results are
    gathered, and an identical chunk asked for twice is computed once.
    """
    _require_distributed()
    from dask.base import tokenize
    from distributed import as_completed

    if not isinstance(model, CompiledModel):
        raise StresslabError(f"model must be a CompiledModel (stresslab.compile.model.compile_model); got {type(model).__name__}")
    seed = check_int("seed", seed, 0, 2**63 - 1)
    n_paths = check_int("n_paths", n_paths, 1, None)
    if chunk_size is None:
        chunk_size = _default_chunk_size(model, n_paths, client)
    chunk_size = check_int("chunk_size", chunk_size, 1, None)

    token = tokenize(model, seed)
    model_future = _scatter(client, model)
    starts = list(range(0, n_paths, chunk_size))
    stops = [min(start + chunk_size, n_paths) for start in starts]
    submitted = client.map(  # one message for all the tasks
        _chunk,
        [model_future] * len(starts),
        [seed] * len(starts),
        starts,
        stops,
        key=[f"{_KEY_PREFIX}-{start}-{stop}-{token}" for start, stop in zip(starts, stops, strict=True)],
        pure=True,
    )
    futures = {f.key: (f, start, stop) for f, start, stop in zip(submitted, starts, stops, strict=True)}
    del submitted

    out = allocate(model, n_paths)
    try:
        with tqdm(total=n_paths, unit="path", disable=not progress, leave=False, desc="dask") as bar:
            for future, part in as_completed([f for f, _, _ in futures.values()], with_results=True):
                _, start, stop = futures.pop(future.key)
                for whole, piece in zip(out, part, strict=True):
                    whole[start:stop] = piece
                bar.update(stop - start)
    finally:
        futures.clear()  # drop our references: the scheduler forgets the chunks
        del model_future
    return out


def connect(
    scheduler: str | None = None,
    workers: int | None = None,
    threads_per_worker: int = 1,
    **cluster_kwargs: Any,
) -> distributed.Client:
    """A Dask client: to a running scheduler, or to a new cluster of local worker processes.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``) or the path of its scheduler
        file (``dask scheduler --scheduler-file s.json``). Without it, a LocalCluster is
        started on this machine and closed with the client.
    workers : int, optional
        Worker processes of the LocalCluster (default: cores // threads_per_worker).
    threads_per_worker : int
        Threads of each local worker (default 1). Each worker runs with
        ``NUMBA_NUM_THREADS = threads_per_worker`` so that workers x threads never
        exceeds the cores asked for.
    **cluster_kwargs
        Passed to :class:`distributed.LocalCluster` (e.g. ``memory_limit``). The dashboard
        listens on this machine only (``127.0.0.1``, a free port) unless
        ``dashboard_address`` says otherwise (``":8787"``: every interface).

    Returns
    -------
    distributed.Client
        Use it as a context manager, or call ``client.close()`` (and, for a LocalCluster,
        nothing more: the cluster belongs to the client).

    Notes
    -----
    numba fixes its thread pool size from ``NUMBA_NUM_THREADS`` when it is imported, and a
    worker process spawned by a nanny re-imports the caller's ``__main__`` script (and so,
    usually, numba) before the nanny's ``env`` is applied. The variable is therefore put in
    this process's environment while the workers are spawned (and in
    ``distributed.nanny.pre-spawn-environ`` for restarted workers), then restored.
    Workers you start yourself need it in their environment::

        NUMBA_NUM_THREADS=1 dask worker tcp://host:8786 --nthreads 1 --nworkers 2
    """
    _require_distributed()
    from distributed import Client

    threads_per_worker = check_int("threads_per_worker", threads_per_worker, 1, None)
    if scheduler is not None:
        if workers is not None or cluster_kwargs:
            raise StresslabError("give either a scheduler address or local workers (workers=, cluster options), not both")
        return _client_to(scheduler)
    if workers is None:
        workers = max(1, (os.cpu_count() or 1) // threads_per_worker)
    workers = check_int("workers", workers, 1, None)
    n_threads = str(threads_per_worker)
    env = {**cluster_kwargs.pop("env", {}), "NUMBA_NUM_THREADS": n_threads}
    cluster_kwargs.setdefault("dashboard_address", _LOCAL_DASHBOARD)
    import dask

    with _environ(NUMBA_NUM_THREADS=n_threads), dask.config.set({"distributed.nanny.pre-spawn-environ.NUMBA_NUM_THREADS": n_threads}):
        return Client(
            n_workers=workers, threads_per_worker=threads_per_worker, processes=True, env=env, **cluster_kwargs
        )


def warm_up(client: distributed.Client, model: CompiledModel) -> dict[str, float]:
    """Run one path on every worker so that each has compiled (or loaded) the kernels.

    Returns the seconds each worker took, by worker address: about the kernel compile
    time on a worker without a compile cache, milliseconds with one.
    """
    _require_distributed()
    model_future = _scatter(client, model)
    futures = {
        address: client.submit(_timed_chunk, model_future, workers=[address], allow_other_workers=False, pure=False)
        for address in client.scheduler_info()["workers"]
    }
    return dict(zip(futures, client.gather(list(futures.values())), strict=True)) if futures else {}


def worker_threads(client: distributed.Client) -> dict[str, dict[str, int]]:
    """Threads as seen by a task on each worker, by worker address.

    Keys: ``nthreads`` (Dask threads of the worker), ``numba_num_threads``
    (``numba.config.NUMBA_NUM_THREADS``, the pool size), ``numba_threads``
    (``numba.get_num_threads()`` in a task thread), ``task_threads`` (what a chunk runs
    with: ``max(1, NUMBA_NUM_THREADS // nthreads)``) and ``cpu_count``.
    """
    _require_distributed()
    futures = {
        address: client.submit(_thread_info, workers=[address], allow_other_workers=False, pure=False)
        for address in client.scheduler_info()["workers"]
    }
    return dict(zip(futures, client.gather(list(futures.values())), strict=True)) if futures else {}


# --- tasks (run on the workers; module-level so they pickle by reference) ---


def _chunk(model: CompiledModel, seed: int, start: int, stop: int) -> Outputs:
    """Paths ``start .. stop - 1``: a pure function of its arguments."""
    out = allocate(model, stop - start)
    with numba_threads(_task_threads()):
        run_chunk(model, seed, start, out)
    return out


def _timed_chunk(model: CompiledModel) -> float:
    import time

    t0 = time.perf_counter()
    _chunk(model, 0, 0, 1)
    return time.perf_counter() - t0


def _task_threads() -> int | None:
    """numba threads for a task: the worker's NUMBA_NUM_THREADS shared by its Dask threads."""
    try:
        from distributed import get_worker

        nthreads = get_worker().state.nthreads
    except (ImportError, ValueError):  # not on a worker
        return None
    return max(1, numba.config.NUMBA_NUM_THREADS // max(nthreads, 1))


def _thread_info() -> dict[str, int]:
    from distributed import get_worker

    threads = _task_threads() or numba.config.NUMBA_NUM_THREADS
    with numba_threads(threads):
        task_threads = numba.get_num_threads()
    return {
        "nthreads": int(get_worker().state.nthreads),
        "numba_num_threads": int(numba.config.NUMBA_NUM_THREADS),
        "numba_threads": int(numba.get_num_threads()),
        "task_threads": int(task_threads),
        "cpu_count": int(os.cpu_count() or 1),
    }


# --- helpers ---


def _require_distributed() -> None:
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as exc:
        raise StresslabError(f"running on a Dask cluster needs dask and distributed: {_INSTALL_HINT} ({exc})") from exc


def _scatter(client: distributed.Client, model: CompiledModel) -> distributed.Future:
    # a list, so that scatter never mistakes the model for a collection; a fresh key
    # (hash=False): scattering again a key the scheduler is still releasing can lose it
    [future] = client.scatter([model], broadcast=True, hash=False)
    return future


def _default_chunk_size(model: CompiledModel, n_paths: int, client: distributed.Client) -> int:
    threads = sum(client.nthreads().values()) or 1
    balanced = math.ceil(n_paths / (_CHUNKS_PER_THREAD * threads))
    return max(1, min(default_chunk_size(model, n_paths, threads=1), balanced))


def _client_to(scheduler: str) -> distributed.Client:
    from distributed import Client

    try:
        if scheduler.endswith(".json") and os.path.exists(scheduler):
            return Client(scheduler_file=scheduler)
        return Client(scheduler)
    except (OSError, TimeoutError) as exc:
        raise StresslabError(f"cannot connect to the Dask scheduler at {scheduler}: {exc}") from exc
    except ValueError as exc:  # e.g. no port, unknown protocol, a scheduler file that is not JSON
        raise StresslabError(
            f"--scheduler {scheduler}: not a scheduler address (tcp://host:port) or scheduler file (.json): {exc}"
        ) from exc


@contextmanager
def _environ(**values: str) -> Iterator[None]:
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
