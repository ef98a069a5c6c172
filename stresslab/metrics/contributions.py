"""Risk contributions of segments: Euler (expected-shortfall) allocation and expected loss.

MODEL.md §8 asks for "ES contributions by industry and region". A run's Dataset holds, per
path, the gross loss over the horizon of each industry (``loss_by_industry``) and region
(``loss_by_region``); they add up to the path's total gross loss
``L = sum over months of loss_gross``. The Euler allocation of the expected shortfall
splits ES_a(L) into contributions :math:`C_g = E[L_g \\mid L \\ge \\mathrm{VaR}_a(L)]`
that add up to it exactly.

The estimators use the same weighted tail set as :func:`stresslab.estimators.var_es`, so that
the contributions add up (to float rounding) to the ES of ``results`` at the same level.
docs/regulatory.md states the formulas.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from stresslab.errors import StresslabError
from stresslab.estimators import es_ci, mean_ci, var_es, weighted_quantile, z_value
from stresslab.run.schema import require_variables

__all__ = ["SEGMENTS", "OTHER_LOANS", "es_contributions", "expected_loss_contributions"]

#: Segmentations a run carries: ``by`` value -> (variable, dimension). ``loan`` needs a run
#: with ``track_loans``; the loans not tracked form one more segment, ``OTHER_LOANS``.
SEGMENTS = {
    "industry": ("loss_by_industry", "industry"),
    "region": ("loss_by_region", "region"),
    "loan": ("loss_by_loan", "loan"),
}
OTHER_LOANS = "(other loans)"
# Segment losses must add up to the path's total within this, relative to the largest |L|.
_ADD_TOL = 1e-9


def _inputs(ds: xr.Dataset, by: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, str, np.ndarray]:
    """(L, w, X, dim, labels): total horizon loss, weights, segment losses (n_paths, n_segments)."""
    if by not in SEGMENTS:
        raise StresslabError(f"by must be one of {', '.join(map(repr, SEGMENTS))}; got {by!r}")
    name, dim = SEGMENTS[by]
    require_variables(
        ds,
        {"loss_gross": ("path", "month"), "weight": ("path",), name: ("path", dim)},
        f"contributions by {by} need loss_gross, weight and {name}",
    )
    total = np.asarray(ds["loss_gross"].transpose("path", "month").values, dtype=np.float64).sum(axis=1)
    w = np.asarray(ds["weight"].values, dtype=np.float64)
    x = np.asarray(ds[name].transpose("path", dim).values, dtype=np.float64)
    labels = np.asarray(ds[dim].values)
    if by == "loan":  # the loans not tracked, as one segment, so the parts add up
        x = np.column_stack([x, total - x.sum(axis=1)])
        labels = np.append(labels.astype(object), OTHER_LOANS).astype(str)
    if not np.all(np.isfinite(x)):
        raise StresslabError(f"results variable {name} holds NaN or infinite values")
    if x.shape[1] == 0:
        raise StresslabError(f"results have no {dim}: nothing to allocate to")
    gap = np.abs(x.sum(axis=1) - total)
    scale = max(1.0, float(np.max(np.abs(total), initial=0.0)))
    if np.any(gap > _ADD_TOL * scale):
        i = int(np.argmax(gap))
        raise StresslabError(
            f"{name} does not add up to the total gross loss (path {i}: {x[i].sum():.6g} vs {total[i]:.6g}); "
            "the Euler allocation needs segment losses that sum to loss_gross over the months"
        )
    return total, w, x, dim, labels


def _result(ds: xr.Dataset, data: dict, dim: str, labels: np.ndarray, attrs: dict) -> xr.Dataset:
    """The Dataset of contributions: ``data`` along ``dim`` (the segment labels) and ``bound``;
    attrs ``attrs``, then window "horizon", measure "gross" and the run's provenance attrs."""
    coords = {dim: (dim, labels, dict(ds[dim].attrs) if dim in ds.coords else {}), "bound": ("bound", ["low", "high"])}
    attrs = {**attrs, "window": "horizon", "measure": "gross"}
    for key in ("scenario_name", "portfolio_digest", "seed", "n_paths"):
        if key in ds.attrs:
            attrs[key] = ds.attrs[key]
    return xr.Dataset(data, coords=coords, attrs=attrs)


