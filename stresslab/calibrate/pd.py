"""The pd_horizon_months default rate of current loans: observed on a tape, implied by a chain.

The book's ``pd`` column is the unconditional probability that a loan current now, with
an installment due every month, defaults within H = ``pd_horizon_months`` (MODEL.md §2,
prepayment a competing risk). Observed: cohorts of loans current at each month-end t0,
followed for H months. Implied: the same probability computed by the calibration
integral (stresslab.compile.calibration.default_probability) from fitted monthly rates.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from stresslab._kernels.chain import chain_default_probability
from stresslab._kernels.special import normal_table
from stresslab.book.history import STATE_CODES, History, month_label
from stresslab.calibrate.transitions import (
    hac_mean,
    persistence_lags,
    segment_labels,
)
from stresslab.compile.calibration import (
    ChainInputs,
    FactorLaw,
    _chain_thresholds,
    default_probability,
    latent_quantile,
)
from stresslab.errors import StresslabError
from stresslab.scenario.scenario import Scenario

__all__ = ["chain_inputs", "implied_pd", "observed_pd", "observed_pd_spread"]

_Z95 = 1.959963984540054


def observed_pd(history: History, horizon: int = 12, by: str | None = None) -> xr.Dataset:
    """Share of current loans that default within ``horizon`` months, per segment.

    A cohort is the loans current (C) at a month-end t0 with t0 + H within the tape; a
    member defaults if it reaches D by t0 + H. Left out (counted in attrs): loans with a gap
    anywhere in their rows, loans that leave the tape live before t0 + H (censored), and,
    when the tape has ``remaining_term``, loans with fewer than H installments left or
    bullet loans (MODEL.md §9: the pd is that of loans with monthly installments and terms
    of at least H). A loan that pays off early stays in its cohort as not defaulted
    (prepayment is a competing risk in the pd's definition).

    Parameters
    ----------
    history : History
    horizon : int
        H, the scenario's ``pd_horizon_months`` (default 12).
    by : str, optional
        A column of the tape to estimate each of its values separately.

    Returns
    -------
    xarray.Dataset
        Dims ``segment`` and ``cohort`` (YYYY-MM of t0). ``members(segment, cohort)``,
        ``defaults(segment, cohort)``; per segment ``pd_pooled`` = sum defaults / sum
        members, ``pd`` the through-the-cycle mean of the cohort default rates with
        ``pd_se`` (:func:`stresslab.calibrate.transitions.hac_mean` over H - 1 lags, as
        cohorts H months apart share no month, plus the lags over which the monthly miss
        rate of current loans stays autocorrelated, :func:`persistence_lags`; NaN for a
        tape too short for that dependence: a few times H months are needed) and
        ``pd_lower``/``pd_upper`` (pd -+ 1.96 se), and ``pd_book``, the mean over cohorts of the members' ``pd``
        column where the tape has one (what the book says the rate should be).

    References
    ----------
    The cohort default-rate estimator of rating agencies' default studies, e.g. Cantor &
    Hamilton (2004), Rating transition and default rates conditioned on outlooks, Journal
    of Fixed Income 14(2).
    """
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or not 1 <= horizon <= 120:
        raise StresslabError(f"horizon must be an integer number of months in 1..120; got {horizon!r}")
    f = history.frame
    labels = segment_labels(history, by)
    lid = f["loan_id"].to_numpy()
    mon = f["month"].to_numpy()
    st = f["state"].to_numpy()
    start = np.flatnonzero(np.r_[True, lid[1:] != lid[:-1]])
    loan = np.cumsum(np.r_[True, lid[1:] != lid[:-1]]) - 1  # loan number of each row
    stop = np.r_[start[1:], len(f)] - 1  # last row of each loan
    gap = np.zeros(start.size, dtype=bool)
    inner = np.flatnonzero((lid[1:] == lid[:-1]) & (mon[1:] - mon[:-1] > 1))
    gap[loan[inner]] = True
    last_month, last_state = mon[stop], st[stop]
    default_month = np.where(last_state == STATE_CODES["D"], last_month, np.iinfo(np.int64).max)
    end = int(mon.max())
    member = (st == STATE_CODES["C"]) & (mon + horizon <= end) & ~gap[loan]
    censored = member & (last_month[loan] < mon + horizon) & (last_state[loan] < STATE_CODES["D"])
    member &= ~censored
    dropped = {"gaps": int(np.count_nonzero((st == STATE_CODES["C"]) & (mon + horizon <= end) & gap[loan])),
               "censored": int(np.count_nonzero(censored))}
    if "remaining_term" in f.columns:
        short = member & (f["remaining_term"].to_numpy() < horizon)
        if "amortization" in f.columns:
            short |= member & (f["amortization"].to_numpy() == "bullet")
        dropped["short_term"] = int(np.count_nonzero(short))
        member &= ~short
    rows = np.flatnonzero(member)
    if rows.size == 0:
        raise StresslabError(f"{history.source}: no current loan can be followed for {horizon} months "
                             f"(the tape spans {len(history.months)} month-ends)")
    defaulted = default_month[loan[rows]] <= mon[rows] + horizon
    segment = labels[rows]
    segments = np.unique(segment.astype(str))
    seg = np.searchsorted(segments, segment.astype(str))
    c0, c1 = int(mon[rows].min()), int(mon[rows].max())
    cohort = mon[rows] - c0
    shape = (segments.size, c1 - c0 + 1)
    members = np.zeros(shape, dtype=np.int64)
    defaults = np.zeros(shape, dtype=np.int64)
    np.add.at(members, (seg, cohort), 1)
    np.add.at(defaults, (seg, cohort), defaulted.astype(np.int64))
    valid = members > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = defaults / members
        pooled = defaults.sum(axis=1) / members.sum(axis=1)
    # cohorts t0 and t0 + l share months for l < H, and the factors persist beyond: lags H - 1
    # plus the persistence of the monthly miss rates of the current loans
    lags = horizon - 1 + _miss_persistence(history, c0, c1)
    mean, se = np.full(segments.size, np.nan), np.full(segments.size, np.nan)
    for k in range(segments.size):
        mean[k], se[k] = hac_mean(rate[k], valid[k], lags)
    data = {
        "members": (("segment", "cohort"), members),
        "defaults": (("segment", "cohort"), defaults),
        "pd_pooled": ("segment", pooled),
        "pd": ("segment", mean, {"long_name": f"{horizon}-month default rate of current loans (mean over cohorts)"}),
        "pd_se": ("segment", se),
        "pd_lower": ("segment", mean - _Z95 * se),
        "pd_upper": ("segment", mean + _Z95 * se),
        "n_cohorts": ("segment", valid.sum(axis=1)),
    }
    if "pd" in f.columns:
        book = np.zeros(shape)
        np.add.at(book, (seg, cohort), f["pd"].to_numpy(dtype=float)[rows])
        with np.errstate(invalid="ignore", divide="ignore"):
            data["pd_book"] = ("segment", np.nanmean(np.where(valid, book / members, np.nan), axis=1))
    return xr.Dataset(data, coords={"segment": segments, "cohort": month_label(np.arange(c0, c1 + 1))},
                      attrs={"source": history.source, "horizon": horizon, "by": by or "", **dropped})


def _miss_persistence(history: History, first: int, last: int) -> int:
    """persistence_lags of the tape's monthly miss rate (C -> M1 or D) over months first..last + H."""
    f = history.frame
    lid, mon, st = f["loan_id"].to_numpy(), f["month"].to_numpy(), f["state"].to_numpy()
    pair = (lid[1:] == lid[:-1]) & (mon[1:] - mon[:-1] == 1) & (st[:-1] == STATE_CODES["C"])
    k = np.flatnonzero(pair)
    month = mon[k + 1] - mon.min()
    n = np.bincount(month, minlength=mon.max() - mon.min() + 1)
    miss = np.bincount(month, weights=((st[k + 1] >= 1) & (st[k + 1] <= STATE_CODES["D"])).astype(float), minlength=n.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return persistence_lags(miss / n, n > 0)


def chain_inputs(rates: xr.DataArray, scenario: Scenario) -> tuple[float, ChainInputs]:
    """Monthly entry probability and ChainInputs of one segment's fitted rates.

    ``rates`` has dims (from_state, to_state); the roll from M_k goes to M_{k+1}, or to D
    from the last delinquent state before ``default_after`` (the scenario's); miss is C ->
    M1 (C -> D with default_after 1); sensitivities and the cycle sensitivity are the
    scenario's (a tape without stress cannot identify them).
    """
    deq = scenario.delinquency
    after = deq.default_after
    to = ["M1", "M2", "M3", "D"]
    entry = float(rates.sel(from_state="C", to_state="M1" if after > 1 else "D"))
    roll, cure = [], []
    for k, name in enumerate(("M1", "M2", "M3")):
        if k + 1 < after:
            roll.append(float(rates.sel(from_state=name, to_state=to[k + 1] if k + 2 < after else "D")))
            cure.append(float(rates.sel(from_state=name, to_state="C")))
        else:  # states the chain never reaches: the scenario's own values
            roll.append(float(deq.roll_rates[k]))
            cure.append(float(deq.cure_rates[k]))
    prepay = float(rates.sel(from_state="C", to_state="P"))
    return entry, ChainInputs(after, tuple(roll), tuple(cure), deq.roll_sensitivity, deq.cure_sensitivity,
                              prepay, deq.cycle_sensitivity)


def implied_pd(transitions: xr.Dataset, scenario: Scenario, rho: float | xr.DataArray, *,
               horizon: int | None = None) -> xr.Dataset:
    """The H-month pd implied by fitted monthly rates under a scenario's factor model.

    PD_H(c) of MODEL.md §2 with c = F^{-1}(p) (p the fitted C -> M1 rate), the fitted roll,
    cure and prepayment rates (:func:`chain_inputs`), and the scenario's copula, dof, ar1,
    default_after, sensitivities and cycle sensitivity; integrated as the book's
    calibration integrates it (stresslab.compile.calibration.default_probability), without
    seasonality. If the fitted rates are the model's inputs, this is the pd the engine
    calibrates the book to, so ``observed_pd`` and ``implied_pd`` agree on a tape the model
    simulated without stress (tests/test_calibrate.py).

    Parameters
    ----------
    transitions : xarray.Dataset
        :func:`stresslab.fit_transitions`; its ``rate_ttc`` and ``rate_ttc_se_model``
        (as :func:`stresslab.calibrate` adds it; else ``rate_ttc_se``) are used.
    scenario : Scenario
        The factor model and chain structure (usually the base of the calibration).
    rho : float or DataArray over ``segment``
        Systematic variance of the latent (sum of squared loadings) of each segment.
    horizon : int, optional
        Default: the scenario's ``pd_horizon_months``.

    Returns
    -------
    xarray.Dataset
        ``pd_implied``, its ``pd_implied_se`` and ``pd_implied_lower``/``_upper`` (-+ 1.96
        s.e.) over ``segment``. The s.e. is the delta method over the fitted rates taken
        as independent with their ``rate_ttc_se`` (central differences of PD_H, a step of
        a tenth of each s.e.); the rates share the factors, so it is indicative.
    """
    horizon = scenario.pd_horizon_months if horizon is None else horizon
    fac = scenario.factors
    law = FactorLaw(fac.copula, fac.dof, fac.ar1)
    rho = rho if isinstance(rho, xr.DataArray) else xr.DataArray(rho).broadcast_like(transitions["segment"])
    point, errors = [], []
    for segment in transitions["segment"].values:
        rates = transitions["rate_ttc"].sel(segment=segment)
        name = "rate_ttc_se_model" if "rate_ttc_se_model" in transitions else "rate_ttc_se"
        se = transitions[name].sel(segment=segment).fillna(0.0)
        r = float(rho.sel(segment=segment))
        point.append(_pd_of(rates, scenario, r, law, horizon))
        variance = 0.0
        for i, j in zip(*np.nonzero((se.values > 0) & (rates.values > 0))):
            h = 0.1 * float(se.values[i, j])
            up, down = rates.copy(), rates.copy()
            up.values[i, j] = min(rates.values[i, j] + h, 1.0 - 1e-9)
            down.values[i, j] = max(rates.values[i, j] - h, 1e-9)
            slope = (_pd_of(up, scenario, r, law, horizon) - _pd_of(down, scenario, r, law, horizon)) / (
                up.values[i, j] - down.values[i, j])
            variance += (slope * float(se.values[i, j])) ** 2
        errors.append(np.sqrt(variance))
    dims = ("segment",)
    point, errors = np.asarray(point), np.asarray(errors)
    return xr.Dataset({"pd_implied": (dims, point), "pd_implied_se": (dims, errors),
                       "pd_implied_lower": (dims, point - _Z95 * errors), "pd_implied_upper": (dims, point + _Z95 * errors)},
                      coords={"segment": transitions["segment"].values}, attrs={"horizon": horizon})


def _pd_of(rates: xr.DataArray, scenario: Scenario, rho: float, law: FactorLaw, horizon: int) -> float:
    entry, chain = chain_inputs(rates, scenario)
    if not np.isfinite(entry) or entry <= 0.0:
        return 0.0
    chain = _feasible(chain)
    c = latent_quantile(np.array([entry]), law)
    return float(default_probability(c, rho, chain, law, horizon)[0, 0])


def observed_pd_spread(rates: xr.DataArray, scenario: Scenario, rho: float, members: np.ndarray, *,
                       horizon: int | None = None, paths: int = 200, seed: int = 0) -> float:
    """Model-based standard error of the observed through-the-cycle pd of one tape.

    A parametric bootstrap over the factors: the observed pd (:func:`observed_pd`) is the
    mean over the tape's cohorts of their H-month default rates, and cohorts that overlap
    share factor months, so the tape's own spread of cohort rates cannot tell how far
    the mean of one tape falls from the pd (a tape of a few H spans holds a few independent
    windows at most). Under the fitted chain and the scenario's factor law, this draws
    ``paths`` stationary index paths Y_1..Y_{K+H-1} (AR(1) with the scenario's ar1; one
    W a path for the t copula) spanning the K cohorts of the tape, takes each cohort's
    conditional default probability given its window Y_{k+1..k+H} (the calibration kernel,
    stresslab._kernels.chain, one node per window), averages over the cohorts with members,
    and returns the standard deviation over paths, plus the binomial part
    sum_k pd (1 - pd) / N_k / K² (large-N limit; overlap of members ignored there).

    Parameters
    ----------
    rates : DataArray (from_state, to_state)
        Fitted monthly rates of the segment (``rate_ttc``).
    scenario : Scenario
    rho : float
        Systematic variance of the segment's latent.
    members : ndarray of shape (K,)
        Members of each cohort (0: no cohort that month).
    """
    horizon = scenario.pd_horizon_months if horizon is None else horizon
    fac = scenario.factors
    law = FactorLaw(fac.copula, fac.dof, fac.ar1)
    entry, chain = chain_inputs(rates, scenario)
    chain = _feasible(chain)
    if not np.isfinite(entry) or entry <= 0.0:
        return 0.0
    members = np.asarray(members)
    keep = np.flatnonzero(members > 0)
    rng = np.random.default_rng(seed)
    n_months = int(keep.max()) + horizon
    phi = float(fac.ar1)
    y = np.empty((paths, n_months + 1))
    y[:, 0] = rng.standard_normal(paths)
    for t in range(1, n_months + 1):  # month 1 is one AR step after the stationary start
        y[:, t] = phi * y[:, t - 1] + np.sqrt(1.0 - phi * phi) * rng.standard_normal(paths)
    windows = np.stack([y[:, k + 1 : k + 1 + horizon] for k in keep], axis=1)  # (paths, K, H)
    s_w = np.ones(paths) if law.copula != "t" else np.sqrt(rng.chisquare(law.dof, paths) / law.dof)
    c = latent_quantile(np.array([entry]), law)
    # as default_probability builds them (stresslab.compile.calibration)
    kappa_rho = chain.kappa**2 * rho
    coefficients = np.array([np.sqrt(rho), 1.0 / np.sqrt(1.0 - rho), chain.kappa * np.sqrt(rho),
                             1.0 / np.sqrt(1.0 - kappa_rho), chain.roll_sensitivity, chain.cure_sensitivity])
    thresholds = _chain_thresholds(chain, law)
    table = normal_table()
    weight = np.full(keep.size, 1.0 / keep.size)
    out = np.empty((1, 1))
    means = np.empty(paths)
    for p in range(paths):
        chain_default_probability(c, np.zeros(1), np.zeros(horizon), np.ascontiguousarray(windows[p]),
                                  np.full(keep.size, s_w[p]), weight, thresholds, coefficients, int(chain.default_after),
                                  table.values, table.lo, table.inv_step, out)
        means[p] = out[0, 0]
    pd = float(means.mean())
    binomial = float(np.sum(pd * (1.0 - pd) / members[keep])) / keep.size**2
    return float(np.sqrt(means.var(ddof=1) + binomial))


def _feasible(chain: ChainInputs) -> ChainInputs:
    """The chain with r_k + q_k <= 1 (sampling noise may break it: the excess shared out)."""
    roll, cure = np.asarray(chain.roll_rates), np.asarray(chain.cure_rates)
    excess = (roll + cure - 1.0).clip(0.0)
    if not excess.any():
        return chain
    return ChainInputs(chain.default_after, tuple(roll - excess / 2), tuple(cure - excess / 2), chain.roll_sensitivity,
                       chain.cure_sensitivity, chain.prepayment_rate, chain.kappa)
