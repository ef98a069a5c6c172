"""The expected-credit-loss kernel: a loan's delinquency chain over factor paths, with its losses.

For one loan and one integration node (a path of its standardised systematic index Y and,
for the t copula, 1 / sqrt(W)), the loan's state distribution is carried month by month
with the one-month probabilities of MODEL.md §3, exactly as the path kernel draws them.
Besides the probability mass of each state the chain carries the expected principal in
arrears, interest in arrears and accrued interest of the loans in it (E[amount 1{state}]):
they evolve linearly (a roll adds the month's principal and interest due, a cure clears
them), so the expected exposure at default in every month is exact. The performing
principal follows the schedule whatever the state (a missed installment moves its
principal into arrears), so it is computed once per loan.

The loss of a default in month t is valued as the path kernel does (docs/model.md §4):
EAD less the pledge proceeds and the unsecured recovery, at the recovery mean given X_t
and the month's stress. It is linear in the EAD, except for a pledge, where
min(EAD, pledge value) is taken at the expected EAD given default in month t and node
(the only approximation; docs/ifrs9.md).
"""

from __future__ import annotations

import math

import numpy as np

from stresslab._kernels.arrays import BULLET, LoanArrays, Params, Tables
from stresslab._kernels.settlement import principal_due
from stresslab._numba import njit, prange

__all__ = ["ECL_LIFETIME", "ECL_WINDOW", "PD_LIFETIME", "PD_WINDOW", "loan_expected_losses"]

PD_WINDOW, PD_LIFETIME, ECL_WINDOW, ECL_LIFETIME = 0, 1, 2, 3  # columns of the output

# the kernel is compiled also when jit is off (STRESSLAB_DISABLE_JIT): a plain-Python chain
# over thousands of nodes per loan would take minutes
_principal_due = principal_due if hasattr(principal_due, "py_func") else njit(always=True)(principal_due)

_NOTHING_DUE, _DUE, _PAST_MATURITY = 0, 1, 2  # what a month asks of the loan
_NEGLIGIBLE = 1e-15  # live probability below which a node's chain stops


@njit(always=True)
def _norm_cdf(z: float, cdf: np.ndarray, density: np.ndarray, lo: float, inv_step: float) -> float:
    """Standard normal CDF by cubic Hermite interpolation of the tabulated CDF and density.

    On the path kernel's grid (step 1/1024) the error is below 1e-14 absolute (h^4 / 384
    times the fourth derivative), where linear interpolation's is about 1e-7: the chain's
    probabilities are those of MODEL.md to double precision, at a table lookup's cost
    (math.erfc takes eight times as long).
    """
    x = (z - lo) * inv_step
    last = cdf.shape[0] - 1
    if not 0.0 < x < last:
        if x <= 0.0:
            return 0.0
        return 1.0 if x >= last else math.nan
    k = np.uint64(x)
    t = x - np.float64(k)
    h = 1.0 / inv_step
    t2 = t * t
    t3 = t2 * t
    k1 = k + np.uint64(1)
    return ((2.0 * t3 - 3.0 * t2 + 1.0) * cdf[k] + (t3 - 2.0 * t2 + t) * h * density[k]
            + (3.0 * t2 - 2.0 * t3) * cdf[k1] + (t3 - t2) * h * density[k1])


@njit(parallel=True, always=True)
def loan_expected_losses(
    loans: LoanArrays,
    tables: Tables,
    params: Params,
    density: np.ndarray,
    months: np.ndarray,
    window: int,
    y: np.ndarray,
    s_w: np.ndarray,
    weight: np.ndarray,
    out: np.ndarray,
) -> None:
    """Default probabilities and discounted expected losses of every loan, from month 1.

    Parameters
    ----------
    loans, tables, params
        The compiled book and scenario (``tables`` over at least ``months.max()`` months).
    density : ndarray
        The standard normal density on the grid of ``tables.norm``.
    months : ndarray of shape (n_loans,)
        Months followed per loan (its lifetime window).
    window : int
        Months of the short window (12 for the 12-month ECL).
    y : ndarray of shape (N, H)
        Standardised systematic index paths Y_1..Y_H of the nodes (X_t = sqrt(rho_j) Y_t).
    s_w : ndarray of shape (N,)
        1 / sqrt(W) of each node (1 for the Gaussian copula).
    weight : ndarray of shape (N,)
        Integration weight of each node (summing to 1).
    out : ndarray of shape (n_loans, 4)
        PD within the window, PD within the lifetime window, and the expected losses of the
        defaults in each, discounted at the loan's rate from the default month's end to the
        start of month 1.
    """
    for j in prange(loans.key.shape[0]):
        _loan(j, loans, tables, params, density, int(months[j]), window, y, s_w, weight, out[j])


