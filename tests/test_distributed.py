"""Dask scale-out: run_paths_dask on a real scheduler and real worker processes (127.0.0.1).

Agreement between methods: every Outputs field of a run on the cluster is bitwise equal to
the local ``runner.run_paths`` of the same model, seed and path count, for any chunking,
with a worker killed mid-run, and on a LocalCluster from ``connect``. Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("distributed", reason="dask.distributed is not installed (pip install stresslab[distributed])")

import stresslab  # noqa: E402
from stresslab.compile.model import compile_model  # noqa: E402
from stresslab.compile.pooling import pool_model  # noqa: E402
from stresslab.errors import StresslabError  # noqa: E402
from stresslab.run.distributed import (  # noqa: E402
    _chunk,
    connect,
    run_paths_dask,
    warm_up,
    worker_threads,
)
from stresslab.run.runner import run_paths  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 120  # seconds for processes to start and workers to connect (cold imports, 2 cores)
RUN_TIMEOUT = 300  # seconds for a run on the cluster
SEED = 20240607
N_PATHS = 40


def _model(scenario: str, n_loans: int = 300):
    book = stresslab.synthetic_portfolio(n_loans, seed=1)
    return compile_model(book, stresslab.load_scenario(ROOT / "scenarios" / scenario))


def _assert_identical(got, want) -> None:
    for name, a, b in zip(want._fields, got, want, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert np.array_equal(a, b), f"{name} differs from the local run"


# --- processes ---


def _spawn(args: list[str], log: Path, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    with open(log, "wb") as out:
        # own process group: killing it takes the nanny and its worker process together
        return subprocess.Popen(
            [sys.executable, "-m", *args], stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env, start_new_session=True
        )


def _start_worker(scheduler_file: Path, tmp: Path, name: str) -> subprocess.Popen:
    return _spawn(
        [
            "distributed.cli.dask_worker",
            "--scheduler-file", str(scheduler_file),
            "--host", "127.0.0.1",
            "--nthreads", "1",
            "--nworkers", "1",
            "--no-dashboard",
            "--death-timeout", "60",
            "--name", name,
        ],
        tmp / f"{name}.log",
        tmp,
    )  # fmt: skip


def _kill(proc: subprocess.Popen, grace: float = 10.0) -> None:
    if proc.poll() is None:
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)


def _readable_json(path: Path) -> bool:
    try:
        json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return True


def _log_tail(tmp: Path) -> str:
    return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-2000:]}" for log in sorted(tmp.glob("*.log")))


class Cluster:
    """A scheduler and two workers, each a process; ``client`` is connected to them."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.scheduler_file = tmp / "scheduler.json"
        self.client = None
        self.processes: list[subprocess.Popen] = []
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        from distributed import Client

        tmp = self.tmp
        self.processes = [
            _spawn(
                [
                    "distributed.cli.dask_scheduler",
                    "--host", "127.0.0.1",
                    "--port", "0",
                    "--no-dashboard",
                    "--scheduler-file", str(self.scheduler_file),
                ],
                tmp / "scheduler.log",
                tmp,
            )  # fmt: skip
        ]
        deadline = time.monotonic() + START_TIMEOUT
        while not _readable_json(self.scheduler_file):
            if time.monotonic() > deadline or self.processes[0].poll() is not None:
                raise RuntimeError(f"the scheduler did not start\n{_log_tail(tmp)}")
            time.sleep(0.1)
        self.processes += [_start_worker(self.scheduler_file, tmp, f"worker{i}") for i in range(2)]
        self.client = Client(scheduler_file=str(self.scheduler_file), timeout=START_TIMEOUT)
        try:
            self.client.wait_for_workers(2, timeout=START_TIMEOUT)
        except TimeoutError as exc:
            raise RuntimeError(f"workers did not connect\n{_log_tail(tmp)}") from exc

    def workers(self) -> set[str]:
        return set(self.client.scheduler_info()["workers"])

    def close(self) -> None:
        grace = 0.0
        try:
            if self.client is not None:
                self.client.shutdown()  # scheduler and its workers exit on their own
                grace = 10.0
        except Exception:  # noqa: BLE001 - tear down whatever state they are in
            pass
        finally:
            for proc in reversed(self.processes):
                _kill(proc, grace)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    handle = Cluster(tmp_path_factory.mktemp("dask"))  # closes what it started if it fails
    try:
        yield handle
    finally:
        handle.close()


@pytest.fixture(scope="module")
def services():
    model = _model("services_downturn.toml")
    return model, run_paths(model, SEED, N_PATHS)


# --- on the scheduler and two worker processes ---


