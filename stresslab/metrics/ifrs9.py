"""IFRS 9 measures: a book's stage mix, allowance and coverage; stage balances and yearly
stage transitions along simulated paths (docs/ifrs9.md)."""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from stresslab.compile.provisions import year_ends
from stresslab.errors import StresslabError
from stresslab.estimators import z_value
from stresslab.vocabulary import STAGES

__all__ = ["stage_balances", "stage_metrics", "stage_summary", "workout_months"]


def stage_summary(ecl: xr.Dataset) -> xr.Dataset:
    """Loans, exposure, allowance and coverage per stage, and for the book.

    Parameters
    ----------
    ecl : xarray.Dataset
        Per-loan expected credit losses (:func:`stresslab.expected_credit_loss`).

    Returns
    -------
    xarray.Dataset
        Along ``stage`` (S1, S2, S3 and ``total``): ``loans``, ``ead``, ``ead_share`` (of the
        book), ``allowance``, ``coverage`` (allowance / EAD; NaN for a stage with no
        exposure), ``pd_12m`` (EAD-weighted mean) and ``ecl_lifetime``.
    """
    stage = ecl["stage"].values
    ead = ecl["ead"].values
    rows = [stage == k for k in range(1, len(STAGES) + 1)] + [np.ones(stage.size, dtype=bool)]
    total_ead = float(ead.sum())

    def per_row(values: np.ndarray) -> np.ndarray:
        return np.array([float(values[row].sum()) for row in rows])

    exposure = per_row(ead)
    allowance = per_row(ecl["allowance"].values)
    with np.errstate(invalid="ignore", divide="ignore"):
        coverage = np.where(exposure > 0, allowance / exposure, np.nan)
        pd_12m = np.where(exposure > 0, per_row(ecl["pd_12m"].values * ead) / exposure, np.nan)
    out = xr.Dataset(
        {
            "loans": ("stage", np.array([int(row.sum()) for row in rows])),
            "ead": ("stage", exposure),
            "ead_share": ("stage", exposure / total_ead if total_ead > 0 else np.full(exposure.size, np.nan)),
            "allowance": ("stage", allowance),
            "coverage": ("stage", coverage),
            "pd_12m": ("stage", pd_12m),
            "ecl_lifetime": ("stage", per_row(ecl["ecl_lifetime"].values)),
        },
        coords={"stage": [*STAGES, "total"]},
    )
    out.attrs.update(ecl.attrs)
    return out


def scenario_text(ds: xr.Dataset) -> str | None:
    """The resolved scenario (JSON) of a run or of one scenario of a comparison; None if the Dataset lacks it."""
    if "scenario" in ds.attrs:
        return str(ds.attrs["scenario"])
    if "scenario_config" in ds.variables and ds["scenario_config"].ndim == 0:
        return str(ds["scenario_config"].values)
    return None


def workout_months(ds: xr.Dataset) -> int:
    """Months a defaulted loan stays in stage 3 (credit-impaired, recoveries to come) before write-off.

    The later of the unsecured recovery's and the pledge's lag, from the run's scenario:
    at the month of the last recovery cash the rest is written off. The scenario is the
    run's ``scenario`` attr, or ``scenario_config`` in one scenario of a comparison.
    """
    text = scenario_text(ds)
    if text is None:
        raise StresslabError("IFRS 9 stage 3 needs the run's scenario (its recovery lags): the Dataset has neither the "
                             "'scenario' attr of a run nor the scenario_config of one scenario of a comparison")
    recovery = json.loads(text)["recovery"]
    return int(max(recovery["lag_months"], recovery["pledge_lag_months"]))


def stage_balances(ds: xr.Dataset) -> xr.DataArray:
    """Exposure by IFRS 9 stage at every month end of every path.

    S1 = C + M1, S2 = M2 + M3 (``balance_by_state``), S3 = the EAD of the loans that
    defaulted in the last :func:`workout_months` months (including this one): defaulted,
    their recoveries still to come, not yet written off. With no recovery lag a default is
    written off in its month and S3 is 0 at month ends.

    Parameters
    ----------
    ds : xarray.Dataset
        A run with ``balance_by_state(path, month, state)`` (its D column: cumulative
        defaulted EAD) and the ``scenario`` attr.

    Returns
    -------
    xarray.DataArray
        ``stage_balance(path, month, stage)``, stage S1, S2, S3, CNY.
    """
    by_state = ds["balance_by_state"].transpose("path", "month", "state")
    states = by_state["state"].values.tolist()
    values = by_state.values.astype(np.float64)

    def total(names: tuple[str, ...]) -> np.ndarray:
        return sum(values[:, :, states.index(name)] for name in names)

    defaulted = values[:, :, states.index("D")]  # cumulative
    lag = workout_months(ds)
    before = np.zeros_like(defaulted)
    if lag < defaulted.shape[1]:
        before[:, lag:] = defaulted[:, : defaulted.shape[1] - lag]
    s3 = defaulted - before if lag > 0 else np.zeros_like(defaulted)
    return xr.DataArray(
        np.stack([total(("C", "M1")), total(("M2", "M3")), s3], axis=2), dims=("path", "month", "stage"),
        coords={"path": ds["path"].values, "month": ds["month"].values, "stage": list(STAGES)}, name="stage_balance",
        attrs={"long_name": "exposure at month end by IFRS 9 stage (S3: defaulted, not yet written off)", "units": "CNY"})


