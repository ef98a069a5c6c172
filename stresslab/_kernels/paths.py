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
from typing import NamedTuple

import numpy as np

from stresslab._kernels.allocation import LayerArrays, allocate_losses
from stresslab._kernels.special import below_norm_cdf, beta_draw, log_gamma_draw, ndtri, norm_cdf
from stresslab._numba import njit, prange
from stresslab._rng import (
    PURPOSE_COMPONENT,
    PURPOSE_COUNTERPARTY,
    PURPOSE_FACTOR,
    PURPOSE_MIXING,
    PURPOSE_RECOVERY,
    PURPOSE_TRANSITION,
    mix64,
    next_uniform,
    stream_key,
    uniform,
)

__all__ = [
    "STATES", "LoanArrays", "Tables", "Params", "PolicyArrays", "Outputs", "simulate_paths", "factor_index",
    "from_tilted", "path_weight", "path_start", "path_buffers", "path_finish", "principal_due", "default_loss", "write_event",
]

STATES = ("C", "M1", "M2", "M3", "D", "P")
STATE_D = 4
STATE_P = 5

ANNUITY, EQUAL_PRINCIPAL, INTEREST_ONLY, BULLET = 0, 1, 2, 3


class LoanArrays(NamedTuple):
    """Per-loan inputs, shape (n_loans,) each (see stresslab.model for their meaning)."""

    key: np.ndarray  # uint64 random-stream key of the loan
    industry: np.ndarray  # int32 index into the industry axis
    region: np.ndarray  # int32 index into the region axis
    group: np.ndarray  # int32 row of Tables.log_mult (installment multiplier group)
    amortization: np.ndarray  # int8 ANNUITY..BULLET
    state: np.ndarray  # int8 initial missed installments 0..3
    term: np.ndarray  # int32 months to maturity
    principal: np.ndarray  # performing principal (not yet due)
    arrears_principal: np.ndarray
    arrears_interest: np.ndarray
    installment: np.ndarray  # level installment (annuity) or principal part (equal principal)
    rate: np.ndarray  # monthly interest rate
    threshold: np.ndarray  # c_j = F^{-1}(p_j), the entry (miss) threshold calibrated to the pd
    inv_sigma: np.ndarray  # 1 / sigma_j
    sigma: np.ndarray
    rho: np.ndarray  # systematic variance of the latent
    inv_idio: np.ndarray  # 1 / sqrt(1 - rho_j)
    inv_idio_delinquent: np.ndarray  # 1 / sqrt(1 - kappa^2 rho_j), the delinquent states' latent
    pledge: np.ndarray  # pledged receivables at nominal value
    recovery_probit: np.ndarray  # Phi^{-1}(m0_j) sqrt(1 + beta^2 rho_j) of the unsecured recovery mean
    pledge_pv: np.ndarray  # discount factor of pledge proceeds to the default month
    unsecured_pv: np.ndarray  # discount factor of unsecured recoveries
    track: np.ndarray  # int32 column of loss_by_loan for loans tracked on request, -1 otherwise


class Tables(NamedTuple):
    """Scenario tables shared by all loans."""

    cell: np.ndarray  # (T, n_ind, n_reg): -log(season) - log(1 + shock)
    revenue: np.ndarray  # (T, n_ind, n_reg): season * (1 + shock)
    log_mult: np.ndarray  # (n_groups, T): log(I_{j,t} / I_j^0)
    sqrt_cov: np.ndarray  # (K, K): A with A A' = Sigma
    loadings: np.ndarray  # (n_ind, 3): global, industry, region loadings
    factor_key: np.ndarray  # (K,) uint64 stream keys of the factors
    factor_shift: np.ndarray  # (T + 1, K) mean of eta_t under importance sampling (0: plain MC)
    roll_threshold: np.ndarray  # (3,) a_k = F^{-1}(r_k)
    cure_threshold: np.ndarray  # (3,) b_k = F^{-1}(1 - q_k)
    norm: np.ndarray  # tabulated normal CDF values


