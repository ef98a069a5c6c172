"""IFRS 9 measures of a book: stage mix, allowance and coverage (docs/ifrs9.md)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from stresslab.vocabulary import STAGES

__all__ = ["stage_summary"]


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