@njit(always=True)
def _schedule(j: int, loans: LoanArrays, n_months: int):
    """The performing principal's path: what each month asks, its principal due, the balance after."""
    kind = loans.amortization[j]
    n = loans.term[j]
    bp = loans.principal[j]
    rate = loans.rate[j]
    level = loans.installment[j]
    code = np.empty(n_months, dtype=np.int8)
    pp = np.zeros(n_months)
    start = np.empty(n_months)
    after = np.empty(n_months)
    left = np.empty(n_months, dtype=np.int64)
    for t in range(n_months):
        start[t] = bp
        if n == 0:
            code[t] = _PAST_MATURITY
        elif kind == BULLET and n > 1:
            code[t] = _NOTHING_DUE
        else:
            code[t] = _DUE
            pp[t] = _principal_due(kind, n == 1, bp, rate, level)
        bp -= pp[t]
        if n > 0:
            n -= 1
        after[t] = bp
        left[t] = n
    return code, pp, start, after, left


@njit(always=True)
def _loan(
    j: int,
    loans: LoanArrays,
    tables: Tables,
    params: Params,
    density: np.ndarray,
    n_months: int,
    window: int,
    y: np.ndarray,
    s_w: np.ndarray,
    weight: np.ndarray,
    out: np.ndarray,
) -> None:
    """One loan: its chain over every node, summed with the nodes' weights into ``out``."""
    da = params.default_after
    i, r, g = loans.industry[j], loans.region[j], loans.group[j]
    rate = loans.rate[j]
    c = loans.threshold[j]
    sqrt_rho = math.sqrt(loans.rho[j])
    kappa = params.cycle_sensitivity
    inv_idio, inv_idio_d = loans.inv_idio[j], loans.inv_idio_delinquent[j]
    code, pp, start, after, left = _schedule(j, loans, n_months)
    stress = np.empty(n_months)
    discount = np.empty(n_months)
    for t in range(n_months):
        stress[t] = (tables.log_mult[g, t] + tables.cell[t, i, r]) * loans.inv_sigma[j]
        discount[t] = (1.0 + rate) ** -(t + 1)
    mass = np.zeros(4)  # C, M_1 .. M_{da-1}: probability of the state
    ap = np.zeros(4)  # E[principal in arrears 1{state}]
    ai = np.zeros(4)  # E[interest in arrears 1{state}]
    ac = np.zeros(4)  # E[accrued interest 1{state}] (bullet loans between due dates)
    due = np.zeros(4)  # E[interest due this month 1{state}]
    nxt = np.zeros((4, 4))  # next month's mass, ap, ai, ac by state
    totals = np.zeros(4)
    node_totals = np.zeros(4)
    s0 = loans.state[j]
    for node in range(y.shape[0]):
        w = s_w[node]
        mass[:] = 0.0
        ap[:] = 0.0
        ai[:] = 0.0
        ac[:] = 0.0
        mass[s0] = 1.0
        ap[s0] = loans.arrears_principal[j]
        ai[s0] = loans.arrears_interest[j]
        node_totals[:] = 0.0
        live = 1.0
        for t in range(n_months):
            if live < _NEGLIGIBLE:  # everything paid off or defaulted on this node
                break
            x = sqrt_rho * y[node, t]
            for k in range(da):  # interest falling due (and accruing) this month, linear in the arrears
                if code[t] == _DUE:
                    due[k] = rate * (start[t] * mass[k] + ap[k]) + ac[k]
                    ac[k] = 0.0
                elif code[t] == _PAST_MATURITY:
                    due[k] = rate * ap[k]
                else:
                    due[k] = 0.0
                    ac[k] += rate * (start[t] * mass[k] + ap[k])
            nxt[:, :] = 0.0
            d_mass = d_ead = 0.0  # defaults this month: probability and E[EAD 1{default}]
            for k in range(da):
                if mass[k] == 0.0:
                    continue
                worse, cure, stay = _probabilities(k, code[t], left[t], after[t], stress[t], x, w, c, inv_idio,
                                                   inv_idio_d, kappa, tables, params, density)
                if k == 0:
                    _move(nxt, 0, stay, mass[0], ap[0], ai[0], ac[0])
                else:
                    _move(nxt, 0, cure, mass[k], 0.0, 0.0, ac[k])
                    _move(nxt, k, stay, mass[k], ap[k], ai[k], ac[k])
                # a miss or a roll: the month's principal and interest go into arrears
                if k + 1 < da:
                    _move(nxt, k + 1, worse, mass[k], ap[k] + pp[t] * mass[k], ai[k] + due[k], ac[k])
                else:
                    d_mass += worse * mass[k]
                    d_ead += worse * (after[t] * mass[k] + ap[k] + pp[t] * mass[k] + ai[k] + due[k] + ac[k])
            live = 0.0
            for k in range(da):
                mass[k], ap[k], ai[k], ac[k] = nxt[0, k], nxt[1, k], nxt[2, k], nxt[3, k]
                live += mass[k]
            if d_mass > 0.0:
                loss = d_mass * _loss_given_default(j, t, i, r, d_ead / d_mass, stress[t], x, loans, tables, params,
                                                    density)
                node_totals[PD_LIFETIME] += d_mass
                node_totals[ECL_LIFETIME] += loss * discount[t]
                if t < window:
                    node_totals[PD_WINDOW] += d_mass
                    node_totals[ECL_WINDOW] += loss * discount[t]
        for q in range(4):
            totals[q] += weight[node] * node_totals[q]
    out[:] = totals


