"""Where a one-period run's time goes on small books: a per-path cost table.

Run: python benchmarks/bench_one_period_costs.py [--paths 200000] [--threads 1]

The book is bench_peers.py's (one factor, Gaussian copula, PD U(0.5%, 5%), LGD 45%).
Measured, best of 3 after a warm-up:

- the stages of ``stresslab.simulate`` (compile_model, zeroed outputs, the kernel,
  the finiteness check, the Dataset) at 200 names;
- the kernel alone at 1 to 20,000 names, fitted as a + b n per path (a: the per-path
  fixed cost, b: the cost of a loan);
- a probe kernel that runs only the path set-up (factor draws, mixing, stream keys),
  the zeroing of the path's bookkeeping in its block's scratch and the path finish
  (settlement with no defaults),
  parallel over paths like the kernel: the part of a that does not depend on loans;
- path_finish's calls alone on an empty event list (the providers' failures, the
  allocation through layers, the settlement).

docs/performance.md has the table and the changes it suggests.

Measurement only: the kernels are imported, not changed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numba
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_peers import make_book, stresslab_inputs
from timing import best_of

from stresslab._kernels.allocation import allocate_losses
from stresslab._kernels.arrays import LayerArrays, LoanArrays, Outputs, Params, Tables
from stresslab._kernels.settlement import (
    _failure_months,
    _settle_defaults,
    drawn_factors,
    factor_index,
    path_blocks,
    path_buffers,
    path_finish,
    path_scratch,
    path_start,
)
from stresslab._numba import njit, prange
from stresslab.compile.model import compile_model
from stresslab.run.runner import allocate, run_chunk
from stresslab.run.schema import build_dataset, check_finite
from stresslab.run.simulate import simulate

SEED = 1


#: The probe's cumulative parts of a path's fixed work, in the kernel's order.
PARTS = (
    "the prange loop over blocks of paths, with their scratch (path_scratch)",
    "+ factor draws and the index table (factor_index)",
    "+ mixing, weight and stream keys (the rest of path_start)",
    "+ zeroing the path's bookkeeping (path_buffers)",
    "+ path finish with no default (path_finish)",
)


@njit(parallel=True)
def _path_overhead(
    parts: int,
    seed: np.uint64,
    loans: LoanArrays,
    tables: Tables,
    params: Params,
    layers: LayerArrays,
    out: Outputs,
) -> None:
    """The kernel's per-path work without its loan loop, its first ``parts`` of PARTS."""
    n_paths = out.loss_gross.shape[0]
    drawn = drawn_factors(loans, tables, out.eta.shape[1] > 0)
    n_blocks = path_blocks(n_paths)
    for b in prange(n_blocks):
        scratch = path_scratch(out.loss_gross.shape[1], loans.key.shape[0], tables, layers, params, drawn)
        for row in range(b * n_paths // n_blocks, (b + 1) * n_paths // n_blocks):
            out.weight[row] = 1.0 + scratch.eta.size
            if parts == 1:
                factor_index(row, seed, tables, params, out.eta[row], scratch)
                out.weight[row] += scratch.x[0, 0, 0] + scratch.global_factor[0]
            elif parts >= 2:
                x, global_factor, inv_sqrt_w, month_key = path_start(row, row, seed, tables, params, out, scratch)
                out.weight[row] += x[0, 0, 0] + global_factor[0] + inv_sqrt_w + (month_key[0] & np.uint64(1))
                if parts >= 3:
                    absorbed_count, absorbed_balance, events, cover = path_buffers(scratch)
                    events[3][0] = x[0, 0, 0]
                    out.weight[row] += absorbed_count[0, 0] + absorbed_balance[0] + events[3][0] + cover.size
                    if parts >= 4:
                        path_finish(row, row, seed, global_factor, absorbed_count, absorbed_balance, events, 0, cover,
                                    loans, tables, params, layers, out)


#: The parts of path_finish with no default event and no layer, cumulative.
FINISH_PARTS = (
    "_failure_months (providers' failures; no layer here)",
    "allocate_losses (the layers' allocation of no event)",
    "_settle_defaults instead (allocate_losses + booking of no event)",
)


@njit(parallel=True)
def _finish_overhead(
    part: int,
    seed: np.uint64,
    loans: LoanArrays,
    tables: Tables,
    params: Params,
    layers: LayerArrays,
    out: Outputs,
) -> None:
    """path_finish's calls on an empty event list: none (0) or FINISH_PARTS[part - 1]."""
    for row in prange(out.loss_gross.shape[0]):
        global_factor = np.zeros(1) + row
        acc = global_factor[0]
        if part >= 1:
            failed = _failure_months(row, seed, global_factor, layers, tables, params)
            acc += failed.size
            no32, no64, nof = np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0)
            if part == 2:
                paid = np.zeros((0, 0))
                left = out.layer_capacity_left[row]
                acc += allocate_losses(
                    no32, no32, no64, nof, nof, layers, failed, 1, paid, left
                ).size
            elif part == 3:
                cover = np.zeros((1, 0))
                _settle_defaults(
                    row, no32, no32, no64, nof, nof, failed, cover, loans, layers, out
                )
        out.weight[row] = acc