class Params(NamedTuple):
    """Scalar parameters."""

    ar1: float
    t_copula: bool
    dof: float
    default_after: int
    roll_sensitivity: float
    cure_sensitivity: float
    prepay_threshold: float  # F^{-1}(1 - pi); inf without prepayment
    cycle_sensitivity: float  # kappa: the delinquent states' loading on the systematic index
    recovery_cycle: float  # beta: the recovery mean's loading on the systematic index
    recovery_dispersion: float
    recovery_cost: float
    recovery_lag: int
    pledge_haircut: float
    pledge_lag: int
    lgd_sensitivity: float
    deferral_months: int
    deferral_accrue: bool  # capitalise the interest of deferred months (else waived)
    deferral_extend: bool  # maturity moves by the deferral (else the term is compressed)
    track_cover: bool  # accumulate covered balances (some layer charges a fee)
    norm_lo: float
    norm_inv_step: float
    # importance sampling: share of paths drawn from the nominal law (defensive mixture,
    # docs/importance_sampling.md); 1 = plain MC, and every weight is <= 1 / defensive_share
    defensive_share: float = 1.0
    # importance sampling: a tilted path draws the t mixing chi2 as 2 Gamma(dof / 2 + chi2_shape_shift)
    chi2_shape_shift: float = 0.0


class PolicyArrays(NamedTuple):
    """Policy levers per loan (MODEL.md §6); months are 0-based, -1 = never."""

    flag: np.ndarray  # uint8: some lever changes this loan's terms (the kernel's slow path)
    # shape (0,) when no loan has a lever, (0, 0) otherwise: its ndim is a compile-time
    # constant, so the kernel compiled for books without levers carries none of their code
    enabled: np.ndarray
    deferral_start: np.ndarray  # int32 month a deferral would start
    deferral_states: np.ndarray  # (4,) uint8: states C..M3 eligible for the deferral
    gap_month: np.ndarray  # int32 month the excess over the borrower cap falls due
    gap_amount: np.ndarray  # the loan's share of its borrower's excess
    subsidy: np.ndarray  # monthly rate paid by the state
    subsidy_start: np.ndarray  # int32, first month of the subsidy
    subsidy_end: np.ndarray  # int32, month after the last
    reprice_month: np.ndarray  # int32 month the rate cap re-prices the loan
    reprice_rate: np.ndarray  # monthly rate after re-pricing
    shaped: np.ndarray  # uint8: installments follow the seasonality
    shape: np.ndarray  # (n_ind, T) seasonal installment factors
    shape_scale: np.ndarray  # per loan: keeps the shaped installments' present value


class Outputs(NamedTuple):
    """Per-path results of a chunk; first axis is the path within the chunk."""

    loss_gross: np.ndarray  # (P, T)
    loss_net: np.ndarray  # (P, T)
    interest_income: np.ndarray  # (P, T)
    recoveries: np.ndarray  # (P, T)
    balance_by_state: np.ndarray  # (P, T, 6)
    count_by_state: np.ndarray  # (P, T, 6) int64
    loss_by_cell: np.ndarray  # (P, n_ind, n_reg) gross loss over the horizon
    loss_by_loan: np.ndarray  # (P, n_tracked) gross loss over the horizon of tracked loans
    layer_paid: np.ndarray  # (P, T, L) loss borne by each layer, in the default month
    layer_cash: np.ndarray  # (P, T, L) payout cash, in the month it is paid
    layer_capacity_left: np.ndarray  # (P, T, L)
    layer_fee: np.ndarray  # (P, T, L)
    layer_failure_month: np.ndarray  # (P, L) int64, 1-based; 0 = did not fail
    subsidy_cost: np.ndarray  # (P, T) interest paid by the state
    deferred_count: np.ndarray  # (P, T) int64 loans in a deferral
    weight: np.ndarray  # (P,) likelihood ratio of the path (1 without importance sampling)
    eta: np.ndarray  # (P, T + 1, K) factor innovations, for tuning IS; (P, 0, K) when not recorded
    chi2: np.ndarray  # (P,) chi-square of the t mixing (0 for the Gaussian copula)


@njit(parallel=True)
def simulate_paths(
    first_path: int,
    seed: np.uint64,
    loans: LoanArrays,
    tables: Tables,
    params: Params,
    policy: PolicyArrays,
    layers: LayerArrays,
    out: Outputs,
) -> None:
    """Simulate paths ``first_path .. first_path + P - 1`` into ``out`` (zeroed by the caller)."""
    for row in prange(out.loss_gross.shape[0]):
        _simulate_path(first_path + row, row, seed, loans, tables, params, policy, layers, out)


