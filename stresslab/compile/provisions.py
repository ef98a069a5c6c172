"""IFRS 9 expected credit losses of a book, from the model's own delinquency chain.

Stages (docs/ifrs9.md): S1 = C and M1 (at most 30 days past due), S2 = M2 and M3 (31-90
days past due, IFRS 9 §5.5.11), S3 = D (credit-impaired, B5.5.37), with an optional
relative-PD criterion that moves a loan to S2 when its 12-month PD is above a multiple of
its PD at origination. A loan's 12-month and lifetime ECL are the discounted expected
losses of its defaults within 12 months and within its lifetime window (remaining term
plus :data:`WORKOUT_MONTHS` for arrears to resolve), from ``_kernels.ecl``: the chain of
MODEL.md §3 from the loan's state, integrated over the scenario's factor paths with the
nodes of the PD calibration. The allowance is the 12-month ECL in S1 and the lifetime
ECL in S2.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import xarray as xr
from scipy.special import gammaln

from stresslab._kernels.arrays import AllowanceArrays
from stresslab._kernels.ecl import (
    ECL_LIFETIME,
    ECL_WINDOW,
    PD_LIFETIME,
    PD_WINDOW,
    allowance_tables,
    loan_expected_losses,
)
from stresslab.book.portfolio import Portfolio
from stresslab.compile.calibration import _nodes
from stresslab.compile.model import CompiledModel, compile_model
from stresslab.errors import ScenarioError, StresslabWarning
from stresslab.scenario.scenario import Scenario
from stresslab.vocabulary import LIVE_STATES, STAGE_OF_STATE, STAGES

__all__ = [
    "ECL_WINDOW_MONTHS",
    "INDEX_NODES",
    "SOBOL_LOG2",
    "T_MIXING_NODES",
    "T_SOBOL_LOG2",
    "UNMODELLED_LEVERS",
    "WORKOUT_MONTHS",
    "expected_credit_loss",
    "rouwenhorst",
    "with_allowance",
    "year_ends",
]

WORKOUT_MONTHS = 24  # months after maturity a lifetime ECL follows the arrears of a loan
ECL_WINDOW_MONTHS = 12  # the 12-month ECL of stage 1
SOBOL_LOG2 = 10  # 1,024 index paths (Gaussian copula)
T_SOBOL_LOG2 = 7  # 128 index paths per mixing node (t copula)
INDEX_NODES = 15  # Rouwenhorst nodes of the standardised systematic index (allowance tables)
T_MIXING_NODES = 32  # trapezoid nodes in log chi2 (t copula; 16 leave a 3% error in a t(5) PD)
# levers that change a loan's schedule: the chain of the ECL follows the contract instead
UNMODELLED_LEVERS = ("loan_cap", "deferral", "interest_subsidy", "rate_cap", "seasonal_schedule")


def expected_credit_loss(
    portfolio: Portfolio,
    scenario: Scenario,
    *,
    relative_pd_multiple: float | None = None,
    sobol_log2: int | None = None,
) -> xr.Dataset:
    """Stage, PDs and 12-month and lifetime ECL of every loan, and its allowance.

    The ECL is that of the scenario's own model: its factor law, delinquency chain,
    recoveries and revenue shocks (a stress scenario's shocks are its forward-looking
    information), through the cycle (unconditional on the factors' current state).
    Policy levers that change schedules are not followed (the contract is): a warning
    names them. docs/ifrs9.md gives the formulas and the timing conventions.

    Parameters
    ----------
    portfolio : Portfolio
        The loan book.
    scenario : Scenario
        The scenario whose model the ECL follows.
    relative_pd_multiple : float, optional
        The relative-PD criterion of a significant increase in credit risk (IFRS 9
        §5.5.9): a loan whose 12-month PD from its current state is above this multiple of
        its PD at origination (the book's ``pd``, that of a current loan) is in stage 2.
        Off by default (stages by days past due only).
    sobol_log2 : int, optional
        2^sobol_log2 quasi-Monte Carlo paths of the systematic index (per mixing node for
        the t copula, with :data:`T_MIXING_NODES` of them); default :data:`SOBOL_LOG2`,
        :data:`T_SOBOL_LOG2`. The integration error of a loan's ECL is about 0.5% at the
        default (docs/ifrs9.md); each step up halves the error at twice the time.

    Returns
    -------
    xarray.Dataset
        Along ``loan`` (the book's loan ids): ``state``, ``stage`` (1, 2 or 3), ``ead``
        (exposure now: principal and interest in arrears), ``pd_12m``, ``pd_lifetime``,
        ``ecl_12m``, ``ecl_lifetime`` and ``allowance``; attrs with the conventions.

    Raises
    ------
    ScenarioError
        If ``relative_pd_multiple`` is not above 1.
    """
    if relative_pd_multiple is not None and not relative_pd_multiple > 1.0:
        raise ScenarioError(f"relative_pd_multiple must be above 1 (a PD multiple); got {relative_pd_multiple!r}")
    scenario = _contract_terms(scenario)
    months = portfolio.remaining_term.astype(np.int64) + WORKOUT_MONTHS
    horizon = int(max(months.max(), ECL_WINDOW_MONTHS))
    model = compile_model(portfolio, replace(scenario, horizon_months=horizon))
    law = scenario.factors
    t_copula = law.copula == "t"
    log2 = sobol_log2 if sobol_log2 is not None else (T_SOBOL_LOG2 if t_copula else SOBOL_LOG2)
    y, s_w, weight = _nodes(horizon, float(law.ar1), float(law.dof) if t_copula else None, int(log2), T_MIXING_NODES)
    out = np.empty((portfolio.n_loans, 4))
    loan_expected_losses(model.loans, model.tables, model.params, _density(model), months, ECL_WINDOW_MONTHS, y, s_w,
                         weight, out)

    loans = model.loans
    stage = np.array([STAGE_OF_STATE[s] for s in portfolio.state], dtype=np.int8)
    if relative_pd_multiple is not None:
        stage = np.where((stage == 1) & (out[:, PD_WINDOW] > relative_pd_multiple * portfolio.pd), 2, stage).astype(np.int8)
    allowance = np.where(stage == 1, out[:, ECL_WINDOW], out[:, ECL_LIFETIME])
    ead = loans.principal + loans.arrears_principal + loans.arrears_interest
    loan = ("loan", np.asarray(portfolio.loan_id, dtype=str))
    data = {
        "state": ("loan", np.asarray(portfolio.state, dtype=str)),
        "stage": ("loan", stage),
        "ead": ("loan", ead),
        "pd_12m": ("loan", out[:, PD_WINDOW]),
        "pd_lifetime": ("loan", out[:, PD_LIFETIME]),
        "ecl_12m": ("loan", out[:, ECL_WINDOW]),
        "ecl_lifetime": ("loan", out[:, ECL_LIFETIME]),
        "allowance": ("loan", allowance),
    }
    ds = xr.Dataset(data, coords={"loan": loan})
    ds["stage"].attrs["description"] = "IFRS 9 stage: 1 = C, M1; 2 = M2, M3 (or the relative-PD criterion); 3 = D"
    ds["ead"].attrs["description"] = "exposure now: performing principal, principal and interest in arrears"
    ds["pd_12m"].attrs["description"] = f"probability of default within {ECL_WINDOW_MONTHS} months"
    ds["pd_lifetime"].attrs["description"] = f"probability of default within the remaining term + {WORKOUT_MONTHS} months"
    ds["ecl_12m"].attrs["description"] = f"discounted expected loss of the defaults within {ECL_WINDOW_MONTHS} months"
    ds["ecl_lifetime"].attrs["description"] = "discounted expected loss of the defaults within the lifetime window"
    ds["allowance"].attrs["description"] = "loss allowance: 12-month ECL in stage 1, lifetime ECL in stage 2"
    ds.attrs.update({
        "scenario": scenario.source,
        "portfolio": portfolio.source,
        "stages": " ".join(f"{s}:{STAGE_OF_STATE[s]}" for s in LIVE_STATES),
        "stage_names": " ".join(STAGES),
        "relative_pd_multiple": "off" if relative_pd_multiple is None else float(relative_pd_multiple),
        "discounting": "at the loan's contractual rate, from the end of the default month to the start of month 1",
        "workout_months": WORKOUT_MONTHS,
    })
    return ds


def _contract_terms(scenario: Scenario) -> Scenario:
    """The scenario without the levers that change schedules, with a warning naming them."""
    dropped = [name for name in UNMODELLED_LEVERS if getattr(scenario.policy, name) is not None]
    if not dropped:
        return scenario
    warnings.warn(
        f"{scenario.source}: the expected credit loss follows the contractual schedules; the levers "
        f"{', '.join('[policy.' + name + ']' for name in dropped)} are not applied to it (docs/ifrs9.md)",
        StresslabWarning, stacklevel=3)
    return replace(scenario, policy=replace(scenario.policy, **dict.fromkeys(dropped)))


def _density(model: CompiledModel) -> np.ndarray:
    """The standard normal density on the grid of the kernels' CDF table."""
    grid = model.params.norm_lo + np.arange(model.tables.norm.size) / model.params.norm_inv_step
    return np.exp(-0.5 * grid * grid) / np.sqrt(2.0 * np.pi)


def rouwenhorst(n: int, phi: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rouwenhorst's discretisation of a stationary AR(1) with unit variance and persistence ``phi``.

    Returns the nodes (n,), equally spaced on [-sqrt(n - 1), sqrt(n - 1)], the transition
    matrix (n, n) and the stationary distribution (binomial(n - 1, 1/2)). The chain has the
    AR(1)'s conditional mean phi y and variance 1 - phi^2 exactly at every node (Kopecky &
    Suen 2010, "Finite state Markov-chain approximations to highly persistent processes",
    Review of Economic Dynamics 13), which is why it suits monthly factors with phi near 1.
    """
    p = 0.5 * (1.0 + phi)
    move = np.array([[p, 1.0 - p], [1.0 - p, p]])
    for m in range(3, n + 1):
        big = np.zeros((m, m))
        big[:-1, :-1] += p * move
        big[:-1, 1:] += (1.0 - p) * move
        big[1:, :-1] += (1.0 - p) * move
        big[1:, 1:] += p * move
        big[1:-1] /= 2.0
        move = big
    k = np.arange(n)
    stationary = np.exp(gammaln(n) - gammaln(k + 1) - gammaln(n - k) - (n - 1) * np.log(2.0))
    return np.linspace(-np.sqrt(n - 1.0), np.sqrt(n - 1.0), n), move, stationary


def year_ends(n_months: int) -> np.ndarray:
    """Month ends of the allowance: 0 (the start), 12, 24, ... and the horizon's end."""
    return np.array(sorted({0, n_months, *range(12, n_months + 1, 12)}), dtype=np.int64)


def with_allowance(model: CompiledModel, portfolio: Portfolio, scenario: Scenario) -> CompiledModel:
    """The compiled run with IFRS 9 allowance tables, as ``[ifrs9] allowance`` asks (docs/ifrs9.md).

    Per loan, year end, state and node of the standardised index Y of the loan's segment,
    the allowance (12-month ECL in C and M1, lifetime in M2 and M3) as alpha + beta x
    arrears, by backward induction on the delinquency chain with Y a Rouwenhorst chain of
    :data:`INDEX_NODES` nodes (``_kernels.ecl.allowance_tables``). Through the cycle, the
    nodes are averaged with the stationary law into one. The opening allowance (the
    start, before any path) is through the cycle in both modes.
    """
    mode = scenario.ifrs9.allowance
    contract = _contract_terms(scenario)
    ends = year_ends(model.n_months)
    months = portfolio.remaining_term.astype(np.int64) + WORKOUT_MONTHS
    horizon = int(max(months.max(), ends[-1] + ECL_WINDOW_MONTHS))
    long = compile_model(portfolio, replace(contract, horizon_months=horizon))
    grid, move, stationary = rouwenhorst(INDEX_NODES, float(scenario.factors.ar1))
    law = scenario.factors
    if law.copula == "t":  # the trapezoid in log chi2 of the calibration, one index node per mixing node
        _, s_w, mix_weight = _nodes(1, float(law.ar1), float(law.dof), 0, T_MIXING_NODES)
    else:
        s_w, mix_weight = np.ones(1), np.ones(1)
    shape = (portfolio.n_loans, ends.size, 4, grid.size)
    alpha, beta = np.empty(shape), np.empty(shape)
    allowance_tables(long.loans, long.tables, long.params, _density(long), months, ends, ECL_WINDOW_MONTHS, grid,
                     np.ascontiguousarray(move), s_w, mix_weight, alpha, beta)
    through = alpha @ stationary, beta @ stationary  # (n_loans, ends, 4)
    if mode == "through_the_cycle":
        tables = AllowanceArrays(np.stack(through, axis=-1)[..., None, :], 0.0, 0.0)
    else:
        step = (grid.size - 1) / float(grid[-1] - grid[0])
        tables = AllowanceArrays(np.stack([alpha, beta], axis=-1), float(grid[0]), step)
    loans = model.loans
    state = loans.state.astype(np.int64)
    rows = np.arange(portfolio.n_loans)
    arrears = loans.arrears_principal + loans.arrears_interest
    opening = through[0][rows, 0, state] + through[1][rows, 0, state] * arrears
    stage = (state >= 2).astype(np.int64)
    return replace(model, allowance=tables, allowance_opening=np.bincount(stage, weights=opening, minlength=2))