@njit(always=True)
def _probabilities(
    k: int, code: int, left: int, after: float, stress: float, x: float, w: float, c: float, inv_idio: float,
    inv_idio_d: float, kappa: float, tables: Tables, params: Params, density: np.ndarray,
) -> tuple[float, float, float]:
    """This month's (worse, cure, stay) of a loan in state k given its index X = ``x`` and 1 / sqrt(W) = ``w``.

    worse: a miss (from C) or a roll; cure: to C (0 from C, and 0 when the cure pays the loan
    off at maturity); stay: in state k (from C: pays and neither prepays nor matures). A
    current loan with nothing due draws nothing: (0, 0, 1). MODEL.md §3, as the path kernel.
    """
    cdf, lo, inv_step = tables.norm, params.norm_lo, params.norm_inv_step
    if k == 0:
        if code != _DUE:
            return 0.0, 0.0, 1.0
        miss_at = c + stress
        miss = _norm_cdf((miss_at * w - x) * inv_idio, cdf, density, lo, inv_step)
        prepay = 0.0
        if params.prepay_threshold < np.inf:
            prepay_z = (max(params.prepay_threshold, miss_at) * w - x) * inv_idio
            prepay = 1.0 - _norm_cdf(prepay_z, cdf, density, lo, inv_step)
        return miss, 0.0, 0.0 if left == 0 else 1.0 - miss - prepay  # the last installment paid: P
    xd = kappa * x
    roll_at = tables.roll_threshold[k - 1] + params.roll_sensitivity * stress
    cure_at = max(tables.cure_threshold[k - 1] + params.cure_sensitivity * stress, roll_at)
    roll = _norm_cdf((roll_at * w - xd) * inv_idio_d, cdf, density, lo, inv_step)
    cure = 1.0 - _norm_cdf((cure_at * w - xd) * inv_idio_d, cdf, density, lo, inv_step)
    stay = 1.0 - roll - cure
    return roll, 0.0 if left == 0 and after <= 0.0 else cure, stay


@njit(always=True)
def _move(nxt: np.ndarray, k: int, p: float, mass: float, ap: float, ai: float, ac: float) -> None:
    """Add the share ``p`` of a state's mass and expected amounts to state ``k`` of next month."""
    nxt[0, k] += p * mass
    nxt[1, k] += p * ap
    nxt[2, k] += p * ai
    nxt[3, k] += p * ac


