"""Asset correlation of one default-rate series: the Vasicek binomial mixture (MLE or moments).

Model (Vasicek 2002; Gordy 2000): in period t, n_t obligors each default with the
conditional probability p(Y_t) = Φ((Φ^{-1}(p) - sqrt(ρ) Y_t) / sqrt(1 - ρ)), Y_t ~ N(0, 1)
iid, independently given Y_t, so

    P(d_t | n_t) = ∫ Binom(d_t; n_t, p(y)) φ(y) dy.

For segments of thousands of loans the integrand is sharply peaked in y (width about
1 / sqrt(n_t)), so a quadrature on fixed nodes of N(0, 1) misses the peak and gets the
likelihood wrong by orders of magnitude (tests/test_calibrate.py shows it). Here each
period's integral is taken in log space by adaptive Gauss-Hermite quadrature centred on
the mode of its integrand and scaled by its curvature (Liu & Pierce 1994; Pinheiro & Bates
1995): the log-integrand g is concave in y (log Φ is concave and the probit argument is
linear in y), its mode is found by Newton steps, and

    log ∫ e^{g(y)} dy = log Σ_k w_k exp(g(ŷ + sqrt(2/h) x_k) + x_k²) + log sqrt(2/h),

h = -g''(ŷ), (x_k, w_k) the Gauss-Hermite nodes, summed with log-sum-exp.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq, minimize
from scipy.special import gammaln, log_ndtr, logsumexp, ndtr, ndtri

from stresslab.errors import StresslabError

__all__ = ["AssetCorrelationFit", "fit_asset_correlation", "vasicek_loglik"]

_NODES, _WEIGHTS = np.polynomial.hermite.hermgauss(32)
_MOMENT_Y, _MOMENT_W = np.polynomial.hermite.hermgauss(200)  # E[p(Y)^2] of the moments estimator
_MOMENT_Y, _MOMENT_W = np.sqrt(2.0) * _MOMENT_Y, _MOMENT_W / np.sqrt(np.pi)
_RHO_MAX = 0.999
_LOG_2PI = np.log(2.0 * np.pi)


@dataclass(frozen=True)
class AssetCorrelationFit:
    """Result of :func:`fit_asset_correlation`.

    Attributes
    ----------
    rho, pd : float
        Asset correlation and unconditional (one-period) default probability.
    rho_se, pd_se : float
        Standard errors: from the inverse observed information (MLE) or the delete-one
        jackknife over periods (moments).
    loglik : float
        Log-likelihood of the series at (pd, rho).
    method : str
    n_periods : int
    """

    rho: float
    pd: float
    rho_se: float
    pd_se: float
    loglik: float
    method: str
    n_periods: int


def _log_integrand(y: np.ndarray, c: np.ndarray, s: float, r: float, d: np.ndarray, n: np.ndarray) -> np.ndarray:
    z = (c - s * y) / r
    return d * log_ndtr(z) + (n - d) * log_ndtr(-z) - 0.5 * y * y - 0.5 * _LOG_2PI


def _mills_terms(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """λ(z) = φ(z)/Φ(z) and λ'(z) = -λ(z)(z + λ(z)), stable in the tails."""
    lam = np.exp(-0.5 * z * z - 0.5 * _LOG_2PI - log_ndtr(z))
    return lam, -lam * (z + lam)


