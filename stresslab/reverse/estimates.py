"""Estimators of a reverse stress test from importance-sampled paths (docs/reverse_stress.md).

Pure numpy on per-path arrays: w the paths' likelihood ratios, h the event indicator,
v = w h. Conditional means given the event are self-normalised, sum v x / sum v, with the
delta-method standard error sqrt(sum v^2 (x - mean)^2) / sum v (Owen 2013, §9.2).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from scipy.special import log_ndtr

__all__ = [
    "conditional_mean",
    "conditional_share",
    "debiased_distance",
    "event_mode",
    "factor_paths",
]

_MAX_STEEPNESS = 1e3  # of the probit fit, per standard deviation of the projection: a step, numerically
_MODE_BOOTSTRAP = 50  # resamples of the paths for the standard error of the mode's distance


def factor_paths(eta: np.ndarray, sqrt_cov: np.ndarray, ar1: float) -> np.ndarray:
    """Factor paths Z_t, t = 1..T, of innovation paths (MODEL.md §1).

    Parameters
    ----------
    eta : ndarray of shape (n_paths, T + 1, K)
        Standardised innovations eta_t, t = 0..T.
    sqrt_cov : ndarray of shape (K, K)
        A with A A' = Sigma.
    ar1 : float
        phi.

    Returns
    -------
    ndarray of shape (n_paths, T, K)
        Z_0 = A eta_0, Z_t = phi Z_{t-1} + sqrt(1 - phi^2) A eta_t; months 1..T.
    """
    shocks = eta @ sqrt_cov.T
    z = np.empty_like(shocks)
    z[:, 0] = shocks[:, 0]
    scale = np.sqrt(1.0 - ar1 * ar1)
    for t in range(1, shocks.shape[1]):
        z[:, t] = ar1 * z[:, t - 1] + scale * shocks[:, t]
    return z[:, 1:]


def conditional_mean(x: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Self-normalised mean of ``x`` given the event, with its standard error.

    Parameters
    ----------
    x : ndarray of shape (n_paths, ...)
    v : ndarray of shape (n_paths,)
        w h: likelihood ratio times the event indicator; sum v > 0.

    Returns
    -------
    (ndarray, ndarray)
        Shape x.shape[1:] each: sum v x / sum v and sqrt(sum v^2 (x - mean)^2) / sum v.
    """
    total = v.sum()
    mean = np.tensordot(v, x, axes=1) / total
    se = np.sqrt(np.tensordot(v * v, (x - mean) ** 2, axes=1)) / total
    return mean, se


def conditional_share(parts: np.ndarray, whole: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Share of ``whole`` that each column of ``parts`` makes up given the event, with standard errors.

    Parameters
    ----------
    parts : ndarray of shape (n_paths, n_parts)
        E.g. the loss of each industry.
    whole : ndarray of shape (n_paths,)
        E.g. the total loss.
    v : ndarray of shape (n_paths,)
        w h (w alone for the unconditional share).

    Returns
    -------
    (ndarray, ndarray)
        Shape (n_parts,) each: the ratio estimator r = sum v parts / sum v whole and its
        delta-method s.e. sqrt(sum v^2 (parts - r whole)^2) / sum v whole.
    """
    total = float(v @ whole)
    share = (v @ parts) / total
    se = np.sqrt((v * v) @ (parts - np.outer(whole, share)) ** 2) / total
    return share, se


def debiased_distance(mean: np.ndarray, se: np.ndarray) -> float:
    """Euclidean length of an estimated mean, less its estimation noise: sqrt(max(0, |m|^2 - sum se^2)).

    E|m_hat|^2 = |m|^2 + sum se^2, so the plain length of a noisy mean over (T + 1) K
    entries overstates the distance; this removes the noise in expectation.
    """
    return float(np.sqrt(max(0.0, float(np.sum(mean * mean) - np.sum(se * se)))))


def event_mode(projection: np.ndarray, h: np.ndarray, w: np.ndarray, seed: int) -> tuple[float, float, float, float]:
    """Mode of the event's law along one direction of the innovations, with a bootstrap standard error.

    Parameters
    ----------
    projection : ndarray of shape (n_paths,)
        S = u . deviation for a unit direction u (the conditional mean's).
    h, w : ndarray of shape (n_paths,)
        Event indicator and likelihood ratios.
    seed : int
        Seed of the bootstrap resampling.

    Returns
    -------
    (float, float, float, float)
        s* (the mode of the density of S given the event), its bootstrap s.e., and the
        boundary c and steepness b of the probit fit.

    Notes
    -----
    Under the model S ~ N(0, 1); given the event its density is proportional to
    phi(s) P(event | S = s). P(event | S = s) is fitted as Phi(b (s - c)) by weighted
    maximum likelihood (weights w: the model's law); s* maximises
    log phi(s) + log Phi(b (s - c)), a concave function, so s* is unique. For a sharp
    event (b -> inf: a large homogeneous book, where the event is a half-space of the
    factor) s* -> max(c, 0), the boundary point nearest the centre, the design point of
    Glasserman & Li (2005); for a blurred one it lies beyond the boundary.
    """
    c, b = _probit_fit(projection, h, w)
    mode = _mode(c, b)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(_MODE_BOOTSTRAP):
        k = rng.integers(0, projection.size, projection.size)
        if h[k].any() and not h[k].all():
            draws.append(_mode(*_probit_fit(projection[k], h[k], w[k])))
    se = float(np.std(draws, ddof=1)) if len(draws) > 1 else float("nan")
    return mode, se, c, b


def _probit_fit(s: np.ndarray, h: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Weighted ML fit of P(h = 1 | s) = Phi(b (s - c)), b capped at a numerical step."""
    scale = float(np.std(s)) or 1.0
    cap = np.log(_MAX_STEEPNESS / scale)
    weight = w / w.mean()

    def loss(theta: np.ndarray) -> float:
        c, log_b = theta
        z = np.exp(min(log_b, cap)) * (s - c)
        return -float(weight @ (h * log_ndtr(z) + (1.0 - h) * log_ndtr(-z))) / s.size

    start_c = float(np.min(s[h > 0])) if h.any() else 0.0
    fit = minimize(loss, np.array([start_c, np.log(1.0 / scale)]), method="Nelder-Mead",
                   options={"xatol": 1e-6, "fatol": 1e-10, "maxiter": 4000})
    c, log_b = fit.x
    return float(c), float(np.exp(min(log_b, cap)))


def _mode(c: float, b: float) -> float:
    """argmax_s of -s^2 / 2 + log Phi(b (s - c)) (concave), on [min(c, 0) - 1, max(c, 0) + 10]."""
    lo, hi = min(c, 0.0) - 1.0, max(c, 0.0) + 10.0
    best = minimize_scalar(lambda s: 0.5 * s * s - float(log_ndtr(b * (s - c))), bounds=(lo, hi), method="bounded",
                           options={"xatol": 1e-7})
    return float(best.x)

