"""IFRS 9 measures: a book's stage mix, allowance and coverage; stage balances and yearly
stage transitions along simulated paths (docs/ifrs9.md)."""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

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


def workout_months(ds: xr.Dataset) -> int:
    """Months a defaulted loan stays in stage 3 (credit-impaired, recoveries to come) before write-off.

    The later of the unsecured recovery's and the pledge's lag, from the run's scenario:
    at the month of the last recovery cash the rest is written off.
    """
    recovery = json.loads(ds.attrs["scenario"])["recovery"]
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
    s1 = by_state.sel(state=["C", "M1"]).sum("state")
    s2 = by_state.sel(state=["M2", "M3"]).sum("state")
    defaulted = by_state.sel(state="D").values.astype(np.float64)  # cumulative
    lag = workout_months(ds)
    before = np.zeros_like(defaulted)
    if lag < defaulted.shape[1]:
        before[:, lag:] = defaulted[:, : defaulted.shape[1] - lag]
    s3 = xr.DataArray(defaulted - before if lag > 0 else np.zeros_like(defaulted), dims=("path", "month"),
                      coords={"path": ds["path"], "month": ds["month"]})
    out = xr.concat([s1.drop_vars("state", errors="ignore"), s2.drop_vars("state", errors="ignore"), s3],
                    dim=xr.DataArray(list(STAGES), dims="stage", name="stage"))
    out.name = "stage_balance"
    out.attrs.update({"long_name": "exposure at month end by IFRS 9 stage (S3: defaulted, not yet written off)",
                      "units": "CNY"})
    return out.transpose("path", "month", "stage")


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
