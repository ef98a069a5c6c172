"""Model-based standard errors of through-the-cycle rates: a parametric bootstrap over the factors.

The through-the-cycle rate of a tape is the mean over its months of the monthly cohort
rates (stresslab.calibrate.transitions). Its error is mostly the factors': every loan of
a month shares them, and persistent factors (ar1 near 1) leave a tape of a few years with
few independent months, so the tape's own spread of monthly rates (``rate_ttc_se``)
understates it (measured: 95% intervals covering 59% of the time at ar1 = 0.9 over 48
months, tests/test_calibrate.py). Here the spread is taken under the model instead: given
the index Y_t and the path's mixing W, the one-month rates of MODEL.md §3 are

    miss    Φ((c s_W - sqrt(ρ) Y_t) / sqrt(1 - ρ)),       c = F^{-1}(p)
    prepay  1 - Φ((max(π*, c) s_W - sqrt(ρ) Y_t) / sqrt(1 - ρ)),   π* = F^{-1}(1 - π)
    roll    Φ((a_k s_W - κ sqrt(ρ) Y_t) / sqrt(1 - κ²ρ))
    cure    1 - Φ((max(b_k, a_k) s_W - κ sqrt(ρ) Y_t) / sqrt(1 - κ²ρ))

(s_W = 1/sqrt(W), 1 for the Gaussian copula), with the fitted rates as inputs and the
base scenario's copula, dof, ar1 and cycle sensitivity κ. Averaging them over the tape's
months for stationary AR(1) paths of Y, and adding the binomial part of each month, gives
the sampling distribution of the through-the-cycle rate of a tape like this one.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.special import ndtr, ndtri

from stresslab.calibrate.pd import chain_inputs
from stresslab.compile.calibration import FactorLaw, latent_quantile
from stresslab.scenario.scenario import Scenario

__all__ = ["ttc_rate_se_model"]


def ttc_rate_se_model(transitions: xr.Dataset, segment: str, scenario: Scenario, rho: float, *,
                      paths: int = 2_000, seed: int = 0, scale: str = "rate") -> xr.DataArray:
    """Model-based s.e. of ``rate_ttc`` of one segment, dims (from_state, to_state).

    Parameters
    ----------
    transitions : xarray.Dataset
        :func:`stresslab.fit_transitions` of the tape.
    segment : str
    scenario : Scenario
        The factor law (copula, dof, ar1), κ and ``default_after``.
    rho : float
        Systematic variance of the segment's latent.
    paths, seed : int
        Factor paths drawn, and their seed.
    scale : {"rate", "probit"}
        ``"probit"``: the s.e. of Φ^{-1}(rate_ttc) instead. Under persistent factors the
        sampling distribution of a small rate is skewed (a long right tail); on the probit
        scale it is nearly symmetric, so Φ(Φ^{-1}(rate) -+ 1.96 se_probit) is the better
        95% interval (measured coverage in tests/test_calibrate.py).

    Returns
    -------
    xarray.DataArray
        Standard deviation over factor paths of the month-mean of the conditional rates,
        over the months where the from-state had loans, plus the binomial part
        sum_t r (1 - r) / N_t / T²; NaN for cells the chain does not have (C -> M2 ...).
    """
    if scale not in ("rate", "probit"):
        raise ValueError(f"scale must be 'rate' or 'probit'; got {scale!r}")
    rates = transitions["rate_ttc"].sel(segment=segment)
    at_risk = transitions["monthly_count"].sel(segment=segment).sum("to_state").values  # (month, from)
    fac = scenario.factors
    law = FactorLaw(fac.copula, fac.dof, fac.ar1)
    entry, chain = chain_inputs(rates, scenario)
    rng = np.random.default_rng(seed)
    n_months = at_risk.shape[0]
    phi = float(fac.ar1)
    y = np.empty((paths, n_months))
    previous = rng.standard_normal(paths)
    for t in range(n_months):  # month 1 is one AR step after the stationary start
        previous = phi * previous + np.sqrt(1.0 - phi * phi) * rng.standard_normal(paths)
        y[:, t] = previous
    s_w = np.ones((paths, 1)) if law.copula != "t" else np.sqrt(rng.chisquare(law.dof, (paths, 1)) / law.dof)
    kappa = chain.kappa
    current = (np.sqrt(rho), np.sqrt(1.0 - rho))
    delinquent = (kappa * np.sqrt(rho), np.sqrt(1.0 - kappa * kappa * rho))

    def below(threshold: float, loading: tuple[float, float]) -> np.ndarray:
        return ndtr((threshold * s_w - loading[0] * y) / loading[1])

    conditional: dict[tuple[str, str], np.ndarray] = {}
    if np.isfinite(entry) and entry > 0.0:
        c = float(latent_quantile(np.array([entry]), law)[0])
        conditional[("C", "M1" if chain.default_after > 1 else "D")] = below(c, current)
        if chain.prepayment_rate > 0.0:
            prepay = float(latent_quantile(np.array([1.0 - chain.prepayment_rate]), law)[0])
            conditional[("C", "P")] = 1.0 - below(max(prepay, c), current)
    for k, name in enumerate(("M1", "M2", "M3")):
        if k + 1 >= chain.default_after:
            continue
        target = ("M2", "M3", "D")[k] if k + 2 < chain.default_after else "D"
        a = float(latent_quantile(np.array([chain.roll_rates[k]]), law)[0])
        b = float(latent_quantile(np.array([1.0 - chain.cure_rates[k]]), law)[0])
        conditional[(name, target)] = below(a, delinquent)
        conditional[(name, "C")] = 1.0 - below(max(a, b), delinquent)
    out = xr.full_like(rates, np.nan)
    from_index = {name: i for i, name in enumerate(rates["from_state"].values)}
    for (a, b), values in conditional.items():
        n = at_risk[:, from_index[a]]
        valid = n > 0
        if valid.sum() < 2:
            continue
        mean = values[:, valid].mean(axis=1)
        r = float(rates.sel(from_state=a, to_state=b))
        binomial = float(np.sum(r * (1.0 - r) / n[valid])) / valid.sum() ** 2
        if scale == "probit":
            clipped = np.clip(mean, 1e-12, 1.0 - 1e-12)
            slope = np.exp(-0.5 * ndtri(min(max(r, 1e-12), 1 - 1e-12)) ** 2) / np.sqrt(2.0 * np.pi)  # φ(Φ^{-1}(r))
            out.loc[{"from_state": a, "to_state": b}] = np.sqrt(ndtri(clipped).var(ddof=1) + binomial / slope**2)
        else:
            out.loc[{"from_state": a, "to_state": b}] = np.sqrt(mean.var(ddof=1) + binomial)
    # the rest of a row (C -> C, stays) moves with the others: its s.e. is not computed here
    return out