@njit()
def factor_index(
    path: int, seed: np.uint64, tables: Tables, params: Params, n_months: int, eta_out: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """Systematic index X[t, i, r] of a loan of industry i and region r in month t + 1.

    Z_0 = A eta_0; Z_t = phi Z_{t-1} + sqrt(1 - phi^2) A eta_t (MODEL.md §1). Under
    importance sampling a path :func:`from_tilted` has eta_t ~ N(mu_t, I) with
    mu_t = ``tables.factor_shift[t]`` (the others N(0, I)); the returned log likelihood
    ratio of nominal to tilted law, sum_t (|mu_t|^2 / 2 - mu_t . eta_t), is exactly 0 for
    plain Monte Carlo (mu = 0).
    Returns X, the global factor G_t (shape (n_months,)) and the log likelihood ratio;
    writes the innovations into ``eta_out`` (shape (n_months + 1, K)) unless it is empty.
    """
    k_all = tables.sqrt_cov.shape[0]
    n_ind = tables.loadings.shape[0]
    n_reg = k_all - 1 - n_ind
    eta = np.empty(k_all)
    z = np.zeros(k_all)
    x = np.empty((n_months, n_ind, n_reg))
    global_factor = np.empty(n_months)
    innovation = math.sqrt(1.0 - params.ar1 * params.ar1)
    keep_eta = eta_out.shape[0] > 0
    log_lr = 0.0
    tilted = from_tilted(path, seed, params)
    for t in range(n_months + 1):
        key = stream_key(seed, path, t, PURPOSE_FACTOR)
        shift = tables.factor_shift[t]
        for k in range(k_all):
            eta[k] = ndtri(uniform(key, tables.factor_key[k])) + (shift[k] if tilted else 0.0)
            log_lr += shift[k] * (0.5 * shift[k] - eta[k])
            if keep_eta:
                eta_out[t, k] = eta[k]
        scale = 1.0 if t == 0 else innovation
        keep = 0.0 if t == 0 else params.ar1
        for a in range(k_all):
            acc = 0.0
            for b in range(k_all):
                acc += tables.sqrt_cov[a, b] * eta[b]
            z[a] = keep * z[a] + scale * acc
        if t == 0:
            continue
        global_factor[t - 1] = z[0]
        for i in range(n_ind):
            base = tables.loadings[i, 0] * z[0] + tables.loadings[i, 1] * z[1 + i]
            for r in range(n_reg):
                x[t - 1, i, r] = base + tables.loadings[i, 2] * z[1 + n_ind + r]
    return x, global_factor, log_lr


@njit()
def from_tilted(path: int, seed: np.uint64, params: Params) -> bool:
    """Whether the path comes from the tilted law of the defensive mixture (else the nominal).

    One uniform of its own stream (PURPOSE_COMPONENT) per path: the path is nominal with
    probability ``params.defensive_share``, so the paths are iid from the mixture
    a p + (1 - a) q. Always False for plain Monte Carlo (share 1).
    """
    return uniform(stream_key(seed, path, 0, PURPOSE_COMPONENT), np.uint64(0)) >= params.defensive_share


@njit()
def path_weight(log_lr: float, share: float) -> float:
    """Likelihood ratio of the nominal law to the defensive mixture at a path.

    ``log_lr`` is log(p / q), nominal over tilted, at the path's draws; the weight is
    p / (a p + (1 - a) q) = 1 / (a + (1 - a) exp(-log_lr)) <= 1 / a, with a = ``share``.
    With a = 0 it is exp(log_lr), the plain likelihood ratio; with a = 1, exactly 1.
    """
    return 1.0 / (share + (1.0 - share) * math.exp(-log_lr))


@njit()
def _mixing(path: int, seed: np.uint64, params: Params) -> tuple[float, float, float]:
    """1 / sqrt(W) with W = nu / chi2_nu for the t copula (1 for the Gaussian), chi2 and log LR.

    chi2 = 2 G with G ~ Gamma(k), k = nu / 2 (the target law), or k' = k +
    ``chi2_shape_shift`` on a path :func:`from_tilted` (k' < k: more small chi2, heavier
    latents). The log likelihood ratio of the nominal to the tilted law at G is
    (k - k') log G + log Gamma(k') - log Gamma(k), whichever law drew it; exactly 0 for
    plain Monte Carlo (shift 0). G is drawn as its logarithm (no underflow for small k').
    """
    if not params.t_copula:
        return 1.0, 0.0, 0.0
    k = 0.5 * params.dof
    shift = params.chi2_shape_shift
    tilted = k + shift
    log_g, _ = log_gamma_draw(tilted if from_tilted(path, seed, params) else k, stream_key(seed, path, 0, PURPOSE_MIXING))
    chi2 = 2.0 * math.exp(log_g)
    log_lr = 0.0 if shift == 0.0 else -shift * log_g + math.lgamma(tilted) - math.lgamma(k)
    return math.sqrt(chi2 / params.dof), chi2, log_lr


_EXACT_RECOVERIES = 32  # beyond this many defaults at once, their rates' sum is drawn from its normal limit


@njit()
def _recovery_rates(
    mean: float, dispersion: float, count: int, seed: np.uint64, path: int, month: int, stream: np.uint64
) -> float:
    """Sum of ``count`` unsecured recovery rates ~ Beta with this mean and Var = dispersion * m (1 - m).

    Up to 32 defaults (always at loan level) the rates are drawn one by one; more at once
    (a pooled book) draw their sum from the normal law with the same mean and variance,
    clipped to [0, count]: the sum of 33+ iid Beta rates is normal to within a few 1e-3.
    """
    if dispersion == 0.0 or mean <= 0.0 or mean >= 1.0:
        return count * min(max(mean, 0.0), 1.0)
    state = mix64(stream_key(seed, path, month, PURPOSE_RECOVERY) + stream)
    if count > _EXACT_RECOVERIES:
        u, state = next_uniform(state)
        spread = math.sqrt(count * dispersion * mean * (1.0 - mean))
        return min(max(count * mean + spread * ndtri(u), 0.0), float(count))
    size = 1.0 / dispersion - 1.0
    total = 0.0
    for _ in range(count):
        rate, state = beta_draw(mean * size, (1.0 - mean) * size, state)
        total += rate
    return total


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
    out: Outputs,
) -> None:
    n_months = out.loss_gross.shape[1]
    norm, lo, inv_step = tables.norm, params.norm_lo, params.norm_inv_step
    x, global_factor, inv_sqrt_w, month_key = path_start(path, row, seed, tables, params, out)
    default_after = params.default_after
    kappa = params.cycle_sensitivity
    prepay_at = params.prepay_threshold
    n_loans = loans.key.shape[0]
    absorbed_count, absorbed_balance, events, cover = path_buffers(n_months, n_loans, layers, params)
    n_events = 0
    # per-path bookkeeping of the loan loop: month-end exposure and counts by state
    balance = out.balance_by_state[row]
    count = out.count_by_state[row]
    income = out.interest_income[row]
    cash_in = out.recoveries[row]
    subsidy_cost = out.subsidy_cost[row]

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
        rate = loans.rate[j]
        level = loans.installment[j]
        c = loans.threshold[j]
        inv_sigma = loans.inv_sigma[j]
        inv_idio = loans.inv_idio[j]
        inv_idio_d = loans.inv_idio_delinquent[j]
        lkey = loans.key[j]
        cls = layers.cover_class[j]
        levers = policy.enabled.ndim == 2 and policy.flag[j] != 0
        deferral_end = -1
        gap_open = levers and policy.gap_month[j] >= 0
        for t in range(n_months):
            if levers:  # policy levers that change the terms (MODEL.md §6, docs/policy.md)
                rate, level = _rate_cap(t, j, kind, bp, rate, level, n, policy)
                deferral_end = _deferral_start(t, j, s, deferral_end, policy, params)
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
            gap_now = gap_open and t >= policy.gap_month[j]  # also when a deferral covered its month
            if gap_now:
                gap_open = False
                pp, has_due, shortfall = _cap_gap(policy.gap_amount[j], pp, bp, has_due, maturity or n == 0)
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
                reference = _contract_due(kind, maturity, has_due, bp, ap, loans.rate[j], loans.installment[j]) + accrued_due
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
                    bp -= pp
                    s = 1
                else:
                    income[t] += due_interest
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
                cure_at = max(tables.cure_threshold[s - 1] + params.cure_sensitivity * stress, roll_at)
                if below_norm_cdf(u, (roll_at * inv_sqrt_w - x_d) * inv_idio_d, norm, lo, inv_step):
                    ai += due_interest
                    ap += pp
                    bp -= pp
                    s += 1
                elif not below_norm_cdf(u, (cure_at * inv_sqrt_w - x_d) * inv_idio_d, norm, lo, inv_step):
                    income[t] += due_interest + ai
                    if subsidy != 0.0:
                        subsidy_cost[t] += subsidy
                    bp -= pp
                    ap = 0.0
                    ai = 0.0
                    s = STATE_P if n == 0 and bp <= 0.0 else 0
                else:
                    income[t] += due_interest
                    if subsidy != 0.0:
                        subsidy_cost[t] += subsidy
                    bp -= pp
            if s == STATE_P:
                absorbed_count[t, 1] += 1
                break
            if s == default_after:
                ead = bp + ap + ai + accrued
                loss = default_loss(ead, 1, j, t, i, r, stress, x_t, path, seed, lkey, loans, tables, params, cash_in)
                n_events = write_event(events, n_events, j, t, 1, loss, (bp + ap) / ead if ead > 0.0 else 1.0)
                absorbed_count[t, 0] += 1
                absorbed_balance[t] += ead
                break
            if gap_now and n > 0:
                level = _level(kind, bp, rate, n)  # re-amortise after the excess fell due
            _record(balance, count, cover, t, s, cls, bp + ap + ai + accrued)

    path_finish(path, row, seed, global_factor, absorbed_count, absorbed_balance, events, n_events, cover,
                loans, tables, params, layers, out)


