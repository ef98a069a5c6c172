"""Compile a scenario's policy levers into per-loan kernel arrays (MODEL.md §6, docs/policy.md)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np

from stresslab._kernels.arrays import ANNUITY, EQUAL_PRINCIPAL, PolicyArrays
from stresslab.book.portfolio import Portfolio
from stresslab.compile.binding import eligible_loans
from stresslab.errors import StresslabWarning
from stresslab.scenario.scenario import Scenario
from stresslab.scenario.specs import shock_path

__all__ = ["CompiledPolicy", "Schedule", "cap_gaps", "compile_policy"]

_STATE_INDEX = {"C": 0, "M1": 1, "M2": 2, "M3": 3}


@dataclass(frozen=True)
class CompiledPolicy:
    """Kernel arrays of the levers, the revenue-support groups, and what the cap does to the book."""

    arrays: PolicyArrays
    group: np.ndarray  # (n_loans,) int32 row of log_mult
    log_mult: np.ndarray  # (n_groups, T): -log(1 + revenue support)
    deferral_months: int
    deferral_accrue: bool
    deferral_extend: bool
    capped_borrowers: int
    gap_volume: float


@dataclass(frozen=True)
class Schedule:
    """The contractual schedule the loan kernel starts from (stresslab.compile.model), shape (n_loans,) each."""

    kind: np.ndarray  # int8 ANNUITY..BULLET
    principal: np.ndarray  # performing principal
    arrears_principal: np.ndarray
    installment: np.ndarray  # level installment (annuity) or principal part (equal principal)
    rate: np.ndarray  # monthly rate
    term: np.ndarray  # months to maturity


def compile_policy(
    portfolio: Portfolio, scenario: Scenario, industries: tuple[str, ...], industry: np.ndarray, schedule: Schedule
) -> CompiledPolicy:
    """Per-loan lever arrays for this book.

    Parameters
    ----------
    portfolio : Portfolio
    scenario : Scenario
    industries : tuple of str
        The industry axis (sorted book industries).
    industry : ndarray of shape (n_loans,)
        Each loan's index into ``industries``.
    schedule : Schedule
        The loans' contractual schedule (the loan cap's gaps are taken from it).

    Returns
    -------
    CompiledPolicy
    """
    n, horizon = portfolio.n_loans, scenario.horizon_months
    pol = scenario.policy
    where = f"{scenario.source}: [policy."
    never = np.full(n, -1, dtype=np.int32)
    flag = np.zeros(n, dtype=bool)

    deferral_start, states, months, accrue, extend = never.copy(), np.zeros(4, np.uint8), 0, True, True
    if pol.deferral is not None and pol.deferral.months > 0:
        d = pol.deferral
        mask = eligible_loans(portfolio, industries=d.industries, regions=d.regions, borrower_types=d.borrower_types)
        deferral_start[mask] = d.start_month - 1
        states[[_STATE_INDEX[s] for s in d.states]] = 1
        months, accrue, extend = d.months, d.interest == "accrued", d.extend_term
        flag |= mask
        _warn_if_idle(mask, where + "deferral]", "no loan of the book is in its industries, regions and borrower types")

    gap_month, gap_amount, gap_refinanced, capped, volume = never.copy(), np.zeros(n), np.zeros(n), 0, 0.0
    if pol.loan_cap is not None:
        due = np.minimum(portfolio.remaining_term, max(pol.loan_cap.transition_months, 1))  # 1-based
        gap, capped, volume = cap_gaps(portfolio, dict(pol.loan_cap.caps), schedule, due)
        has_gap = gap > 0.0
        gap_month[has_gap] = due[has_gap] - 1
        gap_refinanced = gap * pol.loan_cap.refinanced_share
        gap_amount = gap - gap_refinanced  # what the borrower must find in cash
        flag |= has_gap
        _warn_if_idle(has_gap, where + "loan_cap]", "no borrower's scheduled exposure is above the cap of its type "
                      f"in the month its gap would fall due (largest exposure at the start: {_largest(portfolio)})")

    subsidy, sub_start, sub_end = np.zeros(n), np.zeros(n, np.int32), np.zeros(n, np.int32)
    if pol.interest_subsidy is not None:
        sp = pol.interest_subsidy
        mask = eligible_loans(
            portfolio, industries=sp.industries, regions=sp.regions,
            borrower_types=sp.borrower_types, max_balance=sp.max_balance,
        )
        subsidy[mask] = sp.points / 12.0
        sub_start[:] = sp.start_month - 1
        sub_end[:] = horizon if sp.months is None else sp.start_month - 1 + sp.months
        flag |= mask
        _warn_if_idle(mask, where + "interest_subsidy]", "no loan of the book is in its industries, regions and "
                      "borrower types with a balance up to max_balance")

    reprice_month, reprice_rate = never.copy(), portfolio.annual_rate / 12.0
    if pol.rate_cap is not None:
        above = portfolio.annual_rate > pol.rate_cap.cap
        reprice_month[above] = pol.rate_cap.from_month - 1
        reprice_rate = np.where(above, pol.rate_cap.cap / 12.0, reprice_rate)
        flag |= above
        _warn_if_idle(above, where + "rate_cap]", f"no loan's annual_rate is above the cap {pol.rate_cap.cap:g} "
                      f"(highest in the book: {portfolio.annual_rate.max():g})")

    shaped = np.zeros(n, dtype=bool)
    shape = np.ones((len(industries), horizon))
    scale = np.ones(n)
    if pol.seasonal_schedule is not None:
        shaped, shape, scale = _seasonal_schedule(portfolio, scenario, industries, industry)
        flag |= shaped
        _warn_if_idle(shaped, where + "seasonal_schedule]", "no annuity or equal-principal loan with more than one "
                      "month left is in its industries")

    group = np.zeros(n, dtype=np.int32)
    log_mult = np.zeros((1, horizon))
    if pol.revenue_support is not None:
        rs = pol.revenue_support
        mask = eligible_loans(portfolio, industries=rs.industries, regions=rs.regions, borrower_types=rs.borrower_types)
        group[mask] = 1
        _warn_if_idle(mask, where + "revenue_support]", "no loan of the book is in its industries, regions and borrower types")
        log_mult = np.vstack([np.zeros(horizon), -np.log1p(shock_path(rs.uplift, horizon))])

    arrays = PolicyArrays(
        flag=flag.astype(np.uint8),
        enabled=np.zeros((0, 0) if flag.any() else (0,)),
        deferral_start=deferral_start,
        deferral_states=states,
        gap_month=gap_month,
        gap_amount=gap_amount,
        gap_refinanced=gap_refinanced,
        subsidy=subsidy,
        subsidy_start=sub_start,
        subsidy_end=sub_end,
        reprice_month=reprice_month,
        reprice_rate=reprice_rate,
        shaped=shaped.astype(np.uint8),
        shape=shape,
        shape_scale=scale,
    )
    return CompiledPolicy(arrays, group, log_mult, months, accrue, extend, capped, volume)


def _warn_if_idle(touched: np.ndarray, lever: str, why: str) -> None:
    """A StresslabWarning naming the lever when it touches no loan of the book."""
    if not touched.any():
        warnings.warn(f"{lever} touches no loan: {why}", StresslabWarning, stacklevel=4)


def _largest(portfolio: Portfolio) -> str:
    """The largest borrower exposure of each type in the book, for the loan cap's warning."""
    borrowers, owner = np.unique(portfolio.borrower_id, return_inverse=True)
    total = np.bincount(owner, weights=portfolio.balance, minlength=borrowers.size)
    kind = np.empty(borrowers.size, dtype=object)
    kind[owner] = portfolio.borrower_type
    return ", ".join(f"{t} {total[kind == t].max():,.0f} CNY" for t in sorted(set(portfolio.borrower_type)))


