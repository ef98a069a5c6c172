"""Path set-up, default settlement and path totals shared by the loan and the pool kernels."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from stresslab._kernels.allocation import allocate_losses
from stresslab._kernels.arrays import (
    ANNUITY,
    EQUAL_PRINCIPAL,
    STATE_D,
    STATE_P,
    LayerArrays,
    LoanArrays,
    Outputs,
    Params,
    Tables,
)
from stresslab._kernels.special import (
    beta_draw,
    log_gamma_draw,
    ndtri,
    norm_cdf,
)
from stresslab._numba import njit
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

__all__ = ["PathScratch", "default_loss", "drawn_factors", "factor_index", "from_tilted", "path_blocks", "path_buffers", "path_finish", "path_scratch",
           "path_start", "path_weight", "principal_due", "write_event"]


_BLOCK_PATHS = 64  # paths per block of a kernel's prange at most: each block allocates its work arrays once
_MIN_BLOCKS = 64  # blocks at least (unless fewer paths): a static schedule's threads then get even shares


class PathScratch(NamedTuple):
    """One thread's work arrays for a block of paths (:func:`path_scratch`), reused path after path."""

    eta: np.ndarray  # (K,) a month's factor innovations
    z: np.ndarray  # (K,) the factors Z_t
    x: np.ndarray  # (T, n_ind, n_reg) the systematic index
    global_factor: np.ndarray  # (T,)
    month_key: np.ndarray  # (T,) uint64 transition stream keys
    absorbed_count: np.ndarray  # (T, 2) int64 loans defaulted, repaid in the month
    absorbed_balance: np.ndarray  # (T,) EAD defaulted in the month
    events: tuple  # the default events: loan or pool (int32), month (int32), loans (int64), loss, principal share
    cover: np.ndarray  # (T, n_classes) covered balances, (T, 0) when no layer charges a fee
    drawn: np.ndarray  # (K,) bool: the factors whose innovations are drawn (drawn_factors), shared by all blocks


