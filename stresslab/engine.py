"""simulate(): chunks of paths through the kernel, assembled into a labelled Dataset."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from importlib.metadata import version

import numpy as np
import xarray as xr

from stresslab._kernels.paths import STATES, Outputs
from stresslab._rng import STREAMS_VERSION
from stresslab.errors import InternalError, StresslabError
from stresslab.importance import DEFAULT_DEFENSIVE_SHARE, tune_importance_sampling
from stresslab.model import CompiledModel, compile_model
from stresslab.pooling import pool_model
from stresslab.portfolio import Portfolio
from stresslab.runner import Checkpoint, check_int, run_paths
from stresslab.scenario import Scenario

__all__ = ["simulate", "package_versions"]

_MAX_SEED = 2**63 - 1


def simulate(
    portfolio: Portfolio,
    scenario: Scenario,
    n_paths: int,
    seed: int,
    chunk_size: int | None = None,
    threads: int | None = None,
    progress: bool | None = None,
    tail: str | None = None,
    target: float = 0.999,
    pilot_paths: int | None = None,
    defensive_share: float = DEFAULT_DEFENSIVE_SHARE,
    checkpoint: str | os.PathLike[str] | None = None,
    resume: bool = False,
    track_loans: Sequence[str] = (),
    scheduler: object | None = None,
    workers: int | None = None,
    pooled: bool = False,
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
    tail : {None, "is"}, optional
        ``"is"``: importance sampling of the loss tail. The mean of the factor innovations
        (and, for the t copula, the scale of the mixing chi-square) is shifted toward
        losses beyond the ``target`` quantile, tuned by cross-entropy pilot runs on their
        own draws; ``weight`` holds each path's likelihood ratio and every metric of
        :func:`stresslab.summary` uses it (see docs/importance_sampling.md).
    target : float
        Quantile level the tail sampling aims at (default 0.999).
    pilot_paths : int, optional
        Paths per pilot run of the tuning (default: see
        :func:`stresslab.importance.tune_importance_sampling`).
    defensive_share : float
        With ``tail="is"``: share a of the paths drawn from the nominal law (a defensive
        mixture), in (0, 1); every weight is then at most 1 / a (default 0.1: 10).
    checkpoint : path, optional
        Directory where each finished chunk is saved as it completes (atomic writes).
    scheduler : distributed.Client or str, optional
        Run the chunks of paths as tasks on a Dask cluster: a connected Client, or the
        address (``tcp://host:8786``) or scheduler file of a running scheduler. Results are
        bitwise those of a local run.
    workers : int, optional
        Run on a new local Dask cluster of this many worker processes (1 thread each).
    track_loans : sequence of str
        Loan ids whose gross horizon loss is kept per path in ``loss_by_loan(path, loan)``
        (for loan-level ES contributions; memory grows with paths x tracked loans).
    pooled : bool
        Group loans identical in every model input into pools and draw each pool's
        transitions as binomial counts (:func:`stresslab.pooling.pool_model`): the cost is
        per pool, not per loan, for books of millions of standard loans. Counts by state
        have exactly the loan-level law; a state's loans share its average arrears. Draws
        differ from the loan-level run (same law, other random numbers). Not with policy
        levers that change loan terms, nor with ``track_loans``.
    resume : bool
        Continue the run saved in ``checkpoint``: only missing chunks are simulated and
        the result is bitwise that of an uninterrupted run. A checkpoint of another
        scenario, book, seed, path count, sampling or version is refused.

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
        ``weight(path)``, ``subsidy_cost`` and ``deferred_count`` (path, month),
        ``capped_borrowers`` and ``gap_volume`` (the loan cap's effect on the book); with
        layers also ``layer_paid``, ``layer_cash``, ``layer_capacity_left``,
        ``layer_fee`` (path, month, layer), ``layer_failed`` and
        ``layer_failure_month`` (path, layer); with ``track_loans``, ``loss_by_loan(path,
        loan)``. Attrs record the scenario, the book's digest, seed, path count, the
        sampling (plain or importance) and package versions.

    Raises
    ------
    StresslabError
        On invalid arguments; ScenarioError / PortfolioError when book and scenario
        do not fit together.
    InternalError
        If a result holds a NaN or an infinity (a defect: valid inputs give finite results).
    """
    n_paths = check_int("n_paths", n_paths, 1, None)
    seed = check_int("seed", seed, 0, _MAX_SEED)
    model = compile_model(portfolio, scenario, track_loans)
    if pooled:
        model = pool_model(model, where=f"{scenario.source} on {portfolio.source}: pooled mode")
    if tail is not None:
        if tail != "is":
            raise StresslabError(f"tail must be None or 'is' (importance sampling); got {tail!r}")
        if not 0.0 < defensive_share < 1.0:
            raise StresslabError(f"defensive_share must be strictly between 0 and 1; got {defensive_share}")
        model = tune_importance_sampling(
            model, seed, target, pilot_paths=pilot_paths, threads=threads, defensive_share=float(defensive_share)
        )
    store = None
    if checkpoint is not None and (scheduler is not None or workers is not None):
        raise StresslabError("checkpoints are written by local runs; run without scheduler/workers to use them")
    if checkpoint is not None:
        identity = {
            "scenario": scenario.to_json(),
            "portfolio_digest": portfolio.digest,
            "seed": seed,
            "n_paths": n_paths,
            "tail": tail,
            "target": target if tail else None,
            "pilot_paths": pilot_paths if tail else None,
            "defensive_share": defensive_share if tail else None,
            "random_streams": STREAMS_VERSION,
            "track_loans": list(track_loans),
            "pooled": bool(pooled),
            "stresslab": version("stresslab"),
        }
        store = Checkpoint(checkpoint, identity, resume=resume)
    elif resume:
        raise StresslabError("resume needs the checkpoint directory of the run to continue")
    if scheduler is not None or workers is not None:
        out = _run_on_dask(model, seed, n_paths, chunk_size, scheduler, workers, bool(progress))
    else:
        out = run_paths(
            model, seed, n_paths, chunk_size=chunk_size, threads=threads, progress=progress, desc=scenario.name, checkpoint=store
        )
    _check_finite(out, portfolio, scenario)
    return _dataset(out, model, portfolio, scenario, seed, n_paths)