def es_contributions(ds: xr.Dataset, *, by: str = "industry", level: float = 0.99, ci: float = 0.95) -> xr.Dataset:
    """Euler contributions of the segments to the expected shortfall of the horizon gross loss.

    Parameters
    ----------
    ds : xarray.Dataset
        A run (one scenario): ``loss_gross(path, month)``, ``weight(path)`` and
        ``loss_by_industry(path, industry)`` or ``loss_by_region(path, region)``.
    by : {"industry", "region", "loan"}, default "industry"
        ``loan`` needs a run with ``track_loans``; the untracked loans form one segment.
        The segmentation.
    level : float, default 0.99
        Confidence level a of the ES, in (0, 1).
    ci : float, default 0.95
        Coverage of the Monte Carlo confidence intervals.

    Returns
    -------
    xarray.Dataset
        Dims ``by`` (``industry`` or ``region``) and ``bound`` ("low", "high"). Per segment:
        ``es_contribution``, ``es_contribution_se``, ``es_contribution_ci``, ``es_share``
        (contribution / ES) and ``es_share_ci``. Scalars: ``expected_shortfall`` and
        ``expected_shortfall_ci`` (as :func:`stresslab.estimators.es_ci`), ``value_at_risk``,
        ``tail_paths`` (paths with L >= VaR). Attrs: ``level``, ``ci``, ``by``,
        ``window`` ("horizon").

    Raises
    ------
    StresslabError
        If variables are missing or malformed (a ``scenario`` dimension included), the
        segment losses do not add up to the total, or ``level``/``ci`` is outside (0, 1).

    Notes
    -----
    With :math:`v = \\mathrm{VaR}_a` of :func:`stresslab.estimators.var_es`, n paths, weights
    w, :math:`W_> = \\sum_{L_i > v} w_i` and :math:`W_= = \\sum_{L_i = v} w_i`,

    .. math:: C_g = \\frac{1}{n(1-a)}\\Big(\\sum_{L_i > v} w_i L_{g,i}
              + (n(1-a) - W_>)\\,\\frac{\\sum_{L_i = v} w_i L_{g,i}}{W_=}\\Big):

    every path above the VaR counts fully and each path at the VaR (ties included) with
    the fractional weight :math:`f = (n(1-a) - W_>)/W_=` in [0, 1], the same fraction of the
    VaR atom that ``results`` puts in its ES (if :math:`W_= = 0`, the paths at the VaR are
    averaged unweighted). Summing over g gives
    :math:`v + \\frac{1}{n(1-a)}\\sum_i w_i (L_i - v)^+`, the ES of ``results``.
    These are the tail weights of :func:`stresslab.metrics.layers.tail_weights` but for two
    details that keep the sum equal to that ES in every case: f is not clipped at 0 (within
    the 1e-12 slack of the VaR it can be a hair below), and the sum is divided by n(1-a),
    not by the sum of the tail weights.

    Standard errors (delta method): the estimator's influence function is
    :math:`\\psi_{g,i} = w_i 1\\{L_i > v\\}(L_{g,i} - m_g)/(1-a)` with
    :math:`m_g = E[L_g \\mid L = v]`; the error of the estimated VaR enters through
    :math:`m_g`. :math:`m_g` is estimated by a weighted least-squares line of
    :math:`L_g` on L through the paths between the quantiles at levels
    :math:`a \\mp (1-a)/2`, evaluated at v (so :math:`\\sum_g m_g = v` and
    :math:`\\sum_g \\psi_g` is the influence function of the ES used by
    :func:`stresslab.estimators.es_ci`). se = sd(ψ_g) / √n, interval C ± z se; the share's
    se is sd(ψ_g - s_g Σψ) / (√n ES). With few paths beyond the VaR (n(1-a) small) these
    errors are themselves unreliable.
    """
    total, w, x, dim, labels = _inputs(ds, by)
    var, es = var_es(total, w, level)  # validates the sample and the level
    z = z_value(ci)
    n = total.size
    mass = n * (1.0 - level)
    above, at = total > var, total == var
    w_above, w_at = float(w[above].sum()), float(w[at].sum())
    atom = (w[at] @ x[at]) / w_at if w_at > 0 else x[at].mean(axis=0)
    contribution = (w[above] @ x[above] + (mass - w_above) * atom) / mass

    m = _local_mean(total, w, x, var, level)
    psi = (w * above)[:, None] * (x - m) / (1.0 - level)
    se = np.std(psi, axis=0, ddof=1) / np.sqrt(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = contribution / es if es != 0 else np.full(contribution.shape, np.nan)
        share_se = np.std(psi - share * psi.sum(axis=1, keepdims=True), axis=0, ddof=1) / (np.sqrt(n) * abs(es))
    es_low, es_high = es_ci(total, w, level, ci)
    pct = f"{100 * ci:g}%"

    def money(dims: tuple[str, ...], values: object, long_name: str) -> xr.Variable:
        return xr.Variable(dims, values, {"long_name": long_name, "units": "CNY"})

    def ratio(dims: tuple[str, ...], values: object, long_name: str) -> xr.Variable:
        return xr.Variable(dims, values, {"long_name": long_name, "units": "1"})

    data = {
        "es_contribution": money((dim,), contribution, f"Euler contribution to ES {100 * level:g}%: E[L_g | L >= VaR]"),
        "es_contribution_se": money((dim,), se, "Monte Carlo standard error of the contribution (delta method)"),
        "es_contribution_ci": money((dim, "bound"), np.stack([contribution - z * se, contribution + z * se], axis=1),
                                    f"{pct} Monte Carlo interval of the contribution"),
        "es_share": ratio((dim,), share, "contribution / ES"),
        "es_share_ci": ratio((dim, "bound"), np.stack([share - z * share_se, share + z * share_se], axis=1),
                             f"{pct} Monte Carlo interval of the share"),
        "expected_shortfall": money((), es, f"ES {100 * level:g}% of the horizon gross loss"),
        "expected_shortfall_ci": money(("bound",), np.array([es_low, es_high]), f"{pct} Monte Carlo interval of the ES"),
        "value_at_risk": money((), var, f"VaR {100 * level:g}% of the horizon gross loss"),
        "tail_paths": ratio((), np.int64(np.count_nonzero(total >= var)), "paths with L >= VaR"),
    }
    return _result(ds, data, dim, labels, {"level": float(level), "ci": float(ci), "by": by})


def _local_mean(total: np.ndarray, w: np.ndarray, x: np.ndarray, var: float, level: float) -> np.ndarray:
    """Estimate of E[L_g | L = VaR]: weighted LS line of L_g on L near the VaR, at the VaR."""
    half = (1.0 - level) / 2.0
    lo = weighted_quantile(total, w, max(level - half, level / 2.0))
    hi = weighted_quantile(total, w, level + half)
    band = (total >= lo) & (total <= hi)  # holds the paths at the VaR
    wb = w[band] if w[band].sum() > 0 else np.ones(np.count_nonzero(band))
    lb, xb = total[band], x[band]
    l_mean = (wb @ lb) / wb.sum()
    x_mean = (wb @ xb) / wb.sum()
    spread = wb @ (lb - l_mean) ** 2
    if spread <= 0:  # all at one value (the VaR): their mean is E[L_g | L = VaR]
        return x_mean
    slope = (wb * (lb - l_mean)) @ (xb - x_mean) / spread
    return x_mean + slope * (var - l_mean)


def expected_loss_contributions(ds: xr.Dataset, *, by: str = "industry", ci: float = 0.95) -> xr.Dataset:
    """Expected gross loss over the horizon by segment, with Monte Carlo intervals.

    Parameters
    ----------
    ds : xarray.Dataset
        A run (one scenario), as for :func:`es_contributions`.
    by : {"industry", "region", "loan"}, default "industry"
        ``loan`` needs a run with ``track_loans``; the untracked loans form one segment.
        The segmentation.
    ci : float, default 0.95
        Coverage of the intervals.

    Returns
    -------
    xarray.Dataset
        Per segment ``el_contribution`` = mean(w L_g), ``el_contribution_ci`` (as
        :func:`stresslab.estimators.mean_ci`) and ``el_share`` (contribution / EL); scalars
        ``expected_loss`` = mean(w L) (the sum of the contributions) and
        ``expected_loss_ci``. Attrs: ``ci``, ``by``, ``window`` ("horizon").
    """
    total, w, x, dim, labels = _inputs(ds, by)
    el, el_low, el_high = mean_ci(total, w, ci)
    rows = np.array([mean_ci(x[:, g], w, ci) for g in range(x.shape[1])])
    with np.errstate(divide="ignore", invalid="ignore"):
        share = rows[:, 0] / el if el != 0 else np.full(rows.shape[0], np.nan)
    pct = f"{100 * ci:g}%"
    data = {
        "el_contribution": xr.Variable((dim,), rows[:, 0], {"long_name": "expected gross loss of the segment", "units": "CNY"}),
        "el_contribution_ci": xr.Variable((dim, "bound"), rows[:, 1:], {"long_name": f"{pct} Monte Carlo interval", "units": "CNY"}),
        "el_share": xr.Variable((dim,), share, {"long_name": "segment EL / total EL", "units": "1"}),
        "expected_loss": xr.Variable((), el, {"long_name": "expected gross loss over the horizon", "units": "CNY"}),
        "expected_loss_ci": xr.Variable(("bound",), np.array([el_low, el_high]), {"long_name": f"{pct} Monte Carlo interval", "units": "CNY"}),
    }
    return _result(ds, data, dim, labels, {"ci": float(ci), "by": by})
