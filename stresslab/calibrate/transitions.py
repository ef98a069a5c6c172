"""Monthly transition rates of a loan tape: cohort (month-pair) counts with intervals.

Notation: a month pair is a loan's rows at consecutive month-ends t-1 and t (a gap breaks
it); n_ab(t) loans went from state a to b in month t, N_a(t) = sum_b n_ab(t).
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pandas as pd
import xarray as xr
from scipy.stats import chi2

from stresslab.book.history import STATE_CODES, History, month_label
from stresslab.errors import StresslabError
from stresslab.vocabulary import LIVE_STATES, STATES

__all__ = ["fit_transitions", "goodman_intervals", "hac_mean", "month_pairs", "persistence_lags", "ttc_mean"]

ALL = "all"  # the segment label of a pooled fit

MONTHS_ON_BOOK = "months_on_book"  # by= this: bands of months since origination_month
_MOB_BANDS = (0, 6, 12, 24)  # band starts: 0-5, 6-11, 12-23, 24+


def segment_labels(history: History, by: str | None) -> np.ndarray:
    """The segment of every row of the tape: ``ALL``, a column's text, or a months-on-book band.

    ``by="months_on_book"`` needs an ``origination_month`` column: a row's months on book
    are its month less that, banded 0-5, 6-11, 12-23, 24+ (at the first month of a pair or
    the start of a pd cohort).
    """
    f = history.frame
    if by is None:
        return np.full(len(f), ALL, dtype=object)
    if by == MONTHS_ON_BOOK and by not in f.columns:
        if "origination_month" not in f.columns:
            raise StresslabError(f"{history.source}: by='months_on_book' needs an origination_month column (YYYY-MM)")
        mob = f["month"].to_numpy() - f["origination_month"].to_numpy()
        labels = np.array([f"{a}-{b - 1}" for a, b in pairwise(_MOB_BANDS)] + [f"{_MOB_BANDS[-1]}+"], dtype=object)
        return labels[np.clip(np.searchsorted(_MOB_BANDS, mob, side="right") - 1, 0, None)]
    if by not in f.columns:
        raise StresslabError(f"{history.source}: by={by!r} is not a column of the tape; "
                             f"columns: {', '.join(map(str, f.columns))} (or months_on_book)")
    return f[by].astype(str).to_numpy()


def month_pairs(history: History, by: str | None = None) -> tuple[pd.DataFrame, dict[str, int]]:
    """The month pairs a transition estimator counts, and how many rows it left out and why.

    Returns
    -------
    pairs : pandas.DataFrame
        Columns ``loan`` (row of the loan's first tape row), ``month`` (month index of the
        pair's second month-end), ``from_state``, ``to_state`` (codes) and ``segment``.
    dropped : dict
        ``gaps`` (pairs across missing months), ``nothing_due`` (current bullet loans
        before maturity: no installment, no draw), ``maturity`` (current loans in their last
        month: paying it closes the loan, which is not a prepayment).
    """
    f = history.frame
    labels = segment_labels(history, by)
    lid = f["loan_id"].to_numpy()
    mon = f["month"].to_numpy()
    st = f["state"].to_numpy()
    same = lid[1:] == lid[:-1]
    step = mon[1:] - mon[:-1]
    live = st[:-1] < STATE_CODES["D"]
    keep = same & (step == 1) & live
    dropped = {"gaps": int(np.count_nonzero(same & (step > 1) & live))}
    current = st[:-1] == STATE_CODES["C"]
    if "remaining_term" in f.columns:
        term = f["remaining_term"].to_numpy()[:-1]
        nothing_due = np.zeros_like(keep)
        if "amortization" in f.columns:
            nothing_due = current & (f["amortization"].to_numpy()[:-1] == "bullet") & (term > 1)
        maturity = current & (term <= 1) & ~nothing_due
        dropped["nothing_due"] = int(np.count_nonzero(keep & nothing_due))
        dropped["maturity"] = int(np.count_nonzero(keep & maturity))
        keep &= ~(nothing_due | maturity)
    k = np.flatnonzero(keep)
    segment = labels[k]
    pairs = pd.DataFrame({"month": mon[k + 1], "from_state": st[k], "to_state": st[k + 1], "segment": segment})
    return pairs, dropped


def goodman_intervals(counts: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Simultaneous confidence intervals of multinomial proportions (Goodman 1965).

    For a row of counts n_1..n_k with total N, every p_i lies in

        [A + 2 n_i -+ sqrt(A (A + 4 n_i (N - n_i) / N))] / (2 (N + A)),

    A the upper (1 - level) / k quantile of chi-square with one degree of freedom (a
    Bonferroni split over the k cells), jointly with probability >= level asymptotically.
    Each interval is the Wilson score interval at level 1 - (1 - level)/k.

    Parameters
    ----------
    counts : ndarray of shape (..., k)
        Counts along the last axis.
    level : float

    Returns
    -------
    lower, upper : ndarray like ``counts``; NaN where the row total is 0.

    References
    ----------
    Goodman, L. A. (1965). On simultaneous confidence intervals for multinomial
    proportions. Technometrics 7(2), 247-254.
    """
    counts = np.asarray(counts, dtype=float)
    k = counts.shape[-1]
    a = chi2.ppf(1.0 - (1.0 - level) / k, 1)
    total = counts.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        half = np.sqrt(a * (a + 4.0 * counts * (total - counts) / total))
        lower = (a + 2.0 * counts - half) / (2.0 * (total + a))
        upper = (a + 2.0 * counts + half) / (2.0 * (total + a))
    return np.clip(lower, 0.0, 1.0), np.clip(upper, 0.0, 1.0)


def ttc_mean(series: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of a monthly rate series over its valid months, and its standard error.

    The s.e. allows for the persistence of the factors that drive every loan in a month:
    s.e.² = s² / T_eff, T_eff = T (1 - φ) / (1 + φ), with s² the sample variance of the
    series and φ its lag-1 autocorrelation (clipped to [0, 0.98]), the variance of the
    mean of an AR(1) process (e.g. Wilks 2011, Statistical Methods in the Atmospheric
    Sciences, §5.2.3). Monthly sampling noise is part of s², so no binomial term is added.

    Parameters
    ----------
    series, valid : ndarray of shape (..., T)
        Rates by month (last axis) and where they are defined (some loan at risk).

    Returns
    -------
    mean, se : ndarray of shape (...,); NaN with fewer than 3 valid months (se) or none (mean).
    """
    series = np.where(valid, series, np.nan)
    t = valid.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(series, axis=-1) / t
        dev = series - mean[..., None]
        var = np.nansum(dev**2, axis=-1) / (t - 1)
        lag = np.nansum(dev[..., 1:] * dev[..., :-1], axis=-1) / np.nansum(dev**2, axis=-1)
        phi = np.clip(np.nan_to_num(lag), 0.0, 0.98)
        se = np.sqrt(var / t * (1.0 + phi) / (1.0 - phi))
    return mean, np.where(t >= 3, se, np.nan)


def persistence_lags(series: np.ndarray, valid: np.ndarray, floor: float = 0.05) -> int:
    """Lags until an AR(1) with the series' lag-1 autocorrelation φ̂ decays below ``floor``.

    ``ceil(log(floor) / log(φ̂))`` for φ̂ in (0, 0.95] (clipped), 0 for φ̂ <= 0; a series
    too short to tell (< 3 valid months) gives 0.
    """
    x = np.asarray(series, dtype=float)[np.asarray(valid, dtype=bool)]
    if x.size < 3:
        return 0
    dev = x - x.mean()
    denominator = float(dev @ dev)
    phi = float(dev[1:] @ dev[:-1]) / denominator if denominator > 0 else 0.0
    if phi <= 0.0:
        return 0
    return int(np.ceil(np.log(floor) / np.log(min(phi, 0.95))))


def hac_mean(series: np.ndarray, valid: np.ndarray, lags: int) -> tuple[float, float]:
    """Mean of a dependent series and its s.e., for dependence over at most ``lags`` lags.

    With γ̂_l the sample autocovariances (around the sample mean, divided by T), the
    truncated estimator S = sum_{|l| <= L} (1 - |l|/T) γ̂_l estimates T Var(ȳ) less a bias
    of K Var(ȳ), K = sum_{|l| <= L} (1 - |l|/T), because each γ̂_l is taken around ȳ
    (E γ̂_l ≈ γ_l - Var(ȳ)); so Var(ȳ) ≈ S / (T - K). This is the uniform-kernel HAC
    estimator (Hansen & Hodrick 1980, for overlapping observations) with that
    small-sample correction. It needs T > K + 1; otherwise (a series too short for its
    dependence) the s.e. is NaN. Months are taken consecutive (invalid ones dropped).

    Returns
    -------
    mean, se : float
    """
    y = np.asarray(series, dtype=float)[np.asarray(valid, dtype=bool)]
    t = y.size
    if t == 0:
        return float("nan"), float("nan")
    mean = float(y.mean())
    lags = int(min(max(lags, 0), t - 1))
    dev = y - mean
    weights = 1.0 - np.arange(lags + 1) / t
    gamma = np.array([dev[l:] @ dev[: t - l] / t for l in range(lags + 1)])
    total = gamma[0] + 2.0 * float(weights[1:] @ gamma[1:])
    k = 1.0 + 2.0 * float(weights[1:].sum())
    if t - k <= 1.0 or total <= 0.0:
        return mean, float("nan")
    return mean, float(np.sqrt(total / (t - k)))


def fit_transitions(history: History, by: str | None = None, level: float = 0.95) -> xr.Dataset:
    """Monthly transition rates from every live state, pooled or by segment.

    Parameters
    ----------
    history : History
        A loan tape (:func:`stresslab.load_history`).
    by : str, optional
        A column of the tape to fit each of its values separately (``"industry"``,
        ``"borrower_type"``, ``"region"``), or ``"months_on_book"`` (bands of months since
        ``origination_month``: :func:`segment_labels`); default: one pooled fit (segment
        ``"all"``).
    level : float
        Confidence level of the intervals (default 0.95).

    Returns
    -------
    xarray.Dataset
        Dims ``segment``, ``from_state`` (C, M1, M2, M3), ``to_state`` (C, M1, M2, M3, D, P)
        and ``month`` (YYYY-MM of the pair's second month-end). Variables:

        - ``count(segment, from_state, to_state)``: month pairs n_ab = sum_t n_ab(t);
          ``at_risk(segment, from_state)``: N_a;
        - ``rate``: the cohort estimator n_ab / N_a, the maximum-likelihood estimator of a
          time-homogeneous Markov chain observed at month-ends (Anderson & Goodman 1957;
          Jafry & Schuermann 2004), with ``rate_lower``/``rate_upper`` Goodman's (1965)
          simultaneous multinomial intervals (:func:`goodman_intervals`);
        - ``monthly_count(segment, month, from_state, to_state)``;
        - ``rate_ttc``: the through-the-cycle rate, the mean over months of the monthly
          cohort rates n_ab(t) / N_a(t), with ``rate_ttc_se`` (:func:`ttc_mean`).

        attrs: ``source``, ``gaps``/``nothing_due``/``maturity`` (pairs left out) and
        ``by``.

    Notes
    -----
    The model's roll, cure, miss and prepayment inputs are unconditional one-month rates,
    averaged over the factors (MODEL.md §3). Under persistent factors the pooled ``rate``
    is not their estimator: more loans are delinquent in bad months, so N_a(t) is large
    exactly when the rates are high and the pooled ratio leans toward bad months. Given
    the factors, a loan's transition in month t depends on its state and that month's
    factors only (idiosyncratic draws are independent across months), so each monthly
    rate is conditionally unbiased and their equal-weight mean, ``rate_ttc``, is unbiased
    for the input: that is what :func:`stresslab.calibrate` writes into a scenario. Its s.e.
    is large when the factors are persistent: a tape spanning few cycles pins the
    through-the-cycle rate down poorly, and the interval says so. The C -> M1 rate is
    the miss rate of loans with an installment due (docs/history.md: which pairs count).
    """
    pairs, dropped = month_pairs(history, by)
    if pairs.empty:
        raise StresslabError(f"{history.source}: no month pairs of live loans to count (a tape needs two consecutive months)")
    seg, uniques = pd.factorize(pairs["segment"], sort=True)
    segments = np.asarray(uniques, dtype=str)
    m0, m1 = int(pairs["month"].min()), int(pairs["month"].max())
    months = np.arange(m0, m1 + 1)
    n_from, n_to = len(LIVE_STATES), len(STATES)
    shape = (segments.size, months.size, n_from, n_to)
    cell = np.ravel_multi_index((seg, pairs["month"].to_numpy() - m0, pairs["from_state"].to_numpy(),
                                 pairs["to_state"].to_numpy()), shape)
    monthly = np.bincount(cell, minlength=int(np.prod(shape))).reshape(shape)
    count = monthly.sum(axis=1)
    at_risk = count.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = count / at_risk[..., None]
        monthly_at_risk = monthly.sum(axis=-1, keepdims=True)
        monthly_rate = monthly / monthly_at_risk
    lower, upper = goodman_intervals(count, level)
    valid = np.broadcast_to(monthly_at_risk > 0, monthly.shape)
    ttc, ttc_se = ttc_mean(np.moveaxis(monthly_rate, 1, -1), np.moveaxis(valid, 1, -1))
    dims3 = ("segment", "from_state", "to_state")
    ds = xr.Dataset(
        {
            "count": (dims3, count, {"long_name": "month pairs from state to state"}),
            "at_risk": (("segment", "from_state"), at_risk, {"long_name": "month pairs from state"}),
            "rate": (dims3, rate, {"long_name": "pooled cohort (maximum-likelihood) monthly transition rate"}),
            "rate_lower": (dims3, lower, {"long_name": f"{level:.0%} simultaneous multinomial lower bound (Goodman)"}),
            "rate_upper": (dims3, upper, {"long_name": f"{level:.0%} simultaneous multinomial upper bound (Goodman)"}),
            "rate_ttc": (dims3, ttc, {"long_name": "through-the-cycle rate: mean of the monthly cohort rates"}),
            "rate_ttc_se": (dims3, ttc_se, {"long_name": "standard error of rate_ttc (AR(1) effective months)"}),
            "monthly_count": (("segment", "month", "from_state", "to_state"), monthly),
        },
        coords={
            "segment": segments,
            "from_state": list(LIVE_STATES),
            "to_state": list(STATES),
            "month": month_label(months),
        },
        attrs={"source": history.source, "by": by or "", "level": level, **dropped},
    )
    return ds
