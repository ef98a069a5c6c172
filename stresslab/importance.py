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
chi-square over nu/2.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from stresslab.model import CompiledModel
from stresslab.results import weighted_quantile
from stresslab.runner import run_paths

__all__ = ["tune_importance_sampling", "pilot_seed", "DEFAULT_PILOT_PATHS"]

DEFAULT_PILOT_PATHS = 2000  # per round: 200 elite paths
_ELITE = 0.1  # share of pilot paths that form the elite of a round
_MAX_ROUNDS = 8
_MAX_SEED = 2**63 - 1


def pilot_seed(seed: int, round_: int) -> int:
    """Seed of a pilot round: its own draws, never those of the main run."""
    return int((seed * 6364136223846793005 + 1442695040888963407 * (round_ + 1)) % _MAX_SEED)


def tune_importance_sampling(
    model: CompiledModel,
    seed: int,
    target: float = 0.999,
    *,
    pilot_paths: int | None = None,
    threads: int | None = None,
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

    Returns
    -------
    CompiledModel
        With ``tables.factor_shift`` (mu, shape (T + 1, K)) and ``params.chi2_scale`` (s) set.

    Notes
    -----
    Round k runs the current measure, estimates the target VaR v with the likelihood
    weights, and takes the elite E = {L >= min(v, q_k)} where q_k is the plain
    (1 - 0.1)-quantile of the round's losses. With elite weights w_p (likelihood ratios)
    and innovations eta_p (shape (T + 1, K)), M = sum_E w eta / sum_E w maximises the
    elite's weighted Gaussian log-likelihood; mu = sigma_1 u_1 v_1' (its leading singular
    triple); s = sum_E w chi2 / ((nu / 2) sum_E w). It stops once the elite level reaches
    the target VaR (after at least two rounds) or after eight rounds.
    """
    n_pilot = DEFAULT_PILOT_PATHS if pilot_paths is None else int(pilot_paths)
    t_copula = model.params.t_copula
    current = model
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
        scale = float(elite @ out.chi2 / (0.5 * model.params.dof * mass)) if t_copula else 2.0
        current = replace(
            model,
            tables=model.tables._replace(factor_shift=shift),
            params=model.params._replace(chi2_scale=scale),
        )
        if level >= var and round_ >= 1:
            break
    return current
