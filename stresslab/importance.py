"""Importance sampling of the loss tail: tuning the sampling measure by cross-entropy.

Under the sampling measure the factor innovations are eta_0 ~ N(mu, I) and
eta_t ~ N(kappa mu, I) for t = 1..T with kappa = sqrt((1 - phi) / (1 + phi)), which shifts
the mean of every month's factors Z_t by the same A mu (a persistent downturn); for the
t copula the mixing chi-square is Gamma(nu/2) * s instead of Gamma(nu/2) * 2. The kernel records each path's
likelihood ratio in ``weight``, so every weighted estimator stays unbiased.

mu and s come from the multilevel cross-entropy method (Rubinstein & Kroese 2004;
Glasserman & Li 2005 for shifting credit factors): pilot runs, each on its own draws,
take the elite paths beyond a loss level that rises towards the target quantile. The
first (plain) pilot's elite sets the direction of mu, its mean innovation (the
cross-entropy optimum among Gaussian shifts); later rounds only update the length of mu
along it, a one-dimensional estimate that stays stable where the likelihood weights of
the elite spread out; s is the elite's weighted mean chi-square over nu/2.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from stresslab.model import CompiledModel
from stresslab.results import weighted_quantile
from stresslab.runner import run_paths

__all__ = ["tune_importance_sampling", "pilot_seed"]

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
        Paths per pilot round (default 1,000: 100 elite paths per round).
    threads : int, optional
        Numba threads for the pilots.

    Returns
    -------
    CompiledModel
        With ``tables.factor_shift`` (mu) and ``params.chi2_scale`` (s) set.

    Notes
    -----
    Round k runs the current measure, estimates the target VaR v with the likelihood
    weights, and takes the elite E = {L >= min(v, q_k)} where q_k is the plain
    (1 - 0.1)-quantile of the round's losses; with m = sum_E w S / ((1 + T kappa^2) sum_E w),
    S = sum_t c_t eta_t (the maximiser of the elite's weighted Gaussian log-likelihood),
    round 0 sets the direction d = m / |m| and every round sets mu = (m . d) d;
    s = sum_E w chi2 / ((nu / 2) sum_E w).
    It stops once the elite level reaches the target VaR (after at least two rounds) or
    after eight rounds.
    """
    n_pilot = 1000 if pilot_paths is None else int(pilot_paths)
    weight_sum = 1.0 + model.n_months * model.params.shift_decay**2
    t_copula = model.params.t_copula
    current, direction = model, None
    for round_ in range(_MAX_ROUNDS):
        out = run_paths(current, pilot_seed(seed, round_), n_pilot, threads=threads, progress=False)
        loss = out.loss_gross.sum(axis=1)
        w = out.weight
        var = float(weighted_quantile(loss, w, target))
        level = min(var, float(np.quantile(loss, 1.0 - _ELITE)))
        elite = w * (loss >= level)
        mass = elite.sum()
        if mass <= 0.0:
            break
        mean = elite @ out.eta_sum / (weight_sum * mass)
        if direction is None:  # the plain pilot's elite fixes the direction ...
            norm = float(np.linalg.norm(mean))
            if norm == 0.0:
                break
            direction = mean / norm
        shift = float(mean @ direction) * direction  # ... later rounds only its length
        scale = float(elite @ out.chi2 / (0.5 * model.params.dof * mass)) if t_copula else 2.0
        current = replace(
            model,
            tables=model.tables._replace(factor_shift=shift),
            params=model.params._replace(chi2_scale=scale),
        )
        if level >= var and round_ >= 1:
            break
    return current
