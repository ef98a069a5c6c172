"""Running chunks of paths through the kernel: chunking, threads, progress, checkpoints."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import numba
import numpy as np
from tqdm import tqdm

from stresslab._kernels.arrays import AllowanceArrays, Outputs
from stresslab._kernels.chain import chain_default_probability
from stresslab._kernels.paths import simulate_paths
from stresslab._kernels.pools import simulate_pools
from stresslab._numba import needs_compiling
from stresslab.compile.model import CompiledModel
from stresslab.compile.pooling import pooled_events
from stresslab.errors import StresslabError
from stresslab.run.budget import check_budget
from stresslab.run.checkpoint import Checkpoint
from stresslab.vocabulary import STATES

__all__ = ["Checkpoint", "run_paths", "run_chunk", "allocate", "default_chunk_size", "check_int", "numba_threads",
           "announce_compiling"]

NO_ALLOWANCE = AllowanceArrays(np.zeros((0, 1, 4, 1, 2)), 0.0, 0.0)  # a run without one
_STEPS_PER_CHUNK = 200_000_000  # loan-months per chunk: about a second of kernel time


def run_paths(
    model: CompiledModel,
    seed: int,
    n_paths: int,
    *,
    chunk_size: int | None = None,
    threads: int | None = None,
    progress: bool | None = None,
    desc: str = "",
    checkpoint: Checkpoint | None = None,
    record_eta: bool = False,
) -> Outputs:
    """Simulate paths 0..n_paths-1 of a compiled model into freshly allocated outputs.

    Results do not depend on ``chunk_size`` or ``threads`` (per-path random streams,
    per-path sums in loan order). With a ``checkpoint``, finished chunks are saved as they
    complete and chunks already saved are verified and loaded instead of simulated; the
    checkpoint is closed (its lock released) when the run ends, whether it succeeds or not.
    """
    try:
        if checkpoint is not None and checkpoint.chunk_size is not None:
            chunk_size = checkpoint.chunk_size  # a resumed run keeps the chunks it started with
        if chunk_size is None:
            chunk_size = default_chunk_size(model, n_paths, threads)
        chunk_size = check_int("chunk_size", chunk_size, 1, None)
        if threads is not None:
            threads = check_int("threads", threads, 1, numba.config.NUMBA_NUM_THREADS)
        check_budget(model, n_paths, chunk_size, threads, record_eta=record_eta)
        if checkpoint is not None and checkpoint.chunk_size is None:
            checkpoint.start(chunk_size)
        out = allocate(model, n_paths, record_eta=record_eta)
        show = progress if progress is not None else (n_paths > chunk_size and (sys.stderr.isatty() or _in_jupyter()))
        with numba_threads(threads), _bar()(total=n_paths, unit="path", disable=not show, desc=desc, leave=False) as bar:
            for start in range(0, n_paths, chunk_size):
                chunk = Outputs(*(a[start : start + chunk_size] for a in out))
                if checkpoint is None or not checkpoint.load(start, chunk):
                    run_chunk(model, seed, start, chunk)
                    if checkpoint is not None:
                        checkpoint.save(start, chunk)
                bar.update(len(chunk.weight))
        return out
    finally:
        if checkpoint is not None:
            checkpoint.close()


def announce_compiling(pooled: bool) -> None:
    """Say on stderr that numba is about to compile (first run only): a long silent start explained."""
    if needs_compiling(chain_default_probability, simulate_pools if pooled else simulate_paths):
        print("stresslab: compiling kernels (first run only, about a minute; later runs load them from "
              "numba's cache) ...", file=sys.stderr, flush=True)


def _in_jupyter() -> bool:
    """True inside a Jupyter (IPython kernel) session, where stderr is not a terminal but shows."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def _bar() -> type[tqdm]:
    """tqdm's notebook bar in Jupyter when ipywidgets is there to draw it, else the text bar."""
    if _in_jupyter():
        try:
            import ipywidgets  # noqa: F401  (tqdm.notebook needs it)
            from tqdm.notebook import tqdm as notebook_bar
        except ImportError:
            return tqdm
        return notebook_bar
    return tqdm


def run_chunk(model: CompiledModel, seed: int, first_path: int, out: Outputs) -> None:
    """Simulate paths ``first_path .. first_path + len(out) - 1`` into ``out`` (zeroed)."""
    if not model.pooled:
        simulate_paths(
            first_path, np.uint64(seed), model.loans, model.tables, model.params, model.policy.arrays, model.layers,
            model.allowance if model.allowance is not None else NO_ALLOWANCE, out,
        )
    else:
        per_loan, max_events = pooled_events(model)
        simulate_pools(
            first_path, np.uint64(seed), model.loans, model.pool_size, per_loan, max_events,
            model.tables, model.params, model.layers, out,
        )


def allocate(model: CompiledModel, n_paths: int, *, record_eta: bool = False) -> Outputs:
    """Zeroed kernel outputs for ``n_paths`` paths (with their factor innovations if ``record_eta``)."""
    t, n_states, n_layers = model.n_months, len(STATES), len(model.layer_names)
    return Outputs(
        loss_gross=np.zeros((n_paths, t)),
        loss_net=np.zeros((n_paths, t)),
        interest_income=np.zeros((n_paths, t)),
        recoveries=np.zeros((n_paths, t)),
        balance_by_state=np.zeros((n_paths, t, n_states)),
        count_by_state=np.zeros((n_paths, t, n_states), dtype=np.int64),
        loss_by_cell=np.zeros((n_paths, len(model.industries), len(model.regions))),
        loss_by_loan=np.zeros((n_paths, len(model.tracked_loans))),
        layer_paid=np.zeros((n_paths, t, n_layers)),
        layer_cash=np.zeros((n_paths, t, n_layers)),
        layer_capacity_left=np.zeros((n_paths, t, n_layers)),
        layer_fee=np.zeros((n_paths, t, n_layers)),
        layer_failure_month=np.zeros((n_paths, n_layers), dtype=np.int64),
        subsidy_cost=np.zeros((n_paths, t)),
        deferred_count=np.zeros((n_paths, t), dtype=np.int64),
        gap_paid=np.zeros((n_paths, t)),
        gap_defaulted=np.zeros((n_paths, t)),
        interest_foregone=np.zeros((n_paths, t)),
        stage_transition=np.zeros((n_paths, 0 if model.pooled else -(-t // 12), 2, 4)),
        allowance=np.zeros((n_paths, -(-t // 12) if model.allowance is not None else 0, 2)),
        weight=np.zeros(n_paths),
        eta=np.zeros((n_paths, t + 1 if record_eta else 0, model.tables.sqrt_cov.shape[0])),
        chi2=np.zeros(n_paths),
    )


def default_chunk_size(model: CompiledModel, n_paths: int, threads: int | None = None) -> int:
    """Paths per chunk: about 2e8 loan-months, at least 4 paths per thread."""
    steps = max(model.n_loans * model.n_months, 1)
    n_threads = threads or numba.get_num_threads()
    return int(min(n_paths, max(_STEPS_PER_CHUNK // steps, 4 * n_threads)))


def check_int(name: str, value: object, lo: int, hi: int | None) -> int:
    """``value`` as an int in [lo, hi], or a StresslabError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise StresslabError(f"{name} must be an integer; got {value!r}")
    if value < lo or (hi is not None and value > hi):
        allowed = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise StresslabError(f"{name} must be an integer {allowed}; got {value}")
    return int(value)


@contextmanager
def numba_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` numba threads (None: leave the setting as it is)."""
    if threads is None:
        yield
        return
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        yield
    finally:
        numba.set_num_threads(before)
