"""Plots of delinquency over the months: the DPD30+ ratio fan and the balance (or count) by state."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from stresslab.errors import StresslabError
from stresslab.estimators import quantiles_by_month
from stresslab.metrics.summary import dpd30_ratio
from stresslab.plots._common import (
    FAN_QUANTILES,
    add_legend,
    add_title,
    check_choice,
    check_quantiles,
    fan,
    figure_of,
    match_levels,
    money_axis,
    money_unit,
    month_axis,
    path_weights,
    require_vars,
    var_values,
)

_STACK_STATES = ("C", "M1", "M2", "M3", "D")
_STATE_COLORS = {"C": "#4daf4a", "M1": "#ffd92f", "M2": "#ff7f00", "M3": "#e41a1c", "D": "#4d4d4d", "P": "#80b1d3"}
_STATE_NAMES = {"C": "C (current)", "M1": "M1", "M2": "M2", "M3": "M3", "D": "D (defaulted, cumulative)", "P": "P (paid off)"}


def dpd30_fan(
    ds: xr.Dataset,
    *,
    quantiles: Sequence[float] = FAN_QUANTILES,
    ax: Axes | None = None,
) -> Figure:
    """Fan chart of the DPD30+ ratio by balance over the months, with its mean.

    Parameters
    ----------
    ds : xarray.Dataset
        A run (``balance_by_state(path, month, state)``, ``weight``), or its
        :func:`stresslab.metrics.summary.summary` (``dpd30_ratio_quantile``, ``dpd30_ratio_mean``;
        then each of ``quantiles`` must be one the summary holds, by default 0.05, 0.5,
        0.95 and 0.99).
    quantiles : sequence of float, default (0.05, 0.25, 0.5, 0.75, 0.95)
        Quantile levels in (0, 1). Sorted, the i-th lowest and i-th highest bound a band;
        with an odd count the middle one is a line ("median" when it is 0.5).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; default a new figure.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    StresslabError
        If the variables are missing, a quantile is outside (0, 1) or (for a summary) not
        in the summary.

    Notes
    -----
    The ratio of a path and month is (M2 + M3 balance) / (C + M1 + M2 + M3 balance), 0 when
    nothing is live: :func:`stresslab.metrics.summary.dpd30_ratio`, as in
    :func:`stresslab.metrics.summary.summary`. Quantiles per month are
    :func:`stresslab.estimators.weighted_quantile`, the mean is ``mean(w r)``. The y-data of
    the lines are ratios (0.05 = 5%); the axis shows percent.
    """
    qs = check_quantiles(quantiles)
    if "balance_by_state" in ds.data_vars:
        require_vars(ds, ["balance_by_state"], "dpd30_fan")
        ratio, w = dpd30_ratio(ds, "balance"), path_weights(ds)
        values = quantiles_by_month(ratio, w, qs)
        mean = w @ ratio / w.size
        n_paths = w.size
    elif "dpd30_ratio_quantile" in ds.data_vars and "dpd30_ratio_mean" in ds.data_vars:
        sel = match_levels(ds["quantile"].values, qs, "DPD30+ quantiles")
        values = var_values(ds.sel(quantile=sel), "dpd30_ratio_quantile", "month", "quantile")
        mean = var_values(ds, "dpd30_ratio_mean", "month")
        n_paths = int(ds["n_paths"]) if "n_paths" in ds.data_vars else None
    else:
        raise StresslabError(
            "dpd30_fan needs a run (balance_by_state) or its summary (dpd30_ratio_quantile, dpd30_ratio_mean); "
            "the Dataset has neither"
        )
    fig, ax = figure_of(ax)
    months = ds["month"].values
    fan(ax, months, qs, values, "#2171b5")
    ax.plot(months, mean, color="black", linestyle="--", linewidth=1.5, label="mean")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylim(bottom=0.0)
    ax.set_ylabel("DPD30+ ratio by balance, %")
    month_axis(ax, months)
    ax.grid(True, alpha=0.3)
    paths = f" ({n_paths:,} paths)" if n_paths else ""
    add_title(ax, ds, f"DPD30+ ratio (M2 + M3) / live balance{paths}")
    add_legend(ax)
    return fig


def state_stack(
    ds: xr.Dataset,
    *,
    by: Literal["balance", "count"] = "balance",
    include_paid: bool = False,
    ax: Axes | None = None,
) -> Figure:
    """Mean balance (or loan count) by delinquency state over the months, stacked.

    Parameters
    ----------
    ds : xarray.Dataset
        A run: ``balance_by_state`` or ``count_by_state`` (path, month, state) and
        ``weight``.
    by : {"balance", "count"}, default "balance"
        Stack balances (CNY) or numbers of loans.
    include_paid : bool, default False
        Also stack P (loans paid off; their balance is 0, so this matters for counts).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; default a new figure.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    StresslabError
        If the variables or states are missing or ``by`` is unknown.

    Notes
    -----
    From the bottom: C, M1, M2, M3, D (and P). Each layer is the weighted mean
    ``mean(w x)`` over paths. D is cumulative (balance: defaulted EAD to date; count:
    loans defaulted to date), so the top of the stack by balance is the live balance plus
    the exposure defaulted so far.
    """
    check_choice("by", by, ("balance", "count"))
    name = f"{by}_by_state"
    require_vars(ds, [name], "state_stack")
    states = _STACK_STATES + (("P",) if include_paid else ())
    present = ds["state"].values.tolist()
    absent = [s for s in states if s not in present]
    if absent:
        raise StresslabError(f"results lack the state(s) {', '.join(absent)} on the state dimension")
    values = var_values(ds, name, "path", "month", "state")
    w = path_weights(ds)
    mean = np.einsum("p,pms->sm", w, values) / w.size  # (state, month)
    layers = np.array([mean[present.index(s)] for s in states])
    fig, ax = figure_of(ax)
    months = ds["month"].values
    ax.stackplot(months, layers, labels=[_STATE_NAMES[s] for s in states], colors=[_STATE_COLORS[s] for s in states],
                 edgecolor="white", linewidth=0.3)
    if by == "balance":
        scale, unit = money_unit(layers.sum(axis=0))
        money_axis(ax.yaxis, scale)
        ax.set_ylabel(f"mean balance, {unit}")
    else:
        ax.set_ylabel("mean number of loans")
    ax.set_ylim(bottom=0.0)
    month_axis(ax, months)
    add_title(ax, ds, f"Mean {by} by delinquency state ({w.size:,} paths)")
    add_legend(ax, reverse=True)
    return fig

