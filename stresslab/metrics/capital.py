"""The lender's P&L and capital ratio along simulated paths, year by year (docs/capital.md).

Per path and year (months 12(y-1)+1 .. 12y, the last year ending at the horizon, as the
IFRS 9 outputs): interest income, funding cost, enhancement fees, credit cost, tax and
after-tax profit; per year end the capital, the standardised RWA of the live book and
their ratio; over paths the breach probability and the first breach year.
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from stresslab.compile.provisions import year_ends
from stresslab.errors import StresslabError
from stresslab.estimators import mean_ci, weighted_quantile, z_value
from stresslab.metrics.ifrs9 import provisions, scenario_text
from stresslab.scenario.scenario import Scenario
from stresslab.scenario.specs import STANDARDISED_RISK_WEIGHTS, CapitalSpec
from stresslab.vocabulary import BORROWER_TYPES, LIVE_STATES

__all__ = ["PNL_ITEMS", "RATIO_QUANTILES", "blended_risk_weight", "breach_probability", "capital_metrics",
           "capital_paths"]

PNL_ITEMS = ("interest_income", "funding_cost", "net_interest_income", "enhancement_fees", "credit_cost",
             "pretax_profit", "tax", "dividends", "after_tax_profit")
"""The P&L lines of a year, in statement order."""

RATIO_QUANTILES = (0.01, 0.05, 0.5, 0.95)
"""Quantile levels of the capital ratio reported at each year end."""


def _scenario(ds: xr.Dataset) -> Scenario:
    text = scenario_text(ds)
    if text is None:
        raise StresslabError("capital metrics need the run's scenario: the Dataset has neither the 'scenario' attr "
                             "of a run nor the scenario_config of one scenario of a comparison")
    return Scenario.from_dict(json.loads(text))


def blended_risk_weight(ds: xr.Dataset) -> float:
    """The standardised risk weight of the book: its borrower types' weights, weighted by their exposure at the start.

    Parameters
    ----------
    ds : xarray.Dataset
        A run of a scenario with ``[capital]``: its ``book_exposure_by_borrower_type`` attr.

    Returns
    -------
    float
        Sum_k E_k RW_k / Sum_k E_k, with RW 0.75 for individuals and 1.00 for enterprises
        (:data:`~stresslab.scenario.specs.STANDARDISED_RISK_WEIGHTS`).
    """
    if "book_exposure_by_borrower_type" not in ds.attrs:
        raise StresslabError("the run has no book_exposure_by_borrower_type attr: it is written by runs of a "
                             "scenario with [capital] (docs/capital.md)")
    exposure = json.loads(ds.attrs["book_exposure_by_borrower_type"])
    total = sum(exposure[kind] for kind in BORROWER_TYPES)
    if total <= 0:
        raise StresslabError("the book has no exposure: no risk-weighted assets")
    return sum(exposure[kind] * STANDARDISED_RISK_WEIGHTS[kind] for kind in BORROWER_TYPES) / total


def _by_year(monthly: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Sums of a (path, month) array over the months of each year: shape (path, year)."""
    cumulative = np.concatenate([np.zeros((monthly.shape[0], 1)), np.cumsum(monthly, axis=1)], axis=1)
    return np.diff(cumulative[:, ends], axis=1)