def cap_gaps(
    portfolio: Portfolio, caps: dict[str, float], schedule: Schedule, due: np.ndarray
) -> tuple[np.ndarray, int, float]:
    """Each loan's gap: its share of its borrower's scheduled exposure above the cap, at its due month.

    With S_k(t) the contractual principal outstanding of loan k at the start of month t
    (performing principal amortised by the schedule, plus principal in arrears; 0 after
    maturity) and E_b(t) the sum over the borrower's loans, loan j's gap is

        gap_j = S_j(tau_j) * max(0, 1 - cap_b / E_b(tau_j)),   tau_j = ``due[j]`` (1-based),

    the part of the borrower's exposure above the cap in the month it falls due, pro rata
    to the loans' balances then. S and E never rise with t, so a later due month (a longer
    transition window) never gives a larger gap, and a higher cap never a larger one.

    Returns
    -------
    gap : ndarray of shape (n_loans,)
    capped_borrowers : int
        Borrowers with a gap on some loan.
    gap_volume : float
        Sum of the gaps, CNY.
    """
    n = portfolio.n_loans
    gap = np.zeros(n)
    borrowers, owner = np.unique(portfolio.borrower_id, return_inverse=True)
    cap = np.array([caps.get(t, np.inf) for t in portfolio.borrower_type])
    start = np.bincount(owner, weights=schedule.principal + schedule.arrears_principal, minlength=borrowers.size)
    # only borrowers above the cap at the start can be above it later (exposure never rises)
    rows = np.flatnonzero(start[owner] > cap)
    if rows.size == 0:
        return gap, 0, 0.0
    sub, local = np.unique(owner[rows], return_inverse=True)
    kind, rate, level, term = schedule.kind[rows], schedule.rate[rows], schedule.installment[rows], schedule.term[rows]
    performing, arrears = schedule.principal[rows].copy(), schedule.arrears_principal[rows]
    tau = due[rows]
    for t in range(1, int(tau.max()) + 1):
        exposure = np.where(term >= t, performing + arrears, 0.0)  # start of month t
        total = np.bincount(local, weights=exposure, minlength=sub.size)[local]
        now = tau == t
        with np.errstate(divide="ignore", invalid="ignore"):
            gap[rows[now]] = np.where(total[now] > cap[rows[now]], exposure[now] * (1.0 - cap[rows[now]] / total[now]), 0.0)
        performing = performing - _principal_part(kind, term == t, performing, rate, level)
    capped = np.unique(owner[gap > 0.0]).size
    return gap, int(capped), float(gap.sum())


