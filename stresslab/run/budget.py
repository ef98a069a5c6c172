"""Refuse runs the machine cannot do, before any work starts: memory and time estimates."""

from __future__ import annotations

import warnings

import numba

from stresslab._memory import available_memory
from stresslab.compile.model import CompiledModel
from stresslab.compile.pooling import pooled_events
from stresslab.errors import StresslabError, StresslabWarning

__all__ = ["memory_estimate", "check_budget", "available_memory"]

# nominal loan-months per second and thread of the kernel on this kind of machine
# (benchmarks/bench_engine.py measures ~4e8 on 2 threads); conservative for the estimate
_STEPS_PER_SECOND_PER_THREAD = 1.0e8
_WARN_SECONDS = 3600.0
_REFUSE_SECONDS = 86400.0
_GIB = 2.0**30


def memory_estimate(
    model: CompiledModel, n_paths: int, chunk_size: int, threads: int, *, record_eta: bool = False
) -> dict[str, float]:
    """Bytes a run needs: results of all paths, the compiled book, per-chunk and per-thread work, and the finish.

    Returns
    -------
    dict
        ``results``, ``model``, ``chunk``, ``threads``, ``finish`` and ``total`` in bytes.

    Notes
    -----
    ``finish`` is one more copy of the results: assembling the Dataset (per-industry and
    per-region sums), the summary and the netCDF write come on top of the simulation
    (issue 20 measured a peak of 2.37 GB for 500 loans x 200,000 paths where the
    estimate without this term said 1.34 GiB).
    """
    t, n_layers = model.n_months, len(model.layer_names)
    n_ind, n_reg = len(model.industries), len(model.regions)
    eta = (t + 1) * (1 + n_ind + n_reg) if record_eta else 0  # factor innovations, kept by IS pilot runs
    per_path = 8 * (18 * t + 4 * t * n_layers + n_layers + n_ind * n_reg + eta + 2 + len(model.tracked_loans))
    arrays = [*model.loans, *model.tables, *model.policy.arrays, *model.layers]
    model_bytes = float(sum(getattr(a, "nbytes", 0) for a in arrays))
    events = model.n_loans if not model.pooled else pooled_events(model)[1]  # default events of a path
    per_thread = 8 * events * (5 + n_layers) + 8 * t * (n_ind * n_reg + 8)
    result = {
        "results": float(per_path * n_paths),
        "model": model_bytes,
        "chunk": float(per_path * chunk_size),  # a chunk is copied once (checkpoints, Dask)
        "threads": float(per_thread * threads),
        "finish": float(per_path * n_paths),
    }
    result["total"] = sum(result.values())
    return result


def check_budget(
    model: CompiledModel, n_paths: int, chunk_size: int, threads: int | None = None, *, record_eta: bool = False
) -> None:
    """Refuse a run that would not fit in memory or take more than a day; warn past an hour.

    Raises
    ------
    StresslabError
        With the estimate and what would fit.
    """
    threads = threads or numba.get_num_threads()
    need = memory_estimate(model, n_paths, chunk_size, threads, record_eta=record_eta)
    have = available_memory()
    if need["total"] > 0.9 * have:
        per_path = need["results"] / n_paths
        room = 0.9 * have - need["model"] - need["threads"]
        fits = int(max(room, 0.0) // (3 * per_path))  # results, their finish and a chunk as large
        raise StresslabError(
            f"the run needs about {need['total'] / _GIB:.1f} GiB (results {need['results'] / _GIB:.1f} GiB for "
            f"{n_paths:,} paths, book {need['model'] / _GIB:.2f} GiB, chunk of {chunk_size:,} paths "
            f"{need['chunk'] / _GIB:.2f} GiB) but {have / _GIB:.1f} GiB are available; about {fits:,} paths fit "
            f"with a chunk size up to {max(fits, 1):,}: run fewer paths and combine runs with different seeds"
        )
    seconds = model.n_loans * model.n_months * n_paths / (_STEPS_PER_SECOND_PER_THREAD * threads)
    if seconds > _REFUSE_SECONDS:
        raise StresslabError(
            f"{model.n_loans:,} loans x {n_paths:,} paths x {model.n_months} months would take about "
            f"{seconds / 86400:.1f} days on {threads} threads (at ~{_STEPS_PER_SECOND_PER_THREAD:.0e} loan-months/s "
            f"a thread); run fewer paths, or spread the run over a Dask cluster"
        )
    if seconds > _WARN_SECONDS:
        warnings.warn(
            f"this run will take about {seconds / 3600:.1f} hours on {threads} threads", StresslabWarning, stacklevel=3
        )
