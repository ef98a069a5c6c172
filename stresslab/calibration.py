"""Calibration of monthly entry probabilities and latent thresholds (MODEL.md §2).

A loan's 12-month ``pd`` is turned into the monthly probability ``p`` of missing a due
installment, such that a loan that starts current, has an installment due every month and
faces no stress defaults within 12 months with probability ``pd`` under the baseline roll
and cure rates of the delinquency chain.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri
from scipy.stats import t as student_t

from stresslab.errors import ScenarioError

__all__ = ["default_probability_12m", "monthly_entry_probability", "latent_threshold"]

_BISECTION_STEPS = 80  # halves [0, 1] below 1e-24: exact to double precision


def default_probability_12m(
    p: np.ndarray, default_after: int, roll_rates: np.ndarray, cure_rates: np.ndarray
) -> np.ndarray:
    """Probability of default within 12 months for monthly entry probabilities ``p``.

    Parameters
    ----------
    p : ndarray of shape (n,)
        Monthly probability that a current loan misses its due installment.
    default_after : int
        Missed installments that make a default (1..4).
    roll_rates, cure_rates : ndarray of shape (3,)
        Baseline monthly roll (M_k -> M_{k+1} or D) and cure (M_k -> C) rates.

    Returns
    -------
    ndarray of shape (n,)
        P(absorbed in D by month 12 | start in C).

    Notes
    -----
    Propagates the distribution over (C, M_1, ..., M_{default_after-1}, D) for 12 steps of
    the chain C -> M_1 with p; M_k -> M_{k+1} (D after the last) with r_k, -> C with q_k.
    """
    p = np.asarray(p, dtype=float)
    dist = np.zeros((p.size, default_after + 1))
    dist[:, 0] = 1.0
    for _ in range(12):
        new = np.zeros_like(dist)
        new[:, 0] += dist[:, 0] * (1.0 - p)
        new[:, 1] += dist[:, 0] * p  # column default_after is D when default_after == 1
        for k in range(1, default_after):
            r, q = roll_rates[k - 1], cure_rates[k - 1]
            new[:, k + 1] += dist[:, k] * r
            new[:, 0] += dist[:, k] * q
            new[:, k] += dist[:, k] * (1.0 - r - q)
        new[:, default_after] += dist[:, default_after]
        dist = new
    return dist[:, default_after]


def monthly_entry_probability(
    pd: np.ndarray, default_after: int, roll_rates: np.ndarray, cure_rates: np.ndarray
) -> np.ndarray:
    """Monthly entry probability ``p`` whose 12-month default probability is ``pd``.

    Parameters
    ----------
    pd : ndarray of shape (n,)
        12-month default probabilities in [0, 1).
    default_after, roll_rates, cure_rates
        As in :func:`default_probability_12m`.

    Returns
    -------
    ndarray of shape (n,)
        ``p`` in [0, 1]; exactly ``1 - (1 - pd)**(1/12)`` when ``default_after == 1``.

    Raises
    ------
    ScenarioError
        If some ``pd`` cannot be reached even when every due installment is missed
        (the roll rates are too low or the cure rates too high for that pd).
    """
    pd = np.asarray(pd, dtype=float)
    if default_after == 1:
        return -np.expm1(np.log1p(-pd) / 12.0)
    roll_rates = np.asarray(roll_rates, dtype=float)
    cure_rates = np.asarray(cure_rates, dtype=float)
    levels, inverse = np.unique(pd, return_inverse=True)
    reachable = default_probability_12m(np.ones(1), default_after, roll_rates, cure_rates)[0]
    if levels[-1] >= reachable:
        raise ScenarioError(
            f"[delinquency] roll_rates {roll_rates.tolist()} and cure_rates "
            f"{cure_rates.tolist()} with default_after = {default_after} allow a 12-month "
            f"default probability of at most {reachable:.4f}, but the book has pd = "
            f"{levels[-1]:.4f}; raise the roll rates or lower the cure rates"
        )
    lo = np.zeros_like(levels)
    hi = np.ones_like(levels)
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        below = default_probability_12m(mid, default_after, roll_rates, cure_rates) < levels
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    p = 0.5 * (lo + hi)
    p[levels == 0.0] = 0.0
    return p[inverse]


def latent_threshold(p: np.ndarray, copula: str, dof: float | None) -> np.ndarray:
    """Threshold ``c = F^{-1}(p)`` of the latent's marginal (normal, or Student-t ``dof``)."""
    p = np.asarray(p, dtype=float)
    if copula == "t":
        return student_t.ppf(p, dof)
    return ndtri(p)
