"""The calibration kernel: default probability of the delinquency chain averaged over factor paths.

A current loan with an installment due every month moves through C, M_1 .. M_{d-1}, D (and
P by prepayment) with the one-month probabilities of MODEL.md §3 given its systematic index
and the path's mixing variable. Averaging the chain's default mass after H months over
quasi-Monte Carlo nodes of (index path, W) gives the unconditional H-month PD that the
entry threshold c is calibrated to (MODEL.md §2, docs/model.md §2).
"""

from __future__ import annotations

import numba
import numpy as np

from stresslab._kernels.special import norm_cdf
from stresslab._numba import njit

__all__ = ["chain_default_probability"]

# the kernel is compiled also when jit is off (STRESSLAB_DISABLE_JIT), so it needs a compiled CDF then
_norm_cdf = norm_cdf if hasattr(norm_cdf, "py_func") else njit(always=True)(norm_cdf)


@njit(parallel=True, always=True)
def chain_default_probability(
    c_grid: np.ndarray,
    scales: np.ndarray,
    season: np.ndarray,
    y: np.ndarray,
    s_w: np.ndarray,
    weight: np.ndarray,
    thresholds: np.ndarray,
    coefficients: np.ndarray,
    default_after: int,
    norm: np.ndarray,
    lo: float,
    inv_step: float,
    out: np.ndarray,
) -> None:
    """H-month default probability for every entry threshold of ``c_grid`` and stress scale.

    Parameters
    ----------
    c_grid : ndarray of shape (G,)
        Entry thresholds c (latent units).
    scales : ndarray of shape (V,)
        1 / sigma values: the month-t stress is Delta_t = scale_v * season_t.
    season : ndarray of shape (H,)
        -log(seasonal factor) of the reference in months 1..H (0 without seasonality).
    y : ndarray of shape (N, H)
        Standardised systematic index Y_t of each node (X_t = sqrt(rho) Y_t).
    s_w : ndarray of shape (N,)
        1 / sqrt(W) of each node (1 for the Gaussian copula).
    weight : ndarray of shape (N,)
        Integration weight of each node (summing to 1).
    thresholds : ndarray of shape (7,)
        Roll thresholds a_1..a_3, cure thresholds b_1..b_3, prepayment threshold (inf: none).
    coefficients : ndarray of shape (6,)
        sqrt(rho), 1 / sqrt(1 - rho), kappa sqrt(rho), 1 / sqrt(1 - kappa^2 rho),
        lambda_roll, lambda_cure.
    default_after : int
        Missed installments that make a default (1..4).
    norm, lo, inv_step
        The tabulated normal CDF.
    out : ndarray of shape (V, G)
        P(D by month H), integrated with the nodes' weights.
    """
    n_grid = c_grid.shape[0]
    n_nodes, n_months = y.shape
    load, inv_idio, load_d, inv_idio_d, lam_roll, lam_cure = coefficients
    n_blocks = (n_nodes + _BLOCK - 1) // _BLOCK  # fixed blocks summed in order: any thread count, same bits
    for v in range(scales.shape[0]):
        partial = np.zeros((n_blocks, n_grid))
        for b in numba.prange(n_blocks):
            _block_mass(b * _BLOCK, min((b + 1) * _BLOCK, n_nodes), c_grid, scales[v], season, y, s_w, weight,
                        thresholds, load, inv_idio, load_d, inv_idio_d, lam_roll, lam_cure, default_after,
                        norm, lo, inv_step, partial[b])
        for g in range(n_grid):
            total = 0.0
            for b in range(n_blocks):
                total += partial[b, g]
            out[v, g] = total


_BLOCK = 256  # integration nodes per parallel block


@njit(always=True)
def _block_mass(
    first: int,
    stop: int,
    c_grid: np.ndarray,
    scale: float,
    season: np.ndarray,
    y: np.ndarray,
    s_w: np.ndarray,
    weight: np.ndarray,
    thresholds: np.ndarray,
    load: float,
    inv_idio: float,
    load_d: float,
    inv_idio_d: float,
    lam_roll: float,
    lam_cure: float,
    default_after: int,
    norm: np.ndarray,
    lo: float,
    inv_step: float,
    out: np.ndarray,
) -> None:
    """Add the weighted default mass by month H of nodes ``first..stop-1`` to ``out`` (one per c).

    All thresholds of the grid step through a node's months together: the delinquent
    states' rates, which do not depend on c, are computed once per node-month.
    """
    n_grid = c_grid.shape[0]
    n_months = y.shape[1]
    prepay_threshold = thresholds[6]
    mass = np.empty((n_grid, 4))
    defaulted = np.empty(n_grid)
    roll = np.zeros(3)
    cure = np.zeros(3)
    for n in range(first, stop):
        w = s_w[n]
        mass[:, :] = 0.0
        mass[:, 0] = 1.0
        defaulted[:] = 0.0
        for t in range(n_months):
            delta = scale * season[t]
            x = load * y[n, t]
            xd = load_d * y[n, t]
            for k in range(1, default_after):
                roll_at = thresholds[k - 1] + lam_roll * delta
                cure_at = max(thresholds[k + 2] + lam_cure * delta, roll_at)
                roll[k - 1] = _norm_cdf((roll_at * w - xd) * inv_idio_d, norm, lo, inv_step)
                cure[k - 1] = 1.0 - _norm_cdf((cure_at * w - xd) * inv_idio_d, norm, lo, inv_step)
            for g in range(n_grid):
                miss_at = c_grid[g] + delta
                miss = _norm_cdf((miss_at * w - x) * inv_idio, norm, lo, inv_step)
                prepay = 0.0
                if prepay_threshold < np.inf:
                    prepay = 1.0 - _norm_cdf((max(prepay_threshold, miss_at) * w - x) * inv_idio, norm, lo, inv_step)
                current = mass[g, 0]
                mass[g, 0] = current * (1.0 - miss - prepay)
                flow = current * miss  # into M_1 (or D when default_after == 1)
                for k in range(1, default_after):
                    held = mass[g, k]
                    mass[g, 0] += held * cure[k - 1]
                    mass[g, k] = flow + held * (1.0 - roll[k - 1] - cure[k - 1])
                    flow = held * roll[k - 1]
                defaulted[g] += flow
        for g in range(n_grid):
            out[g] += weight[n] * defaulted[g]