@njit(always=True)
def _loss_given_default(
    j: int, t: int, i: int, r: int, ead: float, stress: float, x: float, loans: LoanArrays, tables: Tables,
    params: Params, density: np.ndarray,
) -> float:
    """Expected gross loss of a default of EAD ``ead`` in month t (as ``settlement.default_loss``, in expectation)."""
    pledged = 0.0
    if loans.pledge[j] > 0.0:
        sigma = loans.sigma[j]
        revenue_index = tables.revenue[t, i, r] * math.exp(sigma * x - 0.5 * sigma * sigma * loans.rho[j])
        pledged = min(ead, loans.pledge[j] * revenue_index * (1.0 - params.pledge_haircut))
    mean = _norm_cdf(loans.recovery_probit[j] + params.recovery_cycle * x - params.lgd_sensitivity * stress,
                     tables.norm, density, params.norm_lo, params.norm_inv_step)
    mean = min(max(mean, 0.0), 1.0)
    unsecured = mean * (ead - pledged) * (1.0 - params.recovery_cost)
    return max(ead - pledged * loans.pledge_pv[j] - unsecured * loans.unsecured_pv[j], 0.0)


@njit(parallel=True, always=True)
def allowance_tables(
    loans: LoanArrays,
    tables: Tables,
    params: Params,
    density: np.ndarray,
    months: np.ndarray,
    year_ends: np.ndarray,
    window: int,
    grid: np.ndarray,
    move: np.ndarray,
    s_w: np.ndarray,
    mix_weight: np.ndarray,
    alpha: np.ndarray,
    beta: np.ndarray,
) -> None:
    """Every loan's allowance at each year end, by state and systematic index: alpha + beta * arrears.

    Backward induction over the months on a Markov chain of the standardised index Y
    (``grid``, transition matrix ``move``: a discretised AR(1)), one pass per mixing node
    (``s_w`` = 1 / sqrt(W), weights ``mix_weight``). The value at the end of month e of a
    loan in state k with index grid[g] and arrears A (principal, interest and accrued
    interest in arrears) is affine in A: alpha + beta A. For C and M1 (stage 1) it is the
    discounted expected loss of its defaults within ``window`` months, for M2 and M3
    (stage 2) within the lifetime window (``months[j]`` from the start).

    Parameters
    ----------
    loans, tables, params, density
        As :func:`loan_expected_losses` (``tables`` over ``max(months.max(), year_ends[-1] + window)`` months).
    months : ndarray of shape (n_loans,)
        Lifetime window of each loan, months from the start.
    year_ends : ndarray of int
        Month ends the allowance is wanted at (0: the start).
    window : int
        Months of the stage-1 ECL.
    grid, move
        States of the index chain (G,) and its transition matrix (G, G).
    s_w, mix_weight
        Mixing nodes (1 for the Gaussian copula) and their weights.
    alpha, beta : ndarray of shape (n_loans, len(year_ends), 4, G)
        Written: the allowance's constant and its slope in the arrears.
    """
    for j in prange(loans.key.shape[0]):
        _loan_tables(j, loans, tables, params, density, int(months[j]), year_ends, window, grid, move, s_w,
                     mix_weight, alpha[j], beta[j])


@njit(always=True)
def _loan_tables(
    j: int, loans: LoanArrays, tables: Tables, params: Params, density: np.ndarray, lifetime: int,
    year_ends: np.ndarray, window: int, grid: np.ndarray, move: np.ndarray, s_w: np.ndarray,
    mix_weight: np.ndarray, alpha: np.ndarray, beta: np.ndarray,
) -> None:
    """One loan's tables (see :func:`allowance_tables`)."""
    n_months = max(lifetime, int(year_ends[-1]) + window)
    code, pp, start, after, left = _schedule(j, loans, n_months)
    stress = np.empty(n_months)
    for t in range(n_months):
        stress[t] = (tables.log_mult[loans.group[j], t] + tables.cell[t, loans.industry[j], loans.region[j]]) \
            * loans.inv_sigma[j]
    n_grid = grid.shape[0]
    va = np.zeros((4, n_grid))
    vb = np.zeros((4, n_grid))
    ca = np.zeros((4, n_grid))
    cb = np.zeros((4, n_grid))
    alpha[:, :, :] = 0.0
    beta[:, :, :] = 0.0
    for m in range(s_w.shape[0]):
        va[:, :] = 0.0
        vb[:, :] = 0.0
        for t in range(lifetime - 1, -1, -1):  # lifetime: stage 2
            _step(j, t, va, vb, ca, cb, code, pp, start, after, left, stress, s_w[m], loans, tables, params, density,
                  grid, move)
            for e in range(year_ends.shape[0]):
                if year_ends[e] == t:
                    for k in (2, 3):
                        alpha[e, k] += mix_weight[m] * va[k]
                        beta[e, k] += mix_weight[m] * vb[k]
        for e in range(year_ends.shape[0]):  # the next `window` months: stage 1
            va[:, :] = 0.0
            vb[:, :] = 0.0
            for t in range(min(int(year_ends[e]) + window, n_months) - 1, int(year_ends[e]) - 1, -1):
                _step(j, t, va, vb, ca, cb, code, pp, start, after, left, stress, s_w[m], loans, tables, params,
                      density, grid, move)
            for k in (0, 1):
                alpha[e, k] += mix_weight[m] * va[k]
                beta[e, k] += mix_weight[m] * vb[k]


