"""Plots of scenarios run on common random numbers: one bar per scenario, response curves of a sweep."""

from __future__ import annotations

import re
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from stresslab.errors import StresslabError, did_you_mean
from stresslab.estimators import (
    check_level,
    check_weights,
    es_ci,
    mean_ci,
    paths_needed,
    var_ci,
    var_es,
    z_value,
)
from stresslab.metrics.paired import paired_intervals, tail_replicates
from stresslab.plots._common import add_legend, figure_of, money_axis, money_unit, pct

# Metrics of scenario_comparison and sweep_curve: the horizon loss of every path, reduced by
# the estimators of stresslab.estimators. "var<p>" / "es<p>" are VaR / ES at level p % of the
# gross loss (var99, es99.9), as in stresslab.metrics.paired.compare_summary.
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
            f"{plot} needs runs stacked along a 'scenario' dimension (stresslab.run.compare.compare or sweep); "
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
    check_weights(w)
    return labels, totals, w


def _point_estimates(kind: str, level: float | None, x: np.ndarray, w: np.ndarray, ci: float) -> tuple[float, float, float]:
    """Estimate and pointwise interval of one scenario: mean_ci, var_es + var_ci or var_es + es_ci."""
    if kind == "mean":
        return mean_ci(x, w, ci)
    var, es = var_es(x, w, level)  # type: ignore[arg-type]
    if kind == "var":
        return (var, *var_ci(x, w, level, ci))  # type: ignore[arg-type]
    return (es, *es_ci(x, w, level, ci))  # type: ignore[arg-type]


def _paired_differences(kind: str, level: float | None, x: np.ndarray, w: np.ndarray, ci: float) -> np.ndarray:
    """(scenario, 2) intervals of the paired differences from the first scenario, by the functions
    of :func:`stresslab.metrics.paired.compare_summary`: the same numbers as its ``difference_ci``.

    Means: :func:`stresslab.estimators.mean_ci` of the path-wise difference. VaR and ES: the paired
    bootstrap (:func:`stresslab.metrics.paired.tail_replicates` with compare_summary's default
    replicates and seed) and :func:`stresslab.metrics.paired.paired_intervals`.
    """
    if kind == "mean":
        out = np.array([mean_ci(x[i] - x[0], w, ci)[1:] for i in range(x.shape[0])])
    else:
        col = 0 if kind == "var" else 1
        value = np.array([[var_es(row, w, level)[col]] for row in x])  # type: ignore[arg-type]
        reps = np.stack([tail_replicates(row, w, (level,))[:, col : col + 1] for row in x])  # type: ignore[arg-type]
        needed = np.array([[paths_needed(row, w, level, ci)] for row in x])  # type: ignore[arg-type]
        out = paired_intervals(value, reps, 0, ci, needed, w.size)[2][:, 0]  # NaN where a run cannot bound it
    out[0] = 0.0
    return out


