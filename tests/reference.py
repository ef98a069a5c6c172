"""Quadrature references for the special cases of MODEL.md §9.

Pure numpy/scipy. In every one-factor model below the default count N of n loans is, given
the factors, binomial with a conditional default probability Φ(Z) for a mixing variable Z:

    P(N = k) = E[ Binom(k; n, Φ(Z)) ].

The expectations are computed with the trapezoidal rule on uniform grids, which converges
geometrically for smooth, rapidly decaying integrands: the grid steps are a quarter of the
narrowest feature of the integrand, so the quadrature error is far below 1e-12 and the
pmfs are accurate to float rounding (about 1e-13).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import optimize, special, stats

__all__ = [
    "vasicek_count_pmf",
    "t_copula_count_pmf",
    "multifactor_count_pmf",
    "multiperiod_default_fraction_cdf",
    "multiperiod_default_fraction_mean",
    "vasicek_large_pool_cdf",
]

_Y_MAX = 9.5  # standard normal mass beyond |y| = 9.5 is 4e-21
_LOG_TINY = -46.0  # densities below exp(-46) = 1e-20 of their maximum are dropped


def _check(n: int, p: float, rho: float) -> None:
    if n < 0 or not 0.0 < p < 1.0 or not 0.0 <= rho < 1.0:
        raise ValueError(f"need n >= 0, 0 < p < 1, 0 <= rho < 1; got n={n}, p={p}, rho={rho}")


def _normal_grid(h: float) -> tuple[np.ndarray, np.ndarray]:
    """Trapezoid nodes and weights on [-9.5, 9.5] for E[f(Y)], Y ~ N(0, 1)."""
    y = np.arange(-_Y_MAX, _Y_MAX + h / 2, h)
    return y, h * stats.norm.pdf(y)


def _binomial_matrix(n: int, z: np.ndarray) -> np.ndarray:
    """Binom(k; n, Φ(z_j)) of shape (len(z), n + 1), via log Φ(z) and log Φ(-z) (no cancellation)."""
    k = np.arange(n + 1)
    log_choose = special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1)
    return np.exp(log_choose + k * special.log_ndtr(z)[:, None] + (n - k) * special.log_ndtr(-z)[:, None])


def _binomial_width(n: int) -> float:
    """Smallest width in z of z -> Binom(k; n, Φ(z)): the Fisher information is <= 2n/π."""
    return float(np.sqrt(np.pi / (2 * max(n, 1))))


def _mixed_binomial_pmf(n: int, mu: np.ndarray, weight: np.ndarray, b: float) -> np.ndarray:
    """Σ_i weight_i ∫ N(z; mu_i, b²) Binom(k; n, Φ(z)) dz for k = 0..n.

    b < 1e-7 counts as 0 (point masses at mu_i): the pmf moves by O(b²) < 1e-14, while a z
    grid of step b / 4 would no longer resolve z - mu in floating point.
    """
    if b < 1e-7:
        return weight @ _binomial_matrix(n, mu)
    h = min(b, _binomial_width(n)) / 4
    if mu.size == 1:  # grid as offsets from mu: z - mu never loses digits to cancellation
        u = np.arange(-_Y_MAX, _Y_MAX + h / (2 * b), h / b)
        return weight[0] * (h / b) * stats.norm.pdf(u) @ _binomial_matrix(n, mu[0] + b * u)
    z = np.arange(mu.min() - _Y_MAX * b, mu.max() + _Y_MAX * b + h / 2, h)
    density = stats.norm.pdf((z[:, None] - mu[None, :]) / b) @ weight / b
    return h * density @ _binomial_matrix(n, z)


def _chi_rule(nu: float, dv: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes v and weights for E[f(V)], V = sqrt(χ²_ν / ν), trapezoid in s = log V.

    The density of s is 2 S^{ν/2} e^{-S/2} / (2^{ν/2} Γ(ν/2)) with S = ν e^{2s}, proportional
    to exp(ν (s - (e^{2s} - 1) / 2)): analytic, with mode 0, curvature -2ν, and tails e^{νs}
    (left) and e^{-ν e^{2s}/2} (right). The grid covers the s where it exceeds 1e-20 of its
    maximum; its step is a quarter of the density's width 1/sqrt(2ν), and small enough
    that v moves by at most ``dv`` per node. The weights are normalised to sum to 1 (the
    trapezoid sum of the exact density is 1 to about 1e-20, but the closed-form constant
    loses 1e-12 to rounding when ν is large).
    """

    def log_density(s: float | np.ndarray) -> float | np.ndarray:  # minus its maximum
        return nu * (s - np.expm1(2 * s) / 2)

    lo = optimize.brentq(lambda s: log_density(s) - _LOG_TINY, _LOG_TINY / nu - 1.0, 0.0)
    hi = optimize.brentq(lambda s: log_density(s) - _LOG_TINY, 0.0, np.sqrt(-_LOG_TINY / nu) + 1.0)
    h = min(1.0 / (4 * np.sqrt(2 * nu)), dv / np.exp(hi))
    s = np.linspace(lo, hi, int(np.ceil((hi - lo) / h)) + 1)
    weight = np.exp(log_density(s))
    return np.exp(s), weight / weight.sum()


