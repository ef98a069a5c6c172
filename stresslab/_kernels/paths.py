"""The path kernel: every loan of the book, month by month, for a chunk of paths.

Loop order is path (parallel) > loan > month, so a loan's state lives in registers and a
path's sums are added in loan order whatever the chunking or thread count (bitwise
reproducible). Nothing of size paths x loans x months is ever stored: per path only the
factor index table (months x industries x regions) and the default events.

State codes: 0 = C, k = M_k (k missed installments), ``default_after`` = D, 5 = P in the
outputs (index into STATES).
"""

from __future__ import annotations

import math

import numpy as np

from stresslab._kernels.arrays import (
    ANNUITY,
    BULLET,
    EQUAL_PRINCIPAL,
    STAGE_TO_REPAID,
    STAGE_TO_S3,
    STATE_P,
    AllowanceArrays,
    LayerArrays,
    LoanArrays,
    Outputs,
    Params,
    PolicyArrays,
    Tables,
)
from stresslab._kernels.settlement import (
    PathScratch,
    default_loss,
    drawn_factors,
    path_blocks,
    path_buffers,
    path_finish,
    path_scratch,
    path_start,
    principal_due,
    write_event,
)
from stresslab._kernels.special import (
    below_norm_cdf,
)
from stresslab._numba import njit, prange
from stresslab._rng import (
    uniform,
)

__all__ = ["simulate_paths"]


