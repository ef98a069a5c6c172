"""Overhead of Dask against local numba threads at equal cores.

Run: python benchmarks/bench_dask.py [--scenario scenarios/baseline.toml] [--loans 20000]
     [--paths 2000] [--workers 2] [--repeat 3] [--chunk-size N]

Local: ``runner.run_paths`` with ``--workers`` numba threads in this process. Dask: a
LocalCluster of ``--workers`` worker processes x 1 thread (NUMBA_NUM_THREADS=1 each),
``distributed.run_paths_dask``; the time includes scattering the model and gathering the
results. Same compiled model and seed; runs alternate, best of ``--repeat`` after a warm-up
on each side (kernels compiled or loaded from the cache, cluster started). The two
results are checked bitwise equal. Target: Dask overhead under 15%.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from timing import best_of

import stresslab
from stresslab.compile.model import compile_model
from stresslab.run.distributed import connect, run_paths_dask, warm_up, worker_threads
from stresslab.run.runner import run_paths

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path, default=ROOT / "scenarios" / "baseline.toml")
    parser.add_argument("--loans", type=int, default=20_000)
    parser.add_argument("--paths", type=int, default=2_000)
    parser.add_argument("--workers", type=int, default=2, help="cores: local numba threads = Dask workers x 1 thread")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=None, help="paths per Dask task (default: see run_paths_dask)")
    parser.add_argument("--single", action="store_true", help="also time one local thread (the scaling of both)")
    args = parser.parse_args()

    book = stresslab.synthetic_portfolio(args.loans, seed=0)
    scenario = stresslab.load_scenario(args.scenario)
    model = compile_model(book, scenario)
    steps = model.n_loans * model.n_months * args.paths
    seed = 7

    run_paths(model, seed, 4, threads=args.workers)  # compile or load the kernels here
    t0 = time.perf_counter()
    with connect(workers=args.workers, threads_per_worker=1, dashboard_address=":0") as client:
        started = time.perf_counter() - t0
        compile_s = warm_up(client, model)
        threads = worker_threads(client)
        print(f"{scenario.name}: {model.n_loans:,} loans x {args.paths:,} paths x {model.n_months} months "
              f"(best of {args.repeat}, after warm-up)")
        print(f"  cluster start {started:.1f} s; warm-up per worker (compile cache load): "
              + ", ".join(f"{s:.2f} s" for s in compile_s.values()))
        print("  workers: " + ", ".join(
            f"{i['nthreads']} thread x NUMBA_NUM_THREADS={i['numba_num_threads']}" for i in threads.values()))
        runs = {
            "local": lambda: run_paths(model, seed, args.paths, threads=args.workers),
            "dask": lambda: run_paths_dask(model, seed, args.paths, chunk_size=args.chunk_size, client=client),
        } | ({"single": lambda: run_paths(model, seed, args.paths, threads=1)} if args.single else {})
        best, results = best_of(args.repeat, runs)
        same = all(np.array_equal(a, b) for a, b in zip(results["local"], results["dask"], strict=True))
        assert same, "Dask and local results differ"
    labels = {
        "local": f"local, {args.workers} numba threads",
        "dask": f"dask, {args.workers} workers x 1 thread",
        "single": "local, 1 numba thread",
    }
    for name, sec in best.items():
        scaling = f"  ({best['single'] / sec:.2f}x one thread)" if args.single else ""
        print(f"  {labels[name]:34}{sec:8.3f} s  {steps / sec / 1e6:8.0f} M loan-months/s{scaling}")
    print("  results bitwise identical: yes")
    print(f"  Dask overhead: {100 * (best['dask'] / best['local'] - 1):.1f}% (target < 15%)")


if __name__ == "__main__":
    main()
