"""simulate(): chunks of paths through the kernel, assembled into a labelled Dataset."""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib.metadata import version

import numpy as np
import xarray as xr

from stresslab._kernels.arrays import Outputs
from stresslab._rng import STREAMS_VERSION
from stresslab.book.portfolio import Portfolio
from stresslab.compile.model import CompiledModel, compile_model
from stresslab.compile.pooling import pool_model
from stresslab.compile.provisions import with_allowance
from stresslab.errors import StresslabError
from stresslab.run.importance import DEFAULT_DEFENSIVE_SHARE, tune_importance_sampling, tune_toward_event
from stresslab.run.runner import Checkpoint, announce_compiling, check_int, run_paths
from stresslab.run.schema import build_dataset, check_finite
from stresslab.scenario.scenario import Scenario

__all__ = ["simulate"]

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
    target_loss: float | None = None,
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
        (and, for the t copula, the shape of the mixing chi-square) is shifted toward
        losses beyond the ``target`` quantile (or ``target_loss``), tuned by cross-entropy pilot runs on their
        own draws; ``weight`` holds each path's likelihood ratio and every metric of
        :func:`stresslab.summary` uses it (see docs/importance_sampling.md).
    target : float
        Quantile level the tail sampling aims at (default 0.999).
    target_loss : float, optional
        With ``tail="is"``: aim at the event "horizon gross loss >= target_loss" (a loss
        level in CNY) instead of the ``target`` quantile, e.g. to tune at the level whose
        probability is asked (:func:`stresslab.run.importance.tune_toward_event`).
    pilot_paths : int, optional
        Paths per pilot run of the tuning (default: see
        :func:`stresslab.run.importance.tune_importance_sampling`).
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
        transitions as binomial counts (:func:`stresslab.compile.pooling.pool_model`): the cost is
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
    if progress is not False:
        announce_compiling(pooled)
    model = compile_model(portfolio, scenario, track_loans)
    if scenario.ifrs9.allowance != "off":
        if pooled:
            raise StresslabError(f"{scenario.source}: [ifrs9] allowance = '{scenario.ifrs9.allowance}' needs a "
                                 "loan-level run (a pooled book keeps no loan's state); run without pooled mode or "
                                 "set allowance = 'off'")
        model = with_allowance(model, portfolio, scenario)
    if pooled:
        model = pool_model(model, where=f"{scenario.source} on {portfolio.source}: pooled mode")
    if tail is not None:
        if tail != "is":
            raise StresslabError(f"tail must be None or 'is' (importance sampling); got {tail!r}")
        if not 0.0 < defensive_share < 1.0:
            raise StresslabError(f"defensive_share must be strictly between 0 and 1; got {defensive_share}")
        if target_loss is None:
            model = tune_importance_sampling(
                model, seed, target, pilot_paths=pilot_paths, threads=threads, defensive_share=float(defensive_share)
            )
        else:
            model, _ = tune_toward_event(model, seed, _horizon_loss, float(target_loss), pilot_paths=pilot_paths,
                                         threads=threads, defensive_share=float(defensive_share))
    elif target_loss is not None:
        raise StresslabError("target_loss is the loss level of importance sampling: give it with tail='is'")
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
            "target_loss": target_loss if tail else None,
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
    check_finite(out, portfolio, scenario)
    return build_dataset(out, model, portfolio, scenario, seed, n_paths)


def _horizon_loss(out: Outputs) -> np.ndarray:
    """Gross loss of each path over the horizon, ndarray of shape (n_paths,): the score of ``target_loss``."""
    return out.loss_gross.sum(axis=1)


_INTERNAL = ("weight", "eta", "chi2")  # weight is added with its own attributes


def _run_on_dask(
    model: CompiledModel, seed: int, n_paths: int, chunk_size: int | None, scheduler: object | None, workers: int | None, progress: bool
) -> Outputs:
    from stresslab.run.distributed import connect, run_paths_dask  # dask is optional

    if scheduler is not None and not isinstance(scheduler, str):
        return run_paths_dask(model, seed, n_paths, chunk_size=chunk_size, client=scheduler, progress=progress)
    if workers is not None:
        workers = check_int("workers", workers, 1, None)
    with connect(scheduler=scheduler, workers=workers) as client:
        return run_paths_dask(model, seed, n_paths, chunk_size=chunk_size, client=client, progress=progress)


