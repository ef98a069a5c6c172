"""Running chunks of paths through the kernel: chunking, threads, progress, checkpoints."""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numba
import numpy as np
from tqdm import tqdm  # plain bar: no ipywidgets needed in notebooks

from stresslab._kernels.paths import STATES, Outputs, simulate_paths
from stresslab._kernels.pools import simulate_pools
from stresslab.budget import check_budget
from stresslab.errors import StresslabError
from stresslab.model import CompiledModel
from stresslab.pooling import pooled_events

__all__ = ["Checkpoint", "run_paths", "run_chunk", "allocate", "default_chunk_size", "check_int", "numba_threads"]

_STEPS_PER_CHUNK = 200_000_000  # loan-months per chunk: about a second of kernel time


class Checkpoint:
    """A directory of finished chunks of a run, written as they complete.

    ``manifest.json`` records what the run is (scenario, book digest, seed, path count,
    sampling, version) and its chunk size; each finished chunk is an ``.npz`` file written
    to a temporary name and renamed, so a file present is a file complete. Resuming checks
    every recorded field against the new run and refuses any difference.

    Parameters
    ----------
    directory : path
    identity : mapping of str to JSON-able values
        What must match for a resume (e.g. scenario JSON, digest, seed, n_paths, version).
    resume : bool
        False: start a checkpoint (the directory must be absent or empty). True: continue
        one (the directory must hold a manifest with the same identity).
    """

    def __init__(self, directory: str | os.PathLike[str], identity: Mapping[str, object], *, resume: bool) -> None:
        self.directory = Path(directory)
        self.identity = dict(identity)
        self.chunk_size: int | None = None
        manifest = self.directory / "manifest.json"
        if resume:
            if not manifest.is_file():
                raise StresslabError(f"{self.directory}: no checkpoint to resume (manifest.json missing)")
            try:
                recorded = json.loads(manifest.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise StresslabError(f"{manifest}: unreadable checkpoint manifest ({exc})") from None
            for key, value in self.identity.items():
                if recorded.get("identity", {}).get(key) != value:
                    raise StresslabError(
                        f"{self.directory}: the checkpoint belongs to another run: its {key} differs "
                        f"(checkpoint {_short(recorded.get('identity', {}).get(key))}, this run {_short(value)})"
                    )
            self.chunk_size = int(recorded["chunk_size"])
            for stale in self.directory.glob("*.tmp"):  # left by a killed process mid-save
                stale.unlink(missing_ok=True)
        elif self.directory.exists() and any(self.directory.iterdir()):
            raise StresslabError(f"{self.directory}: checkpoint directory is not empty; resume it with --resume or choose another")

    def start(self, chunk_size: int) -> None:
        """Create the directory and manifest of a new checkpoint."""
        self.chunk_size = chunk_size
        self.directory.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.directory / "manifest.json", json.dumps({"identity": self.identity, "chunk_size": chunk_size}).encode())

    def load(self, start: int, out: Outputs) -> bool:
        """Fill ``out`` from the chunk starting at ``start`` if it was saved; True if it was."""
        path = self._path(start)
        if not path.is_file():
            return False
        with np.load(path) as saved:
            for name, target in out._asdict().items():
                target[...] = saved[name]
        return True

    def save(self, start: int, out: Outputs) -> None:
        """Save a finished chunk atomically.

        SIGINT and SIGTERM are held back while the file is written and renamed, so an
        interruption lands between chunks and never leaves a partial file behind.
        """
        with _signals_held():
            handle = tempfile.NamedTemporaryFile(dir=self.directory, suffix=".tmp", delete=False)
            tmp = Path(handle.name)
            try:
                with handle:
                    np.savez(handle, **out._asdict())
                os.replace(tmp, self._path(start))
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise

    def _path(self, start: int) -> Path:
        return self.directory / f"paths_{start:012d}.npz"


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
    complete and chunks already saved are loaded instead of simulated.
    """
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
    n_chunks = math.ceil(n_paths / chunk_size)
    show = progress if progress is not None else (n_chunks > 1 and sys.stderr.isatty())
    with numba_threads(threads), tqdm(total=n_paths, unit="path", disable=not show, desc=desc, leave=False) as bar:
        for start in range(0, n_paths, chunk_size):
            stop = min(start + chunk_size, n_paths)
            chunk = Outputs(*(a[start:stop] for a in out))
            if checkpoint is None or not checkpoint.load(start, chunk):
                run_chunk(model, seed, start, chunk)
                if checkpoint is not None:
                    checkpoint.save(start, chunk)
            bar.update(stop - start)
    return out


def run_chunk(model: CompiledModel, seed: int, first_path: int, out: Outputs) -> None:
    """Simulate paths ``first_path .. first_path + len(out) - 1`` into ``out`` (zeroed)."""
    if model.pool_size is None:
        simulate_paths(
            first_path, np.uint64(seed), model.loans, model.tables, model.params, model.policy.arrays, model.layers, out
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


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back during the block, then deliver them as they were.

    Numba's threads may receive a signal that is blocked in this one, so the handlers are
    swapped instead (main thread only; elsewhere Python runs no signal handler anyway).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda signum, frame: received.append(signum)) for s in held}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if received:
            os.kill(os.getpid(), received[0])  # now, with the handler the process had


def _atomic_write(path: Path, data: bytes) -> None:
    with _signals_held(), tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as handle:
        handle.write(data)
        handle.close()
        os.replace(handle.name, path)


def _short(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."
