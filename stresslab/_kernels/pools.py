"""The pooled path kernel: groups of identical loans moved between states as counts.

A pool is a set of loans identical in every model input (stresslab.pooling): in every
month they face the same systematic index, the same conditional miss, roll, cure and
prepayment probabilities and the same schedule. Given the path, their transitions are
independent, so the number of a state's loans that miss, roll or cure is binomial
(multinomial over the outcomes): drawn exactly by ``binomial_draw``. The counts by state
therefore have exactly the law of loan-level simulation.

What loans of one state do not share is their history: loans in M_k carry the arrears of
the months they missed. Per state the kernel keeps the sums of arrears principal, arrears
interest and accrued interest, and loans leaving a state take the state's average (exact
in expectation; the spread of arrears within a state is ignored, which moves EADs by a
small fraction of one installment). Performing principal is the same for every live loan
of a pool (every branch pays or defers the same principal part), so it is one number.
"""

from __future__ import annotations

import numpy as np

from stresslab._kernels.allocation import LayerArrays
from stresslab._kernels.paths import (
    ANNUITY,
    BULLET,
    EQUAL_PRINCIPAL,
    STATE_P,
    LoanArrays,
    Outputs,
    Params,
    Tables,
    default_loss,
    path_buffers,
    path_finish,
    path_start,
)
from stresslab._kernels.special import binomial_draw, norm_cdf
from stresslab._numba import njit, prange
from stresslab._rng import mix64

__all__ = ["simulate_pools"]


@njit(parallel=True)
def simulate_pools(
    first_path: int,
    seed: np.uint64,
    pools: LoanArrays,
    size: np.ndarray,
    tables: Tables,
    params: Params,
    layers: LayerArrays,
    out: Outputs,
) -> None:
    """Simulate paths ``first_path ..`` of a pooled book into ``out`` (zeroed by the caller).

    ``pools`` holds one row per pool (its first loan) and ``size`` (int64) its number of
    loans. Pooled books carry no policy levers (stresslab.pooling refuses them).
    """
    max_events = min(pools.key.shape[0] * out.loss_gross.shape[1], int(size.sum()))
    for row in prange(out.loss_gross.shape[0]):
        _simulate_pooled_path(first_path + row, row, seed, pools, size, tables, params, layers, max_events, out)