def stage_metrics(ds: xr.Dataset, ci: float = 0.95) -> dict[str, xr.Variable]:
    """Yearly IFRS 9 stage transition rates by balance and stage shares, with intervals.

    Parameters
    ----------
    ds : xarray.Dataset
        A run with ``stage_transition(path, year, from_stage, to_stage)``, ``balance_by_state``
        and ``weight``.
    ci : float, default 0.95
        Coverage of the intervals.

    Returns
    -------
    dict of xarray.Variable
        ``stage_transition_rate(year, from_stage, to_stage)`` with
        ``stage_transition_rate_ci(year, from_stage, to_stage, bound)``: the share of the
        exposure in a stage at the start of the year that is in each stage (or defaulted, or
        repaid) at its end, Sum_p w_p N_p / Sum_p w_p D_p, with the delta-method interval
        R +- z sqrt(Sum_p w_p^2 (N_p - R D_p)^2) / Sum_p w_p D_p (where R is 0 or 1, the
        Wilson bound z^2 / (n + z^2) of the effective number of paths n =
        (Sum_p w_p D_p)^2 / Sum_p w_p^2 D_p^2); the rates from a stage add up to 1. ``stage_share_mean(year, stage)``: the mean share of S1, S2 and S3 in
        the exposure at the year's end (S1 + S2 + S3, :func:`stage_balances`).

    Raises
    ------
    StresslabError
        If the run has no ``stage_transition`` (a pooled run does not record it).
    """
    if "stage_transition" not in ds.data_vars:
        raise StresslabError("the run has no stage_transition (pooled runs do not record stage transitions)")
    w = np.asarray(ds["weight"].values, dtype=np.float64)
    flows = ds["stage_transition"].transpose("path", "year", "from_stage", "to_stage").values.astype(np.float64)
    start = flows.sum(axis=3, keepdims=True)  # (path, year, from, 1)
    num = np.einsum("p,pyft->yft", w, flows)
    den = np.einsum("p,pyft->yft", w, start)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(den > 0, num / den, np.nan)
        resid = flows - np.nan_to_num(rate)[None] * start
        se = np.sqrt(np.einsum("p,pyft->yft", w * w, resid * resid)) / den
    z = z_value(ci)
    low, high = np.clip(rate - z * se, 0.0, 1.0), np.clip(rate + z * se, 0.0, 1.0)
    # a rate of exactly 0 or 1 (no path moved any exposure there, or all) has no spread for the
    # delta method: bound it by the Wilson interval of its effective number of paths instead
    with np.errstate(invalid="ignore", divide="ignore"):
        n_eff = den**2 / np.einsum("p,pyft->yft", w * w, start * start)
    floor = z * z / (n_eff + z * z)
    high = np.where(rate == 0.0, floor, high)
    low = np.where(rate == 1.0, 1.0 - floor, low)
    bounds = np.stack([low, high], axis=-1)
    balances = stage_balances(ds).values  # (path, month, stage)
    n_months = balances.shape[1]
    year_end = np.minimum(np.arange(1, flows.shape[1] + 1) * 12, n_months) - 1
    at_end = balances[:, year_end, :]  # (path, year, stage)
    total = at_end.sum(axis=2, keepdims=True)
    share = np.divide(at_end, total, out=np.zeros_like(at_end), where=total > 0)
    pct = f"{100 * ci:g}%"
    return {
        "stage_transition_rate": xr.Variable(("year", "from_stage", "to_stage"), rate, {
            "long_name": "share of a stage's exposure at the start of the year by stage at its end", "units": "1"}),
        "stage_transition_rate_ci": xr.Variable(("year", "from_stage", "to_stage", "bound"), bounds, {
            "long_name": f"{pct} confidence interval of the stage transition rate", "units": "1"}),
        "stage_share_mean": xr.Variable(("year", "stage"), np.einsum("p,pys->ys", w, share) / w.size, {
            "long_name": "mean share of the stage in the exposure (S1 + S2 + S3) at the year's end", "units": "1"}),
    }


