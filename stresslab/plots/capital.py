"""Plot of the lender's capital ratio along the paths: the fan over year ends (docs/capital.md)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from stresslab.compile.provisions import year_ends
from stresslab.errors import StresslabError
from stresslab.estimators import quantiles_by_month
from stresslab.metrics.capital import capital_paths
from stresslab.plots._common import (
    FAN_QUANTILES,
    add_legend,
    add_title,
    check_quantiles,
    fan,
    figure_of,
    month_axis,
    path_weights,
)

__all__ = ["capital_ratio_fan"]


def capital_ratio_fan(ds: xr.Dataset, *, quantiles: Sequence[float] = FAN_QUANTILES, ax: Axes | None = None) -> Figure:
    """Fan chart of the capital ratio at the start and each year end, with the breach level.

    Parameters
    ----------
    ds : xarray.Dataset
        A run of a scenario with ``[capital]`` (:func:`stresslab.metrics.capital.capital_paths`).
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
        If the scenario has no ``[capital]``, a quantile is outside (0, 1), or no year end
        has a live book in every path.

    Notes
    -----
    Year ends where some path has nothing live (ratio +-inf: the book has run off) are left
    out. Quantiles are weighted like every estimate; the x-axis is the month of each year end.
    """
    qs = check_quantiles(quantiles)
    paths = capital_paths(ds)
    ratio = paths["capital_ratio"].transpose("path", "year_end").values
    live = np.isfinite(ratio).all(axis=0)
    if not live.any():
        raise StresslabError("capital_ratio_fan: no year end has a live book in every path")
    ratio = ratio[:, live]
    months = year_ends(ds.sizes["month"])[live]
    w = path_weights(ds)
    values = quantiles_by_month(ratio, w, qs)
    fig, ax = figure_of(ax)
    fan(ax, months, qs, values, "#2171b5")
    level = float(paths.attrs["breach_level"])
    ax.axhline(level, color="#d62728", linewidth=1.2, label=f"breach level {100 * level:g}%")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylabel("capital / RWA")
    month_axis(ax, months)
    ax.grid(True, alpha=0.3)
    add_title(ax, ds, f"capital ratio at year ends ({w.size:,} paths)")
    add_legend(ax)
    return fig
