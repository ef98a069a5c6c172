"""Plots of the loss distribution of a run: histogram, exceedance curve, and expected loss by segment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from stresslab.errors import StresslabError
from stresslab.estimators import check_level, mean_ci, var_es, z_value
from stresslab.plots._common import (
    add_legend,
    add_title,
    check_choice,
    figure_of,
    money_axis,
    money_text,
    money_unit,
    path_weights,
    pct,
    require_vars,
    var_values,
)

_MEASURES = {"gross": "loss_gross", "net": "loss_net"}
_WINDOWS = {"horizon": "whole horizon", "12m": "first 12 months"}
_LEVEL_COLORS = ("#d62728", "#9467bd", "#ff7f0e", "#2ca02c", "#8c564b", "#e377c2")  # distinct from the bars and EL


# ----------------------------------------------------------------------------- losses
def _path_loss(ds: xr.Dataset, measure: str, window: str, plot: str) -> tuple[np.ndarray, np.ndarray]:
    """Loss of each path over the window (CNY) and the path weights."""
    check_choice("measure", measure, tuple(_MEASURES))
    check_choice("window", window, tuple(_WINDOWS))
    name = _MEASURES[measure]
    require_vars(ds, [name], plot)
    loss = var_values(ds, name, "path", "month")
    if window == "12m":
        loss = loss[:, ds["month"].values <= 12]
    x = loss.sum(axis=1)
    if not np.all(np.isfinite(x)):
        raise StresslabError(f"results variable {name} holds NaN or infinite values")
    return x, path_weights(ds)


def loss_distribution(
    ds: xr.Dataset,
    *,
    measure: Literal["gross", "net"] = "gross",
    window: Literal["horizon", "12m"] = "horizon",
    levels: Sequence[float] = (0.99, 0.999),
    bins: int | str = "auto",
    ax: Axes | None = None,
) -> Figure:
    """Histogram of the path loss with EL, VaR and ES marked.

    Parameters
    ----------
    ds : xarray.Dataset
        A run (:func:`stresslab.simulate`): ``loss_gross`` or ``loss_net`` (path, month)
        and ``weight(path)`` are used.
    measure : {"gross", "net"}, default "gross"
        Gross loss, or the lender's retained loss after credit enhancements.
    window : {"horizon", "12m"}, default "horizon"
        Sum the monthly losses over all months, or over months 1..min(12, T).
    levels : sequence of float, default (0.99, 0.999)
        Levels of the VaR and ES lines, each in (0, 1).
    bins : int or str, default "auto"
        Number of bins, or a :func:`numpy.histogram_bin_edges` rule applied to the
        unweighted losses.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; default a new figure.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    StresslabError
        If the variables are missing, ``measure`` or ``window`` is unknown, a level is
        outside (0, 1) or the weights are invalid.

    Notes
    -----
    Bar heights are probabilities: each path adds ``w / n`` to its bin. The vertical lines
    (their legend entries give the values) are the expected loss ``mean(w L)``
    (:func:`stresslab.estimators.mean_ci`) and VaR and ES from
    :func:`stresslab.estimators.var_es`: the numbers of :func:`stresslab.metrics.summary.summary`.
    The lines hold the values in CNY (``line.get_xdata()``); a non-finite VaR (possible
    only with importance weights) is listed in the legend but not drawn.

    Examples
    --------
    >>> fig = loss_distribution(ds, levels=(0.99,))  # doctest: +SKIP
    """
    x, w = _path_loss(ds, measure, window, "loss_distribution")
    levels = tuple(check_level(a) for a in levels)
    n = x.size
    if n < 2:
        raise StresslabError(f"loss_distribution needs at least 2 paths; got {n}")
    el = mean_ci(x, w)[0]
    tails = [(a, *var_es(x, w, a)) for a in levels]
    fig, ax = figure_of(ax)
    scale, unit = money_unit(x)

    edges = np.histogram_bin_edges(x, bins=bins)
    ax.hist(x, bins=edges, weights=w / n, color="#9ecae1", edgecolor="#6baed6", linewidth=0.5, label="paths")
    ax.axvline(el, color="black", linewidth=1.5, label=f"EL {money_text(el, scale, unit)}")
    for k, (a, var, es) in enumerate(tails):
        color = _LEVEL_COLORS[k % len(_LEVEL_COLORS)]
        for name, value, style in (("VaR", var, "--"), ("ES", es, "-.")):
            label = f"{name} {pct(a)} {money_text(value, scale, unit)}"
            if np.isfinite(value):
                ax.axvline(value, color=color, linestyle=style, linewidth=1.5, label=label)
            else:
                ax.plot([], [], color=color, linestyle=style, label=label)

    money_axis(ax.xaxis, scale)
    ax.set_xlabel(f"{measure} loss over the {_WINDOWS[window]}, {unit}")
    ax.set_ylabel("probability per bin")
    add_title(ax, ds, f"Distribution of the {measure} loss ({n:,} paths)")
    add_legend(ax)
    return fig


def exceedance_curve(
    ds: xr.Dataset,
    *,
    measure: Literal["gross", "net"] = "gross",
    window: Literal["horizon", "12m"] = "horizon",
    ax: Axes | None = None,
    ci: float = 0.95,
) -> Figure:
    """Exceedance probability P(L > x) of the path loss, log scale, with Monte Carlo bands.

    Parameters
    ----------
    ds : xarray.Dataset
        A run: ``loss_gross`` or ``loss_net`` (path, month) and ``weight(path)``.
    measure : {"gross", "net"}, default "gross"
        Gross loss, or the lender's retained loss.
    window : {"horizon", "12m"}, default "horizon"
        All months, or months 1..min(12, T).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; default a new figure.
    ci : float, default 0.95
        Coverage of the pointwise confidence band, in (0, 1).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    StresslabError
        If the variables are missing, an option is unknown or the weights are invalid.

    Notes
    -----
    The curve is the step function :math:`\\hat T(v) = \\overline{w 1\\{L > v\\}}` (the
    tail-probability estimator of :mod:`stresslab.estimators`), drawn at each distinct path
    loss v where it is positive (the line's data are exactly those v and
    :math:`\\hat T(v)`). The band is :math:`\\hat T(v) \\pm z\\,
    \\mathrm{sd}(w 1\\{L > v\\}) / \\sqrt n` (ddof 1; with w = 1 the binomial standard
    error :math:`\\sqrt{\\hat p(1-\\hat p)/(n-1)}`), :math:`z = \\Phi^{-1}((1+ci)/2)`,
    pointwise. Where its lower end is <= 0 the band runs to the bottom of the axis.
    """
    x, w = _path_loss(ds, measure, window, "exceedance_curve")
    ci = check_level(ci, "ci")
    n = x.size
    if n < 2:
        raise StresslabError(f"exceedance_curve needs at least 2 paths; got {n}")
    fig, ax = figure_of(ax)
    order = np.argsort(x, kind="stable")
    xs, ws = x[order], w[order]
    v = np.unique(xs)
    beyond = np.searchsorted(xs, v, side="right")  # the paths with loss > v are xs[beyond:]
    s1 = np.append(np.cumsum(ws[::-1])[::-1], 0.0)[beyond]  # sum of w 1{L > v}
    s2 = np.append(np.cumsum((ws * ws)[::-1])[::-1], 0.0)[beyond]  # sum of w^2 1{L > v}
    prob = s1 / n
    se = np.sqrt(np.maximum(s2 - s1 * s1 / n, 0.0) / (n - 1)) / np.sqrt(n)  # sd(w 1{L > v}, ddof=1) / sqrt(n)
    z = z_value(ci)
    if not np.any(prob > 0):
        raise StresslabError("exceedance_curve: no path loss is exceeded with positive probability; there is no curve to draw")
    floor = float(prob[prob > 0].min()) / 4.0
    low = np.maximum(prob - z * se, floor)
    high = prob + z * se
    scale, unit = money_unit(x)

    ax.fill_between(v, low, high, step="post", color="#9ecae1", alpha=0.6, linewidth=0,
                    label=f"{pct(ci)} Monte Carlo band")
    ax.step(v, prob, where="post", color="#08519c", linewidth=1.5, label="P(L > x)")
    ax.set_yscale("log", nonpositive="clip")  # P = 0 beyond the largest loss: the line drops to the bottom
    ax.set_ylim(floor, min(1.5, float(high.max()) * 1.5))
    ax.grid(True, which="major", alpha=0.4)
    ax.grid(True, which="minor", axis="y", alpha=0.15)
    money_axis(ax.xaxis, scale)
    ax.set_xlabel(f"{measure} loss x over the {_WINDOWS[window]}, {unit}")
    ax.set_ylabel("exceedance probability P(L > x)")
    add_title(ax, ds, f"Exceedance curve of the {measure} loss ({n:,} paths)")
    add_legend(ax, loc="lower left")  # below a decreasing curve that starts near 1: empty
    return fig


# ----------------------------------------------------------------------------- by segment
def loss_heatmap(
    ds: xr.Dataset,
    *,
    statistic: Literal["expected"] = "expected",
    ax: Axes | None = None,
) -> Figure:
    """Expected gross loss by industry and region.

    Parameters
    ----------
    ds : xarray.Dataset
        A run. With ``loss_by_cell(path, industry, region)`` an industry x region heat map
        is drawn; without it (older runs) horizontal bars of the expected loss by industry
        and, below them in the same axes, by region, from ``loss_by_industry(path,
        industry)`` and ``loss_by_region(path, region)``.
    statistic : {"expected"}, default "expected"
        The statistic per cell: the expected loss over the horizon, ``mean(w L_cell)``.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; default a new figure (a colour bar is added next to ``ax`` for
        the heat map).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    StresslabError
        If neither ``loss_by_cell`` nor both marginal variables are present, or
        ``statistic`` is unknown.

    Notes
    -----
    Heat map: ``ax.images[0].get_array()`` holds the values in CNY (rows industries,
    columns regions); cells are annotated in the unit of the colour bar. Bars: one
    container per group, industries first; each group sums to the expected gross loss.
    """
    check_choice("statistic", statistic, ("expected",))
    if "loss_by_cell" in ds.data_vars:
        require_vars(ds, ["loss_by_cell"], "loss_heatmap")
        cell = var_values(ds, "loss_by_cell", "path", "industry", "region")
        w = path_weights(ds)
        mean = np.einsum("p,pir->ir", w, cell) / w.size
        return _heatmap(ds, mean, w.size, ax)
    if "loss_by_industry" not in ds.data_vars or "loss_by_region" not in ds.data_vars:
        raise StresslabError(
            "loss_heatmap needs a run with loss_by_cell, or with loss_by_industry and loss_by_region; "
            "the Dataset has neither"
        )
    require_vars(ds, ["loss_by_industry", "loss_by_region"], "loss_heatmap")
    w = path_weights(ds)
    by_industry = w @ var_values(ds, "loss_by_industry", "path", "industry") / w.size
    by_region = w @ var_values(ds, "loss_by_region", "path", "region") / w.size
    return _segment_bars(ds, by_industry, by_region, w.size, ax)


def _heatmap(ds: xr.Dataset, mean: np.ndarray, n_paths: int, ax: Axes | None) -> Figure:
    fig, ax = figure_of(ax)
    industries = [str(v) for v in ds["industry"].values.tolist()]
    regions = [str(v) for v in ds["region"].values.tolist()]
    scale, unit = money_unit(mean)
    image = ax.imshow(mean, cmap="Reds", aspect="auto", vmin=0.0, interpolation="nearest")
    ax.set_xticks(range(len(regions)), regions, rotation=40, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(len(industries)), industries)
    ax.set_xlabel("region")
    ax.set_ylabel("industry")
    top = float(mean.max()) if mean.size else 0.0
    if mean.size <= 150:  # annotate cells when they are few enough to read
        for i in range(mean.shape[0]):
            for j in range(mean.shape[1]):
                ax.text(j, i, _cell_text(mean[i, j] / scale), ha="center", va="center", fontsize="x-small",
                        color="white" if top > 0 and mean[i, j] > 0.6 * top else "black")
    bar = fig.colorbar(image, ax=ax, format=FuncFormatter(lambda v, _: f"{v / scale:,.6g}"))
    bar.set_label(f"expected gross loss, {unit}")
    add_title(ax, ds, f"Expected gross loss by industry and region ({n_paths:,} paths)")
    return fig


def _cell_text(v: float) -> str:
    return "0" if v == 0 else f"{v:.0f}" if abs(v) >= 9.95 else f"{v:.1f}" if abs(v) >= 0.095 else "<0.1"


def _segment_bars(ds: xr.Dataset, by_industry: np.ndarray, by_region: np.ndarray, n_paths: int, ax: Axes | None) -> Figure:
    fig, ax = figure_of(ax)
    industries = [str(v) for v in ds["industry"].values.tolist()]
    regions = [str(v) for v in ds["region"].values.tolist()]
    scale, unit = money_unit(by_industry, by_region)
    y_ind = np.arange(len(industries))
    y_reg = len(industries) + 1 + np.arange(len(regions))  # one empty row between the groups
    ax.barh(y_ind, by_industry, color="#6baed6", label="by industry")
    ax.barh(y_reg, by_region, color="#fd8d3c", label="by region")
    ax.set_yticks(np.concatenate([y_ind, y_reg]), industries + regions, fontsize="small")
    ax.invert_yaxis()  # industries on top
    ax.set_ylabel("industry (top), region (bottom)")
    money_axis(ax.xaxis, scale)
    ax.set_xlabel(f"expected gross loss over the horizon, {unit}")
    ax.grid(True, axis="x", alpha=0.3)
    add_title(ax, ds, f"Expected gross loss by industry and by region ({n_paths:,} paths)")
    add_legend(ax, loc="best")
    return fig