def vasicek_count_pmf(n: int, p: float, rho: float) -> np.ndarray:
    """Default-count pmf of n identical loans in the one-factor Gaussian copula.

    Parameters
    ----------
    n : int
        Number of loans.
    p : float
        Default probability of each loan.
    rho : float
        Asset correlation, 0 <= rho < 1.

    Returns
    -------
    ndarray of shape (n + 1,)
        P(N = k), k = 0..n.

    Notes
    -----
    P(N = k) = ∫ φ(y) Binom(k; n, p(y)) dy, p(y) = Φ((Φ^{-1}(p) - sqrt(rho) y) / sqrt(1 - rho)).
    With Z = (Φ^{-1}(p) - sqrt(rho) Y) / sqrt(1 - rho) ~ N(Φ^{-1}(p) / sqrt(1 - rho), rho / (1 - rho))
    this is E[Binom(k; n, Φ(Z))], integrated over z by the trapezoidal rule. rho = 0 gives
    Binom(n, p).
    """
    _check(n, p, rho)
    mu = np.array([special.ndtri(p) / np.sqrt(1 - rho)])
    return _mixed_binomial_pmf(n, mu, np.ones(1), np.sqrt(rho / (1 - rho)))


def t_copula_count_pmf(n: int, p: float, rho: float, nu: float) -> np.ndarray:
    """Default-count pmf of n identical loans in the one-factor Student-t copula.

    Parameters
    ----------
    n : int
        Number of loans.
    p : float
        Default probability of each loan.
    rho : float
        Correlation of the latents' Gaussian parts, 0 <= rho < 1.
    nu : float
        Degrees of freedom, > 0.

    Returns
    -------
    ndarray of shape (n + 1,)
        P(N = k), k = 0..n.

    Notes
    -----
    Latent L = sqrt(W) (sqrt(rho) Y + sqrt(1 - rho) e), W = ν / χ²_ν; a loan defaults iff
    L < c = t_ν^{-1}(p). With V = W^{-1/2} = sqrt(χ²_ν / ν), given (Y, V) the loans default
    independently with p(y, v) = Φ((c v - sqrt(rho) y) / sqrt(1 - rho)), so

        P(N = k) = ∫∫ f_V(v) φ(y) Binom(k; n, p(y, v)) dy dv.

    Given V = v, Z = (c v - sqrt(rho) Y) / sqrt(1 - rho) is normal, so the integral is
    E[Binom(k; n, Φ(Z))] over a normal mixture for Z: the trapezoidal rule in log v gives the
    mixture weights, and one trapezoid grid in z serves all of them.
    """
    _check(n, p, rho)
    b = np.sqrt(rho / (1 - rho))
    c = stats.t.ppf(p, nu) / np.sqrt(1 - rho)
    # c v, the mean of Z given V = v, moves by at most a quarter of the narrowest feature per node
    v, weight = _chi_rule(nu, np.hypot(b, _binomial_width(n)) / (4 * max(abs(c), 1e-300)))
    return _mixed_binomial_pmf(n, c * v, weight, b)


def multifactor_count_pmf(
    n_per_group: Sequence[int], p: float | Sequence[float], loadings: tuple[float, float | Sequence[float]]
) -> np.ndarray:
    """Total default-count pmf with a global factor and one independent factor per group.

    Parameters
    ----------
    n_per_group : sequence of int
        Number of loans in each group (e.g. industry), all identical within a group.
    p : float or sequence of float
        Default probability of a loan, common or per group.
    loadings : (float, float or sequence of float)
        (a_G, a_g): loading on the global factor, and on the group factor (common or per
        group); rho_g = a_G² + a_g² < 1.

    Returns
    -------
    ndarray of shape (sum(n_per_group) + 1,)
        P(N = k) of the total count.

    Notes
    -----
    Gaussian copula, X = a_G G + a_g F_g, latent X + sqrt(1 - rho_g) e, default iff the
    latent < Φ^{-1}(p_g). Given G = y, the group counts are independent and each is the
    normal-mixed binomial E[Binom(k; n_g, Φ(Z_g))],
    Z_g = (Φ^{-1}(p_g) - a_G y - a_g F_g) / sqrt(1 - rho_g) ~ N((Φ^{-1}(p_g) - a_G y) / s_g, a_g² / s_g²),
    s_g = sqrt(1 - rho_g). The total count pmf given G is the convolution of the group
    pmfs; it is integrated over G ~ N(0, 1) by the trapezoidal rule.
    """
    n_g = np.asarray(n_per_group, dtype=int)
    p_g = np.broadcast_to(np.asarray(p, dtype=float), n_g.shape)
    a_global, a_group = loadings
    a_g = np.broadcast_to(np.asarray(a_group, dtype=float), n_g.shape)
    rho = a_global**2 + a_g**2
    for n, p1, r in zip(n_g, p_g, rho):
        _check(int(n), float(p1), float(r))
    s = np.sqrt(1 - rho)
    c, b = special.ndtri(p_g) / s, a_g / s
    # Z_g moves by a_global / s_g per unit of G; its narrowest feature is the wider of b_g and the binomial width
    width = np.min(np.hypot(b, _binomial_width(int(n_g.sum()))) * s) / max(abs(a_global), 1e-300)
    y, weight = _normal_grid(min(0.25, width / 4))
    pmf = np.zeros(n_g.sum() + 1)
    for y_i, w_i in zip(y, weight):
        total = np.ones(1)
        for g in range(n_g.size):
            mu = np.array([c[g] - a_global * y_i / s[g]])
            total = np.convolve(total, _mixed_binomial_pmf(int(n_g[g]), mu, np.ones(1), float(b[g])))
        pmf += w_i * total
    return pmf