def _mode(c: float, s: float, r: float, d: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mode ŷ_t and curvature h_t = -g''(ŷ_t) of each period's log-integrand (Newton, concave g)."""
    a = -s / r
    if s == 0.0:
        return np.zeros(d.shape), np.ones(d.shape)
    share = np.clip((d + 0.5) / (n + 1.0), 1e-12, 1 - 1e-12)
    y = np.clip((c - r * ndtri(share)) / s, -8.0, 8.0)  # where p(y) matches the period's rate
    for _ in range(100):
        z = (c - s * y) / r
        lam, dlam = _mills_terms(z)
        lam_m, dlam_m = _mills_terms(-z)
        grad = a * (d * lam - (n - d) * lam_m) - y
        hess = a * a * (d * dlam + (n - d) * dlam_m) - 1.0
        step = np.clip(-grad / hess, -1.0, 1.0)
        y = y + step
        if np.max(np.abs(step)) < 1e-12:
            break
    z = (c - s * y) / r
    _, dlam = _mills_terms(z)
    _, dlam_m = _mills_terms(-z)
    return y, 1.0 - a * a * (d * dlam + (n - d) * dlam_m)


def vasicek_loglik(pd: float, rho: float, defaults: np.ndarray, counts: np.ndarray) -> float:
    """Log-likelihood of default counts under the Vasicek binomial mixture (module docstring).

    Parameters
    ----------
    pd : float
        Unconditional default probability, in (0, 1).
    rho : float
        Asset correlation, in [0, 1).
    defaults, counts : array_like of shape (T,)
        Defaults d_t and obligors n_t of each period.

    Returns
    -------
    float
        sum_t log P(d_t | n_t), binomial coefficients included.
    """
    d = np.asarray(defaults, dtype=float)
    n = np.asarray(counts, dtype=float)
    s, r = np.sqrt(rho), np.sqrt(1.0 - rho)
    c = float(ndtri(pd))
    y_hat, h = _mode(c, s, r, d, n)
    scale = np.sqrt(2.0 / h)
    y = y_hat[:, None] + scale[:, None] * _NODES[None, :]
    g = _log_integrand(y, c, s, r, d[:, None], n[:, None])
    log_int = logsumexp(g + _NODES**2, b=_WEIGHTS, axis=1) + np.log(scale)
    log_binom = gammaln(n + 1) - gammaln(d + 1) - gammaln(n - d + 1)
    return float(np.sum(log_int + log_binom))


def _moments(d: np.ndarray, n: np.ndarray) -> tuple[float, float]:
    """(pd, rho) matching the mean and the variance of the default rates (Gordy 2000).

    pd = mean(d_t / n_t); Var(p(Y)) = Var(DR) - mean(DR (1 - DR) / (n - 1)) (the binomial
    part removed, unbiased per period), and ρ solves E[p(Y)²] - pd² = Var(p(Y)), where
    E[p(Y)²] = Φ₂(c, c; ρ) (taken here by 200-node Gauss-Hermite quadrature over Y).
    """
    rate = d / n
    pd = float(rate.mean())
    if not 0.0 < pd < 1.0:
        raise StresslabError(f"the default rates average {pd}; the moments estimator needs some defaults and some survivors")
    target = float(rate.var(ddof=1) - np.mean(rate * (1.0 - rate) / np.maximum(n - 1.0, 1.0)))
    c = float(ndtri(pd))
    y, w = _MOMENT_Y, _MOMENT_W

    def excess(rho: float) -> float:
        p = ndtr((c - np.sqrt(rho) * y) / np.sqrt(1.0 - rho))
        return float(w @ p**2 - pd * pd - target)

    if target <= 0.0:
        return pd, 0.0
    if excess(_RHO_MAX) < 0.0:
        return pd, _RHO_MAX
    return pd, brentq(excess, 0.0, _RHO_MAX, xtol=1e-12)


def fit_asset_correlation(defaults: np.ndarray, counts: np.ndarray, method: str = "mle") -> AssetCorrelationFit:
    """Asset correlation ρ and pd of one segment's default-count series.

    Parameters
    ----------
    defaults, counts : array_like of int, shape (T,)
        Defaults d_t among n_t obligors in each period (e.g. the 12-month defaults of each
        yearly cohort of current loans), 0 <= d_t <= n_t, n_t >= 1, T >= 3.
    method : {"mle", "moments"}
        ``"mle"``: maximum likelihood of the binomial mixture (module docstring), s.e. from
        the inverse of the observed information (central differences of the log-likelihood
        in (pd, ρ)). ``"moments"``: :func:`_moments`, s.e. by the delete-one jackknife.

    Returns
    -------
    AssetCorrelationFit

    Notes
    -----
    Assumes the periods are independent (the factor of each period drawn afresh, as in
    the one-period Vasicek model) and the obligors of a period exchangeable. Persistent
    factors (the scenario's ar1 > 0) make consecutive periods dependent: use periods long
    enough, or non-overlapping, for that to be small, or the panel fit of the factor
    structure. With few periods ρ is poorly determined and its MLE biased downward
    (Gordy & Heitfield 2002, Estimating default correlations from short panels of credit
    rating performance data).

    References
    ----------
    Vasicek, O. (2002). The distribution of loan portfolio value. Risk 15(12).
    Gordy, M. B. (2000). A comparative anatomy of credit risk models. J. Banking & Finance 24.
    Gordy, M. B. & Heitfield, E. (2002). Federal Reserve Board working paper.
    Pinheiro, J. C. & Bates, D. M. (1995). Approximations to the log-likelihood function in
    the nonlinear mixed-effects model. J. Comput. Graph. Statist. 4(1).
    """
    d = np.asarray(defaults, dtype=float).ravel()
    n = np.asarray(counts, dtype=float).ravel()
    if d.shape != n.shape:
        raise StresslabError(f"defaults and counts must have the same length; got {d.size} and {n.size}")
    if d.size < 3:
        raise StresslabError(f"an asset correlation needs at least 3 periods; got {d.size}")
    bad = np.flatnonzero(~(np.isfinite(d) & np.isfinite(n) & (d == np.round(d)) & (n == np.round(n)) & (n >= 1) & (d >= 0) & (d <= n)))
    if bad.size:
        k = int(bad[0])
        raise StresslabError(f"period {k}: defaults {defaults[k]!r} of counts {counts[k]!r}; "
                             "each period needs integers 0 <= defaults <= counts, counts >= 1")
    if d.sum() == 0 or d.sum() == n.sum():
        raise StresslabError("the series has no defaults (or only defaults): pd and rho are not identified")
    if method == "moments":
        pd, rho = _moments(d, n)
        jack = np.array([_moments(np.delete(d, k), np.delete(n, k)) for k in range(d.size)])
        m = d.size
        pd_se, rho_se = np.sqrt((m - 1) / m * ((jack - jack.mean(axis=0)) ** 2).sum(axis=0))
        return AssetCorrelationFit(rho, pd, float(rho_se), float(pd_se), vasicek_loglik(pd, rho, d, n), method, d.size)
    if method != "mle":
        raise StresslabError(f"method must be 'mle' or 'moments'; got {method!r}")

    def unpack(theta: np.ndarray) -> tuple[float, float]:
        return float(ndtr(theta[0])), float(_RHO_MAX / (1.0 + np.exp(-theta[1])))

    def objective(theta: np.ndarray) -> float:
        return -vasicek_loglik(*unpack(theta), d, n)

    pd0, rho0 = _moments(d, n)
    rho0 = min(max(rho0, 1e-3), 0.9)
    start = np.array([ndtri(pd0), np.log(rho0 / (_RHO_MAX - rho0))])
    best = minimize(objective, start, method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-11, "maxiter": 4000})
    pd, rho = unpack(best.x)
    pd_se, rho_se = _information_se(pd, rho, d, n)
    return AssetCorrelationFit(rho, pd, rho_se, pd_se, -float(best.fun), method, d.size)


def _information_se(pd: float, rho: float, d: np.ndarray, n: np.ndarray) -> tuple[float, float]:
    """Standard errors of (pd, ρ) from the observed information (central second differences)."""
    x = np.array([pd, rho])
    step = np.array([max(pd * 1e-3, 1e-7), max(rho * 1e-3, 1e-6)])
    if rho - step[1] <= 0.0:  # on the boundary the information is not that of an interior optimum
        return float("nan"), float("nan")
    f = lambda v: vasicek_loglik(v[0], v[1], d, n)
    hess = np.empty((2, 2))
    for i in range(2):
        for j in range(2):
            ei, ej = np.eye(2)[i] * step[i], np.eye(2)[j] * step[j]
            hess[i, j] = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (4 * step[i] * step[j])
    try:
        cov = np.linalg.inv(-hess)
    except np.linalg.LinAlgError:
        return float("nan"), float("nan")
    diag = np.diag(cov)
    return tuple(float(np.sqrt(v)) if v > 0 else float("nan") for v in diag)  # type: ignore[return-value]
