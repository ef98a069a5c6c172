"""Plots of credit-enhancement layers: who bears the loss, capacity left, exhaustion."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from stresslab.errors import StresslabError, did_you_mean
from stresslab.estimators import check_level, quantiles_by_month, var_es
from stresslab.metrics.layers import tail_weights
from stresslab.plots._common import (
    FAN_QUANTILES,
    add_legend,
    add_title,
    check_quantiles,
    fan,
    figure_of,
    match_levels,
    money_axis,
    money_text,
    money_unit,
    month_axis,
    path_weights,
    pct,
    require_layers,
    require_vars,
    var_values,
)
from stresslab.run.schema import LENDER, has_layers

_LENDER_COLOR = "#4d4d4d"


def _allocation_from_run(ds: xr.Dataset, levels: tuple[float, ...]) -> tuple[list[str], list[str], np.ndarray]:
    """Parties, bar labels and the loss each party bears at each bar, shape (bar, party).

    The ES split is the one of ``party_tail`` in :func:`stresslab.metrics.summary.summary`: the
    tail weights of :func:`stresslab.metrics.layers.tail_weights`.
    """
    require_vars(ds, ["loss_gross", "loss_net"], "loss_allocation")
    w = path_weights(ds)
    n = w.size
    if n < 2:
        raise StresslabError(f"loss_allocation needs at least 2 paths; got {n}")
    gross = var_values(ds, "loss_gross", "path", "month").sum(axis=1)
    parts = [var_values(ds, "loss_net", "path", "month").sum(axis=1)[:, None]]
    parties = [LENDER]
    if has_layers(ds):
        layers = require_layers(ds, "loss_allocation")
        require_vars(ds, ["layer_paid"], "loss_allocation")
        parts.insert(0, var_values(ds, "layer_paid", "path", "month", "layer").sum(axis=1))
        parties = layers + parties
    borne = np.column_stack(parts)  # (path, party)
    rows, labels = [w @ borne / n], ["EL"]
    for a in levels:
        var = var_es(gross, w, a)[0]
        at = w * (gross == var)  # the paths at the VaR, a sample value
        if not at.sum() > 0:  # only if every path at the VaR has weight 0
            at = (gross == var).astype(np.float64)
        rows.append(at @ borne / at.sum())
        tail = tail_weights(gross, w, var, a)
        rows.append(tail @ borne / tail.sum())
        labels += [f"VaR {pct(a)}", f"ES {pct(a)}"]
    return parties, labels, np.array(rows)


def _allocation_from_summary(ds: xr.Dataset, levels: tuple[float, ...]) -> tuple[list[str], list[str], np.ndarray]:
    parties = [str(v) for v in ds["party"].values.tolist()]
    have = [float(a) for a in ds["level"].values]
    rows, labels = [var_values(ds, "party_expected", "party")], ["EL"]
    for a, at in zip(levels, match_levels(have, levels, "levels")):
        rows.append(var_values(ds.sel(level=at), "party_tail", "party"))
        labels.append(f"ES {pct(a)}")
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
        :func:`stresslab.metrics.summary.summary` of a run with layers (``party_expected``,
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
    L (:func:`stresslab.estimators.var_es`):

    - EL: ``mean(w X_k)``; the bar adds up to the expected gross loss;
    - VaR a: ``E[X_k | L = v_a]``, the weighted mean over the paths whose loss is the VaR
      (one path unless there are ties): the Euler split of the VaR, adding up to v_a
      exactly, but resting on very few paths, so noisy;
    - ES a: the tail-conditional expectation ``E[X_k | L >= v_a]`` as
      ``sum(h X_k) / sum(h)`` with tail weights ``h = w (1{L > v_a} + beta 1{L == v_a})``,
      ``beta`` in [0, 1] chosen so that ``sum(h) = n (1 - a)``: the paths beyond the VaR
      and a fraction of those at it, as in the ES estimator
      (:func:`stresslab.metrics.layers.tail_weights`). The bar adds up to
      ``expected_shortfall`` (Acerbi-Tasche ES split into parties) and equals
      ``party_tail`` of :func:`stresslab.metrics.summary.summary`.

    Each bar's total is written above it. ``ax.containers`` holds one bar container per
    party, in stacking order (layers, then the lender at the top).
    """
    levels = tuple(check_level(a) for a in levels)
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
    fig, ax = figure_of(ax)
    x = np.arange(len(labels))
    layer_colors = plt.get_cmap("tab10")(np.arange(len(parties)) % 10)
    bottom = np.zeros(len(labels))
    for k, party in enumerate(parties):
        color = _LENDER_COLOR if party == LENDER else layer_colors[k]
        ax.bar(x, borne[:, k], bottom=bottom, width=0.6, color=color, label=party, edgecolor="white", linewidth=0.5)
        bottom = bottom + borne[:, k]
    scale, unit = money_unit(bottom)
    for xi, total in zip(x, bottom):
        ax.annotate(money_text(total, scale, unit), (xi, total), xytext=(0, 3), textcoords="offset points",
                    ha="center", va="bottom", fontsize="small")
    ax.set_xticks(x, labels)
    ax.set_xlabel("statistic of the gross loss over the horizon")
    ax.set_ylim(0.0, max(float(bottom.max()), 1e-12) * 1.12)
    money_axis(ax.yaxis, scale)
    ax.set_ylabel(f"loss borne over the horizon, {unit}")
    ax.grid(True, axis="y", alpha=0.3)
    paths = f" ({n_paths:,} paths)" if n_paths else ""
    add_title(ax, ds, f"Who bears the gross loss{paths}")
    add_legend(ax, reverse=True, title="party")
    return fig


