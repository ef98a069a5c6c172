"""Calibration of the entry thresholds to the book's PDs, over the factors (MODEL.md §2).

A loan's ``pd`` is the unconditional probability that a loan starting current, with an
installment due every month, defaults within ``pd_horizon_months`` H. Its entry threshold
c_j solves PD_H(c_j) = pd_j, where PD_H averages the delinquency chain of the calibration
reference (roll and cure rates, default_after, prepayment as a competing risk, its
seasonality) over the paths of the loan's systematic index X_t = sqrt(rho_j) Y_t (Y a
stationary AR(1) with the scenario's ar1) and, for the t copula, over W = nu / chi2_nu.

The integral is taken by scrambled Sobol quasi-Monte Carlo over Y_1..Y_H (from its
principal components: the leading ones take the first Sobol coordinates) and, for the t
copula, by the trapezoidal rule in log chi2 (see :func:`_nodes`). The kernel (``_kernels.chain``) evaluates PD_H on a grid of
thresholds per class of loans that share (rho, seasonal profile, sigma), so the cost is
per class, not per loan; a loan's threshold is read off the monotone grid by linear
interpolation in (c, probit PD). In an industry with seasonality the stress
Delta_t = -log(season_t) / sigma_j depends on the loan's volatility; when a class holds many
(sigmas from DSCRs) its PD_H is a surface over (c, 1 / sigma), splined across 1 / sigma.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from pandas import factorize as pd_factorize
from scipy.interpolate import CubicSpline
from scipy.special import gammaln, ndtri
from scipy.stats import chi2, qmc
from scipy.stats import t as student_t

from stresslab._kernels.chain import chain_default_probability
from stresslab._kernels.special import normal_table
from stresslab.errors import ScenarioError

__all__ = ["ChainInputs", "FactorLaw", "UnreachablePD", "default_probability", "entry_thresholds", "latent_quantile"]

QMC_NODES_LOG2 = 12  # 4,096 Sobol index paths (Gaussian copula)
T_QMC_NODES_LOG2 = 10  # 1,024 index paths per mixing node (t copula)
MIXING_NODES = 32  # trapezoid nodes in log chi2 (t copula)
# integration error of PD_H about 1e-3 relative or less (tests/test_calibration.py)
_QMC_SEED = 20211  # fixed scrambling: the calibration is a deterministic function of its inputs
# monthly entry probabilities whose thresholds bracket a class's pds (PD_H rises with them)
_COARSE = np.concatenate([np.geomspace(1e-9, 0.01, 8), [0.03, 0.1, 0.3, 0.6, 0.9], 1.0 - np.geomspace(0.01, 1e-6, 3)])
_FINE = 32  # thresholds on the fine grid between the brackets (cubic inversion: error O(h^4))
_SCALE_NODES = 5  # nodes of 1 / sigma when a seasonal class has more volatilities (DSCR loans)


@dataclass(frozen=True)
class FactorLaw:
    """The factor model the PDs are averaged over: copula, dof and AR(1) persistence."""

    copula: str
    dof: float | None
    ar1: float


@dataclass(frozen=True)
class ChainInputs:
    """The reference chain: what the lender's PDs were measured under (MODEL.md §2-3).

    ``kappa`` (the delinquent states' cycle loading) belongs to the scenario's factor
    model, the rest to the calibration reference.
    """

    default_after: int
    roll_rates: tuple[float, float, float]
    cure_rates: tuple[float, float, float]
    roll_sensitivity: float
    cure_sensitivity: float
    prepayment_rate: float
    kappa: float


def latent_quantile(p: np.ndarray, law: FactorLaw) -> np.ndarray:
    """``F^{-1}(p)`` of the latent's marginal: standard normal, or Student-t with ``law.dof``."""
    p = np.asarray(p, dtype=float)
    if law.copula == "t":
        return student_t.ppf(p, law.dof)
    return ndtri(p)


def _chain_thresholds(chain: ChainInputs, law: FactorLaw) -> np.ndarray:
    """Roll a_1..a_3, cure b_1..b_3 and prepayment thresholds of the latent (MODEL.md §3)."""
    roll = latent_quantile(np.array(chain.roll_rates), law)
    cure = latent_quantile(1.0 - np.array(chain.cure_rates), law)
    prepay = np.inf if chain.prepayment_rate == 0.0 else float(latent_quantile(1.0 - chain.prepayment_rate, law))
    return np.concatenate([roll, cure, [prepay]])


@functools.lru_cache(maxsize=32)
def _nodes(
    n_months: int, ar1: float, dof: float | None, log2: int | None = None, mixing_nodes: int = MIXING_NODES
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integration nodes: standardised index paths Y (N, H), 1 / sqrt(W) (N,) and weights (N,).

    Y: scrambled Sobol points through the principal components of the AR(1) correlation
    (2^``log2``, by default 2^QMC_NODES_LOG2, or 2^T_QMC_NODES_LOG2 per mixing node for the
    t copula). W (t copula): the trapezoidal rule in log chi2 over
    [F^{-1}(1e-14), F^{-1}(1 - 1e-16)] with ``mixing_nodes`` nodes, crossed with the Sobol
    points. In log chi2 the density is smooth and decays exponentially at both ends, so the
    trapezoid converges geometrically; quasi-Monte Carlo in the chi-square's uniform does not
    (its quantile is steep near 0, where much of a t book's small PDs comes from).
    """
    lags = np.abs(np.subtract.outer(np.arange(n_months), np.arange(n_months)))
    corr = ar1**lags if ar1 > 0.0 else np.eye(n_months)
    values, vectors = np.linalg.eigh(corr)
    order = np.argsort(values)[::-1]
    root = vectors[:, order] * np.sqrt(np.clip(values[order], 0.0, None))
    if log2 is None:
        log2 = QMC_NODES_LOG2 if dof is None else T_QMC_NODES_LOG2
    y = ndtri(qmc.Sobol(n_months, scramble=True, seed=_QMC_SEED).random_base2(log2)) @ root.T
    if dof is None:
        return np.ascontiguousarray(y), np.ones(len(y)), np.full(len(y), 1.0 / len(y))
    z = np.linspace(np.log(chi2.ppf(1e-14, dof)), np.log(chi2.ppf(1.0 - 1e-16, dof)), mixing_nodes)
    density = np.exp(0.5 * dof * z - 0.5 * np.exp(z) - 0.5 * dof * np.log(2.0) - gammaln(0.5 * dof))
    weight = np.outer(density / density.sum(), np.full(len(y), 1.0 / len(y)))
    s_w = np.sqrt(np.exp(z) / dof)
    return np.ascontiguousarray(np.tile(y, (z.size, 1))), np.repeat(s_w, len(y)), weight.ravel()


def default_probability(
    c: np.ndarray,
    rho: float,
    chain: ChainInputs,
    law: FactorLaw,
    n_months: int,
    season: np.ndarray | None = None,
    scales: np.ndarray | None = None,
) -> np.ndarray:
    """Unconditional probability of default within ``n_months`` of a current loan.

    Parameters
    ----------
    c : ndarray of shape (G,)
        Entry thresholds (latent units).
    rho : float
        Systematic variance of the loan's latent, in [0, 1).
    chain : ChainInputs
    law : FactorLaw
    n_months : int
        H, the PD horizon.
    season : ndarray of shape (H,), optional
        -log of the reference's seasonal factor in months 1..H (default 0).
    scales : ndarray of shape (V,), optional
        1 / sigma values: the month-t stress is Delta_t = scale_v season_t (default one scale, 0).

    Returns
    -------
    ndarray of shape (V, G)
        PD_H, integrated over the nodes of :func:`_nodes`.
    """
    law_dof = law.dof if law.copula == "t" else None
    y, s_w, weight = _nodes(int(n_months), float(law.ar1), law_dof)
    season = np.zeros(n_months) if season is None else np.ascontiguousarray(season, dtype=float)
    scales = np.zeros(1) if scales is None else np.ascontiguousarray(scales, dtype=float)
    kappa_rho = chain.kappa**2 * rho
    coefficients = np.array([np.sqrt(rho), 1.0 / np.sqrt(1.0 - rho), chain.kappa * np.sqrt(rho),
                             1.0 / np.sqrt(1.0 - kappa_rho), chain.roll_sensitivity, chain.cure_sensitivity])
    table = normal_table()
    out = np.empty((scales.size, np.size(c)))
    chain_default_probability(np.ascontiguousarray(c, dtype=float), scales, season, y, s_w, weight,
                              _chain_thresholds(chain, law), coefficients, int(chain.default_after),
                              table.values, table.lo, table.inv_step, out)
    return out


def entry_thresholds(
    pd: np.ndarray,
    rho: np.ndarray,
    season: np.ndarray,
    profile: np.ndarray,
    inv_sigma: np.ndarray,
    chain: ChainInputs,
    law: FactorLaw,
    n_months: int,
) -> np.ndarray:
    """Entry threshold c_j of every loan, solving PD_H(c_j) = pd_j (MODEL.md §2).

    Parameters
    ----------
    pd : ndarray of shape (n,)
        The book's PDs over ``n_months``, in [0, 1).
    rho : ndarray of shape (n,)
        Systematic variance of each loan's latent.
    season : ndarray of shape (n_profiles, H)
        -log of the reference's seasonal factors in months 1..H, per profile.
    profile : ndarray of shape (n,)
        Row of ``season`` of each loan.
    inv_sigma : ndarray of shape (n,)
        1 / sigma_j, which turns the seasonal shortfall into latent units.
    chain, law, n_months
        As in :func:`default_probability`.

    Returns
    -------
    ndarray of shape (n,)
        c_j; -inf where pd_j = 0.

    Raises
    ------
    ScenarioError
        If a pd cannot be reached by the chain, or H = 1 with default_after > 1.
    """
    pd = np.asarray(pd, dtype=float)
    out = np.full(pd.shape, -np.inf)
    positive = np.flatnonzero(pd > 0.0)
    if positive.size == 0:
        return out
    seasonal = season.any(axis=1)[profile]
    stress = season[profile, 0] * inv_sigma  # Delta_1 of each loan
    if n_months == 1:
        if chain.default_after > 1:
            raise ScenarioError(
                f"pd_horizon_months = 1 needs default_after = 1 (a current loan cannot default within one "
                f"month otherwise); got default_after = {chain.default_after} and a pd of {pd.max():.4g}")
        out[positive] = latent_quantile(pd[positive], law) - stress[positive]  # P(D by 1) = F(c + Delta_1)
        return out
    # a class shares rho and the seasonal profile: one PD_H curve (or surface, over 1 / sigma)
    rhos, rho_code = _sorted_codes(rho[positive])
    prof_code = np.where(seasonal, profile, -1)[positive]
    classes, which = _sorted_codes(rho_code * (season.shape[0] + 1) + prof_code + 1)
    order = np.argsort(which, kind="stable")  # loans grouped by class
    bounds = np.searchsorted(which[order], np.arange(classes.size + 1))
    for k, key in enumerate(classes):
        members = positive[order[bounds[k]:bounds[k + 1]]]
        rho_k, prof = rhos[key // (season.shape[0] + 1)], key % (season.shape[0] + 1) - 1
        if prof < 0:
            out[members] = _solve(pd[members], np.zeros(members.size), rho_k, np.zeros(n_months), chain, law, n_months)
        else:
            out[members] = _solve(pd[members], inv_sigma[members], rho_k, season[int(prof)], chain, law, n_months)
    return out


def _sorted_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values and each element's index into them (``np.unique`` by hashing: O(n))."""
    codes, distinct = pd_factorize(values)
    order = np.argsort(distinct)
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    return np.asarray(distinct)[order], rank[codes]


class UnreachablePD(ScenarioError):
    """A pd above what the reference chain can reach even when every installment is missed."""

    def __init__(self, message: str, limit: float) -> None:
        super().__init__(message)
        self.limit = limit


def _reachable(chain: ChainInputs, pd_max: float, top: float) -> None:
    if pd_max >= top:
        raise UnreachablePD(
            f"[delinquency] roll_rates {list(chain.roll_rates)} and cure_rates {list(chain.cure_rates)} with "
            f"default_after = {chain.default_after} allow a default probability of at most {top:.4f} over "
            f"pd_horizon_months, but the book has pd = {pd_max:.4f}; raise the roll rates or lower the cure "
            f"rates of the calibration reference", top)


def _fine_grid(pd: np.ndarray, rho: float, season: np.ndarray, scales: np.ndarray,
               chain: ChainInputs, law: FactorLaw, n_months: int) -> np.ndarray:
    """Thresholds spanning the pds of a class: bracketed on a coarse grid of entry probabilities."""
    coarse_c = latent_quantile(_COARSE, law)
    ends = scales[[0, scales.size // 2, -1]] if scales.size > 2 else scales  # PD_H is smooth across 1 / sigma
    coarse = default_probability(coarse_c, rho, chain, law, n_months, season, ends)
    lowest, highest = coarse.min(axis=0), coarse.max(axis=0)
    _reachable(chain, float(pd.max()), float(lowest[-1]))
    first = max(int(np.searchsorted(highest, pd.min(), side="right")) - 1, 0)
    last = min(max(int(np.searchsorted(lowest, pd.max(), side="left")), first + 1), coarse_c.size - 1)
    return np.linspace(coarse_c[first], coarse_c[last], _FINE)


def _invert(curve: np.ndarray, grid: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Thresholds where the increasing rows of ``curve`` (probit PD on ``grid``) reach ``target``.

    Monotone cubic Hermite interpolation (Fritsch-Carlson) of the inverse function c(f),
    row by row, vectorised: its error is O(h^4) where linear interpolation's is O(h^2).
    """
    f = np.maximum.accumulate(curve, axis=-1)
    secant = np.diff(grid) / np.maximum(np.diff(f, axis=-1), 1e-300)  # dc / df between nodes
    slope = np.empty_like(f)
    slope[:, 0], slope[:, -1] = secant[:, 0], secant[:, -1]
    inner = 2.0 / (1.0 / secant[:, :-1] + 1.0 / secant[:, 1:])  # harmonic mean keeps monotonicity
    slope[:, 1:-1] = inner
    idx = np.clip((f < target[:, None]).sum(axis=1) - 1, 0, grid.size - 2)
    row = np.arange(f.shape[0])
    f0, f1 = f[row, idx], f[row, idx + 1]
    width = f1 - f0
    h = np.clip(np.where(width > 0, (target - f0) / np.where(width > 0, width, 1.0), 0.0), 0.0, 1.0)
    c0, c1 = grid[idx], grid[idx + 1]
    m0, m1 = slope[row, idx] * width, slope[row, idx + 1] * width
    h2, h3 = h * h, h * h * h
    return (2 * h3 - 3 * h2 + 1) * c0 + (h3 - 2 * h2 + h) * m0 + (-2 * h3 + 3 * h2) * c1 + (h3 - h2) * m1


def _solve(pd: np.ndarray, inv_sigma: np.ndarray, rho: float, season: np.ndarray, chain: ChainInputs,
           law: FactorLaw, n_months: int) -> np.ndarray:
    """Thresholds of one class: PD_H on a grid of c (and of 1 / sigma when the class's sigmas differ)."""
    levels, level_code = _sorted_codes(pd)
    scales, scale_code = _sorted_codes(inv_sigma)
    pairs, inverse = _sorted_codes(level_code * scales.size + scale_code)
    pair_pd, pair_scale = levels[pairs // scales.size], scales[pairs % scales.size]
    nodes = scales if scales.size <= _SCALE_NODES else np.linspace(scales[0], scales[-1], _SCALE_NODES)
    grid = _fine_grid(pd, rho, season, nodes, chain, law, n_months)
    surface = ndtri(default_probability(grid, rho, chain, law, n_months, season, nodes))
    if nodes.size == 1:
        curves = np.broadcast_to(surface, (pairs.size, grid.size))
    else:  # several volatilities (DSCR loans): a cubic spline across 1 / sigma
        curves = CubicSpline(nodes, surface, axis=0)(pair_scale)
    return _invert(curves, grid, ndtri(pair_pd))[inverse]