@njit(always=True)
def _step(
    j: int, t: int, va: np.ndarray, vb: np.ndarray, ca: np.ndarray, cb: np.ndarray, code: np.ndarray,
    pp: np.ndarray, start: np.ndarray, after: np.ndarray, left: np.ndarray, stress: np.ndarray, w: float,
    loans: LoanArrays, tables: Tables, params: Params, density: np.ndarray, grid: np.ndarray, move: np.ndarray,
) -> None:
    """Values at the end of month t - 1 from those at the end of month t (0-based t), in place.

    ``va``, ``vb`` (state, index) hold alpha, beta after month t on entry and before it on
    exit; ``ca``, ``cb`` are scratch: the month's outcome given the index of month t.
    The month's arrears A' = a0 + a1 A: staying keeps them (plus accrued interest while a
    bullet loan waits), a miss or a roll adds the principal and interest due (the interest
    due counts all arrears as interest-bearing, a slight excess: interest in arrears bears
    none), a cure clears them.
    """
    da = params.default_after
    rate = loans.rate[j]
    sqrt_rho = math.sqrt(loans.rho[j])
    if code[t] == _DUE:
        s0, s1, due0, due1 = 0.0, 1.0, rate * start[t], rate
    elif code[t] == _PAST_MATURITY:
        s0, s1, due0, due1 = 0.0, 1.0, 0.0, rate
    else:  # a bullet loan before maturity: interest accrues
        s0, s1, due0, due1 = rate * start[t], 1.0 + rate, 0.0, 0.0
    r0, r1 = s0 + pp[t] + due0, s1 + due1  # after a miss or a roll
    ead_ref = after[t] + r0 + r1 * (da - 1) * (pp[t] + due0)  # the EAD of a default after da - 1 missed months
    for g in range(grid.shape[0]):
        x = sqrt_rho * grid[g]
        loss = slope = 0.0
        worse_d = 0.0
        for k in range(da):
            worse, cure, stay = _probabilities(k, code[t], left[t], after[t], stress[t], x, w, loans.threshold[j],
                                               loans.inv_idio[j], loans.inv_idio_delinquent[j],
                                               params.cycle_sensitivity, tables, params, density)
            a = stay * (va[k, g] + vb[k, g] * s0) + cure * va[0, g]
            b = stay * vb[k, g] * s1
            if k + 1 < da:
                a += worse * (va[k + 1, g] + vb[k + 1, g] * r0)
                b += worse * vb[k + 1, g] * r1
            else:
                if worse_d == 0.0:
                    i, r = loans.industry[j], loans.region[j]
                    loss = _loss_given_default(j, t, i, r, ead_ref, stress[t], x, loans, tables, params, density)
                    bump = 1e-6 * ead_ref + 1e-9
                    slope = (_loss_given_default(j, t, i, r, ead_ref + bump, stress[t], x, loans, tables, params,
                                                 density) - loss) / bump
                    worse_d = 1.0
                a += worse * (loss + slope * (after[t] + r0 - ead_ref))
                b += worse * slope * r1
            ca[k, g] = a
            cb[k, g] = b
    v = 1.0 / (1.0 + rate)
    for k in range(da):
        for g in range(grid.shape[0]):
            acc_a = acc_b = 0.0
            for h in range(grid.shape[0]):
                acc_a += move[g, h] * ca[k, h]
                acc_b += move[g, h] * cb[k, h]
            va[k, g] = v * acc_a
            vb[k, g] = v * acc_b
