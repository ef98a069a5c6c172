"""Importance sampling of the loss tail: tuning the sampling measure by cross-entropy.

Under the sampling measure the factor innovations of month t are eta_t ~ N(mu_t, I),
t = 0..T, with mu_t = c_t d: one direction d in factor space (which factors fall, and
together how much) scaled month by month by a time profile c_t (how early the downturn
has to come: an amortising book loses most to early shocks). For the t copula the mixing
chi-square is Gamma(nu/2) * s instead of Gamma(nu/2) * 2. The kernel records each path's
likelihood ratio in ``weight``, so every weighted estimator stays unbiased.

mu and s come from the multilevel cross-entropy method (Rubinstein & Kroese 2004;
Glasserman & Li 2005 for shifting credit factors): pilot runs, each on its own draws,
take the elite paths beyond a loss level that rises towards the target quantile. The
cross-entropy optimum among Gaussian mean shifts is the elite's weighted mean innovation
matrix E (months x factors); mu is its best rank-one approximation c d' (leading singular
pair), which keeps the estimate to T + K numbers instead of (T + 1) K, so a pilot's few
hundred elite paths fix it without fitting their noise. s is the elite's weighted mean
chi-square over nu/2, clipped to the interval where the second moment of the mixing
likelihood ratio is at most ``MAX_MIXING_SECOND_MOMENT`` (finite needs s > 1).

The paths are drawn from a defensive mixture (Hesterberg 1995): each path comes from the
nominal law with probability a = ``defensive_share`` and from the tilted law otherwise, and
its weight p / (a p + (1 - a) q) is at most 1 / a whatever the tuning found. So every
weighted estimator has finite variance, at most 1 / a times that of plain Monte Carlo with
the same paths. docs/importance_sampling.md derives both bounds.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from stresslab.model import CompiledModel
from stresslab.results import weighted_quantile
from stresslab.runner import run_paths

__all__ = [
    "tune_importance_sampling",
    "pilot_seed",
    "chi2_scale_bounds",
    "DEFAULT_PILOT_PATHS",
    "DEFAULT_DEFENSIVE_SHARE",
    "MAX_MIXING_SECOND_MOMENT",
]

DEFAULT_PILOT_PATHS = 2000  # per round: 200 elite paths
DEFAULT_DEFENSIVE_SHARE = 0.1  # share of paths from the nominal law: every weight <= 10
MAX_MIXING_SECOND_MOMENT = 10.0  # bound on E_q[(p / q)^2] of the chi-square tilt alone
_ELITE = 0.1  # share of pilot paths that form the elite of a round
_MAX_ROUNDS = 8
_MAX_SEED = 2**63 - 1


def pilot_seed(seed: int, round_: int) -> int:
    """Seed of a pilot round: its own draws, never those of the main run."""
    return int((seed * 6364136223846793005 + 1442695040888963407 * (round_ + 1)) % _MAX_SEED)


def chi2_scale_bounds(dof: float, bound: float = MAX_MIXING_SECOND_MOMENT) -> tuple[float, float]:
    """The scales s of the chi-square tilt whose likelihood ratio has second moment <= ``bound``.

    Parameters
    ----------
    dof : float
        Degrees of freedom nu of the t copula.
    bound : float
        Largest allowed E_q[(p / q)^2], > 1.

    Returns
    -------
    (float, float)
        s_lo < 2 < s_hi.

    Notes
    -----
    With chi2 ~ Gamma(nu / 2, scale s) under q and scale 2 under p,
    E_q[(p / q)^2] = (s^2 / (4 (s - 1)))^(nu / 2) for s > 1 and infinite for s <= 1
    (docs/importance_sampling.md). Setting it to B gives s^2 - 4 c s + 4 c = 0 with
    c = B^(2 / nu): s = 2 (c -+ sqrt(c^2 - c)).
    """
    c = bound ** (2.0 / dof)
    root = np.sqrt(c * c - c)
    return float(2.0 * (c - root)), float(2.0 * (c + root))


def tune_importance_sampling(
    model: CompiledModel,
    seed: int,
    target: float = 0.999,
    *,
    pilot_paths: int | None = None,
    threads: int | None = None,
    defensive_share: float = DEFAULT_DEFENSIVE_SHARE,
) -> CompiledModel:
    """The model with its sampling measure shifted toward losses beyond the ``target`` quantile.

    Parameters
    ----------
    model : CompiledModel
        A model sampled plainly (no shift).
    seed : int
        Seed of the main run; the pilots use seeds derived from it (:func:`pilot_seed`).
    target : float
        Quantile level to aim at, in (0, 1).
    pilot_paths : int, optional
        Paths per pilot round (default :data:`DEFAULT_PILOT_PATHS`).
    threads : int, optional
        Numba threads for the pilots.
    defensive_share : float
        Share a of paths drawn from the nominal law, in (0, 1): every weight is <= 1 / a.

    Returns
    -------
    CompiledModel
        With ``tables.factor_shift`` (mu, shape (T + 1, K)), ``params.chi2_scale`` (s) and
        ``params.defensive_share`` (a) set.

    Notes
    -----
    Round k runs the current measure, estimates the target VaR v with the likelihood
    weights, and takes the elite E = {L >= min(v, q_k)} where q_k is the plain
    (1 - 0.1)-quantile of the round's losses. With elite weights w_p (likelihood ratios)
    and innovations eta_p (shape (T + 1, K)), M = sum_E w eta / sum_E w maximises the
    elite's weighted Gaussian log-likelihood; mu = sigma_1 u_1 v_1' (its leading singular
    triple); s = sum_E w chi2 / ((nu / 2) sum_E w), clipped to :func:`chi2_scale_bounds`.
    The pilots sample the same defensive mixture as the main run. It stops once the elite
    level reaches the target VaR (after at least two rounds) or after eight rounds.
    """
    n_pilot = DEFAULT_PILOT_PATHS if pilot_paths is None else int(pilot_paths)
    t_copula = model.params.t_copula
    s_lo, s_hi = chi2_scale_bounds(model.params.dof) if t_copula else (2.0, 2.0)
    current = replace(model, params=model.params._replace(defensive_share=float(defensive_share)))
    for round_ in range(_MAX_ROUNDS):
        out = run_paths(current, pilot_seed(seed, round_), n_pilot, threads=threads, progress=False, record_eta=True)
        loss = out.loss_gross.sum(axis=1)
        w = out.weight
        var = float(weighted_quantile(loss, w, target))
        level = min(var, float(np.quantile(loss, 1.0 - _ELITE)))
        elite = w * (loss >= level)
        mass = elite.sum()
        if mass <= 0.0:
            break
        mean = np.tensordot(elite, out.eta, axes=1) / mass
        u, sv, vt = np.linalg.svd(mean, full_matrices=False)
        shift = sv[0] * np.outer(u[:, 0], vt[0])
        scale = float(np.clip(elite @ out.chi2 / (0.5 * model.params.dof * mass), s_lo, s_hi)) if t_copula else 2.0
        current = replace(
            current,
            tables=current.tables._replace(factor_shift=shift),
            params=current.params._replace(chi2_scale=scale),
        )
        if level >= var and round_ >= 1:
            break
    return current
