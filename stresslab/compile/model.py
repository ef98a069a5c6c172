"""Compile a loan book and a scenario into the plain arrays the kernels run on.

Everything name-based, calibrated or derived happens here, once per run; the kernels see
only numbers. See docs/model.md for the formulas.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

from stresslab._kernels.arrays import (
    ANNUITY,
    AllowanceArrays,
    BULLET,
    EQUAL_PRINCIPAL,
    INTEREST_ONLY,
    LayerArrays,
    LoanArrays,
    Params,
    Tables,
)
from stresslab._kernels.special import normal_table
from stresslab._rng import name_keys
from stresslab.book.portfolio import Portfolio
from stresslab.compile.binding import bind_names
from stresslab.compile.calibration import (
    ChainInputs,
    FactorLaw,
    UnreachablePD,
    entry_thresholds,
    latent_quantile,
)
from stresslab.compile.factors import correlation_sqrt, factor_names
from stresslab.compile.layers import compile_layers
from stresslab.compile.policy import CompiledPolicy, Schedule, compile_policy
from stresslab.errors import PortfolioError, ScenarioError, did_you_mean
from stresslab.scenario.scenario import Scenario

__all__ = ["CompiledModel", "compile_model"]

_AMORTIZATION_CODES = {
    "annuity": ANNUITY,
    "equal_principal": EQUAL_PRINCIPAL,
    "interest_only": INTEREST_ONLY,
    "bullet": BULLET,
}
_STATE_CODES = {"C": 0, "M1": 1, "M2": 2, "M3": 3}


@dataclass(frozen=True)
class CompiledModel:
    """A book and a scenario as kernel inputs, with the labels of their axes."""

    loans: LoanArrays
    tables: Tables
    params: Params
    layers: LayerArrays
    policy: CompiledPolicy
    industries: tuple[str, ...]
    regions: tuple[str, ...]
    layer_names: tuple[str, ...]
    n_months: int
    tracked_loans: tuple[str, ...] = ()
    pool_size: np.ndarray | None = None  # loans per row of a pooled book (stresslab.compile.pooling); None: one each
    sampling: str = "plain"  # "importance" once stresslab.run.importance has tilted the draws
    allowance: AllowanceArrays | None = None  # IFRS 9 allowance tables (compile.provisions); None: none
    allowance_opening: np.ndarray | None = None  # (2,) S1, S2 allowance at the start, through the cycle

    @property
    def pooled(self) -> bool:
        """True for a pooled book (rows are pools of identical loans)."""
        return self.pool_size is not None

    @property
    def n_loans(self) -> int:
        """Number of loan rows (pools, in a pooled book)."""
        return int(self.loans.key.shape[0])


def compile_model(portfolio: Portfolio, scenario: Scenario, track_loans: Sequence[str] = ()) -> CompiledModel:
    """Turn a validated book and scenario into kernel arrays.

    Parameters
    ----------
    portfolio : Portfolio
        The loan book.
    scenario : Scenario
        The scenario.
    track_loans : sequence of str
        Loan ids whose horizon loss is kept per path (``loss_by_loan``), in this order.

    Returns
    -------
    CompiledModel

    Raises
    ------
    PortfolioError
        If loans start delinquent beyond what the scenario's ``default_after`` allows.
    ScenarioError
        If the book's pds cannot be calibrated under the scenario's roll and cure rates,
        or a name in the scenario is a near-miss of one in the book.
    """
    scenario = bind_names(portfolio, scenario)  # names checked once, in the book's spelling
    industries, industry = portfolio.codes("industry")
    regions, region = portfolio.codes("region")
    n_months = scenario.horizon_months
    fac = scenario.factors
    deq = scenario.delinquency
    rec = scenario.recovery

    state = np.array([_STATE_CODES[s] for s in portfolio.state], dtype=np.int8)
    _check_initial_states(portfolio, state, deq.default_after)

    loadings = np.asarray(fac.loadings(industries), dtype=float)
    rho = (loadings**2).sum(axis=1)[industry]
    _check_cycle_sensitivity(scenario, rho, industries, industry)
    law = FactorLaw(fac.copula, fac.dof, fac.ar1)
    try:
        threshold, sigma = _entry_thresholds(portfolio, scenario, industries, industry, rho, law)
    except UnreachablePD as exc:
        rows = np.flatnonzero(portfolio.pd >= exc.limit)
        j = rows[0]
        raise ScenarioError(
            f"{portfolio.source}: row {j + 1} (loan_id '{portfolio.loan_id[j]}'), column 'pd': {portfolio.pd[j]:g} "
            f"cannot be reached under {scenario.source}" + (f" (and {rows.size - 1} more rows)" if rows.size > 1 else "")
            + f": {exc}") from None
    rate = portfolio.annual_rate / 12.0
    kind = np.array([_AMORTIZATION_CODES[a] for a in portfolio.amortization], dtype=np.int8)
    term = portfolio.remaining_term.astype(np.int32)
    principal, arrears_principal, arrears_interest, installment = _schedule(
        portfolio.balance, rate, term, kind, state.astype(float)
    )
    recovery_mean = np.where(np.isnan(portfolio.recovery_mean), rec.unsecured_mean, portfolio.recovery_mean)
    discount_rate = portfolio.annual_rate if rec.discount_rate is None else np.full(portfolio.n_loans, rec.discount_rate)
    monthly_discount = 1.0 / (1.0 + discount_rate / 12.0)

    schedule = Schedule(kind, principal, arrears_principal, installment, rate, term)
    policy = compile_policy(portfolio, scenario, tuple(industries), industry, schedule)
    loans = LoanArrays(
        key=name_keys(portfolio.loan_id),
        industry=industry.astype(np.int32),
        region=region.astype(np.int32),
        group=policy.group,
        amortization=kind,
        state=state,
        term=term,
        principal=principal,
        arrears_principal=arrears_principal,
        arrears_interest=arrears_interest,
        installment=installment,
        rate=rate,
        threshold=threshold,
        inv_sigma=1.0 / sigma,
        sigma=sigma,
        rho=rho,
        inv_idio=1.0 / np.sqrt(1.0 - rho),
        inv_idio_delinquent=1.0 / np.sqrt(1.0 - deq.cycle_sensitivity**2 * rho),
        pledge=portfolio.pledge_value.astype(float),
        # MODEL.md §4: scaled so that the mean over X ~ N(0, rho) of Phi(a + beta X) is m0
        recovery_probit=ndtri(recovery_mean) * np.sqrt(1.0 + rec.cycle_sensitivity**2 * rho),
        pledge_pv=monthly_discount**rec.pledge_lag_months,
        unsecured_pv=monthly_discount**rec.lag_months,
        track=_track_columns(portfolio, track_loans),
    )

    shock = np.asarray(scenario.revenue_shock(industries, regions), dtype=float)  # (I, R, T)
    season = np.asarray(scenario.seasonality(industries), dtype=float)  # (I, T)
    level = season[:, None, :] * (1.0 + shock)
    revenue = np.ascontiguousarray(level.transpose(2, 0, 1))
    layers = compile_layers(portfolio, scenario)
    table = normal_table()
    tables = Tables(
        cell=-np.log(revenue),
        revenue=revenue,
        log_mult=policy.log_mult,
        sqrt_cov=correlation_sqrt(fac.correlation(industries, regions)),
        loadings=loadings,
        factor_key=name_keys(factor_names(industries, regions)),
        factor_shift=np.zeros((scenario.horizon_months + 1, 1 + len(industries) + len(regions))),
        factor_mean=(np.zeros((n_months + 1, 1 + len(industries) + len(regions))) if fac.innovation_mean is None
                     else fac.innovation_mean.matrix(industries, regions, n_months)),
        roll_threshold=latent_quantile(np.array(deq.roll_rates, dtype=float), law),
        cure_threshold=latent_quantile(1.0 - np.array(deq.cure_rates, dtype=float), law),
        norm=table.values,
    )
    params = Params(
        ar1=float(fac.ar1),
        t_copula=fac.copula == "t",
        dof=float(fac.dof) if fac.dof is not None else 0.0,
        default_after=int(deq.default_after),
        roll_sensitivity=float(deq.roll_sensitivity),
        cure_sensitivity=float(deq.cure_sensitivity),
        prepay_threshold=float(latent_quantile(1.0 - deq.prepayment_rate, law)) if deq.prepayment_rate > 0.0 else np.inf,
        cycle_sensitivity=float(deq.cycle_sensitivity),
        recovery_cycle=float(rec.cycle_sensitivity),
        recovery_dispersion=float(rec.dispersion),
        recovery_cost=float(rec.cost),
        recovery_lag=int(rec.lag_months),
        pledge_haircut=float(rec.pledge_haircut),
        pledge_lag=int(rec.pledge_lag_months),
        lgd_sensitivity=float(rec.lgd_sensitivity),
        deferral_months=policy.deferral_months,
        deferral_accrue=policy.deferral_accrue,
        deferral_extend=policy.deferral_extend,
        track_cover=bool(np.any(layers.monthly_fee > 0.0)),
        norm_lo=table.lo,
        norm_inv_step=table.inv_step,
    )
    layer_names = tuple(spec.name for spec in scenario.layers)
    return CompiledModel(
        loans, tables, params, layers, policy, tuple(industries), tuple(regions), layer_names, n_months, tuple(track_loans)
    )


def _entry_thresholds(portfolio: Portfolio, scenario: Scenario, industries: Sequence[str], industry: np.ndarray,
                      rho: np.ndarray, law: FactorLaw) -> tuple[np.ndarray, np.ndarray]:
    """Entry thresholds c_j calibrated to the book's PDs, and the volatilities sigma_j (MODEL.md §2).

    The chain and seasonality are the calibration reference's; the cycle response of the
    delinquent states (kappa) and the factor law are the scenario's own. A DSCR above 1
    sets sigma_j = -log(DSCR_j) / c_j with c_j the threshold calibrated without seasonality
    (with it, sigma would enter its own threshold; docs/model.md §2).
    """
    ref = scenario.reference.delinquency
    chain = ChainInputs(ref.default_after, ref.roll_rates, ref.cure_rates, ref.roll_sensitivity,
                        ref.cure_sensitivity, ref.prepayment_rate, scenario.delinquency.cycle_sensitivity)
    months = scenario.pd_horizon_months
    sigma = np.asarray(scenario.volatility(industries), dtype=float)[industry]
    season = -np.log(scenario.reference_seasonality(industries))  # (n_industries, H)
    flat = np.zeros((1, months))
    neutral = entry_thresholds(portfolio.pd, rho, flat, np.zeros(portfolio.n_loans, dtype=np.int64), 1.0 / sigma,
                               chain, law, months)
    use_dscr = (portfolio.dscr > 1.0) & np.isfinite(neutral) & (neutral < 0.0)
    sigma[use_dscr] = -np.log(portfolio.dscr[use_dscr]) / neutral[use_dscr]
    if not season.any():
        return neutral, sigma
    return entry_thresholds(portfolio.pd, rho, season, industry, 1.0 / sigma, chain, law, months), sigma


def _check_cycle_sensitivity(scenario: Scenario, rho: np.ndarray, industries: Sequence[str], industry: np.ndarray) -> None:
    kappa = scenario.delinquency.cycle_sensitivity
    if rho.size and kappa**2 * rho.max() >= 1.0:
        worst = industries[int(industry[np.argmax(rho)])]
        raise ScenarioError(
            f"{scenario.source}: [delinquency] cycle_sensitivity = {kappa:g} with the loadings of industry "
            f"'{worst}' (rho = {rho.max():.4g}) gives the delinquent states a systematic variance kappa^2 rho = "
            f"{kappa**2 * rho.max():.4g}; it must be < 1 (use cycle_sensitivity < {1 / np.sqrt(rho.max()):.4g})")


def _track_columns(portfolio: Portfolio, track_loans: Sequence[str]) -> np.ndarray:
    """Column of each loan in ``loss_by_loan`` (-1: not tracked)."""
    track = np.full(portfolio.n_loans, -1, dtype=np.int32)
    if len(track_loans) == 0:
        return track
    row = {loan_id: j for j, loan_id in enumerate(portfolio.loan_id.tolist())}
    seen: set[str] = set()
    for column, loan_id in enumerate(track_loans):
        if loan_id not in row:
            raise PortfolioError(f"{portfolio.source}: cannot track loan_id '{loan_id}': not in the book{did_you_mean(loan_id, row)}")
        if loan_id in seen:
            raise PortfolioError(f"{portfolio.source}: loan_id '{loan_id}' is listed twice in track_loans")
        seen.add(loan_id)
        track[row[loan_id]] = column
    return track


def _check_initial_states(portfolio: Portfolio, state: np.ndarray, default_after: int) -> None:
    too_late = np.flatnonzero(state >= default_after)
    if too_late.size:
        j = too_late[0]
        raise PortfolioError(
            f"{portfolio.source}: row {j + 1} (loan_id '{portfolio.loan_id[j]}'), column 'state': "
            f"'{portfolio.state[j]}' is already a default under the scenario's default_after = "
            f"{default_after} (allowed: C..M{default_after - 1})"
            + (f" (and {too_late.size - 1} more rows)" if too_late.size > 1 else "")
        )


def _schedule(
    balance: np.ndarray, rate: np.ndarray, term: np.ndarray, kind: np.ndarray, missed: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split the balance into performing principal and arrears, and the level installment.

    A loan in M_k carries k missed installments: k times the principal part of its current
    installment (capped by the balance) and k months of interest on the balance. The
    performing rest amortises over the remaining term.

    Returns
    -------
    principal, arrears_principal, arrears_interest, installment : ndarray of shape (n,)
        ``installment`` is the level payment (annuity) or the principal part (equal
        principal); 0 for interest-only and bullet loans.
    """
    with np.errstate(divide="ignore", invalid="ignore"):  # rate 0 takes the 1/term branch
        annuity_factor = np.where(rate > 0.0, rate / -np.expm1(-term * np.log1p(rate)), 1.0 / term)
    part = np.select(
        [kind == ANNUITY, kind == EQUAL_PRINCIPAL],
        [balance * (annuity_factor - rate), balance / term],
        0.0,
    )
    arrears_principal = np.minimum(missed * part, balance)
    principal = balance - arrears_principal
    installment = np.select(
        [kind == ANNUITY, kind == EQUAL_PRINCIPAL],
        [principal * annuity_factor, principal / term],
        0.0,
    )
    return principal, arrears_principal, missed * rate * balance, installment