@njit()
def path_start(
    path: int, row: int, seed: np.uint64, tables: Tables, params: Params, out: Outputs
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """The path's systematic index X, global factor, 1 / sqrt(W) and transition stream keys.

    Records the path's weight (:func:`path_weight`), mixing chi-square and (if asked) innovations.
    """
    n_months = out.loss_gross.shape[1]
    x, global_factor, log_lr_factors = factor_index(path, seed, tables, params, n_months, out.eta[row])
    inv_sqrt_w, out.chi2[row], log_lr_mixing = _mixing(path, seed, params)
    out.weight[row] = path_weight(log_lr_factors + log_lr_mixing, params.defensive_share)
    month_key = np.empty(n_months, dtype=np.uint64)
    for t in range(n_months):
        month_key[t] = stream_key(seed, path, t + 1, PURPOSE_TRANSITION)
    return x, global_factor, inv_sqrt_w, month_key


@njit()
def path_buffers(n_months: int, max_events: int, layers: LayerArrays, params: Params):  # noqa: ANN201 (numba tuple)
    """Per-path scratch: absorbed counts and balances, default events, covered balances.

    Absorbed loans are counted once, in the month they leave, and accumulated at the end.
    The default events (loan or pool, month, loans, loss, principal share) are the hand-off
    point to the loss allocation (credit enhancements); ``cover`` is the live exposure by
    layer-eligibility class, for the providers' fees.
    """
    absorbed_count = np.zeros((n_months, 2), dtype=np.int64)
    absorbed_balance = np.zeros(n_months)
    events = (
        np.empty(max_events, dtype=np.int32),
        np.empty(max_events, dtype=np.int32),
        np.empty(max_events, dtype=np.int64),
        np.empty(max_events),
        np.empty(max_events),
    )
    cover = np.zeros((n_months, layers.class_mask.shape[0] if params.track_cover else 0))
    return absorbed_count, absorbed_balance, events, cover


@njit()
def path_finish(
    path: int,
    row: int,
    seed: np.uint64,
    global_factor: np.ndarray,
    absorbed_count: np.ndarray,
    absorbed_balance: np.ndarray,
    events: tuple,
    n_events: int,
    cover: np.ndarray,
    loans: LoanArrays,
    tables: Tables,
    params: Params,
    layers: LayerArrays,
    out: Outputs,
) -> None:
    """Accumulate the absorbed states, draw provider failures and settle the default events."""
    n_months = out.loss_gross.shape[1]
    count = out.count_by_state[row]
    balance = out.balance_by_state[row]
    for t in range(n_months):
        if t > 0:
            absorbed_count[t, 0] += absorbed_count[t - 1, 0]
            absorbed_count[t, 1] += absorbed_count[t - 1, 1]
            absorbed_balance[t] += absorbed_balance[t - 1]
        count[t, STATE_D] += absorbed_count[t, 0]
        count[t, STATE_P] += absorbed_count[t, 1]
        balance[t, STATE_D] += absorbed_balance[t]
    failure_month = _failure_months(path, seed, global_factor, layers, tables, params)
    ev_loan, ev_month, ev_count, ev_loss, ev_principal_share = events
    _settle_defaults(
        row,
        ev_loan[:n_events],
        ev_month[:n_events],
        ev_count[:n_events],
        ev_loss[:n_events],
        ev_principal_share[:n_events],
        failure_month,
        cover,
        loans,
        layers,
        out,
    )


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
def _cap_gap(gap: float, pp: float, bp: float, has_due: bool, matures: bool) -> tuple[float, bool, float]:
    """The excess over the borrower cap falling due: principal due, whether anything is due, shortfall.

    Before maturity the excess is paid as extra principal (for a bullet or interest-only
    loan it is the month's only due amount); at maturity the balance falls due anyway and the
    excess is the borrower's refinancing shortfall, which adds to the stress.
    """
    if matures:
        return pp, has_due, gap
    return pp + min(gap, bp - pp), True, 0.0


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
def principal_due(kind: int, maturity: bool, bp: float, rate: float, level: float) -> float:
    """Principal part of a month's installment: all that is left at maturity, else by schedule.

    ``level`` is the level installment (annuity) or principal part (equal principal);
    interest-only and bullet loans repay nothing before maturity.
    """
    if maturity:
        return bp
    if kind == ANNUITY:
        return min(max(level - rate * bp, 0.0), bp)
    if kind == EQUAL_PRINCIPAL:
        return min(level, bp)
    return 0.0


@njit()
def _contract_due(kind: int, maturity: bool, has_due: bool, bp: float, ap: float, rate: float, level: float) -> float:
    """What the loan would owe this month under its contractual rate and installment."""
    if not has_due:
        return rate * ap
    return principal_due(kind, maturity, bp, rate, level) + rate * (bp + ap)


@njit()
def write_event(
    events: tuple, n_events: int, j: int, t: int, count: int, loss: float, principal_share: float
) -> int:
    """Write default event ``n_events`` (loan or pool j, month t, loans, gross loss, principal share); new count.

    Events are the hand-off point to the loss allocation. A loan's default is one event,
    written by this straight from the month loop; the pooled kernel's loop over a pool's
    events stays in pools.py, because inlined into the loan-level month loop it made that
    loop 25% slower (docs/performance.md).
    """
    ev_loan, ev_month, ev_count, ev_loss, ev_principal_share = events
    ev_loan[n_events] = j
    ev_month[n_events] = t
    ev_count[n_events] = count
    ev_loss[n_events] = loss
    ev_principal_share[n_events] = principal_share
    return n_events + 1


@njit()
def default_loss(
    ead: float,
    count: int,
    j: int,
    t: int,
    i: int,
    r: int,
    stress: float,
    x_sys: float,
    path: int,
    seed: np.uint64,
    stream: np.uint64,
    loans: LoanArrays,
    tables: Tables,
    params: Params,
    cash_in: np.ndarray,
) -> float:
    """Gross loss of ``count`` defaults of loan (or pool) j in month t (0-based), each of EAD ``ead``:
    EAD minus discounted recoveries.

    ``stress`` is Delta_{j,t} and ``x_sys`` the systematic index X_{j,t}: the unsecured
    recovery mean is Phi(Phi^{-1}(m0) sqrt(1 + beta^2 rho) + beta X - lambda_lgd Delta)
    (MODEL.md §4; ``loans.recovery_probit`` holds the scaled first term). ``stream`` keys the
    recovery draws (the loan's key at loan level). Books the recovery cash into ``cash_in``
    in the months it arrives within the horizon.
    """
    n_months = cash_in.shape[0]
    pledged = 0.0
    if loans.pledge[j] > 0.0:
        sigma = loans.sigma[j]
        revenue_index = tables.revenue[t, i, r] * math.exp(sigma * x_sys - 0.5 * sigma * sigma * loans.rho[j])
        pledged = count * min(ead, loans.pledge[j] * revenue_index * (1.0 - params.pledge_haircut))
        if t + params.pledge_lag < n_months:
            cash_in[t + params.pledge_lag] += pledged
    mean = norm_cdf(loans.recovery_probit[j] + params.recovery_cycle * x_sys - params.lgd_sensitivity * stress,
                    tables.norm, params.norm_lo, params.norm_inv_step)
    rate = _recovery_rates(mean, params.recovery_dispersion, count, seed, path, t + 1, stream)
    unsecured = rate * (count * ead - pledged) * (1.0 - params.recovery_cost) / count
    if t + params.recovery_lag < n_months:
        cash_in[t + params.recovery_lag] += unsecured
    return max(count * ead - pledged * loans.pledge_pv[j] - unsecured * loans.unsecured_pv[j], 0.0)


@njit()
def _failure_months(
    path: int, seed: np.uint64, global_factor: np.ndarray, layers: LayerArrays, tables: Tables, params: Params
) -> np.ndarray:
    """0-based month from which each layer's provider has failed (n_months = never).

    Monthly hazard h_t = Phi((c - beta G_t) / sqrt(1 - beta^2)), c = Phi^{-1}(h): the
    provider's latent loads on the global factor, so failures cluster in bad paths.
    """
    n_months = global_factor.shape[0]
    n_layers = layers.share.shape[0]
    failed = np.full(n_layers, n_months, dtype=np.int64)
    for k in range(n_layers):
        c = layers.failure_threshold[k]
        if c == -np.inf:
            continue
        beta = layers.failure_loading[k]
        scale = 1.0 / np.sqrt(1.0 - beta * beta)
        for t in range(n_months):
            hazard = norm_cdf((c - beta * global_factor[t]) * scale, tables.norm, params.norm_lo, params.norm_inv_step)
            if uniform(stream_key(seed, path, t + 1, PURPOSE_COUNTERPARTY), layers.key[k]) < hazard:
                failed[k] = t
                break
    return failed


@njit()
def _settle_defaults(
    row: int,
    ev_loan: np.ndarray,
    ev_month: np.ndarray,
    ev_count: np.ndarray,
    ev_loss: np.ndarray,
    ev_principal_share: np.ndarray,
    failure_month: np.ndarray,
    cover: np.ndarray,
    loans: LoanArrays,
    layers: LayerArrays,
    out: Outputs,
) -> None:
    """Book the path's default losses: gross, through the layers, and the lender's rest."""
    n_months = out.loss_gross.shape[1]
    n_layers = layers.share.shape[0]
    n_events = ev_loan.shape[0]
    paid = np.zeros((n_events, n_layers))
    retained = allocate_losses(
        ev_loan, ev_month, ev_count, ev_loss, ev_principal_share, layers, failure_month, n_months, paid, out.layer_capacity_left[row]
    )
    for e in range(n_events):
        j = ev_loan[e]
        t = ev_month[e]
        out.loss_gross[row, t] += ev_loss[e]
        out.loss_net[row, t] += retained[e]
        out.loss_by_cell[row, loans.industry[j], loans.region[j]] += ev_loss[e]
        if loans.track[j] >= 0:
            out.loss_by_loan[row, loans.track[j]] += ev_loss[e]
        for k in range(n_layers):
            out.layer_paid[row, t, k] += paid[e, k]
            if t + layers.lag[k] < n_months:
                out.layer_cash[row, t + layers.lag[k], k] += paid[e, k]
    for k in range(n_layers):
        out.layer_failure_month[row, k] = failure_month[k] + 1 if failure_month[k] < n_months else 0
        if layers.monthly_fee[k] == 0.0:
            continue
        for t in range(min(failure_month[k], n_months)):
            for c in range(cover.shape[1]):
                if layers.class_mask[c, k]:
                    out.layer_fee[row, t, k] += layers.monthly_fee[k] * cover[t, c]