def capital_paths(ds: xr.Dataset) -> xr.Dataset:
    """The lender's yearly P&L and its capital, RWA and capital ratio at every year end, per path.

    Parameters
    ----------
    ds : xarray.Dataset
        A run of a scenario with ``[capital]``: ``interest_income``, ``balance_by_state``,
        ``loss_gross``, ``loss_net`` (path, month), ``layer_fee`` with layers, the
        ``scenario``, ``book_exposure`` and ``book_exposure_by_borrower_type`` attrs; with
        ``[ifrs9] allowance`` set, ``allowance`` and ``allowance_opening``.

    Returns
    -------
    xarray.Dataset
        The items of :data:`PNL_ITEMS` as variables (path, year), CNY; ``capital``,
        ``rwa`` and ``capital_ratio`` (path, year_end), year_end 0 the start. Attrs:
        ``breach_level``, ``risk_weight`` (the blended standardised weight) and
        ``credit_cost_basis`` ("ifrs9" or "net_loss").

    Notes
    -----
    Funded balance of month t = live exposure (C, M1-M3) at the end of month t - 1 (the
    book's exposure for t = 1); funding cost = Sum_t rate_t / 12 x funded_t (no
    ``[funding]``: 0). Enhancement fees: ``layer_fee``, paid by the lender. Credit cost =
    gross impairment - enhancement cover, the cover being ``loss_gross - loss_net`` (the
    layers' share, recognised with the loss in the default month); the gross impairment
    is the IFRS 9 charge (:func:`stresslab.metrics.ifrs9.provisions`) with ``credit_cost =
    "ifrs9"``, else the gross loss booked (so the credit cost is the net loss).
    Tax = tax_rate x max(pre-tax profit, 0) (no loss carry-forward); dividends =
    payout x max(after-tax profit before dividends, 0). Capital_y = capital_{y-1} +
    pre-tax profit - tax - dividends. RWA = live exposure x blended risk weight
    (defaulted exposures carry none: their loss is already charged). Once nothing is
    live the capital ratio is +inf, or -inf if the capital is negative (a breach).
    """
    scenario = _scenario(ds)
    spec = scenario.capital
    if spec is None:
        raise StresslabError("the run's scenario has no [capital] table (docs/capital.md)")
    n_months = ds.sizes["month"]
    ends = year_ends(n_months)
    live = ds["balance_by_state"].sel(state=list(LIVE_STATES)).sum("state").transpose("path", "month").values
    live = live.astype(np.float64)
    n_paths = live.shape[0]
    funded = np.concatenate([np.full((n_paths, 1), float(ds.attrs["book_exposure"])), live[:, :-1]], axis=1)
    rate = np.zeros(n_months) if scenario.funding is None else scenario.funding.path(n_months)

    def monthly(name: str) -> np.ndarray:
        return ds[name].transpose("path", "month").values.astype(np.float64)

    income = _by_year(monthly("interest_income"), ends)
    funding = _by_year(funded * rate / 12.0, ends)
    fees = (_by_year(ds["layer_fee"].sum("layer").transpose("path", "month").values.astype(np.float64), ends)
            if "layer_fee" in ds.data_vars else np.zeros_like(income))
    gross, net = _by_year(monthly("loss_gross"), ends), _by_year(monthly("loss_net"), ends)
    with_allowance = spec.credit_cost == "ifrs9"
    impairment = provisions(ds)["impairment_charge"].values if with_allowance else gross
    credit = impairment - (gross - net)
    nii = income - funding
    pretax = nii - fees - credit
    tax = spec.tax_rate * np.maximum(pretax, 0.0)
    dividends = spec.dividend_payout * np.maximum(pretax - tax, 0.0)
    after = pretax - tax - dividends
    weight = blended_risk_weight(ds)
    rwa = weight * np.concatenate([funded[:, :1], live[:, ends[1:] - 1]], axis=1)
    capital = _initial_capital(spec, float(rwa[0, 0])) + np.concatenate(
        [np.zeros((n_paths, 1)), np.cumsum(after, axis=1)], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(rwa > 0, capital / rwa, np.where(capital < 0, -np.inf, np.inf))
    items = dict(zip(PNL_ITEMS, (income, funding, nii, fees, credit, pretax, tax, dividends, after)))
    yearly = {name: (("path", "year"), values, {"units": "CNY"}) for name, values in items.items()}
    return xr.Dataset(
        {
            **yearly,
            "capital": (("path", "year_end"), capital, {"long_name": "capital at the year's end", "units": "CNY"}),
            "rwa": (("path", "year_end"), rwa, {"long_name": "standardised RWA of the live book", "units": "CNY"}),
            "capital_ratio": (("path", "year_end"), ratio, {"long_name": "capital / RWA (+-inf: nothing live)",
                                                            "units": "1"}),
        },
        coords={"path": ds["path"].values, "year": np.arange(1, ends.size), "year_end": np.arange(ends.size)},
        attrs={"breach_level": spec.breach_level, "risk_weight": weight,
               "credit_cost_basis": spec.credit_cost},
    )


def _initial_capital(spec: CapitalSpec, rwa_start: float) -> float:
    """Capital at the start: ``initial_amount``, or ``initial_ratio`` x the start RWA."""
    return spec.initial_amount if spec.initial_amount is not None else spec.initial_ratio * rwa_start


def breach_probability(ratio: np.ndarray, w: np.ndarray, level: float,
                       ci: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probability that the capital ratio is below ``level`` at some year end up to each year, with intervals.

    Parameters
    ----------
    ratio : ndarray of shape (n_paths, n_years + 1)
        Capital ratio per path and year end (year end 0, the start, is not tested).
    w : ndarray of shape (n_paths,)
        Path weights.
    level : float
        Breach level (threshold + buffer).
    ci : float, default 0.95
        Coverage of the intervals.

    Returns
    -------
    (ndarray, ndarray, ndarray)
        ``cumulative(year)``: P(breach by the year's end); ``bounds(year, 2)``: its interval
        (:func:`~stresslab.estimators.mean_ci`; a probability of 0 or 1 gets the Wilson bound
        z^2 / (n + z^2) of the effective number of paths instead); ``first(year)``:
        P(the first breach is at that year's end).
    """
    below = np.cumsum(ratio[:, 1:] < level, axis=1) > 0  # (path, year): breached by the year's end
    stats = np.array([mean_ci(below[:, y].astype(np.float64), w, ci) for y in range(below.shape[1])])
    cumulative = stats[:, 0]
    n_eff = w.sum() ** 2 / (w @ w)
    z = z_value(ci)
    floor = z * z / (n_eff + z * z)
    low = np.where(cumulative >= 1.0, 1.0 - floor, np.clip(stats[:, 1], 0.0, 1.0))
    high = np.where(cumulative <= 0.0, floor, np.clip(stats[:, 2], 0.0, 1.0))
    first = np.diff(np.concatenate([[0.0], cumulative]))
    return cumulative, np.stack([low, high], axis=1), first


def _ratio_quantiles(ratio: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted quantiles of the ratio at each year end; +-inf (nothing live) rank beyond every ratio and stay inf."""
    top = np.finfo(np.float64).max
    finite = np.clip(ratio, -top, top)
    out = np.array([weighted_quantile(finite[:, e], w, list(RATIO_QUANTILES)) for e in range(ratio.shape[1])])
    return np.where(np.abs(out) >= top, np.sign(out) * np.inf, out)


def capital_metrics(ds: xr.Dataset, ci: float = 0.95) -> dict[str, xr.Variable]:
    """Mean P&L by year, capital-ratio quantiles by year end and the breach probability, weighted.

    Parameters
    ----------
    ds : xarray.Dataset
        A run of a scenario with ``[capital]`` (see :func:`capital_paths`).
    ci : float, default 0.95
        Coverage of the intervals.

    Returns
    -------
    dict of xarray.Variable
        ``pnl_mean(year, pnl_item)`` with ``pnl_ci(year, pnl_item, bound)``;
        ``capital_mean(year_end)``; ``capital_ratio_quantile(year_end, ratio_quantile)``;
        ``capital_breach_probability(year)`` (breach by the year's end) with
        ``capital_breach_probability_ci(year, bound)``; ``capital_first_breach_probability(year)``;
        scalar ``capital_breach_level``.
    """
    paths = capital_paths(ds)
    w = np.asarray(ds["weight"].values, dtype=np.float64)
    n_years = paths.sizes["year"]
    stats = np.array([[mean_ci(paths[item].values[:, y], w, ci) for item in PNL_ITEMS] for y in range(n_years)])
    ratio = paths["capital_ratio"].values
    quantiles = _ratio_quantiles(ratio, w)
    level = float(paths.attrs["breach_level"])
    cumulative, bounds, first = breach_probability(ratio, w, level, ci)
    pct = f"{100 * ci:g}%"
    basis = paths.attrs["credit_cost_basis"]
    return {
        "pnl_mean": xr.Variable(("year", "pnl_item"), stats[:, :, 0], {
            "long_name": "mean of the lender's P&L item in the year", "units": "CNY", "credit_cost_basis": basis}),
        "pnl_ci": xr.Variable(("year", "pnl_item", "bound"), stats[:, :, 1:], {
            "long_name": f"{pct} Monte Carlo confidence interval of the mean P&L item", "units": "CNY"}),
        "capital_mean": xr.Variable(("year_end",), w @ paths["capital"].values / w.size, {
            "long_name": "mean capital at the year's end (year_end 0: the start)", "units": "CNY"}),
        "capital_ratio_quantile": xr.Variable(("year_end", "ratio_quantile"), quantiles, {
            "long_name": "quantile of the capital ratio over paths at the year's end", "units": "1"}),
        "capital_breach_probability": xr.Variable(("year",), cumulative, {
            "long_name": "probability that the capital ratio is below the breach level at a year end by this one",
            "units": "1"}),
        "capital_breach_probability_ci": xr.Variable(("year", "bound"), bounds, {
            "long_name": f"{pct} Monte Carlo confidence interval of the breach probability", "units": "1"}),
        "capital_first_breach_probability": xr.Variable(("year",), first, {
            "long_name": "probability that the first breach is at this year's end", "units": "1"}),
        "capital_breach_level": xr.Variable((), level, {"long_name": "breach level: threshold + buffer",
                                                        "units": "1"}),
    }