def vasicek_large_pool_cdf(x: float | np.ndarray, p: float, rho: float) -> float | np.ndarray:
    """Vasicek (1987, 2002) limit distribution of the default fraction of a large pool.

    Parameters
    ----------
    x : float or ndarray
        Default fraction(s) in [0, 1].
    p : float
        Default probability of each loan.
    rho : float
        Asset correlation, 0 < rho < 1.

    Returns
    -------
    float or ndarray
        P(fraction <= x) = Φ((sqrt(1 - rho) Φ^{-1}(x) - Φ^{-1}(p)) / sqrt(rho)).

    Notes
    -----
    As n -> ∞ the fraction tends to p(Y) = Φ((Φ^{-1}(p) - sqrt(rho) Y) / sqrt(1 - rho)),
    decreasing in Y, so p(Y) <= x iff Y >= (Φ^{-1}(p) - sqrt(1 - rho) Φ^{-1}(x)) / sqrt(rho).
    """
    _check(0, p, rho)
    if rho == 0.0:
        raise ValueError("rho must be > 0: with rho = 0 the fraction is p exactly")
    return special.ndtr((np.sqrt(1 - rho) * special.ndtri(x) - special.ndtri(p)) / np.sqrt(rho))


def multiperiod_default_fraction_cdf(x: float | np.ndarray, p: float, rho: float, T: int) -> float | np.ndarray:
    """Distribution of the T-month default fraction of a large book with fixed factors (φ = 1).

    Parameters
    ----------
    x : float or ndarray
        Default fraction(s) in [0, 1].
    p : float
        Monthly default probability of each loan (default_after = 1).
    rho : float
        Asset correlation, 0 < rho < 1.
    T : int
        Number of months.

    Returns
    -------
    float or ndarray
        P(fraction <= x).

    Notes
    -----
    Given Y the fraction is f(Y) = 1 - (1 - p(Y))^T, decreasing in Y (MODEL.md §9). So
    f(Y) <= x iff p(Y) <= q = 1 - (1 - x)^{1/T}, and P(fraction <= x) is the Vasicek cdf at
    q: Φ((sqrt(1 - rho) Φ^{-1}(q) - Φ^{-1}(p)) / sqrt(rho)).
    """
    with np.errstate(divide="ignore"):  # x = 1 gives log1p(-1) = -inf and q = 1
        q = -np.expm1(np.log1p(-np.asarray(x, dtype=float)) / T)
    return vasicek_large_pool_cdf(q, p, rho)


def multiperiod_default_fraction_mean(p: float, rho: float, T: int) -> float:
    """Mean T-month default fraction of a large book with fixed factors (φ = 1).

    Parameters
    ----------
    p : float
        Monthly default probability of each loan.
    rho : float
        Asset correlation, 0 <= rho < 1.
    T : int
        Number of months.

    Returns
    -------
    float
        E[1 - (1 - p(Y))^T] = 1 - ∫ φ(y) Φ(-z(y))^T dy, z(y) = (Φ^{-1}(p) - sqrt(rho) y) / sqrt(1 - rho),
        by the trapezoidal rule (equal to 1 - (1 - p)^T when rho = 0, and to p when T = 1).
    """
    _check(0, p, rho)
    b = np.sqrt(rho / (1 - rho))
    y, weight = _normal_grid(min(0.25, 0.1 / max(b, 1e-300)))
    z = special.ndtri(p) / np.sqrt(1 - rho) - b * y
    return float(1.0 - weight @ np.exp(T * special.log_ndtr(-z)))