@pytest.mark.parametrize("chunk_size", [1, 7, N_PATHS, None], ids=["chunk1", "chunk7", "all", "default"])
def test_matches_local_run(cluster, services, chunk_size):
    model, want = services
    got = run_paths_dask(model, SEED, N_PATHS, chunk_size=chunk_size, client=cluster.client)
    _assert_identical(got, want)


@pytest.mark.parametrize("chunk_size", [1, 7, 25])
def test_layered_scenario_matches_local_run(cluster, chunk_size):
    model = _model("guarantee_insurance.toml")
    assert model.layer_names, "the scenario should have credit-enhancement layers"
    n_paths = 25
    got = run_paths_dask(model, SEED + 1, n_paths, chunk_size=chunk_size, client=cluster.client, progress=True)
    _assert_identical(got, run_paths(model, SEED + 1, n_paths))


def test_pooled_book_matches_local_run(cluster):
    # a pooled model travels to the workers with its pool sizes; 300 loans repeated 20 times
    # in 20 blocks form 300 pools of 20 (a copy of a loan keeps every input, not its id)
    book = stresslab.synthetic_portfolio(300, seed=1)
    frame = book.to_frame()
    frame = pd.concat([frame.assign(loan_id=frame.loan_id + f"-{k}") for k in range(20)], ignore_index=True)
    loans = stresslab.Portfolio.from_frame(frame, source="<20 copies>")
    model = pool_model(compile_model(loans, stresslab.load_scenario(ROOT / "scenarios" / "guarantee_insurance.toml")))
    assert model.n_loans == 300 and (model.pool_size == 20).all()
    want = run_paths(model, SEED, 16)  # compiled here first: the workers then load the kernel from numba's cache
    _assert_identical(run_paths_dask(model, SEED, 16, chunk_size=5, client=cluster.client), want)


def test_chunks_ran_on_both_workers(cluster, services):
    model, want = services
    from distributed import get_task_stream

    with get_task_stream(cluster.client) as stream:
        got = run_paths_dask(model, SEED, N_PATHS, chunk_size=1, client=cluster.client)
    _assert_identical(got, want)
    used = {t["worker"] for t in stream.data if str(t["key"]).startswith("stresslab-chunk")}
    assert used == cluster.workers()


def test_numba_threads_on_workers_is_one(cluster):
    """The workers' NUMBA_NUM_THREADS is 1 (their environment), seen from a task on each worker."""

    def probe():
        import numba

        return numba.config.NUMBA_NUM_THREADS, numba.get_num_threads(), os.environ.get("NUMBA_NUM_THREADS")

    seen = {
        address: cluster.client.submit(probe, workers=[address], allow_other_workers=False, pure=False).result(RUN_TIMEOUT)
        for address in cluster.workers()
    }
    assert len(seen) == 2
    assert all(value == (1, 1, "1") for value in seen.values()), seen
    threads = worker_threads(cluster.client)
    assert all(info["numba_num_threads"] == 1 and info["task_threads"] == 1 for info in threads.values()), threads


def test_warm_up_runs_on_every_worker(cluster, services):
    model, _ = services
    seconds = warm_up(cluster.client, model)
    assert set(seconds) == cluster.workers()
    assert all(s >= 0 for s in seconds.values())


def test_lost_worker_chunks_are_recomputed(cluster):
    """Kill a third worker (SIGKILL, nanny and all) while it runs chunks of a run, after
    other chunks have completed: the scheduler reschedules its chunks on the survivors.

    The run (200 tasks of a few ms each, about a second or two) is long enough to catch
    the third worker at work; if it still ends first, the run is repeated (at most 3
    times) with the next seed, so the kill always happens mid-run."""
    model = _model("services_downturn.toml", n_loans=3_000)
    n_paths, chunk_size = 4_000, 20
    client = cluster.client
    before = cluster.workers()
    third = _start_worker(cluster.scheduler_file, cluster.tmp, "worker-lost")
    try:
        client.wait_for_workers(3, timeout=START_TIMEOUT)
        [victim] = cluster.workers() - before
        warm_up(client, model)  # the victim's first chunk must not be its compile
        for seed in range(SEED, SEED + 3):
            killed, result, lost = _run_and_kill(client, model, seed, n_paths, chunk_size, victim, third)
            if killed:
                break
        assert killed, "every run ended before the third worker could be killed: make the job longer"
        _assert_identical(result, run_paths(model, seed, n_paths))
        assert lost, "no chunk was running on the killed worker"
        assert third.wait(timeout=30) is not None
        deadline = time.monotonic() + 30
        while victim in cluster.workers() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert cluster.workers() == before
    finally:
        _kill(third, grace=0)


