"""What the plots of :mod:`stresslab.plots` share: figure and axes, input checks, money axes, legends.

The functions here are the building blocks of the plot modules of this package (and of the
policy fans of :mod:`stresslab.report.figures`); they are not part of the public plotting API
(``stresslab.plots.__all__``). Money is in CNY: :func:`money_unit` picks a readable unit
(CNY, CNY k, CNY m or CNY bn) and :func:`money_axis` scales only the tick labels, never the
data.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from stresslab.errors import StresslabError, did_you_mean
from stresslab.estimators import check_level, check_weights
from stresslab.run.schema import has_layers

#: Quantile levels of the fan charts (dpd30_fan, capacity_fan) by default.
FAN_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
_UNITS = ((1e9, "CNY bn"), (1e6, "CNY m"), (1e3, "CNY k"))


# ----------------------------------------------------------------------------- figure and input
def figure_of(ax: Axes | None) -> tuple[Figure, Axes]:
    """The figure and axes to draw on: ``ax`` and its (root) figure, or a new figure."""
    if ax is None:
        fig, ax = plt.subplots(layout="constrained")
        return fig, ax
    fig = ax.figure
    while not isinstance(fig, Figure):  # a SubFigure: climb to the Figure
        fig = fig.figure
    return fig, ax


def check_choice(what: str, value: str, allowed: Sequence[str]) -> str:
    """``value`` if it is one of ``allowed``; else an error naming ``what``, the choices and the closest one."""
    if value not in allowed:
        raise StresslabError(
            f"{what} must be one of {', '.join(map(repr, allowed))}; got {value!r}{did_you_mean(value, allowed)}"
        )
    return value


def require_vars(ds: xr.Dataset, names: Sequence[str], plot: str) -> None:
    """Check that ``ds`` has the variables ``names`` and that none has a ``scenario`` dim; ``plot`` names the caller."""
    missing = [name for name in names if name not in ds.data_vars]
    if missing:
        hint = " (this is a summary: pass the run itself)" if "expected_loss" in ds.data_vars else ""
        raise StresslabError(f"{plot} needs the variable(s) {', '.join(missing)}, which the Dataset lacks{hint}")
    for name in names:
        if "scenario" in ds[name].dims:
            raise StresslabError(f"{plot} draws one scenario at a time; select one with ds.sel(scenario=...)")


def path_weights(ds: xr.Dataset) -> np.ndarray:
    """The path weights (ones if the Dataset has none), checked."""
    if "weight" in ds.data_vars:
        w = np.asarray(ds["weight"].transpose("path").values, dtype=np.float64)
    else:
        w = np.ones(ds.sizes["path"])
    if w.size < 1:
        raise StresslabError("the run has no paths")
    check_weights(w)
    return w


def var_values(ds: xr.Dataset, name: str, *dims: str) -> np.ndarray:
    """``ds[name]`` as float64 with its dims in this order; an error if they differ."""
    da = ds[name]
    if set(da.dims) != set(dims):
        raise StresslabError(f"results variable {name} must have dims {dims}; got {da.dims}")
    return np.asarray(da.transpose(*dims).values, dtype=np.float64)


def match_levels(have: Sequence[float], wanted: Sequence[float], what: str) -> list[float]:
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


def check_quantiles(quantiles: Sequence[float]) -> tuple[float, ...]:
    """The quantile levels of a fan, each checked to lie in (0, 1), sorted and without repeats; at least one."""
    qs = tuple(sorted({check_level(q, "each of quantiles") for q in quantiles}))
    if not qs:
        raise StresslabError("quantiles must name at least one level")
    return qs


def require_layers(ds: xr.Dataset, plot: str) -> list[str]:
    """The layer names of a run with credit-enhancement layers; an error if it has none."""
    if not has_layers(ds):
        raise StresslabError(
            f"{plot} needs credit-enhancement layers, and the Dataset has no 'layer' dimension "
            "(the scenario has no [[layers]]); without layers the lender bears the whole loss"
        )
    return [str(v) for v in ds["layer"].values.tolist()]


# ----------------------------------------------------------------------------- money and text
def money_unit(*values: float | np.ndarray) -> tuple[float, str]:
    """Scale and unit label (CNY, CNY k, CNY m, CNY bn) for values of this size."""
    finite = [np.abs(np.asarray(v, dtype=np.float64)) for v in values]
    top = max((float(np.max(v[np.isfinite(v)])) for v in finite if np.any(np.isfinite(v))), default=0.0)
    for scale, unit in _UNITS:
        if top >= scale:
            return scale, unit
    return 1.0, "CNY"


def money_axis(axis: Axis, scale: float) -> None:
    """Label a CNY axis in units of ``scale`` (the data stay in CNY)."""
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / scale:,.6g}"))


def money_text(v: float, scale: float, unit: str) -> str:
    """An amount in the unit of :func:`money_unit`, 3 significant digits (``1.23 CNY m``)."""
    return f"{v / scale:,.3g} {unit}" if np.isfinite(v) else str(v)


def pct(a: float) -> str:
    """A level or probability in percent: 0.99 -> ``99%``."""
    return f"{100 * a:g}%"


# ----------------------------------------------------------------------------- axes
def add_legend(ax: Axes, loc: str | None = None, reverse: bool = False, **kwargs: object) -> None:
    """Framed legend: outside the axes on the right, or inside at ``loc``; ``reverse`` lists the entries bottom-up."""
    handles, labels = ax.get_legend_handles_labels()
    if reverse:  # a stack: its top first
        handles, labels = handles[::-1], labels[::-1]
    where = {"loc": loc} if loc else {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0}
    ax.legend(handles, labels, frameon=True, fontsize="small", **where, **kwargs)  # type: ignore[arg-type]


def add_title(ax: Axes, ds: xr.Dataset, what: str) -> None:
    """Title ``what``, with the run's scenario name on a second line when it has one."""
    name = ds.attrs.get("scenario_name")
    ax.set_title(what if name is None else f"{what}\nscenario {name}", fontsize="medium")


def month_axis(ax: Axes, months: np.ndarray) -> None:
    """An x-axis of months: integer ticks, from the first month to the last."""
    ax.set_xlabel("month")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if months.size > 1:
        ax.set_xlim(months[0], months[-1])


def fan(ax: Axes, months: np.ndarray, qs: tuple[float, ...], values: np.ndarray, color: str) -> None:
    """Bands between the i-th lowest and the i-th highest quantile; the middle one as a line.

    ``values`` has shape (month, quantile), the quantiles ``qs`` sorted
    (:func:`stresslab.estimators.quantiles_by_month`).
    """
    n = len(qs)
    for i in range(n // 2):
        lo, hi = qs[i], qs[n - 1 - i]
        alpha = 0.2 + 0.45 * i / max(n // 2 - 1, 1) if n // 2 > 1 else 0.35
        ax.fill_between(months, values[:, i], values[:, n - 1 - i], color=color, alpha=alpha, linewidth=0,
                        label=f"{pct(lo)}–{pct(hi)}")
    if n % 2:
        mid = qs[n // 2]
        ax.plot(months, values[:, n // 2], color=color, linewidth=2, label="median" if mid == 0.5 else f"quantile {pct(mid)}")