@njit()
def _simulate_pooled_path(
    path: int,
    row: int,
    seed: np.uint64,
    pools: LoanArrays,
    size: np.ndarray,
    tables: Tables,
    params: Params,
    layers: LayerArrays,
    max_events: int,
    out: Outputs,
) -> None:
    n_months = out.loss_gross.shape[1]
    norm, lo, inv_step = tables.norm, params.norm_lo, params.norm_inv_step
    x, global_factor, inv_sqrt_w, month_key = path_start(path, row, seed, tables, params, out)
    default_after = params.default_after
    absorbed_count, absorbed_balance, events, cover = path_buffers(n_months, max_events, layers, params)
    ev_loan, ev_month, ev_count, ev_loss, ev_principal_share = events
    n_events = 0
    balance = out.balance_by_state[row]
    count = out.count_by_state[row]
    income = out.interest_income[row]
    cash_in = out.recoveries[row]
    # per live state C, M1, M2, M3: loans and the sums of their arrears and accrued interest
    live = np.zeros(4, dtype=np.int64)
    arrears_p = np.zeros(4)
    arrears_i = np.zeros(4)
    accrued = np.zeros(4)
    moved = np.zeros(4, dtype=np.int64)  # the month's outcomes, applied after all draws
    moved_p = np.zeros(4)
    moved_i = np.zeros(4)
    moved_a = np.zeros(4)
    due_interest = np.zeros(4)  # per state, summed over its loans

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
        gp = pools.probit_p[j]
        inv_sigma = pools.inv_sigma[j]
        inv_idio = pools.inv_idio[j]
        pkey = pools.key[j]
        cls = layers.cover_class[j]
        live[:] = 0
        arrears_p[:] = 0.0
        arrears_i[:] = 0.0
        accrued[:] = 0.0
        s0 = pools.state[j]
        live[s0] = size[j]
        arrears_p[s0] = size[j] * pools.arrears_principal[j]
        arrears_i[s0] = size[j] * pools.arrears_interest[j]
        for t in range(n_months):
            if live.sum() == 0:
                break
            # what falls due this month (as in the loan-level kernel, summed over each state)
            pp = 0.0
            has_due = False
            maturity = n == 1
            due_interest[:] = 0.0
            for s in range(default_after):
                if live[s] == 0:
                    continue
                if n == 0:
                    due_interest[s] = rate * arrears_p[s]
                elif kind == BULLET and n > 1:
                    accrued[s] += rate * (live[s] * bp + arrears_p[s])
                else:
                    due_interest[s] = rate * (live[s] * bp + arrears_p[s]) + accrued[s]
                    accrued[s] = 0.0
            if n > 0 and not (kind == BULLET and n > 1):
                has_due = True
                if maturity:
                    pp = bp
                elif kind == ANNUITY:
                    pp = min(max(level - rate * bp, 0.0), bp)
                elif kind == EQUAL_PRINCIPAL:
                    pp = min(level, bp)
            if n > 0:
                n -= 1
            z = ((c + (tables.log_mult[g, t] + tables.cell[t, i, r]) * inv_sigma) * inv_sqrt_w - x[t, i, r]) * inv_idio
            state = mix64(month_key[t] + pkey)
            moved[:] = 0
            moved_p[:] = 0.0
            moved_i[:] = 0.0
            moved_a[:] = 0.0
            defaults = np.int64(0)
            default_p = 0.0
            default_i = 0.0
            default_a = 0.0
            paid_off = np.int64(0)
            for s in range(default_after):
                m = live[s]
                if m == 0:
                    continue
                # the state's loans leave with its average arrears: fractions of its sums
                ap, ai, acc, di = arrears_p[s], arrears_i[s], accrued[s], due_interest[s]
                if s == 0:
                    if not has_due:  # nothing due: no draw, nothing changes
                        moved[0] += m
                        moved_a[0] += acc
                        continue
                    miss, state = binomial_draw(m, norm_cdf(z, norm, lo, inv_step), state)
                    stay = m - miss
                    income[t] += di * (stay / m)
                    if n == 0:
                        prepaid = stay
                    elif params.prepayment > 0.0:
                        prepaid, state = binomial_draw(stay, params.prepayment, state)
                    else:
                        prepaid = np.int64(0)
                    paid_off += prepaid
                    moved[0] += stay - prepaid
                    moved_a[0] += acc * ((stay - prepaid) / m)
                    moved[1] += miss
                    moved_p[1] += miss * pp
                    moved_i[1] += di * (miss / m)
                    moved_a[1] += acc * (miss / m)
                    continue
                delta = z - gp if gp > -np.inf else 0.0
                roll = norm_cdf(tables.probit_roll[s - 1] + params.roll_sensitivity * delta, norm, lo, inv_step)
                cure = min(norm_cdf(tables.probit_cure[s - 1] - params.cure_sensitivity * delta, norm, lo, inv_step), 1.0 - roll)
                rolled, state = binomial_draw(m, roll, state)
                cured, state = binomial_draw(m - rolled, cure / (1.0 - roll) if roll < 1.0 else 0.0, state)
                stayed = m - rolled - cured
                f_roll, f_cure, f_stay = rolled / m, cured / m, stayed / m
                income[t] += di * (f_cure + f_stay) + ai * f_cure
                if rolled > 0:
                    to_p = ap * f_roll + rolled * pp
                    to_i = ai * f_roll + di * f_roll
                    if s + 1 == default_after:
                        defaults += rolled
                        default_p += to_p
                        default_i += to_i
                        default_a += acc * f_roll
                    else:
                        moved[s + 1] += rolled
                        moved_p[s + 1] += to_p
                        moved_i[s + 1] += to_i
                        moved_a[s + 1] += acc * f_roll
                if cured > 0:
                    if n == 0 and bp - pp <= 0.0:
                        paid_off += cured
                    else:
                        moved[0] += cured
                        moved_a[0] += acc * f_cure
                moved[s] += stayed
                moved_p[s] += ap * f_stay
                moved_i[s] += ai * f_stay
                moved_a[s] += acc * f_stay
            bp -= pp
            live[:] = moved
            arrears_p[:] = moved_p
            arrears_i[:] = moved_i
            accrued[:] = moved_a
            absorbed_count[t, 1] += paid_off
            if defaults > 0:
                ead_total = defaults * bp + default_p + default_i + default_a
                ead = ead_total / defaults
                delta = z - gp if gp > -np.inf else 0.0
                ev_loan[n_events] = j
                ev_month[n_events] = t
                ev_count[n_events] = defaults
                ev_principal_share[n_events] = (defaults * bp + default_p) / ead_total if ead_total > 0.0 else 1.0
                ev_loss[n_events] = default_loss(
                    ead, defaults, j, t, i, r, delta, x[t, i, r], path, seed, pools, tables, params, cash_in
                )
                n_events += 1
                absorbed_count[t, 0] += defaults
                absorbed_balance[t] += ead_total
            for s in range(default_after):
                if live[s] > 0:
                    exposure = live[s] * bp + arrears_p[s] + arrears_i[s] + accrued[s]
                    balance[t, s] += exposure
                    count[t, s] += live[s]
                    if cover.shape[1] > 0:
                        cover[t, cls] += exposure

    path_finish(path, row, seed, global_factor, absorbed_count, absorbed_balance, events, n_events, cover,
                pools, tables, params, layers, out)
