"""The report's figures: drawn with matplotlib, encoded as PNG ``data:`` URIs for the page.

:func:`plot` draws one figure on a fresh :class:`matplotlib.figure.Figure` (never pyplot's
state), encodes it and closes it; the template puts the URI in an ``<img src>``. The
figures themselves are those of :mod:`stresslab.plots`, plus the policy fans drawn here.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from stresslab.errors import StresslabError
from stresslab.estimators import quantiles_by_month
from stresslab.plots._common import (
    add_legend,
    add_title,
    fan,
    money_axis,
    money_unit,
    month_axis,
)

DPI = 100
WIDE = (9.0, 4.3)  # inches at 100 dpi: 900 px, the width of the page's content
TALL = (9.0, 5.2)


class Plot(NamedTuple):
    """One figure of the page: a PNG data URI and its size in px, or why it was not drawn."""

    alt: str
    caption: str = ""
    src: str = ""  # data:image/png;base64,...
    width: int = 0
    height: int = 0
    problem: str = ""  # set when the data do not allow the plot (then src is empty)


def plot(draw: Callable[[Axes], object], alt: str, caption: str = "", size: tuple[float, float] = WIDE) -> Plot:
    """Draw on a new figure, encode it as a PNG data URI, close it; the reason instead if the plot cannot be drawn."""
    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    try:
        draw(fig.add_subplot())
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI)
    except StresslabError as exc:  # the data do not allow this plot (e.g. no loss at all): say so
        return Plot(alt, caption, problem=str(exc))
    finally:
        plt.close(fig)
        fig.clear()
    src = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    width, height = (round(v * DPI) for v in size)
    return Plot(alt, caption, src, width, height)


def bins(ds: xr.Dataset) -> int:
    """Histogram bins: numpy's "auto" rule, at most 120 (thousands of bars help no one in a page)."""
    x = ds["loss_gross"].transpose("path", "month").values.sum(axis=1)
    return int(min(120, max(1, np.histogram_bin_edges(x, bins="auto").size - 1)))


def policy_fan(ds: xr.Dataset, name: str, ax: Axes, money: bool, title: str, ylabel: str) -> None:
    """Mean and 5-95% / 25-75% quantile bands over the months of a (path, month) variable."""
    values = np.asarray(ds[name].transpose("path", "month").values, dtype=np.float64)
    w = np.asarray(ds["weight"].values, dtype=np.float64)
    qs = (0.05, 0.25, 0.5, 0.75, 0.95)
    quantiles = quantiles_by_month(values, w, qs)
    months = ds["month"].values
    fan(ax, months, qs, quantiles, "#6a51a3")
    ax.plot(months, w @ values / w.size, color="black", linestyle="--", linewidth=1.5, label="mean")
    if money:
        scale, unit = money_unit(quantiles, w @ values / w.size)
        money_axis(ax.yaxis, scale)
        ax.set_ylabel(f"{ylabel}, {unit}")
    else:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0.0)
    month_axis(ax, months)
    ax.grid(True, alpha=0.3)
    add_title(ax, ds, f"{title} ({w.size:,} paths)")
    add_legend(ax)
