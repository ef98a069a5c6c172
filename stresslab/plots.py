"""Plots of a run (and, where natural, of its summary) with matplotlib.

Every function takes a Dataset, an optional :class:`matplotlib.axes.Axes` to draw on and
returns the :class:`matplotlib.figure.Figure`. Without ``ax`` a new figure (default size,
constrained layout) is made with :mod:`matplotlib.pyplot`; no backend is chosen here.
Legends sit outside the axes, to the right: when you pass your own ``ax``, give its figure
``layout="constrained"`` or save with ``bbox_inches="tight"`` so that they are not cut off.

Money axes hold CNY and are labelled in readable units (CNY, CNY k, CNY m or CNY bn): the
plotted data stay in CNY, only the tick labels are scaled. Every estimate honours the
per-path likelihood ratio ``weight`` like :mod:`stresslab.results`: E[h] is estimated by
``mean(w h)`` and quantiles by :func:`stresslab.results.weighted_quantile`.
docs/plots.md shows each plot.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter
from scipy.stats import norm

from stresslab.errors import StresslabError, did_you_mean
from stresslab.results import _check_level, _check_weights, _reason, es_ci, mean_ci, var_ci, var_es, weighted_quantile

__all__ = [
    "loss_distribution",
    "exceedance_curve",
    "dpd30_fan",
    "state_stack",
    "loss_heatmap",
    "loss_allocation",
    "capacity_fan",
    "exhaustion_curve",
    "scenario_comparison",
    "sweep_curve",
    "save_figure",
]

_MEASURES = {"gross": "loss_gross", "net": "loss_net"}
_WINDOWS = {"horizon": "whole horizon", "12m": "first 12 months"}
_LIVE = ("C", "M1", "M2", "M3")
_DPD30 = ("M2", "M3")
_STACK_STATES = ("C", "M1", "M2", "M3", "D")
_STATE_COLORS = {"C": "#4daf4a", "M1": "#ffd92f", "M2": "#ff7f00", "M3": "#e41a1c", "D": "#4d4d4d", "P": "#80b1d3"}
_STATE_NAMES = {"C": "C (current)", "M1": "M1", "M2": "M2", "M3": "M3", "D": "D (defaulted, cumulative)", "P": "P (paid off)"}
_LENDER = "lender"
_LENDER_COLOR = "#4d4d4d"
_FAN_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
_LEVEL_COLORS = ("#d62728", "#9467bd", "#ff7f0e", "#2ca02c", "#8c564b", "#e377c2")  # distinct from the bars and EL
_UNITS = ((1e9, "CNY bn"), (1e6, "CNY m"), (1e3, "CNY k"))


# ----------------------------------------------------------------------------- helpers
def _figure(ax: Axes | None) -> tuple[Figure, Axes]:
    """The figure and axes to draw on: ``ax`` and its (root) figure, or a new figure."""
    if ax is None:
        fig, ax = plt.subplots(layout="constrained")
        return fig, ax
    fig = ax.figure
    while not isinstance(fig, Figure):  # a SubFigure: climb to the Figure
        fig = fig.figure
    return fig, ax


def _choice(what: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise StresslabError(
            f"{what} must be one of {', '.join(map(repr, allowed))}; got {value!r}{did_you_mean(value, allowed)}"
        )
    return value


def _require(ds: xr.Dataset, names: Sequence[str], plot: str) -> None:
    missing = [name for name in names if name not in ds.data_vars]
    if missing:
        hint = " (this is a summary: pass the run itself)" if "expected_loss" in ds.data_vars else ""
        raise StresslabError(f"{plot} needs the variable(s) {', '.join(missing)}, which the Dataset lacks{hint}")
    for name in names:
        if "scenario" in ds[name].dims:
            raise StresslabError(f"{plot} draws one scenario at a time; select one with ds.sel(scenario=...)")


def _weights(ds: xr.Dataset) -> np.ndarray:
    """The path weights (ones if the Dataset has none), checked."""
    if "weight" in ds.data_vars:
        w = np.asarray(ds["weight"].transpose("path").values, dtype=np.float64)
    else:
        w = np.ones(ds.sizes["path"])
    if w.size < 1:
        raise StresslabError("the run has no paths")
    _check_weights(w)
    return w


def _values(ds: xr.Dataset, name: str, *dims: str) -> np.ndarray:
    """``ds[name]`` as float64 with its dims in this order; an error if they differ."""
    da = ds[name]
    if set(da.dims) != set(dims):
        raise StresslabError(f"results variable {name} must have dims {dims}; got {da.dims}")
    return np.asarray(da.transpose(*dims).values, dtype=np.float64)


def _match(have: Sequence[float], wanted: Sequence[float], what: str) -> list[float]:
    """The values of ``have`` equal (to 1e-12) to each of ``wanted``; an error naming the absent ones."""
    have = [float(h) for h in have]
    found = [next((h for h in have if abs(h - q) <= 1e-12), None) for q in wanted]
    missing = [q for q, f in zip(wanted, found) if f is None]
    if missing:
        raise StresslabError(
            f"the summary holds the {what} {', '.join(f'{h:g}' for h in have)}, not "
            f"{', '.join(f'{q:g}' for q in missing)}; choose from those, or pass the run itself"
        )
    return [float(f) for f in found]  # type: ignore[arg-type]


def _path_loss(ds: xr.Dataset, measure: str, window: str, plot: str) -> tuple[np.ndarray, np.ndarray]:
    """Loss of each path over the window (CNY) and the path weights."""
    _choice("measure", measure, tuple(_MEASURES))
    _choice("window", window, tuple(_WINDOWS))
    name = _MEASURES[measure]
    _require(ds, [name], plot)
    loss = _values(ds, name, "path", "month")
    if window == "12m":
        loss = loss[:, ds["month"].values <= 12]
    x = loss.sum(axis=1)
    if not np.all(np.isfinite(x)):
        raise StresslabError(f"results variable {name} holds NaN or infinite values")
    return x, _weights(ds)


def _money_unit(*values: float | np.ndarray) -> tuple[float, str]:
    """Scale and unit label (CNY, CNY k, CNY m, CNY bn) for values of this size."""
    finite = [np.abs(np.asarray(v, dtype=np.float64)) for v in values]
    top = max((float(np.max(v[np.isfinite(v)])) for v in finite if np.any(np.isfinite(v))), default=0.0)
    for scale, unit in _UNITS:
        if top >= scale:
            return scale, unit
    return 1.0, "CNY"


def _money_axis(axis: Axis, scale: float) -> None:
    """Label a CNY axis in units of ``scale`` (the data stay in CNY)."""
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / scale:,.6g}"))


def _money_text(v: float, scale: float, unit: str) -> str:
    return f"{v / scale:,.3g} {unit}" if np.isfinite(v) else str(v)


def _pct(a: float) -> str:
    return f"{100 * a:g}%"


def _legend(ax: Axes, loc: str | None = None, reverse: bool = False, **kwargs: object) -> None:
    """Framed legend: outside the axes on the right, or inside at ``loc``; ``reverse`` lists the entries bottom-up."""
    handles, labels = ax.get_legend_handles_labels()
    if reverse:  # a stack: its top first
        handles, labels = handles[::-1], labels[::-1]
    where = {"loc": loc} if loc else {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0}
    ax.legend(handles, labels, frameon=True, fontsize="small", **where, **kwargs)  # type: ignore[arg-type]


def _title(ax: Axes, ds: xr.Dataset, what: str) -> None:
    name = ds.attrs.get("scenario_name")
    ax.set_title(what if name is None else f"{what}\nscenario {name}", fontsize="medium")


def _month_axis(ax: Axes, months: np.ndarray) -> None:
    ax.set_xlabel("month")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if months.size > 1:
        ax.set_xlim(months[0], months[-1])


def _check_quantiles(quantiles: Sequence[float]) -> tuple[float, ...]:
    qs = tuple(sorted({_check_level(q, "each of quantiles") for q in quantiles}))
    if not qs:
        raise StresslabError("quantiles must name at least one level")
    return qs


def _fan(ax: Axes, months: np.ndarray, qs: tuple[float, ...], values: np.ndarray, color: str) -> None:
    """Bands between the i-th lowest and the i-th highest quantile; the middle one as a line."""
    n = len(qs)
    for i in range(n // 2):
        lo, hi = qs[i], qs[n - 1 - i]
        alpha = 0.2 + 0.45 * i / max(n // 2 - 1, 1) if n // 2 > 1 else 0.35
        ax.fill_between(months, values[:, i], values[:, n - 1 - i], color=color, alpha=alpha, linewidth=0,
                        label=f"{_pct(lo)}–{_pct(hi)}")
    if n % 2:
        mid = qs[n // 2]
        ax.plot(months, values[:, n // 2], color=color, linewidth=2, label="median" if mid == 0.5 else f"quantile {_pct(mid)}")


def _has_layers(ds: xr.Dataset) -> bool:
    return ds.sizes.get("layer", 0) > 0


def _require_layers(ds: xr.Dataset, plot: str) -> list[str]:
    if not _has_layers(ds):
        raise StresslabError(
            f"{plot} needs credit-enhancement layers, and the Dataset has no 'layer' dimension "
            "(the scenario has no [[layers]]); without layers the lender bears the whole loss"
        )
    return [str(v) for v in ds["layer"].values.tolist()]


# ----------------------------------------------------------------------------- losses
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
    (:func:`stresslab.results.mean_ci`) and VaR and ES from
    :func:`stresslab.results.var_es`: the numbers of :func:`stresslab.results.summary`.
    The lines hold the values in CNY (``line.get_xdata()``); a non-finite VaR (possible
    only with importance weights) is listed in the legend but not drawn.

    Examples
    --------
    >>> fig = loss_distribution(ds, levels=(0.99,))  # doctest: +SKIP
    """
    x, w = _path_loss(ds, measure, window, "loss_distribution")
    levels = tuple(_check_level(a) for a in levels)
    n = x.size
    if n < 2:
        raise StresslabError(f"loss_distribution needs at least 2 paths; got {n}")
    el = mean_ci(x, w)[0]
    tails = [(a, *var_es(x, w, a)) for a in levels]
    fig, ax = _figure(ax)
    scale, unit = _money_unit(x)

    edges = np.histogram_bin_edges(x, bins=bins)
    ax.hist(x, bins=edges, weights=w / n, color="#9ecae1", edgecolor="#6baed6", linewidth=0.5, label="paths")
    ax.axvline(el, color="black", linewidth=1.5, label=f"EL {_money_text(el, scale, unit)}")
    for k, (a, var, es) in enumerate(tails):
        color = _LEVEL_COLORS[k % len(_LEVEL_COLORS)]
        for name, value, style in (("VaR", var, "--"), ("ES", es, "-.")):
            label = f"{name} {_pct(a)} {_money_text(value, scale, unit)}"
            if np.isfinite(value):
                ax.axvline(value, color=color, linestyle=style, linewidth=1.5, label=label)
            else:
                ax.plot([], [], color=color, linestyle=style, label=label)

    _money_axis(ax.xaxis, scale)
    ax.set_xlabel(f"{measure} loss over the {_WINDOWS[window]}, {unit}")
    ax.set_ylabel("probability per bin")
    _title(ax, ds, f"Distribution of the {measure} loss ({n:,} paths)")
    _legend(ax)
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
    tail-probability estimator of :mod:`stresslab.results`), drawn at each distinct path
    loss v where it is positive (the line's data are exactly those v and
    :math:`\\hat T(v)`). The band is :math:`\\hat T(v) \\pm z\\,
    \\mathrm{sd}(w 1\\{L > v\\}) / \\sqrt n` (ddof 1; with w = 1 the binomial standard
    error :math:`\\sqrt{\\hat p(1-\\hat p)/(n-1)}`), :math:`z = \\Phi^{-1}((1+ci)/2)`,
    pointwise. Where its lower end is <= 0 the band runs to the bottom of the axis.
    """
    x, w = _path_loss(ds, measure, window, "exceedance_curve")
    ci = _check_level(ci, "ci")
    n = x.size
    if n < 2:
        raise StresslabError(f"exceedance_curve needs at least 2 paths; got {n}")
    fig, ax = _figure(ax)
    order = np.argsort(x, kind="stable")
    xs, ws = x[order], w[order]
    v = np.unique(xs)
    beyond = np.searchsorted(xs, v, side="right")  # the paths with loss > v are xs[beyond:]
    s1 = np.append(np.cumsum(ws[::-1])[::-1], 0.0)[beyond]  # sum of w 1{L > v}
    s2 = np.append(np.cumsum((ws * ws)[::-1])[::-1], 0.0)[beyond]  # sum of w^2 1{L > v}
    prob = s1 / n
    se = np.sqrt(np.maximum(s2 - s1 * s1 / n, 0.0) / (n - 1)) / np.sqrt(n)  # sd(w 1{L > v}, ddof=1) / sqrt(n)
    z = float(norm.ppf(0.5 + ci / 2.0))
    if not np.any(prob > 0):
        raise StresslabError("exceedance_curve: no path loss is exceeded with positive probability; there is no curve to draw")
    floor = float(prob[prob > 0].min()) / 4.0
    low = np.maximum(prob - z * se, floor)
    high = prob + z * se
    scale, unit = _money_unit(x)

    ax.fill_between(v, low, high, step="post", color="#9ecae1", alpha=0.6, linewidth=0,
                    label=f"{_pct(ci)} Monte Carlo band")
    ax.step(v, prob, where="post", color="#08519c", linewidth=1.5, label="P(L > x)")
    ax.set_yscale("log", nonpositive="clip")  # P = 0 beyond the largest loss: the line drops to the bottom
    ax.set_ylim(floor, min(1.5, float(high.max()) * 1.5))
    ax.grid(True, which="major", alpha=0.4)
    ax.grid(True, which="minor", axis="y", alpha=0.15)
    _money_axis(ax.xaxis, scale)
    ax.set_xlabel(f"{measure} loss x over the {_WINDOWS[window]}, {unit}")
    ax.set_ylabel("exceedance probability P(L > x)")
    _title(ax, ds, f"Exceedance curve of the {measure} loss ({n:,} paths)")
    _legend(ax, loc="lower left")  # below a decreasing curve that starts near 1: empty
    return fig


# ----------------------------------------------------------------------------- delinquency
def _dpd30_ratio(ds: xr.Dataset) -> np.ndarray:
    """DPD30+ ratio by balance (M2 + M3) / (C + M1 + M2 + M3), shape (path, month); 0 if nothing is live.

    The same as ``stresslab.results._dpd_ratio(ds, "balance_by_state")``, which is private
    there (candidate for a public helper in results.py).
    """
    by_state = _values(ds, "balance_by_state", "path", "month", "state")
    column = {state: i for i, state in enumerate(ds["state"].values.tolist())}
    absent = [s for s in _LIVE if s not in column]
    if absent:
        raise StresslabError(f"results lack the state(s) {', '.join(absent)} on the state dimension")
    live = sum(by_state[:, :, column[s]] for s in _LIVE)
    late = sum(by_state[:, :, column[s]] for s in _DPD30)
    return np.divide(late, live, out=np.zeros_like(live), where=live > 0)


def dpd30_fan(
    ds: xr.Dataset,
    *,
    quantiles: Sequence[float] = _FAN_QUANTILES,
    ax: Axes | None = None,
) -> Figure:
    """Fan chart of the DPD30+ ratio by balance over the months, with its mean.

    Parameters
    ----------
    ds : xarray.Dataset
        A run (``balance_by_state(path, month, state)``, ``weight``), or its
        :func:`stresslab.results.summary` (``dpd30_ratio_quantile``, ``dpd30_ratio_mean``;
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
    nothing is live, as in :func:`stresslab.results.summary`. Quantiles per month are
    :func:`stresslab.results.weighted_quantile`, the mean is ``mean(w r)``. The y-data of
    the lines are ratios (0.05 = 5%); the axis shows percent.
    """
    qs = _check_quantiles(quantiles)
    if "balance_by_state" in ds.data_vars:
        _require(ds, ["balance_by_state"], "dpd30_fan")
        ratio, w = _dpd30_ratio(ds), _weights(ds)
        values = np.array([weighted_quantile(ratio[:, t], w, qs) for t in range(ratio.shape[1])]).reshape(-1, len(qs))
        mean = w @ ratio / w.size
        n_paths = w.size
    elif "dpd30_ratio_quantile" in ds.data_vars and "dpd30_ratio_mean" in ds.data_vars:
        sel = _match(ds["quantile"].values, qs, "DPD30+ quantiles")
        values = _values(ds.sel(quantile=sel), "dpd30_ratio_quantile", "month", "quantile")
        mean = _values(ds, "dpd30_ratio_mean", "month")
        n_paths = int(ds["n_paths"]) if "n_paths" in ds.data_vars else None
    else:
        raise StresslabError(
            "dpd30_fan needs a run (balance_by_state) or its summary (dpd30_ratio_quantile, dpd30_ratio_mean); "
            "the Dataset has neither"
        )
    fig, ax = _figure(ax)
    months = ds["month"].values
    _fan(ax, months, qs, values, "#2171b5")
    ax.plot(months, mean, color="black", linestyle="--", linewidth=1.5, label="mean")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylim(bottom=0.0)
    ax.set_ylabel("DPD30+ ratio by balance, %")
    _month_axis(ax, months)
    ax.grid(True, alpha=0.3)
    paths = f" ({n_paths:,} paths)" if n_paths else ""
    _title(ax, ds, f"DPD30+ ratio (M2 + M3) / live balance{paths}")
    _legend(ax)
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
    _choice("by", by, ("balance", "count"))
    name = f"{by}_by_state"
    _require(ds, [name], "state_stack")
    states = _STACK_STATES + (("P",) if include_paid else ())
    present = ds["state"].values.tolist()
    absent = [s for s in states if s not in present]
    if absent:
        raise StresslabError(f"results lack the state(s) {', '.join(absent)} on the state dimension")
    values = _values(ds, name, "path", "month", "state")
    w = _weights(ds)
    mean = np.einsum("p,pms->sm", w, values) / w.size  # (state, month)
    layers = np.array([mean[present.index(s)] for s in states])
    fig, ax = _figure(ax)
    months = ds["month"].values
    ax.stackplot(months, layers, labels=[_STATE_NAMES[s] for s in states], colors=[_STATE_COLORS[s] for s in states],
                 edgecolor="white", linewidth=0.3)
    if by == "balance":
        scale, unit = _money_unit(layers.sum(axis=0))
        _money_axis(ax.yaxis, scale)
        ax.set_ylabel(f"mean balance, {unit}")
    else:
        ax.set_ylabel("mean number of loans")
    ax.set_ylim(bottom=0.0)
    _month_axis(ax, months)
    _title(ax, ds, f"Mean {by} by delinquency state ({w.size:,} paths)")
    _legend(ax, reverse=True)
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
    _choice("statistic", statistic, ("expected",))
    if "loss_by_cell" in ds.data_vars:
        _require(ds, ["loss_by_cell"], "loss_heatmap")
        cell = _values(ds, "loss_by_cell", "path", "industry", "region")
        w = _weights(ds)
        mean = np.einsum("p,pir->ir", w, cell) / w.size
        return _heatmap(ds, mean, w.size, ax)
    if "loss_by_industry" not in ds.data_vars or "loss_by_region" not in ds.data_vars:
        raise StresslabError(
            "loss_heatmap needs a run with loss_by_cell, or with loss_by_industry and loss_by_region; "
            "the Dataset has neither"
        )
    _require(ds, ["loss_by_industry", "loss_by_region"], "loss_heatmap")
    w = _weights(ds)
    by_industry = w @ _values(ds, "loss_by_industry", "path", "industry") / w.size
    by_region = w @ _values(ds, "loss_by_region", "path", "region") / w.size
    return _segment_bars(ds, by_industry, by_region, w.size, ax)


def _heatmap(ds: xr.Dataset, mean: np.ndarray, n_paths: int, ax: Axes | None) -> Figure:
    fig, ax = _figure(ax)
    industries = [str(v) for v in ds["industry"].values.tolist()]
    regions = [str(v) for v in ds["region"].values.tolist()]
    scale, unit = _money_unit(mean)
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
    _title(ax, ds, f"Expected gross loss by industry and region ({n_paths:,} paths)")
    return fig


def _cell_text(v: float) -> str:
    return "0" if v == 0 else f"{v:.0f}" if abs(v) >= 9.95 else f"{v:.1f}" if abs(v) >= 0.095 else "<0.1"


def _segment_bars(ds: xr.Dataset, by_industry: np.ndarray, by_region: np.ndarray, n_paths: int, ax: Axes | None) -> Figure:
    fig, ax = _figure(ax)
    industries = [str(v) for v in ds["industry"].values.tolist()]
    regions = [str(v) for v in ds["region"].values.tolist()]
    scale, unit = _money_unit(by_industry, by_region)
    y_ind = np.arange(len(industries))
    y_reg = len(industries) + 1 + np.arange(len(regions))  # one empty row between the groups
    ax.barh(y_ind, by_industry, color="#6baed6", label="by industry")
    ax.barh(y_reg, by_region, color="#fd8d3c", label="by region")
    ax.set_yticks(np.concatenate([y_ind, y_reg]), industries + regions, fontsize="small")
    ax.invert_yaxis()  # industries on top
    ax.set_ylabel("industry (top), region (bottom)")
    _money_axis(ax.xaxis, scale)
    ax.set_xlabel(f"expected gross loss over the horizon, {unit}")
    ax.grid(True, axis="x", alpha=0.3)
    _title(ax, ds, f"Expected gross loss by industry and by region ({n_paths:,} paths)")
    _legend(ax, loc="best")
    return fig


# ----------------------------------------------------------------------------- layers
def _tail_weights(x: np.ndarray, w: np.ndarray, var: float, level: float) -> np.ndarray:
    """Weights ``w (1{x > var} + beta 1{x == var})`` of the Acerbi-Tasche tail, with ``beta`` in [0, 1]
    making their sum n (1 - level): the paths beyond the VaR, and the same fraction of each path at it."""
    over, at = w * (x > var), w * (x == var)
    tied = at.sum()
    beta = float(np.clip((x.size * (1.0 - level) - over.sum()) / tied, 0.0, 1.0)) if tied > 0 else 0.0
    return over + beta * at


def _allocation_from_run(ds: xr.Dataset, levels: tuple[float, ...]) -> tuple[list[str], list[str], np.ndarray]:
    """Parties, bar labels and the loss each party bears at each bar, shape (bar, party).

    The ES split is the one of ``party_tail`` in :func:`stresslab.results.summary`
    (``stresslab.allocation``), computed here so that plots do not depend on that module's
    private helpers.
    """
    _require(ds, ["loss_gross", "loss_net"], "loss_allocation")
    w = _weights(ds)
    n = w.size
    if n < 2:
        raise StresslabError(f"loss_allocation needs at least 2 paths; got {n}")
    gross = _values(ds, "loss_gross", "path", "month").sum(axis=1)
    parts = [_values(ds, "loss_net", "path", "month").sum(axis=1)[:, None]]
    parties = [_LENDER]
    if _has_layers(ds):
        layers = _require_layers(ds, "loss_allocation")
        _require(ds, ["layer_paid"], "loss_allocation")
        parts.insert(0, _values(ds, "layer_paid", "path", "month", "layer").sum(axis=1))
        parties = layers + parties
    borne = np.column_stack(parts)  # (path, party)
    rows, labels = [w @ borne / n], ["EL"]
    for a in levels:
        var = var_es(gross, w, a)[0]
        at = w * (gross == var)  # the paths at the VaR, a sample value
        if not at.sum() > 0:  # only if every path at the VaR has weight 0
            at = (gross == var).astype(np.float64)
        rows.append(at @ borne / at.sum())
        tail = _tail_weights(gross, w, var, a)
        rows.append(tail @ borne / tail.sum())
        labels += [f"VaR {_pct(a)}", f"ES {_pct(a)}"]
    return parties, labels, np.array(rows)


def _allocation_from_summary(ds: xr.Dataset, levels: tuple[float, ...]) -> tuple[list[str], list[str], np.ndarray]:
    parties = [str(v) for v in ds["party"].values.tolist()]
    have = [float(a) for a in ds["level"].values]
    rows, labels = [_values(ds, "party_expected", "party")], ["EL"]
    for a, at in zip(levels, _match(have, levels, "levels")):
        rows.append(_values(ds.sel(level=at), "party_tail", "party"))
        labels.append(f"ES {_pct(a)}")
    return parties, labels, np.array(rows)


def loss_allocation(
    ds: xr.Dataset,
    *,
    levels: Sequence[float] = (0.99,),
    ax: Axes | None = None,
) -> Figure:
    """Who bears the loss: stacked bars of each party's loss at EL, VaR and ES.

    Parameters
    ----------
    ds : xarray.Dataset
        A run: ``loss_gross``, ``loss_net`` (the lender's retained loss), ``weight`` and,
        with credit-enhancement layers, ``layer_paid(path, month, layer)``. Without a
        ``layer`` dimension the lender is the only party. Or a
        :func:`stresslab.results.summary` of a run with layers (``party_expected``,
        ``party_tail``): then only the EL and ES bars are drawn.
    levels : sequence of float, default (0.99,)
        Tail levels a, each in (0, 1); a pair of bars ("VaR a", "ES a") per level.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; default a new figure.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    StresslabError
        If variables are missing, a level is outside (0, 1) (or not in the summary), or
        the Dataset is a summary without layers.

    Notes
    -----
    With L the gross loss over the horizon and X_k the loss party k bears over it (a
    layer's ``layer_paid`` summed over months, the lender's ``loss_net``), v_a the VaR of
    L (:func:`stresslab.results.var_es`):

    - EL: ``mean(w X_k)``; the bar adds up to the expected gross loss;
    - VaR a: ``E[X_k | L = v_a]``, the weighted mean over the paths whose loss is the VaR
      (one path unless there are ties): the Euler split of the VaR, adding up to v_a
      exactly, but resting on very few paths, so noisy;
    - ES a: the tail-conditional expectation ``E[X_k | L >= v_a]`` as
      ``sum(h X_k) / sum(h)`` with tail weights ``h = w (1{L > v_a} + beta 1{L == v_a})``,
      ``beta`` in [0, 1] chosen so that ``sum(h) = n (1 - a)``: the paths beyond the VaR
      and a fraction of those at it, as in the ES estimator. The bar adds up to
      ``expected_shortfall`` (Acerbi-Tasche ES split into parties) and equals
      ``party_tail`` of :func:`stresslab.results.summary`.

    Each bar's total is written above it. ``ax.containers`` holds one bar container per
    party, in stacking order (layers, then the lender at the top).
    """
    levels = tuple(_check_level(a) for a in levels)
    if "party_expected" in ds.data_vars and "party_tail" in ds.data_vars:
        parties, labels, borne = _allocation_from_summary(ds, levels)
        n_paths = int(ds["n_paths"]) if "n_paths" in ds.data_vars else None
    elif "expected_loss" in ds.data_vars:
        raise StresslabError(
            "loss_allocation needs the run itself, or a summary of a run with layers (party_expected, "
            "party_tail); this summary has no layers"
        )
    else:
        parties, labels, borne = _allocation_from_run(ds, levels)
        n_paths = ds.sizes["path"]
    fig, ax = _figure(ax)
    x = np.arange(len(labels))
    layer_colors = plt.get_cmap("tab10")(np.arange(len(parties)) % 10)
    bottom = np.zeros(len(labels))
    for k, party in enumerate(parties):
        color = _LENDER_COLOR if party == _LENDER else layer_colors[k]
        ax.bar(x, borne[:, k], bottom=bottom, width=0.6, color=color, label=party, edgecolor="white", linewidth=0.5)
        bottom = bottom + borne[:, k]
    scale, unit = _money_unit(bottom)
    for xi, total in zip(x, bottom):
        ax.annotate(_money_text(total, scale, unit), (xi, total), xytext=(0, 3), textcoords="offset points",
                    ha="center", va="bottom", fontsize="small")
    ax.set_xticks(x, labels)
    ax.set_xlabel("statistic of the gross loss over the horizon")
    ax.set_ylim(0.0, max(float(bottom.max()), 1e-12) * 1.12)
    _money_axis(ax.yaxis, scale)
    ax.set_ylabel(f"loss borne over the horizon, {unit}")
    ax.grid(True, axis="y", alpha=0.3)
    paths = f" ({n_paths:,} paths)" if n_paths else ""
    _title(ax, ds, f"Who bears the gross loss{paths}")
    _legend(ax, reverse=True, title="party")
    return fig


def capacity_fan(
    ds: xr.Dataset,
    *,
    layer: str,
    quantiles: Sequence[float] = _FAN_QUANTILES,
    ax: Axes | None = None,
) -> Figure:
    """Fan chart of a layer's aggregate capacity left over the months.

    Parameters
    ----------
    ds : xarray.Dataset
        A run with layers: ``layer_capacity_left(path, month, layer)`` (inf: unlimited;
        0: exhausted) and ``weight``.
    layer : str
        Name of the layer (a value of the ``layer`` coordinate).
    quantiles : sequence of float, default (0.05, 0.25, 0.5, 0.75, 0.95)
        Quantile levels in (0, 1), banded as in :func:`dpd30_fan`.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; default a new figure.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    StresslabError
        If the Dataset has no layers, ``layer`` is unknown, or its capacity is unlimited.

    Notes
    -----
    Quantiles per month are :func:`stresslab.results.weighted_quantile`, the mean is
    ``mean(w c)``. The layer's initial capacity (coordinate ``layer_capacity``, when
    present) is drawn as a dotted line.
    """
    layers = _require_layers(ds, "capacity_fan")
    if str(layer) not in layers:
        raise StresslabError(f"no layer {layer!r}; the layers are {', '.join(map(repr, layers))}{did_you_mean(layer, layers)}")
    _require(ds, ["layer_capacity_left"], "capacity_fan")
    qs = _check_quantiles(quantiles)
    j = layers.index(str(layer))
    left = _values(ds, "layer_capacity_left", "path", "month", "layer")[:, :, j]
    if np.any(np.isnan(left)):
        raise StresslabError("results variable layer_capacity_left holds NaN values")
    if np.any(np.isinf(left)):
        raise StresslabError(f"layer {layer!r} has unlimited capacity (inf): there is no capacity to draw")
    w = _weights(ds)
    values = np.array([weighted_quantile(left[:, t], w, qs) for t in range(left.shape[1])]).reshape(-1, len(qs))
    fig, ax = _figure(ax)
    months = ds["month"].values
    _fan(ax, months, qs, values, "#238b45")
    ax.plot(months, w @ left / w.size, color="black", linestyle="--", linewidth=1.5, label="mean")
    tops = [left]
    if "layer_capacity" in ds.coords:
        capacity = float(ds["layer_capacity"].values[j])
        if np.isfinite(capacity):
            ax.axhline(capacity, color="grey", linestyle=":", linewidth=1.2, label="capacity")
            tops.append(np.array([capacity]))
    scale, unit = _money_unit(*tops)
    _money_axis(ax.yaxis, scale)
    ax.set_ylim(bottom=0.0)
    ax.set_ylabel(f"capacity left at month end, {unit}")
    _month_axis(ax, months)
    ax.grid(True, alpha=0.3)
    _title(ax, ds, f"Capacity left of layer {layer} ({w.size:,} paths)")
    _legend(ax)
    return fig


def exhaustion_curve(ds: xr.Dataset, *, ax: Axes | None = None) -> Figure:
    """Probability that each layer's capacity has run out by each month.

    Parameters
    ----------
    ds : xarray.Dataset
        A run with layers (``layer_capacity_left(path, month, layer)``, ``weight``), or
        its summary (``layer_exhaustion_probability(layer, month)``).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; default a new figure.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    StresslabError
        If the Dataset has no layers or lacks the variables.

    Notes
    -----
    From a run: ``mean(w 1{min_{s <= t} capacity_left_s == 0})`` for month t, as
    ``layer_exhaustion_probability`` of the summary. One line per layer (y-data are
    probabilities) in the order of the layers; a layer with unlimited capacity (inf) is
    never exhausted: it gets a legend entry "<name>: unlimited" but no line.
    """
    layers = _require_layers(ds, "exhaustion_curve")
    if "layer_capacity_left" in ds.data_vars:
        left = _values(ds, "layer_capacity_left", "path", "month", "layer")
        w = _weights(ds)
        exhausted = np.logical_or.accumulate(left <= 0.0, axis=1)
        prob = np.einsum("p,pml->lm", w, exhausted.astype(np.float64)) / w.size
        unlimited = np.all(np.isinf(left), axis=(0, 1))
        n_paths = w.size
    elif "layer_exhaustion_probability" in ds.data_vars:
        prob = _values(ds, "layer_exhaustion_probability", "layer", "month")
        capacity = ds["layer_capacity"].values if "layer_capacity" in ds.coords else np.zeros(len(layers))
        unlimited = np.isinf(np.asarray(capacity, dtype=np.float64))
        n_paths = int(ds["n_paths"]) if "n_paths" in ds.data_vars else None
    else:
        raise StresslabError(
            "exhaustion_curve needs a run (layer_capacity_left) or its summary (layer_exhaustion_probability); "
            "the Dataset has neither"
        )
    fig, ax = _figure(ax)
    months = ds["month"].values
    colors = plt.get_cmap("tab10")(np.arange(len(layers)) % 10)
    for j, name in enumerate(layers):
        if unlimited[j]:  # a line at 0 would hide under the axis: name it in the legend only
            ax.plot([], [], linestyle="none", label=f"{name}: unlimited")
        else:
            ax.plot(months, prob[j], color=colors[j], linewidth=1.8, marker="o", markersize=2.5, label=name)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylim(0.0, max(float(prob.max()) * 1.1, 0.05) if prob.size else 1.0)
    ax.set_ylabel("P(capacity used up by the month), %")
    _month_axis(ax, months)
    ax.grid(True, alpha=0.3)
    paths = f" ({n_paths:,} paths)" if n_paths else ""
    _title(ax, ds, f"Exhaustion of layer capacity{paths}")
    _legend(ax, title="layer")
    return fig


# ----------------------------------------------------------------------------- comparisons
# Metrics of scenario_comparison and sweep_curve: the horizon loss of every path, reduced by
# the estimators of stresslab.results. "var<p>" / "es<p>" are VaR / ES at level p % of the
# gross loss (var99, es99.9), as in stresslab.paired.compare_summary.
_COMPARE_MEANS = {
    "expected_loss": ("loss_gross", "expected gross loss"),
    "retained_loss": ("loss_net", "expected retained loss (net)"),
}
_SUMMARY_LABELS = {"expected_loss": "expected_gross_loss", "retained_loss": "expected_retained_loss"}
_TAIL_METRIC = re.compile(r"(var|es)(\d+(?:\.\d+)?)")


def _compare_metric(metric: str) -> tuple[str, str, float | None, str, str]:
    """(kind, variable, level, label in compare_summary, long name) of a comparison metric."""
    if metric in _COMPARE_MEANS:
        name, long_name = _COMPARE_MEANS[metric]
        return "mean", name, None, _SUMMARY_LABELS[metric], long_name
    match = _TAIL_METRIC.fullmatch(str(metric))
    if match:
        kind, number = match.group(1), f"{float(match.group(2)):g}"
        level = round(float(number) / 100.0, 12)
        if 0.0 < level < 1.0:
            what = "VaR" if kind == "var" else "ES"
            return kind, "loss_gross", level, f"{kind}_{number}", f"{what} {number}% of the gross loss"
    allowed = [*_COMPARE_MEANS, "var99", "es99"]
    raise StresslabError(
        f"metric must be 'expected_loss', 'retained_loss', 'var<p>' or 'es<p>' (p a level in %, e.g. var99, es99.9); "
        f"got {metric!r}{did_you_mean(str(metric), allowed)}"
    )


def _is_compare_summary(ds: xr.Dataset) -> bool:
    return "metric" in ds.dims and "value" in ds.data_vars and "scenario" in ds.dims


def _scenario_losses(cmp: xr.Dataset, names: Sequence[str], plot: str) -> tuple[list[str], dict[str, np.ndarray], np.ndarray]:
    """Scenario labels, horizon loss per (scenario, path) of each variable, and the common path weights."""
    if "scenario" not in cmp.dims:
        raise StresslabError(
            f"{plot} needs runs stacked along a 'scenario' dimension (stresslab.compare.compare or sweep); "
            "this Dataset has none: it is a single run"
        )
    labels = [str(v) for v in cmp["scenario"].values.tolist()]
    missing = [name for name in names if name not in cmp.data_vars]
    if missing:
        raise StresslabError(f"{plot} needs the variable(s) {', '.join(missing)}, which the comparison lacks")
    totals = {}
    for name in dict.fromkeys(names):
        da = cmp[name]
        if set(da.dims) != {"scenario", "path", "month"}:
            raise StresslabError(f"comparison variable {name} must have dims ('scenario', 'path', 'month'); got {da.dims}")
        x = np.asarray(da.transpose("scenario", "path", "month").values, dtype=np.float64).sum(axis=2)
        if not np.all(np.isfinite(x)):
            raise StresslabError(f"comparison variable {name} holds NaN or infinite values")
        totals[name] = x
    n = cmp.sizes["path"]
    if n < 2:
        raise StresslabError(f"{plot} needs at least 2 paths; got {n}")
    if "weight" not in cmp.data_vars:
        w = np.ones(n)
    elif "scenario" in cmp["weight"].dims:
        ws = np.asarray(cmp["weight"].transpose("scenario", "path").values, dtype=np.float64)
        for i in range(ws.shape[0]):
            if not np.array_equal(ws[i], ws[0]):
                raise StresslabError(
                    f"path weights of scenario {labels[i]!r} differ from those of {labels[0]!r}: paired "
                    "estimates need the same weights in every scenario (the same sampling, or none)"
                )
        w = ws[0]
    else:
        w = np.asarray(cmp["weight"].transpose("path").values, dtype=np.float64)
    _check_weights(w)
    return labels, totals, w


def _var_se(x: np.ndarray, w: np.ndarray, level: float, ci: float) -> tuple[float, np.ndarray]:
    """Standard error of the VaR implied by :func:`stresslab.results.var_ci` (its width / 2z; inf when
    unbounded) and the tail indicator ``w 1{x > VaR}`` (or ``>=``, the one var_ci takes the sd of)."""
    z = float(norm.ppf(0.5 + ci / 2.0))
    var = var_es(x, w, level)[0]
    low, high = var_ci(x, w, level, ci)
    over, at_or_over = w * (x > var), w * (x >= var)
    tail = over if np.std(over, ddof=1) >= np.std(at_or_over, ddof=1) else at_or_over
    return (high - low) / (2.0 * z), tail


def _point_estimates(kind: str, level: float | None, x: np.ndarray, w: np.ndarray, ci: float) -> tuple[float, float, float]:
    """Estimate and pointwise interval of one scenario: mean_ci, var_es + var_ci or var_es + es_ci."""
    if kind == "mean":
        return mean_ci(x, w, ci)
    var, es = var_es(x, w, level)  # type: ignore[arg-type]
    if kind == "var":
        return (var, *var_ci(x, w, level, ci))  # type: ignore[arg-type]
    return (es, *es_ci(x, w, level, ci))  # type: ignore[arg-type]


def _paired_difference(
    kind: str, level: float | None, x: np.ndarray, base: np.ndarray, w: np.ndarray, ci: float
) -> tuple[float, float, float, float]:
    """Paired difference (metric of x minus metric of base, same paths and weights): estimate, se, low, high.

    - mean: ``mean(w (x - base))``, se ``sd(w (x - base)) / sqrt(n)`` (:func:`mean_ci` of the difference);
    - es: difference of the :func:`var_es` ES, se ``sd(w [(x - v)^+ - (base - v0)^+]) / (sqrt(n) (1 - a))``
      (the influence function of :func:`stresslab.results.es_ci`, taken path by path);
    - var: difference of the VaRs, se ``sqrt(s^2 + s0^2 - 2 rho s s0)`` with s, s0 the standard errors implied
      by :func:`stresslab.results.var_ci` (interval width / 2z) and rho the correlation of the tail indicators
      ``w 1{x > v}``, ``w 1{base > v0}`` (Bahadur: the VaR error is the tail-probability error over the density).
    """
    n = x.size
    z = float(norm.ppf(0.5 + ci / 2.0))
    if kind == "mean":
        d, low, high = mean_ci(x - base, w, ci)
        return d, float(np.std(w * (x - base), ddof=1)) / np.sqrt(n), low, high
    a = float(level)  # type: ignore[arg-type]
    if kind == "es":
        v, es = var_es(x, w, a)
        v0, es0 = var_es(base, w, a)
        psi = w * (np.maximum(x - v, 0.0) - np.maximum(base - v0, 0.0))
        se = float(np.std(psi, ddof=1)) / (np.sqrt(n) * (1.0 - a))
        d = es - es0
    else:
        d = var_es(x, w, a)[0] - var_es(base, w, a)[0]
        s, tail = _var_se(x, w, a, ci)
        s0, tail0 = _var_se(base, w, a, ci)
        if not (np.isfinite(s) and np.isfinite(s0)):
            return d, float("inf"), float("-inf"), float("inf")
        sd, sd0 = float(np.std(tail, ddof=1)), float(np.std(tail0, ddof=1))
        rho = float(np.mean((tail - tail.mean()) * (tail0 - tail0.mean())) * n / (n - 1) / (sd * sd0)) if sd > 0 and sd0 > 0 else 0.0
        se = float(np.sqrt(max(s * s + s0 * s0 - 2.0 * rho * s * s0, 0.0)))
    return d, se, d - z * se, d + z * se


def _comparison_numbers(
    cmp: xr.Dataset, metric: str, ci: float, plot: str
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, str, int | None]:
    """Labels, values (scenario,), pointwise intervals (scenario, 2), paired difference intervals vs
    the first (or the summary's baseline) scenario (scenario, 2), the baseline's label and n_paths."""
    kind, name, level, label, _ = _compare_metric(metric)
    ci = _check_level(ci, "ci")
    if _is_compare_summary(cmp):
        metrics = [str(m) for m in cmp["metric"].values.tolist()]
        if label not in metrics:
            raise StresslabError(
                f"the comparison summary has no metric {label!r} (for {metric!r}); it holds {', '.join(metrics)}"
                f"{did_you_mean(label, metrics)}: pass compare_summary(..., levels=...) with that level, or the comparison itself"
            )
        at = cmp.sel(metric=label)
        labels = [str(v) for v in cmp["scenario"].values.tolist()]
        value = np.asarray(at["value"].transpose("scenario").values, dtype=np.float64)
        z = float(norm.ppf(0.5 + ci / 2.0))
        se = np.asarray(at["value_se"].transpose("scenario").values, dtype=np.float64) if "value_se" in at else np.full(value.size, np.nan)
        pointwise = np.column_stack([value - z * se, value + z * se])
        if "difference_ci" in at:
            paired = np.asarray(at["difference_ci"].transpose("scenario", "bound").sel(bound=["low", "high"]).values, dtype=np.float64)
        else:
            paired = np.full((value.size, 2), np.nan)
        base = str(cmp.attrs.get("baseline", labels[0]))
        n_paths = int(cmp["n_paths"]) if "n_paths" in cmp.data_vars else None
        return labels, value, pointwise, paired, base, n_paths
    labels, totals, w = _scenario_losses(cmp, [name], plot)
    x = totals[name]
    value, pointwise, paired = np.empty(len(labels)), np.empty((len(labels), 2)), np.empty((len(labels), 2))
    for i in range(len(labels)):
        value[i], pointwise[i, 0], pointwise[i, 1] = _point_estimates(kind, level, x[i], w, ci)
        d, _, low, high = _paired_difference(kind, level, x[i], x[0], w, ci)
        paired[i] = (low, high) if i else (0.0, 0.0)
    return labels, value, pointwise, paired, labels[0], w.size


def _signed(v: float, scale: float) -> str:
    """``v / scale`` with its sign, 3 significant digits (a true minus sign; ±∞ when not finite)."""
    if not np.isfinite(v):
        return "−∞" if v < 0 else "+∞"
    return f"{v / scale:+,.3g}".replace("-", "−")


def _plain_number(v: float, _: object = None) -> str:
    """Tick label of a number of any kind: 2.5k, 10m, 1.5bn above a thousand, else up to 6 digits."""
    for scale, suffix in ((1e9, "bn"), (1e6, "m"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:,.6g}{suffix}"
    return f"{v:.6g}"


def scenario_comparison(
    cmp: xr.Dataset,
    *,
    metric: str = "expected_loss",
    ax: Axes | None = None,
    ci: float = 0.95,
) -> Figure:
    """One bar per scenario of a loss metric, with the paired confidence interval of its difference from the first.

    Parameters
    ----------
    cmp : xarray.Dataset
        Scenarios run on common random numbers, stacked along ``scenario``
        (:func:`stresslab.compare.compare` or :func:`stresslab.compare.sweep`):
        ``loss_gross`` / ``loss_net`` (scenario, path, month) and ``weight`` (the same in
        every scenario) are used. Or the output of :func:`stresslab.paired.compare_summary`
        (``value``, ``difference_ci`` along ``metric``): its numbers are drawn as they are.
    metric : str, default "expected_loss"
        ``"expected_loss"`` (gross), ``"retained_loss"`` (``loss_net``, the lender's
        retained loss), ``"var<p>"`` or ``"es<p>"``: VaR or ES at level p % of the gross
        loss (``"var99"``, ``"es99"``, ``"es99.9"``). Always over the whole horizon.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; default a new figure.
    ci : float, default 0.95
        Coverage of the intervals, in (0, 1).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    StresslabError
        If the Dataset has no ``scenario`` dimension, lacks the variables, the metric is
        unknown (or absent from the summary), or the weights differ between scenarios.

    Notes
    -----
    Bar heights are the scenario's estimate (:func:`stresslab.results.mean_ci`,
    :func:`~stresslab.results.var_es`), in CNY; the dashed line is the baseline (the first
    scenario). The error bar of scenario b spans baseline value + the paired interval of
    the difference ``m_b - m_a``, so it excludes the dashed line when the difference is
    significant; the text above the bar gives the difference and its interval. With path
    losses L_a, L_b of the same paths and weights w, n paths, z = Φ⁻¹((1 + ci)/2):

    - expected / retained loss: ``mean(w (L_b - L_a))`` ± z sd(w (L_b - L_a)) / √n;
    - ES a: ± z sd(w [(L_b - v_b)^+ - (L_a - v_a)^+]) / (√n (1 - a)) (the influence function
      behind :func:`stresslab.results.es_ci`, paired path by path);
    - VaR a: ± z sqrt(s_a² + s_b² - 2 ρ s_a s_b), s the standard error implied by
      :func:`stresslab.results.var_ci` (its width / 2z) and ρ the correlation of the tail
      indicators ``w 1{L > v}`` of the two scenarios; unbounded when var_ci is.

    ``ax.containers`` holds the bars (one container, scenario order) and the error bars
    (baseline excluded); ``bar.get_height()`` is the value in CNY. Tail intervals rest on
    the n (1 - a) tail paths: with few of them they are rough.
    """
    labels, value, _, paired, base, n_paths = _comparison_numbers(cmp, metric, ci, "scenario_comparison")
    _, _, _, _, long_name = _compare_metric(metric)
    b = labels.index(base) if base in labels else 0
    fig, ax = _figure(ax)
    x = np.arange(len(labels))
    base_color, other_color = "#969696", "#6baed6"
    ax.bar(x, value, width=0.6, color=[base_color if i == b else other_color for i in range(len(labels))],
           edgecolor="white", label="_estimates")
    low, high = value[b] + paired[:, 0], value[b] + paired[:, 1]
    finite = np.isfinite(low) & np.isfinite(high)
    others = np.array([i for i in range(len(labels)) if i != b and finite[i]], dtype=int)
    if others.size:
        ax.errorbar(x[others], value[others], yerr=[value[others] - low[others], high[others] - value[others]],
                    fmt="none", ecolor="black", elinewidth=1.5, capsize=6, label="_paired")
    ax.axhline(value[b], color="#525252", linestyle="--", linewidth=1.2, label="_baseline")
    tops = np.concatenate([value, high[others], low[others]]) if others.size else value
    scale, unit = _money_unit(tops)
    top = float(np.max(tops)) if tops.size else 0.0
    for i in range(len(labels)):
        if i == b:
            text = "baseline"
        else:
            text = f"Δ {_signed(value[i] - value[b], scale)}\n[{_signed(paired[i, 0], scale)}, {_signed(paired[i, 1], scale)}]"
        y = high[i] if i != b and finite[i] else value[i]
        ax.annotate(text, (x[i], y), xytext=(0, 4), textcoords="offset points", ha="center", va="bottom", fontsize="x-small")
    ax.set_ylim(0.0 if np.min(tops) >= 0 else None, max(top, 1e-12) * 1.25)
    handles = [
        Patch(color=base_color, label=f"baseline: {base}"),
        Patch(color=other_color, label="scenario"),
        Line2D([], [], color="#525252", linestyle="--", linewidth=1.2, label="baseline value"),
        Line2D([], [], color="black", marker="_", markersize=10, linewidth=1.5,
               label=f"paired {_pct(ci)} CI of the\ndifference (Δ, {unit})"),
    ]
    ax.legend(handles=handles, frameon=True, fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    long_labels = max((len(s) for s in labels), default=0) > 14 or len(labels) > 5
    ax.set_xticks(x, labels, rotation=25 if long_labels else 0, ha="right" if long_labels else "center",
                  rotation_mode="anchor", fontsize="small")
    ax.set_xlabel("scenario")
    _money_axis(ax.yaxis, scale)
    ax.set_ylabel(f"{long_name} over the horizon, {unit}")
    ax.grid(True, axis="y", alpha=0.3)
    paths = f"{n_paths:,} paths, " if n_paths else ""
    ax.set_title(f"{long_name[0].upper()}{long_name[1:]} by scenario\n({paths}common random numbers)", fontsize="medium")
    return fig


def sweep_curve(
    cmp: xr.Dataset,
    *,
    metrics: Sequence[str] = ("expected_loss", "var99"),
    ax: Axes | None = None,
    ci: float = 0.95,
) -> Figure:
    """Response curve of loss metrics along a parameter sweep, with pointwise confidence bands.

    Parameters
    ----------
    cmp : xarray.Dataset
        A sweep (:func:`stresslab.compare.sweep` with numeric values): a ``scenario``
        dimension with a ``sweep_value(scenario)`` coordinate and the ``sweep_key`` attr
        (the x-axis label), ``loss_gross`` / ``loss_net`` (scenario, path, month) and
        ``weight``. Or its :func:`stresslab.paired.compare_summary` (``value``,
        ``value_se`` along ``metric``, ``sweep_value`` kept).
    metrics : sequence of str, default ("expected_loss", "var99")
        Metrics as in :func:`scenario_comparison`: ``"expected_loss"``,
        ``"retained_loss"``, ``"var<p>"``, ``"es<p>"``; one line each, all in CNY.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; default a new figure.
    ci : float, default 0.95
        Coverage of the bands, in (0, 1).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    StresslabError
        If the Dataset has no ``scenario`` dimension or no numeric ``sweep_value``, lacks
        variables, a metric is unknown, or weights differ between scenarios.

    Notes
    -----
    Points are sorted by ``sweep_value``. Each line's y-data are the estimates in CNY
    (:func:`stresslab.results.mean_ci`, :func:`~stresslab.results.var_es`); its band is the
    pointwise interval of each scenario on its own: :func:`~stresslab.results.mean_ci`,
    :func:`~stresslab.results.var_ci` or :func:`~stresslab.results.es_ci` (an unbounded end
    leaves a gap). From a ``compare_summary`` the band is value ± z ``value_se``. The bands
    say how well each point is known; differences between points are known better (common
    random numbers): see :func:`scenario_comparison`.
    """
    metrics = list(metrics)
    if not metrics:
        raise StresslabError("metrics must name at least one metric")
    for m in metrics:
        _compare_metric(m)
    if "scenario" not in cmp.dims:
        raise StresslabError("sweep_curve needs a sweep (stresslab.compare.sweep): a Dataset with a 'scenario' dimension")
    if "sweep_value" not in cmp.coords and "sweep_value" not in cmp.data_vars:
        raise StresslabError(
            "sweep_curve needs a numeric sweep_value(scenario) coordinate, which stresslab.compare.sweep adds when every "
            "value is a number; for scenarios without one use scenario_comparison"
        )
    sweep = np.asarray(cmp["sweep_value"].values)
    if sweep.dtype.kind not in "biuf" or not np.all(np.isfinite(sweep.astype(np.float64))):
        raise StresslabError(f"sweep_value must hold finite numbers; got {sweep.tolist()!r}")
    sweep = sweep.astype(np.float64)
    order = np.argsort(sweep, kind="stable")
    fig, ax = _figure(ax)
    colors = plt.get_cmap("tab10")(np.arange(len(metrics)) % 10)
    curves = []
    n_paths = None
    for metric in metrics:
        _, values, pointwise, _, _, n_paths = _comparison_numbers(cmp, metric, ci, "sweep_curve")
        curves.append((_compare_metric(metric)[4], values[order], pointwise[order]))
    finite = [np.concatenate([v, band[np.isfinite(band)]]) for _, v, band in curves]
    scale, unit = _money_unit(*finite)
    top = max(float(np.max(f)) for f in finite)
    bottom = 0.0 if all(np.all(f >= 0) for f in finite) else min(float(np.min(f)) for f in finite)
    ceiling = bottom + (max(top, 1e-12) - bottom) * 1.08  # the axis top; unbounded bands run up to it
    unbounded = False
    for k, (long_name, v, band) in enumerate(curves):
        ax.plot(sweep[order], v, color=colors[k], marker="o", linewidth=1.8, markersize=4, label=long_name)
        high = np.where(np.isfinite(band[:, 1]), band[:, 1], ceiling)
        unbounded |= not np.all(np.isfinite(band[:, 1]))
        ax.fill_between(sweep[order], band[:, 0], high, color=colors[k], alpha=0.2, linewidth=0, label="_band")
    _money_axis(ax.yaxis, scale)
    ax.set_ylim(bottom, ceiling)
    ax.set_ylabel(f"loss over the horizon, {unit}")
    key = str(cmp.attrs.get("sweep_key", "sweep_value"))
    ax.set_xlabel(key)
    ax.xaxis.set_major_formatter(FuncFormatter(_plain_number))
    ax.grid(True, alpha=0.3)
    paths = f"{n_paths:,} paths, " if n_paths else ""
    ax.set_title(f"Response to {key}\n({paths}common random numbers)", fontsize="medium")
    note = f"bands: pointwise {_pct(ci)} CI" + ("\n(unbounded above where\nthey reach the top)" if unbounded else "")
    _legend(ax, title=note, title_fontsize="small")
    return fig


def save_figure(fig: Figure, path: str | os.PathLike[str], *, dpi: float | None = None) -> None:
    """Write a figure to a PNG file atomically.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure (e.g. returned by a plot of this module).
    path : str or os.PathLike
        Target file, ending in ``.png``; replaced if it exists.
    dpi : float, optional
        Resolution; default the figure's own ``dpi``.

    Raises
    ------
    StresslabError
        If the suffix is not ``.png``, the directory does not exist, or the figure cannot be
        drawn or written (permission denied, no space, ...): the message says why. Any
        earlier file at ``path`` is then unchanged and no temporary file is left.

    Notes
    -----
    The PNG is written to a temporary file in the target's directory, flushed to disk and
    moved onto ``path`` with :func:`os.replace`: readers see the old file or the new one,
    never a part.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise StresslabError(f"save_figure writes PNG files: the path must end in .png; got {str(path)!r} (for other formats use fig.savefig)")
    if not path.parent.is_dir():
        raise StresslabError(f"could not save the figure to {path}: the directory {path.parent} does not exist")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            fig.savefig(f, format="png", dpi=dpi if dpi is not None else "figure")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, ValueError, RuntimeError, TypeError) as exc:
        nbytes = int(np.prod(fig.get_size_inches() * (dpi or fig.dpi))) * 4
        reason = " ".join(_reason(exc, path.parent, nbytes).split())  # one line (mathtext errors span several)
        raise StresslabError(f"could not save the figure to {path}: {reason}; any earlier file there is unchanged") from exc
    finally:
        if tmp.exists():
            tmp.unlink()