def _best(run: Callable[[], object], repeat: int = 3) -> float:
    """Shortest of ``repeat`` timings of ``run`` after one warm-up call."""
    run()
    return best_of(repeat, {"run": run})[0]["run"]


def stages(n_names: int, n_paths: int) -> dict[str, float]:
    """Seconds of each stage of ``stresslab.simulate`` on the book with ``n_names`` names."""
    portfolio, scenario = stresslab_inputs(make_book(n_names))
    model = compile_model(portfolio, scenario)
    out = allocate(model, n_paths)

    def kernel() -> None:
        for a in out:
            a[...] = 0
        run_chunk(model, SEED, 0, out)

    return {
        "compile_model": _best(lambda: compile_model(portfolio, scenario)),
        "zeroed outputs": _best(lambda: allocate(model, n_paths)),
        "kernel (zeroing the outputs again included)": _best(kernel),
        "check_finite": _best(lambda: check_finite(out, portfolio, scenario)),
        "build_dataset": _best(
            lambda: build_dataset(out, model, portfolio, scenario, SEED, n_paths)
        ),
        "simulate, whole": _best(
            lambda: simulate(
                portfolio, scenario, n_paths=n_paths, seed=SEED, progress=False
            )
        ),
    }


def kernel_per_path(n_names: int, n_paths: int) -> tuple[float, list[float]]:
    """Seconds per path of the kernel, and of the probe with 0..len(PARTS)-1 parts."""
    portfolio, scenario = stresslab_inputs(make_book(n_names))
    model = compile_model(portfolio, scenario)
    out = allocate(model, n_paths)
    kernel = _best(lambda: run_chunk(model, SEED, 0, out))
    args = (np.uint64(SEED), model.loans, model.tables, model.params, model.layers, out)
    probe = []
    for parts in range(len(PARTS)):
        probe.append(_best(lambda p=parts: _path_overhead(p, *args)) / n_paths)
    return kernel / n_paths, probe


def finish_costs(n_names: int, n_paths: int) -> list[float]:
    """Seconds per path of _finish_overhead with parts 0..len(FINISH_PARTS)."""
    portfolio, scenario = stresslab_inputs(make_book(n_names))
    model = compile_model(portfolio, scenario)
    out = allocate(model, n_paths)
    args = (np.uint64(SEED), model.loans, model.tables, model.params, model.layers, out)
    return [
        _best(lambda p=part: _finish_overhead(p, *args)) / n_paths
        for part in range(len(FINISH_PARTS) + 1)
    ]


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    """Print the stage table at 200 names and the kernel's per-path cost by book size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=int, default=200_000)
    parser.add_argument("--threads", type=int, default=numba.get_num_threads())
    args = parser.parse_args()
    numba.set_num_threads(args.threads)
    print(f"threads {args.threads}; load average {_load()}")
    print(f"\nstages of simulate, 200 names x {args.paths:,} paths (best of 3):")
    for name, seconds in stages(200, args.paths).items():
        print(
            f"  {name:<45} {seconds:8.3f} s {1e9 * seconds / args.paths:8.0f} ns/path"
        )
    print("\nkernel per path by book size (ns):")
    sizes, kernels, probes = (1, 200, 2_000, 20_000), [], []
    for n_names in sizes:
        n_paths = max(1_000, min(args.paths, int(4e7 / n_names)))
        kernel, probe = kernel_per_path(n_names, n_paths)
        kernels.append(kernel)
        probes.append(probe)
        print(
            f"  {n_names:>6} names x {n_paths:>7,} paths: kernel {1e9 * kernel:9.0f}, "
            f"without the loan loop {1e9 * probe[-1]:6.0f}, "
            f"per loan-path {1e9 * kernel / n_names:6.2f}"
        )
    b, a = np.polyfit(np.array(sizes, dtype=float), np.array(kernels), 1)
    print(
        f"  fit a + b n: a = {1e9 * a:.0f} ns per path, b = {1e9 * b:.2f} ns per loan-path"
    )
    print("\nthe probe's parts at 200 names (ns per path, each part's increment):")
    at_200 = probes[sizes.index(200)]
    for k, name in enumerate(PARTS):
        print(f"  {name:<60} {1e9 * (at_200[k] - (at_200[k - 1] if k else 0.0)):6.0f}")
    finish = finish_costs(200, args.paths)
    print(
        "\npath_finish's calls at 200 names (ns per path; the last two over the first):"
    )
    for k, name in enumerate(FINISH_PARTS):
        over = finish[0] if k == 0 else finish[1]
        print(f"  {name:<66} {1e9 * (finish[k + 1] - over):6.0f}")
    print(f"load average at end {_load()}")


if __name__ == "__main__":
    main()