@njit(parallel=True)
def simulate_paths(
    first_path: int,
    seed: np.uint64,
    loans: LoanArrays,
    tables: Tables,
    params: Params,
    policy: PolicyArrays,
    layers: LayerArrays,
    allowance: AllowanceArrays,
    out: Outputs,
) -> None:
    """Simulate paths ``first_path .. first_path + P - 1`` into ``out`` (zeroed by the caller)."""
    n_paths = out.loss_gross.shape[0]
    drawn = drawn_factors(loans, tables, out.eta.shape[1] > 0)
    n_blocks = path_blocks(n_paths)
    for b in prange(n_blocks):
        scratch = path_scratch(out.loss_gross.shape[1], loans.key.shape[0], tables, layers, params, drawn)
        for row in range(b * n_paths // n_blocks, (b + 1) * n_paths // n_blocks):
            _simulate_path(first_path + row, row, seed, loans, tables, params, policy, layers, allowance, out, scratch)


@njit()
def _simulate_path(
    path: int,
    row: int,
    seed: np.uint64,
    loans: LoanArrays,
    tables: Tables,
    params: Params,
    policy: PolicyArrays,
    layers: LayerArrays,
    allowance: AllowanceArrays,
    out: Outputs,
    scratch: PathScratch,
) -> None:
    n_months = out.loss_gross.shape[1]
    norm, lo, inv_step = tables.norm, params.norm_lo, params.norm_inv_step
    x, global_factor, inv_sqrt_w, month_key = path_start(path, row, seed, tables, params, out, scratch)
    default_after = params.default_after
    kappa = params.cycle_sensitivity
    prepay_at = params.prepay_threshold
    n_loans = loans.key.shape[0]
    absorbed_count, absorbed_balance, events, cover = path_buffers(scratch)
    n_events = 0
    # per-path bookkeeping of the loan loop: month-end exposure and counts by state
    balance = out.balance_by_state[row]
    count = out.count_by_state[row]
    income = out.interest_income[row]
    cash_in = out.recoveries[row]
    subsidy_cost = out.subsidy_cost[row]
    gap_paid = out.gap_paid[row]
    foregone = out.interest_foregone[row]
    transition = out.stage_transition[row]  # (years, 2, 4); (0, 2, 4) when not recorded

    for j in range(n_loans):
        i = np.uint64(loans.industry[j])  # unsigned indices: no wraparound checks in the month loop
        r = np.uint64(loans.region[j])
        g = np.uint64(loans.group[j])
        kind = loans.amortization[j]
        s = np.int64(loans.state[j])
        n = loans.term[j]
        bp = loans.principal[j]
        ap = loans.arrears_principal[j]
        ai = loans.arrears_interest[j]
        accrued = 0.0
        ag = 0.0  # the loan-cap gap part of the principal in arrears (ap includes it)
        rate = loans.rate[j]
        level = loans.installment[j]
        contract_level = level  # the contract's level installment (re-amortised once the gap fell due)
        c = loans.threshold[j]
        inv_sigma = loans.inv_sigma[j]
        inv_idio = loans.inv_idio[j]
        inv_idio_d = loans.inv_idio_delinquent[j]
        lkey = loans.key[j]
        cls = layers.cover_class[j]
        levers = policy.enabled.ndim == 2 and policy.flag[j] != 0
        deferral_end = -1
        gap_open = levers and policy.gap_month[j] >= 0
        year_stage = _stage(s)
        year_balance = bp + ap + ai
        for t in range(n_months):
            if t % 12 == 0 and t > 0 and transition.shape[0] > 0:  # a year ended with month t - 1
                stage = _stage(s)
                transition[t // 12 - 1, year_stage, stage] += year_balance
                year_stage, year_balance = stage, bp + ap + ai + accrued
                if allowance.table.shape[0] > 0:
                    out.allowance[row, t // 12 - 1, stage] += _allowance(allowance, j, t // 12, s, x[t - 1, i, r],
                                                                         loans.rho[j], ap + ai + accrued)
            if levers:  # policy levers that change the terms (MODEL.md §6, docs/policy.md)
                rate, level = _rate_cap(t, j, kind, bp, rate, level, n, policy)
                deferral_end = _deferral_start(t, j, s, deferral_end, policy, params)
                cut = _interest_foregone(bp, ap, rate, loans.rate[j], t < deferral_end and not params.deferral_accrue)
                if cut != 0.0:
                    foregone[t] += cut
                if t < deferral_end:  # deferred: nothing due, state frozen, no draw
                    bp, n = _deferred_month(bp, ap, rate, n, params)
                    out.deferred_count[row, t] += 1
                    _record(balance, count, cover, t, s, cls, bp + ap + ai + accrued)
                    continue
                if t == deferral_end:
                    n, level = _after_deferral(kind, bp, rate, n, level)
            # what falls due this month (docs/model.md §4)
            pp = 0.0
            due_interest = 0.0
            accrued_due = 0.0
            has_due = False
            maturity = n == 1
            if n == 0:  # past maturity: only interest on the principal in arrears
                due_interest = rate * ap
            elif kind == BULLET and n > 1:
                accrued += rate * (bp + ap)
            else:
                has_due = True
                accrued_due = accrued
                due_interest = rate * (bp + ap) + accrued
                accrued = 0.0
                shape = policy.shape[i, t] * policy.shape_scale[j] if levers and policy.shaped[j] else 1.0
                pp = principal_due(kind, maturity, bp, rate, level * shape)
            shortfall = 0.0
            gap_due = 0.0
            gap_now = gap_open and t >= policy.gap_month[j]  # also when a deferral covered its month
            if gap_now:
                gap_open = False
                pp, bp, has_due, shortfall, gap_due = _cap_gap(
                    policy.gap_amount[j], policy.gap_refinanced[j], pp, bp, has_due, maturity or n == 0)
            if n > 0:
                n -= 1
            if s == 0 and not has_due:
                _record(balance, count, cover, t, s, cls, bp + ap + ai + accrued)
                continue
            log_ratio = 0.0
            subsidy = 0.0
            if levers:
                if policy.subsidy_start[j] <= t < policy.subsidy_end[j]:
                    subsidy = policy.subsidy[j] * (bp + ap)
                due = pp + due_interest - subsidy + shortfall
                reference = _contract_due(kind, maturity, has_due, bp, ap, loans.rate[j], contract_level) + accrued_due
                if due > 0.0 and reference > 0.0:
                    log_ratio = math.log(due / reference)
            # MODEL.md §3: one latent per loan-month against ordered thresholds shifted by the stress
            stress = (tables.log_mult[g, t] + tables.cell[t, i, r] + log_ratio) * inv_sigma
            x_t = x[t, i, r]
            u = uniform(month_key[t], lkey)
            if s == 0:
                miss_at = c + stress
                if below_norm_cdf(u, (miss_at * inv_sqrt_w - x_t) * inv_idio, norm, lo, inv_step):
                    ai += due_interest
                    ap += pp
                    ag += gap_due
                    bp -= pp
                    s = 1
                else:
                    income[t] += due_interest
                    if gap_due != 0.0:
                        gap_paid[t] += gap_due
                    if subsidy != 0.0:
                        subsidy_cost[t] += subsidy
                    bp -= pp
                    if n == 0 or (
                        prepay_at < np.inf
                        and not below_norm_cdf(u, (max(prepay_at, miss_at) * inv_sqrt_w - x_t) * inv_idio, norm, lo, inv_step)
                    ):
                        s = STATE_P
            else:
                x_d = kappa * x_t
                roll_at = tables.roll_threshold[s - 1] + params.roll_sensitivity * stress
                cure_stress = stress
                if ag > 0.0:  # a cure also pays the gap arrears it clears (docs/policy.md)
                    cure_stress += _cure_need(ag, pp + due_interest - subsidy + ap - ag + ai, rate * (bp + ap)) * inv_sigma
                cure_at = max(tables.cure_threshold[s - 1] + params.cure_sensitivity * cure_stress, roll_at)
                if below_norm_cdf(u, (roll_at * inv_sqrt_w - x_d) * inv_idio_d, norm, lo, inv_step):
                    ai += due_interest
                    ap += pp
                    ag += gap_due
                    bp -= pp
                    s += 1
                elif not below_norm_cdf(u, (cure_at * inv_sqrt_w - x_d) * inv_idio_d, norm, lo, inv_step):
                    income[t] += due_interest + ai
                    if subsidy != 0.0:
                        subsidy_cost[t] += subsidy
                    if gap_due + ag != 0.0:
                        gap_paid[t] += gap_due + ag
                    bp -= pp
                    ap = 0.0
                    ai = 0.0
                    ag = 0.0
                    s = STATE_P if n == 0 and bp <= 0.0 else 0
                else:
                    income[t] += due_interest
                    if gap_due != 0.0:
                        gap_paid[t] += gap_due
                    if subsidy != 0.0:
                        subsidy_cost[t] += subsidy
                    bp -= pp
            if s == STATE_P:
                absorbed_count[t, 1] += 1
                _leave(transition, t, year_stage, year_balance, STAGE_TO_REPAID)
                break
            if s == default_after:
                ead = bp + ap + ai + accrued
                loss = default_loss(ead, 1, j, t, i, r, stress, x_t, path, seed, lkey, loans, tables, params, cash_in)
                n_events = write_event(events, n_events, j, t, 1, loss, (bp + ap) / ead if ead > 0.0 else 1.0)
                absorbed_count[t, 0] += 1
                absorbed_balance[t] += ead
                out.gap_defaulted[row, t] += ag
                _leave(transition, t, year_stage, year_balance, STAGE_TO_S3)
                break
            if gap_now and n > 0:  # re-amortise after the excess fell due (paid or in arrears)
                level = _level(kind, bp, rate, n)
                contract_level = _level(kind, bp, loans.rate[j], n)
            _record(balance, count, cover, t, s, cls, bp + ap + ai + accrued)
        else:  # alive at the horizon: its last (maybe partial) year ends there
            _leave(transition, n_months - 1, year_stage, year_balance, _stage(s))
            if allowance.table.shape[0] > 0:
                last = allowance.table.shape[1] - 1
                out.allowance[row, last - 1, _stage(s)] += _allowance(allowance, j, last, s, x[n_months - 1, i, r],
                                                                      loans.rho[j], ap + ai + accrued)

    path_finish(path, row, seed, global_factor, absorbed_count, absorbed_balance, events, n_events, cover,
                loans, tables, params, layers, out)


@njit()
def _record(
    balance: np.ndarray, count: np.ndarray, cover: np.ndarray, t: int, s: int, cls: int, exposure: float
) -> None:
    """Month-end exposure and count of a live loan (and its covered balance, for fees)."""
    balance[t, s] += exposure
    count[t, s] += 1
    if cover.shape[1] > 0:
        cover[t, cls] += exposure


@njit()
def _stage(s: int) -> int:
    """IFRS 9 stage index of a live state: 0 (S1) for C and M1, 1 (S2) for M2 and M3."""
    return 1 if s >= 2 else 0


@njit()
def _allowance(allowance: AllowanceArrays, j: int, e: int, s: int, x: float, rho: float, arrears: float) -> float:
    """Allowance of loan j at year end e in state s, its systematic index x (rho its variance) and arrears.

    Linear in the standardised index y = x / sqrt(rho) between the table's nodes (clamped
    at the ends); one node (through the cycle) needs no index.
    """
    nodes = allowance.table[j, e, s]  # (G, 2): alpha, beta
    n_grid = nodes.shape[0]
    if n_grid == 1:
        return nodes[0, 0] + nodes[0, 1] * arrears
    y = x / math.sqrt(rho) if rho > 0.0 else 0.0
    f = min(max((y - allowance.lo) * allowance.inv_step, 0.0), n_grid - 1.0)
    g = min(int(f), n_grid - 2)
    h = f - g
    return (1.0 - h) * (nodes[g, 0] + nodes[g, 1] * arrears) + h * (nodes[g + 1, 0] + nodes[g + 1, 1] * arrears)


@njit()
def _leave(transition: np.ndarray, t: int, year_stage: int, year_balance: float, to: int) -> None:
    """The year of month t ends for a loan: its start exposure goes to stage ``to`` (a live
    loan's at the horizon, or STAGE_TO_S3 / STAGE_TO_REPAID for one absorbed in month t)."""
    if transition.shape[0] > 0:
        transition[t // 12, year_stage, to] += year_balance


@njit()
def _rate_cap(
    t: int, j: int, kind: int, bp: float, rate: float, level: float, n: int, policy: PolicyArrays
) -> tuple[float, float]:
    """Rate and level installment of loan j in month t under a rate cap.

    The cap re-prices the loan from its month on, also when that month falls in a deferral
    (the deferred interest then accrues at the capped rate): once re-priced the rate is
    the capped one, which is how the next months know it happened.
    """
    month = policy.reprice_month[j]
    if month < 0 or t < month or rate == policy.reprice_rate[j]:
        return rate, level
    rate = policy.reprice_rate[j]
    return rate, _level(kind, bp, rate, n) if n > 0 else level


@njit()
def _interest_foregone(bp: float, ap: float, rate: float, contract_rate: float, waived: bool) -> float:
    """Interest the lender does not charge this month: all of the contract's in a waived
    deferral month, else the rate cap's cut (0 for a loan at its contract rate)."""
    return (contract_rate if waived else contract_rate - rate) * (bp + ap)


@njit()
def _deferral_start(t: int, j: int, s: int, deferral_end: int, policy: PolicyArrays, params: Params) -> int:
    """Month after the deferral of loan j (its start month if the loan's state is eligible then)."""
    if t == policy.deferral_start[j] and policy.deferral_states[s]:
        return t + params.deferral_months
    return deferral_end


@njit()
def _deferred_month(bp: float, ap: float, rate: float, n: int, params: Params) -> tuple[float, int]:
    """A deferred month: interest capitalised (or waived); a non-extending deferral uses up the term."""
    if params.deferral_accrue:
        bp += rate * (bp + ap)
    if not params.deferral_extend and n > 0:
        n -= 1
    return bp, n


@njit()
def _after_deferral(kind: int, bp: float, rate: float, n: int, level: float) -> tuple[int, float]:
    """Months left and level installment when a deferral ends: re-amortised over what is left.

    A non-extending deferral that outlasted the term leaves no month: the balance falls due
    at once (the loan matures in the first month after the deferral).
    """
    if n == 0 and bp > 0.0:
        n = 1
    return n, _level(kind, bp, rate, n) if n > 0 else level


@njit()
def _cap_gap(
    gap: float, refinanced: float, pp: float, bp: float, has_due: bool, matures: bool
) -> tuple[float, float, bool, float, float]:
    """The excess over the borrower cap falling due: principal due, performing principal,
    whether anything is due, shortfall, and the gap part of the principal due.

    ``gap`` is what the borrower must pay itself, ``refinanced`` what other lenders take
    over. Before maturity the refinanced part is repaid at once and the rest is due as
    extra principal (for a bullet or interest-only loan the month's only due amount); at
    maturity the balance falls due anyway and the gap is the part of it the borrower cannot
    refinance (a shortfall that adds to the stress). Either way the gap part, if missed,
    is gap arrears.
    """
    if matures:
        return pp, bp, has_due, gap, min(gap, pp)
    bp -= min(refinanced, bp - pp)
    extra = min(gap, bp - pp)
    return pp + extra, bp, True, 0.0, extra


@njit()
def _cure_need(gap_arrears: float, regular: float, monthly_interest: float) -> float:
    """log(1 + gap arrears / regular need): what gap arrears add to the log cash need of a cure.

    ``regular`` is what the cure would cost without them (the month's due and the regular
    arrears), whose cure rate is the input q_k; a bullet loan whose only arrears are the
    gap owes nothing regular before maturity, and its monthly interest is the reference,
    as in the stress of the month its gap fell due.
    """
    base = regular if regular > 0.0 else monthly_interest
    if base <= 0.0:
        return 0.0
    return math.log1p(gap_arrears / base)


@njit()
def _level(kind: int, principal: float, rate: float, months: int) -> float:
    """Level installment (annuity) or principal part (equal principal) over ``months``."""
    if kind == ANNUITY:
        if rate > 0.0:
            return principal * rate / (1.0 - (1.0 + rate) ** -months)
        return principal / months
    if kind == EQUAL_PRINCIPAL:
        return principal / months
    return 0.0


@njit()
def _contract_due(kind: int, maturity: bool, has_due: bool, bp: float, ap: float, rate: float, level: float) -> float:
    """What the loan would owe this month under its contractual rate and installment."""
    if not has_due:
        return rate * ap
    return principal_due(kind, maturity, bp, rate, level) + rate * (bp + ap)