def provisions(ds: xr.Dataset) -> xr.Dataset:
    """The loss allowance by stage at every year end and the impairment charge of every year, per path.

    S1 and S2 come from the run (``allowance``, ``[ifrs9] allowance``); S3, the allowance of
    the credit-impaired loans, is the booked loss (EAD less the discounted recoveries) of
    the defaults not yet written off (:func:`workout_months`). The impairment charge of a
    year is the change of the allowance over it plus the losses written off in it (those
    of the defaults whose workout ends in the year), so that over the horizon the charges
    add up to the losses booked plus the change of the S1 and S2 allowance.

    Parameters
    ----------
    ds : xarray.Dataset
        A run with ``allowance(path, year, from_stage)``, ``allowance_opening(from_stage)``,
        ``loss_gross(path, month)`` and the ``scenario`` attr.

    Returns
    -------
    xarray.Dataset
        ``allowance_by_stage(path, year_end, stage)`` with year_end 0 (the start), 1, ...,
        Y and stage S1, S2, S3; ``impairment_charge(path, year)``; ``written_off(path, year)``.

    Raises
    ------
    StresslabError
        If the run recorded no allowance.
    """
    if "allowance" not in ds.data_vars:
        raise StresslabError("the run has no allowance: set [ifrs9] allowance = 'point_in_time' or "
                             "'through_the_cycle' in the scenario (docs/ifrs9.md)")
    loss = ds["loss_gross"].transpose("path", "month").values.astype(np.float64)
    n_paths, n_months = loss.shape
    lag = workout_months(ds)
    ends = year_ends(n_months)
    cumulative = np.concatenate([np.zeros((n_paths, 1)), np.cumsum(loss, axis=1)], axis=1)  # losses of months 1..m
    def booked(m: np.ndarray) -> np.ndarray:
        return cumulative[:, np.clip(m, 0, n_months)]

    s3 = booked(ends) - booked(ends - lag)  # defaults of the last `lag` months (0 when written off at once)
    performing = ds["allowance"].transpose("path", "year", "from_stage").values.astype(np.float64)
    opening = np.broadcast_to(ds["allowance_opening"].values.astype(np.float64), (n_paths, 2))
    by_stage = np.concatenate([np.concatenate([opening[:, None, :], performing], axis=1), s3[:, :, None]], axis=2)
    written = booked(ends[1:] - lag) - booked(ends[:-1] - lag)  # workouts ending in each year
    total = by_stage.sum(axis=2)
    charge = np.diff(total, axis=1) + written
    years = np.arange(1, ends.size)
    return xr.Dataset(
        {
            "allowance_by_stage": (("path", "year_end", "stage"), by_stage, {
                "long_name": "loss allowance by IFRS 9 stage at the year's end (year_end 0: the start)", "units": "CNY"}),
            "impairment_charge": (("path", "year"), charge, {
                "long_name": "change of the allowance over the year plus the losses written off in it", "units": "CNY"}),
            "written_off": (("path", "year"), written, {
                "long_name": "booked losses of the defaults written off in the year", "units": "CNY"}),
        },
        coords={"path": ds["path"].values, "year_end": np.arange(ends.size), "year": years, "stage": list(STAGES)},
    )


def provision_metrics(ds: xr.Dataset, ci: float = 0.95) -> dict[str, xr.Variable]:
    """Mean allowance by stage and year end, and the impairment charge per year: mean with its interval and quantiles.

    ``allowance_mean(year_end, stage)``; ``coverage_mean(year_end, stage)`` (mean allowance
    over mean exposure of the stage); ``impairment_charge_mean(year)`` with
    ``impairment_charge_ci(year, bound)``; ``impairment_charge_quantile(year, charge_quantile)``
    at 0.95 and 0.99 ("ECL-at-risk"). Weighted (importance sampling) like every metric.
    """
    from stresslab.estimators import mean_ci, weighted_quantile

    w = np.asarray(ds["weight"].values, dtype=np.float64)
    prov = provisions(ds)
    allowance = prov["allowance_by_stage"].values
    charge = prov["impairment_charge"].values
    mean_allowance = np.einsum("p,pes->es", w, allowance) / w.size
    balances = stage_balances(ds).values  # (path, month, stage)
    n_months = balances.shape[1]
    ends = year_ends(n_months)
    exposure = np.concatenate([np.full((1, 3), np.nan), np.einsum("p,pes->es", w, balances[:, ends[1:] - 1, :]) / w.size])
    with np.errstate(invalid="ignore", divide="ignore"):
        coverage = np.where(exposure > 0, mean_allowance / exposure, np.nan)
    stats = np.array([mean_ci(charge[:, y], w, ci) for y in range(charge.shape[1])])
    quantiles = np.array([weighted_quantile(charge[:, y], w, list(CHARGE_QUANTILES)) for y in range(charge.shape[1])])
    pct = f"{100 * ci:g}%"
    return {
        "allowance_mean": xr.Variable(("year_end", "stage"), mean_allowance, {
            "long_name": "mean loss allowance by stage at the year's end (year_end 0: the start)", "units": "CNY"}),
        "coverage_mean": xr.Variable(("year_end", "stage"), coverage, {
            "long_name": "mean allowance over mean exposure of the stage at the year's end", "units": "1"}),
        "impairment_charge_mean": xr.Variable(("year",), stats[:, 0], {
            "long_name": "mean impairment charge of the year", "units": "CNY"}),
        "impairment_charge_ci": xr.Variable(("year", "bound"), stats[:, 1:], {
            "long_name": f"{pct} Monte Carlo confidence interval of the mean impairment charge", "units": "CNY"}),
        "impairment_charge_quantile": xr.Variable(("year", "charge_quantile"), quantiles, {
            "long_name": "quantile of the impairment charge over paths (ECL-at-risk)", "units": "CNY"}),
    }


CHARGE_QUANTILES = (0.95, 0.99)
