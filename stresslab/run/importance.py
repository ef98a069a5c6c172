"""Importance sampling of the loss tail: tuning the sampling measure by cross-entropy.

Under the tilted law the factor innovations of month t are eta_t ~ N(mu_t, I),
t = 0..T, with mu_t = c_t d: one direction d in factor space (which factors fall, and
together how much) scaled month by month by a time profile c_t (how early the downturn
has to come: an amortising book loses most to early shocks). For the t copula the mixing
chi-square is 2 Gamma(k') instead of 2 Gamma(nu/2): a smaller shape k' gives more small
chi-squares, so heavier latents. The kernel records each path's likelihood ratio in
``weight``, so every weighted estimator stays unbiased.

mu and s come from the multilevel cross-entropy method (Rubinstein & Kroese 2004;
Glasserman & Li 2005 for shifting credit factors): pilot runs, each on its own draws,
take the elite paths beyond a loss level that rises towards the target quantile. The
cross-entropy optimum among Gaussian mean shifts is the elite's weighted mean innovation
matrix E (months x factors); mu is its best rank-one approximation c d' (leading singular
pair), which keeps the estimate to T + K numbers instead of (T + 1) K, so a pilot's few
hundred elite paths fix it without fitting their noise. k' is the elite's weighted
maximum-likelihood Gamma shape (digamma(k') = weighted mean of log(chi2 / 2)), clipped to
the interval where the second moment of the mixing likelihood ratio,
Gamma(k') Gamma(nu - k') / Gamma(nu / 2)^2, is at most ``MAX_MIXING_SECOND_MOMENT`` (finite
for 0 < k' < nu). (A tilt of the chi-square's scale instead, as before, has a finite second
moment only for scales s > 1, where it barely reaches the tail; the cross-entropy optimum
s ~ 0.2 had infinite variance.)

The paths are drawn from a defensive mixture (Hesterberg 1995): each path comes from the
nominal law with probability a = ``defensive_share`` and from the tilted law otherwise, and
its weight p / (a p + (1 - a) q) is at most 1 / a whatever the tuning found. So every
weighted estimator has finite variance, at most 1 / a times that of plain Monte Carlo with
the same paths. docs/importance_sampling.md derives both bounds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
from scipy.optimize import brentq
from scipy.special import digamma, gammaln

from stresslab._kernels.arrays import Outputs
from stresslab.compile.model import CompiledModel
from stresslab.estimators import weighted_quantile
from stresslab.run.runner import run_paths

__all__ = [
    "tune_importance_sampling",
    "tune_toward_event",
    "pilot_seed",
    "chi2_shape_bounds",
    "DEFAULT_PILOT_PATHS",
    "DEFAULT_DEFENSIVE_SHARE",
    "MAX_MIXING_SECOND_MOMENT",
]

DEFAULT_PILOT_PATHS = 2000  # per round: 200 elite paths
DEFAULT_DEFENSIVE_SHARE = 0.1  # share of paths from the nominal law: every weight <= 10
MAX_MIXING_SECOND_MOMENT = 20.0  # bound on E_q[(p / q)^2] of the chi-square tilt alone
_ELITE = 0.1  # share of pilot paths that form the elite of a round
_MAX_ROUNDS = 8
_MAX_SEED = 2**63 - 1


def pilot_seed(seed: int, round_: int) -> int:
    """Seed of a pilot round: its own draws, never those of the main run."""
    return int((seed * 6364136223846793005 + 1442695040888963407 * (round_ + 1)) % _MAX_SEED)


def chi2_shape_bounds(dof: float, bound: float = MAX_MIXING_SECOND_MOMENT) -> tuple[float, float]:
    """The Gamma shapes k' of the chi-square tilt whose likelihood ratio has second moment <= ``bound``.

    Parameters
    ----------
    dof : float
        Degrees of freedom nu of the t copula.
    bound : float
        Largest allowed E_q[(p / q)^2], > 1.

    Returns
    -------
    (float, float)
        k_lo < nu / 2 < k_hi.

    Notes
    -----
    With chi2 = 2 G, G ~ Gamma(k') under q and Gamma(k), k = nu / 2, under p, the ratio is
    p / q = G^(k - k') Gamma(k') / Gamma(k), and
    E_q[(p / q)^2] = Gamma(k') Gamma(2k - k') / Gamma(k)^2, finite exactly for 0 < k' < 2k
    (docs/importance_sampling.md). The bounds are its two roots of log E = log B.
    """
    k = 0.5 * dof

    def excess(shape: float) -> float:
        return float(gammaln(shape) + gammaln(2.0 * k - shape) - 2.0 * gammaln(k) - np.log(bound))

    tiny = 1e-12 * k
    return float(brentq(excess, tiny, k)), float(brentq(excess, k, 2.0 * k - tiny))


def _elite_shape(log_half: np.ndarray, elite: np.ndarray, bounds: tuple[float, float]) -> float:
    """Weighted maximum-likelihood Gamma shape of the elite's chi2 / 2, clipped to ``bounds``.

    Solves digamma(k') = sum w log(chi2 / 2) / sum w (the score of the shape, scale fixed at 1);
    digamma is increasing, so the root lies in ``bounds`` unless the clip applies.
    """
    keep = elite > 0.0  # only the elite: outside it a chi2 that underflowed to 0 would give 0 * -inf
    target = float(elite[keep] @ log_half[keep] / elite[keep].sum())
    lo, hi = bounds
    if digamma(lo) >= target:
        return lo
    if digamma(hi) <= target:
        return hi
    return float(brentq(lambda shape: digamma(shape) - target, lo, hi))


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
        With ``tables.factor_shift`` (mu, shape (T + 1, K)), ``params.chi2_shape_shift``
        (k' - nu / 2) and ``params.defensive_share`` (a) set.

    Notes
    -----
    Round k runs the current measure, estimates the target VaR v with the likelihood
    weights, and takes the elite E = {L >= min(v, q_k)} where q_k is the plain
    (1 - 0.1)-quantile of the round's losses. With elite weights w_p (likelihood ratios)
    and innovations eta_p (shape (T + 1, K)), M = sum_E w eta / sum_E w maximises the
    elite's weighted Gaussian log-likelihood; mu = sigma_1 u_1 v_1' (its leading singular
    triple); k' = :func:`_elite_shape` within :func:`chi2_shape_bounds`.
    The pilots sample the same defensive mixture as the main run. It stops once the elite
    level reaches the target VaR (after at least two rounds) or after eight rounds.
    """
    n_pilot = DEFAULT_PILOT_PATHS if pilot_paths is None else int(pilot_paths)
    t_copula = model.params.t_copula
    bounds = chi2_shape_bounds(model.params.dof) if t_copula else (0.0, 0.0)
    current = replace(model, params=model.params._replace(defensive_share=float(defensive_share)), sampling="importance")
    for round_ in range(_MAX_ROUNDS):
        out = run_paths(current, pilot_seed(seed, round_), n_pilot, threads=threads, progress=False, record_eta=True)
        loss = out.loss_gross.sum(axis=1)
        w = out.weight
        var = float(weighted_quantile(loss, w, target))
        level = min(var, float(np.quantile(loss, 1.0 - _ELITE)))
        elite = w * (loss >= level)
        if elite.sum() <= 0.0:
            break
        current = _cross_entropy_update(current, out, elite, bounds)
        if level >= var and round_ >= 1:
            break
    return current


def tune_toward_event(
    model: CompiledModel,
    seed: int,
    score: Callable[[Outputs], np.ndarray],
    threshold: float,
    *,
    pilot_paths: int | None = None,
    threads: int | None = None,
    defensive_share: float = DEFAULT_DEFENSIVE_SHARE,
    progress: bool | None = False,
) -> tuple[CompiledModel, float]:
    """The model with its sampling measure shifted toward paths whose ``score`` reaches ``threshold``.

    Parameters
    ----------
    model : CompiledModel
        A model sampled plainly (no shift).
    seed : int
        Seed of the main run; the pilots use seeds derived from it (:func:`pilot_seed`).
    score : callable
        Outputs of a chunk of paths -> ndarray of shape (n_paths,): how far each path went
        toward the event (its horizon loss, the used share of a layer ...).
    threshold : float
        The event is ``score >= threshold``.
    pilot_paths, threads, defensive_share
        As for :func:`tune_importance_sampling`.
    progress : bool, optional
        A progress bar per pilot round (None: when stderr is a terminal).

    Returns
    -------
    (CompiledModel, float)
        The tuned model (``factor_shift``, ``chi2_shape_shift`` and ``defensive_share``
        set as by :func:`tune_importance_sampling`) and the highest elite level a pilot
        reached (>= ``threshold`` when the pilots reached the event).

    Notes
    -----
    The same multilevel cross-entropy as :func:`tune_importance_sampling` with the level
    of round k the smaller of ``threshold`` and the plain (1 - 0.1)-quantile of the round's
    scores (Rubinstein & Kroese 2004, the rare-event form): the elite is
    E = {score >= level}. It stops after the first round whose level is the threshold (and
    at least two rounds), after eight rounds, or when a round's level does not rise (the
    tilt cannot reach further).
    """
    n_pilot = DEFAULT_PILOT_PATHS if pilot_paths is None else int(pilot_paths)
    t_copula = model.params.t_copula
    bounds = chi2_shape_bounds(model.params.dof) if t_copula else (0.0, 0.0)
    current = replace(model, params=model.params._replace(defensive_share=float(defensive_share)), sampling="importance")
    reached = -np.inf
    for round_ in range(_MAX_ROUNDS):
        out = run_paths(current, pilot_seed(seed, round_), n_pilot, threads=threads, progress=progress,
                        desc=f"pilot {round_ + 1}", record_eta=True)
        values = score(out)
        level = min(float(threshold), float(np.quantile(values, 1.0 - _ELITE)))
        elite = out.weight * (values >= level)
        if elite.sum() <= 0.0 or level <= reached:
            break
        reached = level
        current = _cross_entropy_update(current, out, elite, bounds)
        if level >= threshold and round_ >= 1:
            break
    return current, reached


def _cross_entropy_update(current: CompiledModel, out: Outputs, elite: np.ndarray, bounds: tuple[float, float]) -> CompiledModel:
    """The measure of the next round from the elite's weights: mu = rank-one part of their mean innovations, k'."""
    mean = np.tensordot(elite, out.eta, axes=1) / elite.sum()
    u, sv, vt = np.linalg.svd(mean, full_matrices=False)
    shift = sv[0] * np.outer(u[:, 0], vt[0])
    with np.errstate(divide="ignore"):
        log_half = np.log(0.5 * out.chi2)
    params = current.params
    shape_shift = _elite_shape(log_half, elite, bounds) - 0.5 * params.dof if params.t_copula else 0.0
    return replace(
        current,
        tables=current.tables._replace(factor_shift=shift),
        params=params._replace(chi2_shape_shift=shape_shift),
    )
