"""simulate(): chunks of paths through the kernel, assembled into a labelled Dataset."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version

import numba
import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from stresslab._kernels.paths import STATES, Outputs, simulate_paths
from stresslab.errors import StresslabError
from stresslab.model import CompiledModel, compile_model
from stresslab.portfolio import Portfolio
from stresslab.scenario import Scenario

__all__ = ["simulate", "default_chunk_size"]

_STEPS_PER_CHUNK = 200_000_000  # loan-months per chunk: about a second of kernel time
_MAX_SEED = 2**63 - 1


def simulate(
    portfolio: Portfolio,
    scenario: Scenario,
    n_paths: int,
    seed: int,
    chunk_size: int | None = None,
    threads: int | None = None,
    progress: bool | None = None,
) -> xr.Dataset:
    """Run a Monte Carlo stress test of a loan book under a scenario.

    Parameters
    ----------
    portfolio : Portfolio
        The loan book (see :func:`stresslab.load_portfolio`).
    scenario : Scenario
        The scenario (see :func:`stresslab.load_scenario`).
    n_paths : int
        Number of Monte Carlo paths (>= 1).
    seed : int
        Seed in [0, 2**63). Each random number is a pure function of (seed, path, loan,
        month, purpose), so the result does not depend on ``chunk_size`` or ``threads``.
    chunk_size : int, optional
        Paths per kernel call; bounds the working memory and paces the progress bar.
        Default: about 2e8 loan-months per chunk.
    threads : int, optional
        Numba threads (default: all numba may use).
    progress : bool, optional
        Show a progress bar with an ETA on stderr; default: when stderr is a terminal and
        the run has more than one chunk.

    Returns
    -------
    xarray.Dataset
        Dims ``path``, ``month`` (1..T), ``state`` (C, M1, M2, M3, D, P), ``industry``,
        ``region`` and, when the scenario has credit-enhancement layers, ``layer``.
        Variables, in CNY unless said: ``loss_gross(path, month)`` (booked in the
        default month), ``loss_net(path, month)`` (the lender's retained loss),
        ``interest_income``, ``recoveries`` (cash in the month it arrives),
        ``balance_by_state(path, month, state)`` (exposure at month end; D: cumulative
        defaulted EAD), ``count_by_state(path, month, state)``, ``loss_by_cell(path,
        industry, region)``, ``loss_by_industry``, ``loss_by_region`` (horizon totals),
        ``weight(path)``; with layers also ``layer_paid``, ``layer_cash``,
        ``layer_capacity_left``, ``layer_fee`` (path, month, layer),
        ``layer_failed`` and ``layer_failure_month`` (path, layer). Attrs record the
        scenario, the book's digest, seed, path count and package versions.

    Raises
    ------
    StresslabError
        On invalid arguments; ScenarioError / PortfolioError when book and scenario
        do not fit together.
    """
    n_paths = _check_int("n_paths", n_paths, 1, None)
    seed = _check_int("seed", seed, 0, _MAX_SEED)
    model = compile_model(portfolio, scenario)
    if chunk_size is None:
        chunk_size = default_chunk_size(model, n_paths, threads)
    chunk_size = _check_int("chunk_size", chunk_size, 1, None)
    threads = _check_int("threads", threads, 1, numba.config.NUMBA_NUM_THREADS) if threads is not None else None

    out = _allocate(model, n_paths)
    n_chunks = math.ceil(n_paths / chunk_size)
    show = progress if progress is not None else (n_chunks > 1 and sys.stderr.isatty())
    with _numba_threads(threads), tqdm(
        total=n_paths, unit="path", disable=not show, desc=scenario.name, leave=False
    ) as bar:
        for start in range(0, n_paths, chunk_size):
            stop = min(start + chunk_size, n_paths)
            chunk = Outputs(*(a[start:stop] for a in out))
            simulate_paths(
                start, np.uint64(seed), model.loans, model.tables, model.params, model.policy.arrays, model.layers, chunk
            )
            bar.update(stop - start)
    return _dataset(out, model, portfolio, scenario, seed, n_paths)


def default_chunk_size(model: CompiledModel, n_paths: int, threads: int | None = None) -> int:
    """Paths per chunk: about 2e8 loan-months, at least 4 paths per thread."""
    steps = max(model.n_loans * model.n_months, 1)
    n_threads = threads or numba.get_num_threads()
    return int(min(n_paths, max(_STEPS_PER_CHUNK // steps, 4 * n_threads)))


def _check_int(name: str, value: object, lo: int, hi: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise StresslabError(f"{name} must be an integer; got {value!r}")
    if value < lo or (hi is not None and value > hi):
        allowed = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise StresslabError(f"{name} must be an integer {allowed}; got {value}")
    return int(value)


@contextmanager
def _numba_threads(threads: int | None) -> Iterator[None]:
    if threads is None:
        yield
        return
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def _allocate(model: CompiledModel, n_paths: int) -> Outputs:
    t, n_states, n_layers = model.n_months, len(STATES), len(model.layer_names)
    return Outputs(
        loss_gross=np.zeros((n_paths, t)),
        loss_net=np.zeros((n_paths, t)),
        interest_income=np.zeros((n_paths, t)),
        recoveries=np.zeros((n_paths, t)),
        balance_by_state=np.zeros((n_paths, t, n_states)),
        count_by_state=np.zeros((n_paths, t, n_states), dtype=np.int64),
        loss_by_cell=np.zeros((n_paths, len(model.industries), len(model.regions))),
        layer_paid=np.zeros((n_paths, t, n_layers)),
        layer_cash=np.zeros((n_paths, t, n_layers)),
        layer_capacity_left=np.zeros((n_paths, t, n_layers)),
        layer_fee=np.zeros((n_paths, t, n_layers)),
        layer_failure_month=np.zeros((n_paths, n_layers), dtype=np.int64),
        subsidy_cost=np.zeros((n_paths, t)),
        deferred_count=np.zeros((n_paths, t), dtype=np.int64),
    )


_DESCRIPTIONS = {
    "loss_gross": ("gross credit loss booked in the default month (EAD minus discounted recoveries)", "CNY"),
    "loss_net": ("loss retained by the lender after credit enhancements", "CNY"),
    "interest_income": ("interest received in cash", "CNY"),
    "recoveries": ("recovery cash received in the month (pledges and collection, net of cost)", "CNY"),
    "balance_by_state": ("exposure at month end by delinquency state (D: cumulative defaulted EAD)", "CNY"),
    "count_by_state": ("number of loans at month end by delinquency state", "1"),
    "loss_by_cell": ("gross loss over the horizon by industry and region", "CNY"),
    "loss_by_industry": ("gross loss over the horizon by industry", "CNY"),
    "loss_by_region": ("gross loss over the horizon by region", "CNY"),
    "layer_paid": ("loss borne by the layer, booked in the default month", "CNY"),
    "layer_cash": ("layer payout cash in the month it is paid (default month + lag)", "CNY"),
    "layer_capacity_left": ("aggregate capacity left at month end (inf: unlimited)", "CNY"),
    "layer_fee": ("fee income of the layer's provider on the covered balance", "CNY"),
    "layer_failure_month": ("month the layer's provider failed (0: no failure)", "1"),
    "subsidy_cost": ("interest paid by the state under the interest subsidy", "CNY"),
    "deferred_count": ("number of loans in a deferral at month end", "1"),
}


def package_versions() -> str:
    """Versions of stresslab and the libraries that shape its numbers."""
    names = ("stresslab", "numpy", "numba", "llvmlite", "scipy", "xarray")
    return "; ".join(f"{name} {version(name)}" for name in names) + f"; python {sys.version.split()[0]}"


def _dataset(
    out: Outputs, model: CompiledModel, portfolio: Portfolio, scenario: Scenario, seed: int, n_paths: int
) -> xr.Dataset:
    dims = {
        "loss_gross": ("path", "month"),
        "loss_net": ("path", "month"),
        "interest_income": ("path", "month"),
        "recoveries": ("path", "month"),
        "balance_by_state": ("path", "month", "state"),
        "count_by_state": ("path", "month", "state"),
        "loss_by_cell": ("path", "industry", "region"),
        "layer_paid": ("path", "month", "layer"),
        "layer_cash": ("path", "month", "layer"),
        "layer_capacity_left": ("path", "month", "layer"),
        "layer_fee": ("path", "month", "layer"),
        "layer_failure_month": ("path", "layer"),
        "subsidy_cost": ("path", "month"),
        "deferred_count": ("path", "month"),
    }
    data = {}
    for name, value in out._asdict().items():
        if "layer" in dims[name] and not model.layer_names:
            continue
        long_name, units = _DESCRIPTIONS[name]
        data[name] = xr.Variable(dims[name], value, {"long_name": long_name, "units": units})
    data["weight"] = xr.Variable(
        ("path",), np.ones(n_paths), {"long_name": "likelihood ratio of the path (1 without importance sampling)", "units": "1"}
    )
    for name, dim, axis in (("loss_by_industry", "industry", 2), ("loss_by_region", "region", 1)):
        long_name, units = _DESCRIPTIONS[name]
        data[name] = xr.Variable(("path", dim), out.loss_by_cell.sum(axis=axis), {"long_name": long_name, "units": units})
    if model.layer_names:
        data["layer_failed"] = xr.Variable(
            ("path", "layer"),
            (out.layer_failure_month > 0).astype(np.int8),
            {"long_name": "1 if the layer's provider failed within the horizon", "units": "1"},
        )
    coords = {
        "path": np.arange(n_paths, dtype=np.int64),
        "month": np.arange(1, model.n_months + 1, dtype=np.int64),
        "state": np.array(STATES),
        "industry": np.array(model.industries),
        "region": np.array(model.regions),
    }
    if model.layer_names:
        coords["layer"] = np.array(model.layer_names)
        coords["layer_capacity"] = ("layer", model.layers.capacity, {"long_name": "aggregate capacity per path (inf: unlimited)", "units": "CNY"})
        coords["layer_kind"] = ("layer", np.array([s.kind for s in scenario.layers]))
    attrs = {
        "title": f"stresslab run: scenario {scenario.name}",
        "scenario_name": scenario.name,
        "scenario": scenario.to_json(),
        "scenario_text": scenario.text,
        "scenario_source": scenario.source,
        "portfolio_digest": portfolio.digest,
        "portfolio_source": portfolio.source,
        "n_loans": portfolio.n_loans,
        "seed": seed,
        "n_paths": n_paths,
        "versions": package_versions(),
        "capped_borrowers": model.policy.capped_borrowers,
        "gap_volume": model.policy.gap_volume,
        "currency": "CNY",
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)