def _principal_part(kind: np.ndarray, maturity: np.ndarray, bp: np.ndarray, rate: np.ndarray, level: np.ndarray) -> np.ndarray:
    """The kernel's principal part of a month's installment (settlement.principal_due), for arrays."""
    part = np.select(
        [kind == ANNUITY, kind == EQUAL_PRINCIPAL],
        [np.minimum(np.maximum(level - rate * bp, 0.0), bp), np.minimum(level, bp)],
        0.0,
    )
    return np.where(maturity, bp, part)


def _seasonal_schedule(
    portfolio: Portfolio, scenario: Scenario, industries: tuple[str, ...], industry: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Installment shape by industry and month, and each loan's scale keeping the schedule's value.

    An annuity paying level * k * s_m amortises to zero over its n remaining months when
    k = sum v^m / sum s_m v^m (v = 1 / (1 + r)); equal-principal parts sum to the balance
    when k = n / sum s_m. Any schedule with interest on the outstanding balance has the
    same present value at the loan's rate, so only the shape changes.
    """
    spec = scenario.policy.seasonal_schedule
    horizon = scenario.horizon_months
    # one calendar cycle from horizon month 1 (loans may run beyond the horizon)
    cycle = replace(scenario, horizon_months=12).seasonality(list(industries))  # (I, 12)
    shape = cycle[:, np.arange(horizon) % 12]
    names = spec.industries if spec.industries is not None else [name for name, _ in scenario.seasonal_factors]
    mask = eligible_loans(portfolio, industries=list(names))
    kind = np.array([{"annuity": ANNUITY, "equal_principal": EQUAL_PRINCIPAL}.get(a, -1) for a in portfolio.amortization])
    shaped = mask & (kind >= 0) & (portfolio.remaining_term > 1)
    scale = np.ones(portfolio.n_loans)
    rate = portfolio.annual_rate / 12.0
    for j in np.flatnonzero(shaped):
        m = np.arange(portfolio.remaining_term[j])
        s = cycle[industry[j], m % 12]
        if kind[j] == ANNUITY:
            v = (1.0 + rate[j]) ** -(m + 1.0)
            scale[j] = v.sum() / (s * v).sum()
        else:
            scale[j] = m.size / s.sum()
    return shaped, shape, scale
