"""The pooled path kernel: groups of identical loans moved between states as counts.

A pool is a set of loans identical in every model input (stresslab.compile.pooling): in every
month they face the same systematic index, the same conditional miss, roll, cure and
prepayment probabilities and the same schedule. Given the path, their transitions are
independent, so the number of a state's loans that miss, roll or cure is binomial
(multinomial over the outcomes): drawn exactly by ``binomial_draw``. The counts by state
therefore have exactly the law of loan-level simulation.

What loans of one state do not share is their history: loans in M_k carry the arrears of
the months they missed. The kernel keeps cohorts: each live state, without and with a
missed final installment (at a balloon maturity that is the whole principal), and per
cohort the sums of arrears principal, arrears interest and accrued interest; loans leaving
a cohort take its average. Within a cohort the arrears differ only by the spread of the
regular installments missed, so the averages are exact in expectation and close loan by
loan. Performing principal is the same for every live loan of a pool (every branch pays
or defers the same principal part), so it is one number.

Defaults of a cohort in a month are one event of N loans, or N events of one loan each
(with a recovery rate each) when some layer's payout is not linear in the loan's loss
(excess of loss, per-loan limit): see stresslab.compile.pooling.pooled_events.
"""

from __future__ import annotations

import numpy as np

from stresslab._kernels.arrays import (
    BULLET,
    LayerArrays,
    LoanArrays,
    Outputs,
    Params,
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
from stresslab._kernels.special import binomial_draw, norm_cdf
from stresslab._numba import njit, prange
from stresslab._rng import mix64

__all__ = ["simulate_pools"]

_COHORTS = 8  # states C, M1, M2, M3 (index & 3), without (0..3) and with (4..7) a missed final installment
_BALLOON = 4
_STREAM_STEP = np.uint64(0x9E3779B97F4A7C15)  # between the recovery streams of a pool-month's default events


@njit(parallel=True)
def simulate_pools(
    first_path: int,
    seed: np.uint64,
    pools: LoanArrays,
    size: np.ndarray,
    per_loan_events: bool,
    max_events: int,
    tables: Tables,
    params: Params,
    layers: LayerArrays,
    out: Outputs,
) -> None:
    """Simulate paths ``first_path ..`` of a pooled book into ``out`` (zeroed by the caller).

    ``pools`` holds one row per pool (its first loan) and ``size`` (int64) its number of
    loans. Defaults become one event per loan if ``per_loan_events``, else one per cohort
    and month; ``max_events`` bounds their number in a path. Pooled books carry no policy
    levers (stresslab.compile.pooling refuses them).
    """
    n_paths = out.loss_gross.shape[0]
    drawn = drawn_factors(pools, tables, out.eta.shape[1] > 0)
    n_blocks = path_blocks(n_paths)
    for b in prange(n_blocks):
        scratch = path_scratch(out.loss_gross.shape[1], max_events, tables, layers, params, drawn)
        for row in range(b * n_paths // n_blocks, (b + 1) * n_paths // n_blocks):
            _simulate_pooled_path(
                first_path + row, row, seed, pools, size, per_loan_events, max_events, tables, params, layers, out, scratch
            )


@njit()
def _simulate_pooled_path(
    path: int,
    row: int,
    seed: np.uint64,
    pools: LoanArrays,
    size: np.ndarray,
    per_loan_events: bool,
    max_events: int,
    tables: Tables,
    params: Params,
    layers: LayerArrays,
    out: Outputs,
    scratch: PathScratch,
) -> None:
    n_months = out.loss_gross.shape[1]
    norm, lo, inv_step = tables.norm, params.norm_lo, params.norm_inv_step
    x, global_factor, inv_sqrt_w, month_key = path_start(path, row, seed, tables, params, out, scratch)
    default_after = params.default_after
    absorbed_count, absorbed_balance, events, cover = path_buffers(scratch)
    n_events = 0
    balance = out.balance_by_state[row]
    count = out.count_by_state[row]
    income = out.interest_income[row]
    cash_in = out.recoveries[row]
    # per cohort: loans and the sums of their arrears principal, arrears interest, accrued interest
    live = np.zeros(_COHORTS, dtype=np.int64)
    arrears_p = np.zeros(_COHORTS)
    arrears_i = np.zeros(_COHORTS)
    accrued = np.zeros(_COHORTS)
    due_interest = np.zeros(_COHORTS)  # the month's interest due, summed over the cohort
    moved = np.zeros(_COHORTS, dtype=np.int64)  # the month's outcomes, applied after all draws
    moved_p = np.zeros(_COHORTS)
    moved_i = np.zeros(_COHORTS)
    moved_a = np.zeros(_COHORTS)

    for j in range(pools.key.shape[0]):
        i = pools.industry[j]
        r = pools.region[j]
        g = pools.group[j]
        kind = pools.amortization[j]
        n = pools.term[j]
        bp = pools.principal[j]
        rate = pools.rate[j]
        level = pools.installment[j]
        c = pools.threshold[j]
        inv_sigma = pools.inv_sigma[j]
        inv_idio = pools.inv_idio[j]
        inv_idio_d = pools.inv_idio_delinquent[j]
        pkey = pools.key[j]
        cls = layers.cover_class[j]
        live[:] = 0
        arrears_p[:] = 0.0
        arrears_i[:] = 0.0
        accrued[:] = 0.0
        start = pools.state[j]
        live[start] = size[j]
        arrears_p[start] = size[j] * pools.arrears_principal[j]
        arrears_i[start] = size[j] * pools.arrears_interest[j]
        for t in range(n_months):
            if live.sum() == 0:
                break
            # what falls due this month (as in the loan-level kernel, summed over each cohort)
            maturity = n == 1
            waiting = kind == BULLET and n > 1  # a bullet loan before maturity: interest accrues
            has_due = n > 0 and not waiting
            for h in range(_COHORTS):
                if live[h] == 0:
                    continue
                if n == 0:
                    due_interest[h] = rate * arrears_p[h]
                elif waiting:
                    due_interest[h] = 0.0
                    accrued[h] += rate * (live[h] * bp + arrears_p[h])
                else:
                    due_interest[h] = rate * (live[h] * bp + arrears_p[h]) + accrued[h]
                    accrued[h] = 0.0
            pp = principal_due(kind, maturity, bp, rate, level) if has_due else 0.0
            if n > 0:
                n -= 1
            bp_next = bp - pp
            # the conditional probabilities of MODEL.md §3 given the path (as the loan-level kernel's thresholds)
            stress = (tables.log_mult[g, t] + tables.cell[t, i, r]) * inv_sigma
            x_t = x[t, i, r]
            miss_at = c + stress
            p_miss = norm_cdf((miss_at * inv_sqrt_w - x_t) * inv_idio, norm, lo, inv_step)
            p_prepay = 0.0  # among the loans that pay
            if params.prepay_threshold < np.inf and p_miss < 1.0:
                above = 1.0 - norm_cdf((max(params.prepay_threshold, miss_at) * inv_sqrt_w - x_t) * inv_idio, norm, lo, inv_step)
                p_prepay = min(above / (1.0 - p_miss), 1.0)
            x_d = params.cycle_sensitivity * x_t
            state = mix64(month_key[t] + pkey)
            draw_no = 0
            moved[:] = 0
            moved_p[:] = 0.0
            moved_i[:] = 0.0
            moved_a[:] = 0.0
            paid_off = 0
            for h in range(_COHORTS):
                m = live[h]
                if m == 0:
                    continue
                s = h & 3
                mark = _BALLOON if maturity else h & _BALLOON  # who misses the final installment is marked
                ap, ai, acc, di = arrears_p[h], arrears_i[h], accrued[h], due_interest[h]
                if s == 0:
                    if not has_due:  # nothing due: no draw, nothing changes
                        moved[h] += m
                        moved_a[h] += acc
                        continue
                    missed, state = binomial_draw(m, p_miss, state)
                    stayed = m - missed
                    income[t] += di * (stayed / m)
                    prepaid = 0
                    if n == 0:
                        prepaid = stayed
                    elif p_prepay > 0.0:
                        prepaid, state = binomial_draw(stayed, p_prepay, state)
                    paid_off += prepaid
                    moved[h] += stayed - prepaid
                    moved_a[h] += acc * ((stayed - prepaid) / m)
                    rolled, f_roll = missed, missed / m
                else:
                    roll_at = tables.roll_threshold[s - 1] + params.roll_sensitivity * stress
                    cure_at = max(tables.cure_threshold[s - 1] + params.cure_sensitivity * stress, roll_at)
                    roll = norm_cdf((roll_at * inv_sqrt_w - x_d) * inv_idio_d, norm, lo, inv_step)
                    cure = 1.0 - norm_cdf((cure_at * inv_sqrt_w - x_d) * inv_idio_d, norm, lo, inv_step)
                    rolled, state = binomial_draw(m, roll, state)
                    cured, state = binomial_draw(m - rolled, cure / (1.0 - roll) if roll < 1.0 else 0.0, state)
                    stayed = m - rolled - cured
                    f_roll, f_cure, f_stay = rolled / m, cured / m, stayed / m
                    income[t] += di * (f_cure + f_stay) + ai * f_cure
                    if cured > 0:
                        if n == 0 and bp_next <= 0.0:
                            paid_off += cured
                        else:
                            moved[0] += cured
                            moved_a[0] += acc * f_cure
                    moved[h] += stayed
                    moved_p[h] += ap * f_stay
                    moved_i[h] += ai * f_stay
                    moved_a[h] += acc * f_stay
                if rolled == 0:
                    continue
                to_p = ap * f_roll + rolled * pp
                to_i = (ai + di) * f_roll
                to_a = acc * f_roll
                if s + 1 < default_after:
                    moved[s + 1 + mark] += rolled
                    moved_p[s + 1 + mark] += to_p
                    moved_i[s + 1 + mark] += to_i
                    moved_a[s + 1 + mark] += to_a
                    continue
                ead_total = rolled * bp_next + to_p + to_i + to_a
                principal_share = (rolled * bp_next + to_p) / ead_total if ead_total > 0.0 else 1.0
                n_events, draw_no = _book_defaults(
                    rolled, ead_total, principal_share, j, t, i, r, stress, x_t, path, seed, pkey, draw_no,
                    per_loan_events, pools, tables, params, cash_in, events, n_events, absorbed_count, absorbed_balance,
                )
            bp = bp_next
            live[:] = moved
            arrears_p[:] = moved_p
            arrears_i[:] = moved_i
            accrued[:] = moved_a
            absorbed_count[t, 1] += paid_off
            for h in range(_COHORTS):
                if live[h] > 0:
                    exposure = live[h] * bp + arrears_p[h] + arrears_i[h] + accrued[h]
                    balance[t, h & 3] += exposure
                    count[t, h & 3] += live[h]
                    if cover.shape[1] > 0:
                        cover[t, cls] += exposure

    path_finish(path, row, seed, global_factor, absorbed_count, absorbed_balance, events, n_events, cover,
                pools, tables, params, layers, out)


@njit()
def _book_defaults(
    defaults: int,
    ead_total: float,
    principal_share: float,
    j: int,
    t: int,
    i: int,
    r: int,
    stress: float,
    x_sys: float,
    path: int,
    seed: np.uint64,
    key: np.uint64,
    draw_no: int,
    per_loan_events: bool,
    pools: LoanArrays,
    tables: Tables,
    params: Params,
    cash_in: np.ndarray,
    events: tuple,
    n_events: int,
    absorbed_count: np.ndarray,
    absorbed_balance: np.ndarray,
) -> tuple[int, int]:
    """Book ``defaults`` defaults of pool j in month t, of average EAD ``ead_total / defaults``.

    Writes one event of all of them, or one per loan if ``per_loan_events`` (a layer with
    per-loan terms); the recovery draws of the k-th event of the pool's month use the
    stream ``key + (draw_no + k) * golden``. Adds the defaults to the month's absorbed
    count and balance. Returns the new event count and draw number.
    """
    ead = ead_total / defaults
    groups, each = (defaults, 1) if per_loan_events else (1, defaults)
    for _ in range(groups):
        stream = key + np.uint64(draw_no) * _STREAM_STEP
        loss = default_loss(ead, each, j, t, i, r, stress, x_sys, path, seed, stream, pools, tables, params, cash_in)
        n_events = write_event(events, n_events, j, t, each, loss, principal_share)
        draw_no += 1
    absorbed_count[t, 0] += defaults
    absorbed_balance[t] += ead_total
    return n_events, draw_no