_DESCRIPTIONS = {
    "loss_gross": ("gross credit loss booked in the default month (EAD minus discounted recoveries)", "CNY"),
    "loss_net": ("loss retained by the lender after credit enhancements", "CNY"),
    "interest_income": ("interest received in cash", "CNY"),
    "recoveries": ("recovery cash received in the month (pledges and collection, net of cost)", "CNY"),
    "balance_by_state": ("exposure at month end by delinquency state (D: cumulative defaulted EAD)", "CNY"),
    "count_by_state": ("number of loans at month end by delinquency state", "1"),
    "loss_by_cell": ("gross loss over the horizon by industry and region", "CNY"),
    "loss_by_loan": ("gross loss over the horizon of each tracked loan", "CNY"),
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


_INTERNAL = ("weight", "eta", "chi2")  # weight is added with its own attributes


def _run_on_dask(
    model: CompiledModel, seed: int, n_paths: int, chunk_size: int | None, scheduler: object | None, workers: int | None, progress: bool
) -> Outputs:
    from stresslab.distributed import connect, run_paths_dask  # dask is optional

    if scheduler is not None and not isinstance(scheduler, str):
        return run_paths_dask(model, seed, n_paths, chunk_size=chunk_size, client=scheduler, progress=progress)
    if workers is not None:
        workers = check_int("workers", workers, 1, None)
    with connect(scheduler=scheduler, workers=workers) as client:
        return run_paths_dask(model, seed, n_paths, chunk_size=chunk_size, client=client, progress=progress)


def _check_finite(out: Outputs, portfolio: Portfolio, scenario: Scenario) -> None:
    """No NaN or inf may reach a result (capacity left is inf for unlimited layers by design)."""
    for name, value in out._asdict().items():
        if name == "layer_capacity_left" or value.dtype.kind != "f":
            continue
        bad = ~np.isfinite(value)
        if bad.any():
            where = tuple(int(i[0]) for i in np.nonzero(bad))
            raise InternalError(
                f"non-finite {name} at (path, ...) index {where} in scenario {scenario.source} on book "
                f"{portfolio.source} (digest {portfolio.digest[:12]}): valid inputs must give finite results"
            )


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
        "loss_by_loan": ("path", "loan"),
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
        if name in _INTERNAL or ("layer" in dims[name] and not model.layer_names):
            continue
        if name == "loss_by_loan" and not model.tracked_loans:
            continue
        long_name, units = _DESCRIPTIONS[name]
        data[name] = xr.Variable(dims[name], value, {"long_name": long_name, "units": units})
    data["weight"] = xr.Variable(
        ("path",), out.weight, {"long_name": "likelihood ratio of the path (1 without importance sampling)", "units": "1"}
    )
    for name, dim, axis in (("loss_by_industry", "industry", 2), ("loss_by_region", "region", 1)):
        long_name, units = _DESCRIPTIONS[name]
        data[name] = xr.Variable(("path", dim), out.loss_by_cell.sum(axis=axis), {"long_name": long_name, "units": units})
    data["capped_borrowers"] = xr.Variable((), model.policy.capped_borrowers, {"long_name": "borrowers above the loan cap", "units": "1"})
    data["gap_volume"] = xr.Variable((), model.policy.gap_volume, {"long_name": "exposure above the loan caps (refinancing gap)", "units": "CNY"})
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
    if model.tracked_loans:
        coords["loan"] = np.array(model.tracked_loans)
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
        "currency": "CNY",
        "sampling": "importance" if model.params.defensive_share < 1.0 else "plain",
        "factor_shift": json.dumps(model.tables.factor_shift.tolist()),
        "chi2_shape": 0.5 * model.params.dof + model.params.chi2_shape_shift if model.params.t_copula else 0.0,
        "defensive_share": model.params.defensive_share,
        "weight_bound": 1.0 / model.params.defensive_share,
        "random_streams": STREAMS_VERSION,
        "pooled": int(model.pool_size is not None),
        "n_pools": model.n_loans if model.pool_size is not None else 0,
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)