def _comparison_numbers(
    cmp: xr.Dataset, metric: str, ci: float, plot: str
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, str, int | None]:
    """Labels, values (scenario,), pointwise intervals (scenario, 2), paired difference intervals vs
    the first (or the summary's baseline) scenario (scenario, 2), the baseline's label and n_paths."""
    kind, name, level, label, _ = _compare_metric(metric)
    ci = check_level(ci, "ci")
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
        z = z_value(ci)
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
    value, pointwise = np.empty(len(labels)), np.empty((len(labels), 2))
    for i in range(len(labels)):
        value[i], pointwise[i, 0], pointwise[i, 1] = _point_estimates(kind, level, x[i], w, ci)
    return labels, value, pointwise, _paired_differences(kind, level, x, w, ci), labels[0], w.size


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
        (:func:`stresslab.run.compare.compare` or :func:`stresslab.run.compare.sweep`):
        ``loss_gross`` / ``loss_net`` (scenario, path, month) and ``weight`` (the same in
        every scenario) are used. Or the output of :func:`stresslab.metrics.paired.compare_summary`
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
    Bar heights are the scenario's estimate (:func:`stresslab.estimators.mean_ci`,
    :func:`~stresslab.estimators.var_es`), in CNY; the dashed line is the baseline (the first
    scenario). The error bar of scenario b spans baseline value + the paired interval of
    the difference ``m_b - m_a``, so it excludes the dashed line when the difference is
    significant; the text above the bar gives the difference and its interval. With path
    losses L_a, L_b of the same paths and weights w, n paths, z = Φ⁻¹((1 + ci)/2):

    - expected / retained loss: ``mean(w (L_b - L_a))`` ± z sd(w (L_b - L_a)) / √n;
    - VaR a, ES a: d ± z se with se the sd of the paired-bootstrap replicate differences
      (:func:`stresslab.metrics.paired.tail_replicates`, :func:`stresslab.metrics.paired.paired_intervals`),
      with compare_summary's default replicates and seed: the plot of a comparison shows
      the interval that ``compare_summary`` of the same comparison prints.

    ``ax.containers`` holds the bars (one container, scenario order) and the error bars
    (baseline excluded); ``bar.get_height()`` is the value in CNY. Tail intervals rest on
    the n (1 - a) tail paths: with few of them they are rough.
    """
    labels, value, _, paired, base, n_paths = _comparison_numbers(cmp, metric, ci, "scenario_comparison")
    _, _, _, _, long_name = _compare_metric(metric)
    b = labels.index(base) if base in labels else 0
    fig, ax = figure_of(ax)
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
    scale, unit = money_unit(tops)
    top = float(np.max(tops)) if tops.size else 0.0
    for i in range(len(labels)):
        if i == b:
            text = "baseline"
        elif not finite[i]:  # a VaR / ES the runs cannot bound from above (paths_needed)
            text = f"Δ {_signed(value[i] - value[b], scale)}\n[no interval: too few paths]"
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
               label=f"paired {pct(ci)} CI of the\ndifference (Δ, {unit})"),
    ]
    ax.legend(handles=handles, frameon=True, fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    long_labels = max((len(s) for s in labels), default=0) > 14 or len(labels) > 5
    ax.set_xticks(x, labels, rotation=25 if long_labels else 0, ha="right" if long_labels else "center",
                  rotation_mode="anchor", fontsize="small")
    ax.set_xlabel("scenario")
    money_axis(ax.yaxis, scale)
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
        A sweep (:func:`stresslab.run.compare.sweep` with numeric values): a ``scenario``
        dimension with a ``sweep_value(scenario)`` coordinate and the ``sweep_key`` attr
        (the x-axis label), ``loss_gross`` / ``loss_net`` (scenario, path, month) and
        ``weight``. Or its :func:`stresslab.metrics.paired.compare_summary` (``value``,
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
    (:func:`stresslab.estimators.mean_ci`, :func:`~stresslab.estimators.var_es`); its band is the
    pointwise interval of each scenario on its own: :func:`~stresslab.estimators.mean_ci`,
    :func:`~stresslab.estimators.var_ci` or :func:`~stresslab.estimators.es_ci` (an unbounded end
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
        raise StresslabError("sweep_curve needs a sweep (stresslab.run.compare.sweep): a Dataset with a 'scenario' dimension")
    if "sweep_value" not in cmp.coords and "sweep_value" not in cmp.data_vars:
        raise StresslabError(
            "sweep_curve needs a numeric sweep_value(scenario) coordinate, which stresslab.run.compare.sweep adds when every "
            "value is a number; for scenarios without one use scenario_comparison"
        )
    sweep = np.asarray(cmp["sweep_value"].values)
    if sweep.dtype.kind not in "biuf" or not np.all(np.isfinite(sweep.astype(np.float64))):
        raise StresslabError(f"sweep_value must hold finite numbers; got {sweep.tolist()!r}")
    sweep = sweep.astype(np.float64)
    order = np.argsort(sweep, kind="stable")
    fig, ax = figure_of(ax)
    colors = plt.get_cmap("tab10")(np.arange(len(metrics)) % 10)
    curves = []
    n_paths = None
    for metric in metrics:
        _, values, pointwise, _, _, n_paths = _comparison_numbers(cmp, metric, ci, "sweep_curve")
        curves.append((_compare_metric(metric)[4], values[order], pointwise[order]))
    finite = [np.concatenate([v, band[np.isfinite(band)]]) for _, v, band in curves]
    scale, unit = money_unit(*finite)
    top = max(float(np.max(f)) for f in finite)
    bottom = 0.0 if all(np.all(f >= 0) for f in finite) else min(float(np.min(f)) for f in finite)
    ceiling = bottom + (max(top, 1e-12) - bottom) * 1.08  # the axis top; unbounded bands run up to it
    unbounded = False
    for k, (long_name, v, band) in enumerate(curves):
        ax.plot(sweep[order], v, color=colors[k], marker="o", linewidth=1.8, markersize=4, label=long_name)
        high = np.where(np.isfinite(band[:, 1]), band[:, 1], ceiling)
        unbounded |= not np.all(np.isfinite(band[:, 1]))
        ax.fill_between(sweep[order], band[:, 0], high, color=colors[k], alpha=0.2, linewidth=0, label="_band")
    money_axis(ax.yaxis, scale)
    ax.set_ylim(bottom, ceiling)
    ax.set_ylabel(f"loss over the horizon, {unit}")
    key = str(cmp.attrs.get("sweep_key", "sweep_value"))
    ax.set_xlabel(key)
    ax.xaxis.set_major_formatter(FuncFormatter(_plain_number))
    ax.grid(True, alpha=0.3)
    paths = f"{n_paths:,} paths, " if n_paths else ""
    ax.set_title(f"Response to {key}\n({paths}common random numbers)", fontsize="medium")
    note = f"bands: pointwise {pct(ci)} CI" + ("\n(unbounded above where\nthey reach the top)" if unbounded else "")
    add_legend(ax, title=note, title_fontsize="small")
    return fig