@njit()
def path_blocks(n_paths: int) -> int:
    """Number of blocks of paths a kernel's prange runs over; block b holds the paths
    ``b * n_paths // n_blocks`` to ``(b + 1) * n_paths // n_blocks - 1``.

    A block allocates its work arrays once (:func:`path_scratch`) instead of once per
    path. Blocks of at most 64 paths, and at least 64 blocks: a static schedule that
    splits them among the threads gives each thread the same number of paths to within
    a block in 32 (2 threads). The thread count is not read: a kernel that reads it
    cannot be cached.
    """
    return min(n_paths, max(_MIN_BLOCKS, -(-n_paths // _BLOCK_PATHS)))


@njit()
def drawn_factors(loans: LoanArrays, tables: Tables, keep_eta: bool) -> np.ndarray:
    """Which factors' innovations eta_b a path draws, bool ndarray of shape (K,).

    A loan of industry i and region r loads factor 0 (global), 1 + i (industry) and
    1 + n_ind + r (region) with ``tables.loadings[i]``, and Z = A eta mixes eta_b into
    factor a when A[a, b] != 0. An innovation that no loaded factor mixes in is not drawn:
    its terms in the loaded factors are 0 * eta_b, and the draws are keyed per factor, so
    every number a loan sees is bitwise the same. All are drawn when the innovations are
    recorded, and those an importance-sampling tilt shifts (the likelihood ratio needs
    them); the global factor always (the providers' failures load on it).
    """
    k_all = tables.sqrt_cov.shape[0]
    n_ind = tables.loadings.shape[0]
    loaded = np.zeros(k_all, dtype=np.bool_)
    loaded[0] = True
    for j in range(loans.key.shape[0]):
        i = loans.industry[j]
        loaded[1 + i] |= tables.loadings[i, 1] != 0.0
        loaded[1 + n_ind + loans.region[j]] |= tables.loadings[i, 2] != 0.0
    drawn = np.zeros(k_all, dtype=np.bool_)
    for b in range(k_all):
        drawn[b] = keep_eta or np.any(tables.factor_shift[:, b] != 0.0)
        for a in range(k_all):
            drawn[b] |= loaded[a] and tables.sqrt_cov[a, b] != 0.0
    return drawn


@njit()
def path_scratch(
    n_months: int, max_events: int, tables: Tables, layers: LayerArrays, params: Params, drawn: np.ndarray
) -> PathScratch:
    """Work arrays for the paths of one block (:class:`PathScratch`), for up to ``max_events`` default events."""
    k_all = tables.sqrt_cov.shape[0]
    n_ind = tables.loadings.shape[0]
    events = (
        np.empty(max_events, dtype=np.int32),
        np.empty(max_events, dtype=np.int32),
        np.empty(max_events, dtype=np.int64),
        np.empty(max_events),
        np.empty(max_events),
    )
    return PathScratch(
        np.empty(k_all),
        np.empty(k_all),
        np.empty((n_months, n_ind, k_all - 1 - n_ind)),
        np.empty(n_months),
        np.empty(n_months, dtype=np.uint64),
        np.empty((n_months, 2), dtype=np.int64),
        np.empty(n_months),
        events,
        np.empty((n_months, layers.class_mask.shape[0] if params.track_cover else 0)),
        drawn,
    )


@njit()
def factor_index(
    path: int, seed: np.uint64, tables: Tables, params: Params, eta_out: np.ndarray, scratch: PathScratch
) -> float:
    """Systematic index X[t, i, r] of a loan of industry i and region r in month t + 1, into ``scratch.x``.

    Z_0 = A eta_0; Z_t = phi Z_{t-1} + sqrt(1 - phi^2) A eta_t (MODEL.md §1). Under
    importance sampling a path :func:`from_tilted` has eta_t ~ N(mu_t, I) with
    mu_t = ``tables.factor_shift[t]`` (the others N(0, I)); the returned log likelihood
    ratio of nominal to tilted law, sum_t (|mu_t|^2 / 2 - mu_t . eta_t), is exactly 0 for
    plain Monte Carlo (mu = 0). A scenario's ``[factors] innovation_mean`` m_t
    (``tables.factor_mean``) is the nominal law's own mean, eta_t ~ N(m_t, I): it is added
    after the likelihood ratio and the recorded ``eta_out`` (which hold eta_t - m_t, the
    deviation the tilt and its tuning are about). Only the innovations ``scratch.drawn``
    are drawn; the others are set to 0 (:func:`drawn_factors`).
    Writes X and the global factor G_t (``scratch.global_factor``, shape (n_months,)), and the
    innovations into ``eta_out`` (shape (n_months + 1, K)) unless it is empty; returns the
    log likelihood ratio.
    """
    k_all = tables.sqrt_cov.shape[0]
    n_ind = tables.loadings.shape[0]
    n_reg = k_all - 1 - n_ind
    eta, z, x, global_factor, drawn = scratch.eta, scratch.z, scratch.x, scratch.global_factor, scratch.drawn
    n_months = x.shape[0]
    z[:] = 0.0
    innovation = math.sqrt(1.0 - params.ar1 * params.ar1)
    keep_eta = eta_out.shape[0] > 0
    log_lr = 0.0
    tilted = from_tilted(path, seed, params)
    for t in range(n_months + 1):
        key = stream_key(seed, path, t, PURPOSE_FACTOR)
        shift = tables.factor_shift[t]
        for k in range(k_all):
            if not drawn[k]:
                eta[k] = 0.0
                continue
            eta[k] = ndtri(uniform(key, tables.factor_key[k])) + (shift[k] if tilted else 0.0)
            log_lr += shift[k] * (0.5 * shift[k] - eta[k])
            if keep_eta:
                eta_out[t, k] = eta[k]
            eta[k] += tables.factor_mean[t, k]
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
    return log_lr


@njit()
def from_tilted(path: int, seed: np.uint64, params: Params) -> bool:
    """Whether the path comes from the tilted law of the defensive mixture (else the nominal).

    One uniform of its own stream (PURPOSE_COMPONENT) per path: the path is nominal with
    probability ``params.defensive_share``, so the paths are iid from the mixture
    a p + (1 - a) q. Always False for plain Monte Carlo (share 1), decided without the
    draw: a uniform is below 1.
    """
    share = params.defensive_share
    return share < 1.0 and uniform(stream_key(seed, path, 0, PURPOSE_COMPONENT), np.uint64(0)) >= share


@njit()
def path_weight(log_lr: float, share: float) -> float:
    """Likelihood ratio of the nominal law to the defensive mixture at a path.

    ``log_lr`` is log(p / q), nominal over tilted, at the path's draws; the weight is
    p / (a p + (1 - a) q) = 1 / (a + (1 - a) exp(-log_lr)) <= 1 / a, with a = ``share``.
    With a = 0 it is exp(log_lr), the plain likelihood ratio; with a = 1 (plain Monte
    Carlo, where log_lr is 0), exactly 1, returned without evaluating the exponential.
    """
    if share == 1.0:
        return 1.0
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
def path_start(
    path: int, row: int, seed: np.uint64, tables: Tables, params: Params, out: Outputs, scratch: PathScratch
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """The path's systematic index X, global factor, 1 / sqrt(W) and transition stream keys.

    X, the global factor and the keys are ``scratch``'s arrays, valid until the block's next
    path starts. Records the path's weight (:func:`path_weight`), mixing chi-square and (if
    asked) innovations.
    """
    log_lr_factors = factor_index(path, seed, tables, params, out.eta[row], scratch)
    inv_sqrt_w, out.chi2[row], log_lr_mixing = _mixing(path, seed, params)
    out.weight[row] = path_weight(log_lr_factors + log_lr_mixing, params.defensive_share)
    month_key = scratch.month_key
    for t in range(month_key.shape[0]):
        month_key[t] = stream_key(seed, path, t + 1, PURPOSE_TRANSITION)
    return scratch.x, scratch.global_factor, inv_sqrt_w, month_key


@njit()
def path_buffers(scratch: PathScratch):
    """A path's bookkeeping, zeroed in ``scratch``: absorbed counts and balances, default events, covered balances.

    Absorbed loans are counted once, in the month they leave, and accumulated at the end.
    The default events (loan or pool, month, loans, loss, principal share) are the hand-off
    point to the loss allocation (credit enhancements); ``cover`` is the live exposure by
    layer-eligibility class, for the providers' fees.
    """
    scratch.absorbed_count[:] = 0
    scratch.absorbed_balance[:] = 0.0
    scratch.cover[:] = 0.0
    return scratch.absorbed_count, scratch.absorbed_balance, scratch.events, scratch.cover


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
    """Accumulate the absorbed states, draw provider failures and settle the default events.

    Without layers the lender retains every loss and no provider can fail: the events are
    booked directly, with the values and in the order the allocation would give (a
    quarter of a small one-period book's path time goes to that allocation otherwise).
    """
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
    ev_loan, ev_month, ev_count, ev_loss, ev_principal_share = events
    if layers.share.shape[0] == 0:
        _book_losses(row, ev_loan[:n_events], ev_month[:n_events], ev_loss[:n_events], ev_loss[:n_events], loans, out)
        return
    failure_month = _failure_months(path, seed, global_factor, layers, tables, params)
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
    _book_losses(row, ev_loan, ev_month, ev_loss, retained, loans, out)
    for e in range(n_events):
        t = ev_month[e]
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


@njit()
def _book_losses(
    row: int,
    ev_loan: np.ndarray,
    ev_month: np.ndarray,
    ev_loss: np.ndarray,
    retained: np.ndarray,
    loans: LoanArrays,
    out: Outputs,
) -> None:
    """Book each default event's gross loss (by month, cell and tracked loan) and its retained part, in event order."""
    for e in range(ev_loan.shape[0]):
        j = ev_loan[e]
        t = ev_month[e]
        out.loss_gross[row, t] += ev_loss[e]
        out.loss_net[row, t] += retained[e]
        out.loss_by_cell[row, loans.industry[j], loans.region[j]] += ev_loss[e]
        if loans.track[j] >= 0:
            out.loss_by_loan[row, loans.track[j]] += ev_loss[e]