def _run_and_kill(client, model, seed, n_paths, chunk_size, victim, victim_proc):
    """Run in a thread; SIGKILL the victim once it runs a chunk and some chunk is done.

    Returns (killed mid-run, the result, whether chunks were running on it when it died).
    """
    result: dict[str, object] = {}
    done_before, lost_before = _chunk_counts(client)  # cumulative over the module's runs

    def run() -> None:
        try:
            result["out"] = run_paths_dask(model, seed, n_paths, chunk_size=chunk_size, client=client)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            result["error"] = exc

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    killed = False
    deadline = time.monotonic() + RUN_TIMEOUT
    while runner.is_alive() and time.monotonic() < deadline:
        running = client.processing(workers=[victim]).get(victim, ())
        if any(str(k).startswith("stresslab-chunk") for k in running) and _chunk_counts(client)[0] > done_before:
            os.killpg(victim_proc.pid, signal.SIGKILL)
            killed = runner.is_alive()
            break
        time.sleep(0.002)
    runner.join(RUN_TIMEOUT)
    assert not runner.is_alive(), "the run did not finish"
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return killed, result["out"], _chunk_counts(client)[1] > lost_before


# --- a LocalCluster from connect() ---


def test_local_cluster_matches_local_run(services):
    model, want = services
    env_before = os.environ.get("NUMBA_NUM_THREADS")
    with connect(workers=2, dashboard_address=":0") as client:
        assert len(client.scheduler_info()["workers"]) == 2
        threads = worker_threads(client)
        assert [(i["nthreads"], i["numba_num_threads"], i["numba_threads"]) for i in threads.values()] == [(1, 1, 1)] * 2
        for chunk_size in (1, 7, None):
            _assert_identical(run_paths_dask(model, SEED, N_PATHS, chunk_size=chunk_size, client=client), want)
    assert os.environ.get("NUMBA_NUM_THREADS") == env_before, "connect() must restore the caller's environment"


def test_local_cluster_threads_when_main_script_imports_numba(tmp_path):
    """A spawned worker re-imports the caller's script, and numba with it, before the nanny's
    env applies; connect() must still give NUMBA_NUM_THREADS = threads_per_worker."""
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, os, sys
            import numba  # before any Dask worker starts: re-imported by every spawned worker
            import stresslab
            from stresslab.run.distributed import connect, worker_threads

            if __name__ == "__main__":
                with connect(workers=2, threads_per_worker=1, dashboard_address=":0") as client:
                    threads = worker_threads(client)
                print(json.dumps({"workers": threads, "parent_env": os.environ.get("NUMBA_NUM_THREADS")}))
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_NUM_THREADS"}
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["parent_env"] is None, "connect() must restore the caller's environment"
    assert len(report["workers"]) == 2
    for info in report["workers"].values():
        assert (info["numba_num_threads"], info["numba_threads"], info["task_threads"]) == (1, 1, 1), report


# --- without a cluster ---


def test_chunk_task_is_the_local_slice(services):
    model, want = services
    part = _chunk(model, SEED, 5, 12)
    _assert_identical(part, type(want)(*(a[5:12] for a in want)))


def test_bad_arguments_are_stresslab_errors(cluster, services):
    model, _ = services
    with pytest.raises(StresslabError, match="chunk_size"):
        run_paths_dask(model, SEED, N_PATHS, chunk_size=0, client=cluster.client)
    with pytest.raises(StresslabError, match="n_paths"):
        run_paths_dask(model, SEED, 0, client=cluster.client)
    with pytest.raises(StresslabError, match="CompiledModel"):
        run_paths_dask("model", SEED, N_PATHS, client=cluster.client)
    with pytest.raises(StresslabError, match="not both"):
        connect("tcp://127.0.0.1:1", workers=2)
    with pytest.raises(StresslabError, match="threads_per_worker"):
        connect(threads_per_worker=0)


def test_unreachable_scheduler_is_a_stresslab_error():
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        with pytest.raises(StresslabError, match="cannot connect to the Dask scheduler"):
            connect("tcp://127.0.0.1:9")


def test_missing_dask_says_how_to_install(monkeypatch, services):
    model, _ = services
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(StresslabError, match=r"pip install stresslab\[distributed\]"):
        run_paths_dask(model, SEED, N_PATHS, client=None)
    with pytest.raises(StresslabError, match=r"pip install stresslab\[distributed\]"):
        connect(workers=1)


def test_import_stresslab_does_not_import_dask():
    code = "import sys, stresslab, stresslab.run.distributed; print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


# --- helpers ---


def _chunk_counts(client) -> tuple[int, int]:
    """Chunk tasks that reached memory, and that were running on a worker that died (cumulative)."""

    def count(dask_scheduler) -> tuple[int, int]:
        prefix = dask_scheduler.task_prefixes.get("stresslab-chunk")
        return (0, 0) if prefix is None else (int(prefix.state_counts["memory"]), int(prefix.suspicious))

    return tuple(client.run_on_scheduler(count))
