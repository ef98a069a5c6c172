"""Plots of IFRS 9 provisions along the paths: the allowance fan and the stage mix (docs/ifrs9.md)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from stresslab.compile.provisions import year_ends
from stresslab.estimators import quantiles_by_month
from stresslab.metrics.ifrs9 import provisions, stage_balances
from stresslab.plots._common import (
    FAN_QUANTILES,
    add_legend,
    add_title,
    check_quantiles,
    fan,
    figure_of,
    money_axis,
    money_unit,
    month_axis,
    path_weights,
    require_vars,
)

__all__ = ["allowance_fan", "stage_mix"]

_STAGE_COLORS = {"S1": "#4daf4a", "S2": "#ff7f00", "S3": "#4d4d4d"}
_STAGE_NAMES = {"S1": "S1 (up to 30 days past due)", "S2": "S2 (31-90 days)", "S3": "S3 (defaulted, in workout)"}


def allowance_fan(ds: xr.Dataset, *, quantiles: Sequence[float] = FAN_QUANTILES, ax: Axes | None = None) -> Figure:
    """Fan chart of the total loss allowance (S1 + S2 + S3) at the start and each year end, with its mean.

    Parameters
    ----------
    ds : xarray.Dataset
        A run with an allowance (``[ifrs9] allowance`` set): ``allowance``,
        ``allowance_opening``, ``loss_gross`` and ``weight``.
    quantiles : sequence of float, default (0.05, 0.25, 0.5, 0.75, 0.95)
        Quantile levels in (0, 1), as in :func:`stresslab.plots.dpd30_fan`.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; default a new figure.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    StresslabError
        If the run recorded no allowance or a quantile is outside (0, 1).

    Notes
    -----
    The allowance by stage is :func:`stresslab.metrics.ifrs9.provisions`; the x-axis is the
    month of each year end (0: the start). Quantiles are weighted like every estimate.
    """
    qs = check_quantiles(quantiles)
    require_vars(ds, ["allowance", "allowance_opening", "loss_gross"], "allowance_fan")
    total = provisions(ds)["allowance_by_stage"].sum("stage").transpose("path", "year_end").values
    w = path_weights(ds)
    months = year_ends(ds.sizes["month"])
    values = quantiles_by_month(total, w, qs)
    fig, ax = figure_of(ax)
    fan(ax, months, qs, values, "#6a51a3")
    ax.plot(months, w @ total / w.size, color="black", linestyle="--", linewidth=1.5, marker="o", label="mean")
    scale, unit = money_unit(values)
    money_axis(ax.yaxis, scale)
    ax.set_ylim(bottom=0.0)
    ax.set_ylabel(f"loss allowance, {unit}")
    month_axis(ax, months)
    ax.grid(True, alpha=0.3)
    add_title(ax, ds, f"IFRS 9 loss allowance at year ends ({w.size:,} paths)")
    add_legend(ax)
    return fig


def stage_mix(ds: xr.Dataset, *, ax: Axes | None = None) -> Figure:
    """Mean exposure by IFRS 9 stage over the months, stacked: S1, S2 and S3 (defaulted, in workout).

    Parameters
    ----------
    ds : xarray.Dataset
        A run: ``balance_by_state``, ``weight`` and the ``scenario`` attr.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; default a new figure.

    Returns
    -------
    matplotlib.figure.Figure

    Notes
    -----
    The stages are :func:`stresslab.metrics.ifrs9.stage_balances`; each layer is the weighted
    mean over paths.
    """
    require_vars(ds, ["balance_by_state"], "stage_mix")
    balances = stage_balances(ds)
    w = path_weights(ds)
    mean = np.einsum("p,pms->sm", w, balances.values) / w.size
    stages = balances["stage"].values.tolist()
    fig, ax = figure_of(ax)
    months = ds["month"].values
    ax.stackplot(months, mean, labels=[_STAGE_NAMES[s] for s in stages], colors=[_STAGE_COLORS[s] for s in stages],
                 edgecolor="white", linewidth=0.3)
    scale, unit = money_unit(mean.sum(axis=0))
    money_axis(ax.yaxis, scale)
    ax.set_ylabel(f"mean exposure, {unit}")
    ax.set_ylim(bottom=0.0)
    month_axis(ax, months)
    add_title(ax, ds, f"Mean exposure by IFRS 9 stage ({w.size:,} paths)")
    add_legend(ax, reverse=True)
    return fig