def capacity_fan(
    ds: xr.Dataset,
    *,
    layer: str,
    quantiles: Sequence[float] = FAN_QUANTILES,
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
    Quantiles per month are :func:`stresslab.estimators.weighted_quantile`, the mean is
    ``mean(w c)``. The layer's initial capacity (coordinate ``layer_capacity``, when
    present) is drawn as a dotted line.
    """
    layers = require_layers(ds, "capacity_fan")
    if str(layer) not in layers:
        raise StresslabError(f"no layer {layer!r}; the layers are {', '.join(map(repr, layers))}{did_you_mean(layer, layers)}")
    require_vars(ds, ["layer_capacity_left"], "capacity_fan")
    qs = check_quantiles(quantiles)
    j = layers.index(str(layer))
    left = var_values(ds, "layer_capacity_left", "path", "month", "layer")[:, :, j]
    if np.any(np.isnan(left)):
        raise StresslabError("results variable layer_capacity_left holds NaN values")
    if np.any(np.isinf(left)):
        raise StresslabError(f"layer {layer!r} has unlimited capacity (inf): there is no capacity to draw")
    w = path_weights(ds)
    values = quantiles_by_month(left, w, qs)
    fig, ax = figure_of(ax)
    months = ds["month"].values
    fan(ax, months, qs, values, "#238b45")
    ax.plot(months, w @ left / w.size, color="black", linestyle="--", linewidth=1.5, label="mean")
    tops = [left]
    if "layer_capacity" in ds.coords:
        capacity = float(ds["layer_capacity"].values[j])
        if np.isfinite(capacity):
            ax.axhline(capacity, color="grey", linestyle=":", linewidth=1.2, label="capacity")
            tops.append(np.array([capacity]))
    scale, unit = money_unit(*tops)
    money_axis(ax.yaxis, scale)
    ax.set_ylim(bottom=0.0)
    ax.set_ylabel(f"capacity left at month end, {unit}")
    month_axis(ax, months)
    ax.grid(True, alpha=0.3)
    add_title(ax, ds, f"Capacity left of layer {layer} ({w.size:,} paths)")
    add_legend(ax)
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
    layers = require_layers(ds, "exhaustion_curve")
    if "layer_capacity_left" in ds.data_vars:
        left = var_values(ds, "layer_capacity_left", "path", "month", "layer")
        w = path_weights(ds)
        exhausted = np.logical_or.accumulate(left <= 0.0, axis=1)
        prob = np.einsum("p,pml->lm", w, exhausted.astype(np.float64)) / w.size
        unlimited = np.all(np.isinf(left), axis=(0, 1))
        n_paths = w.size
    elif "layer_exhaustion_probability" in ds.data_vars:
        prob = var_values(ds, "layer_exhaustion_probability", "layer", "month")
        capacity = ds["layer_capacity"].values if "layer_capacity" in ds.coords else np.zeros(len(layers))
        unlimited = np.isinf(np.asarray(capacity, dtype=np.float64))
        n_paths = int(ds["n_paths"]) if "n_paths" in ds.data_vars else None
    else:
        raise StresslabError(
            "exhaustion_curve needs a run (layer_capacity_left) or its summary (layer_exhaustion_probability); "
            "the Dataset has neither"
        )
    fig, ax = figure_of(ax)
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
    month_axis(ax, months)
    ax.grid(True, alpha=0.3)
    paths = f" ({n_paths:,} paths)" if n_paths else ""
    add_title(ax, ds, f"Exhaustion of layer capacity{paths}")
    add_legend(ax, title="layer")
    return fig

