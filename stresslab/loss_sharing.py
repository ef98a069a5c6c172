"""Who bears the loss: a run's loss split between credit-enhancement layers and the lender.

With credit-enhancement layers (MODEL.md §5) a run's Dataset has a ``layer`` dimension and,
per path, month and layer, the loss each layer bears (``layer_paid``), its capacity left
and its fee income; ``loss_net`` is the lender's retained loss, so that per path and month
``loss_gross = sum over layers of layer_paid + loss_net``. This module reduces those over
``path`` into the metrics that :func:`stresslab.results.summary` adds when layers are
present, and formats them for :func:`stresslab.results.format_summary`.

Every estimator honours the per-path likelihood ratio ``weight`` like the rest of
:mod:`stresslab.results`: E[h] is estimated by ``mean(w * h)``. docs/metrics.md states the
formulas.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from stresslab.errors import StresslabError
from stresslab.results import TAIL_TOL, format_money, mean_ci, quantile_of_sorted, sort_losses

__all__ = ["LENDER", "has_layers", "validate_layers", "tail_weights", "layer_metrics", "format_layers"]

LENDER = "lender"
_LAYER_VARS = {
    "layer_paid": ("path", "month", "layer"),
    "layer_capacity_left": ("path", "month", "layer"),
    "layer_fee": ("path", "month", "layer"),
    "layer_failed": ("path", "layer"),
}
# loss_gross and layer_paid summed over layers + loss_net agree within this, relative to the
# larger of |gross| and the parts' absolute sum, plus 1e-6 CNY: float rounding only.
_SUM_RTOL, _SUM_ATOL = 1e-9, 1e-6


def has_layers(ds: xr.Dataset) -> bool:
    """True when ``ds`` has a non-empty ``layer`` dimension (a scenario with layers)."""
    return ds.sizes.get("layer", 0) > 0


def _values(ds: xr.Dataset, name: str) -> np.ndarray:
    return np.asarray(ds[name].transpose(*_LAYER_VARS.get(name, ("path", "month"))).values, dtype=np.float64)


def validate_layers(ds: xr.Dataset) -> None:
    """Check the layer variables of a run; raise :class:`StresslabError` saying what is wrong.

    Checks: the variables of ``_LAYER_VARS`` exist with their dims; layer names are unique
    and none is "lender"; payouts and fees are finite; capacity left is >= 0 or +inf (never
    NaN); ``layer_failed`` is 0 or 1; and, for every path and month,
    ``loss_gross == sum_layers layer_paid + loss_net`` up to float rounding.
    """
    missing = [name for name in _LAYER_VARS if name not in ds.data_vars]
    if missing:
        raise StresslabError(
            f"results have a layer dimension but lack the variable(s) {', '.join(missing)}; "
            f"a summary with layers needs {', '.join(_LAYER_VARS)}"
        )
    for name, dims in _LAYER_VARS.items():
        if set(ds[name].dims) != set(dims):
            raise StresslabError(f"results variable {name} must have dims {dims}; got {ds[name].dims}")
    names = [str(v) for v in ds["layer"].values.tolist()]
    duplicates = sorted({v for v in names if names.count(v) > 1} | ({LENDER} & set(names)))
    if duplicates:
        raise StresslabError(
            f"layer names must be unique and not {LENDER!r} (the lender is a party of its own); "
            f"got {', '.join(map(repr, duplicates))} in {names}"
        )
    for name in ("layer_paid", "layer_fee"):
        if not np.all(np.isfinite(ds[name].values)):
            raise StresslabError(f"results variable {name} holds NaN or infinite values")
    left = _values(ds, "layer_capacity_left")
    if np.any(np.isnan(left) | (left < 0)):
        raise StresslabError("results variable layer_capacity_left must be >= 0 or inf (unlimited); it holds NaN or negative values")
    failed = np.asarray(ds["layer_failed"].values)
    if not np.all((failed == 0) | (failed == 1)):
        raise StresslabError("results variable layer_failed must be 0 or 1")
    gross, net, paid = _values(ds, "loss_gross"), _values(ds, "loss_net"), _values(ds, "layer_paid")
    parts = paid.sum(axis=2) + net
    scale = np.maximum(np.abs(gross), np.abs(paid).sum(axis=2) + np.abs(net))
    bad = np.abs(gross - parts) > _SUM_RTOL * scale + _SUM_ATOL
    if np.any(bad):
        p, t = (int(i[0]) for i in np.nonzero(bad))
        raise StresslabError(
            f"loss_gross must equal the sum of layer_paid over layers plus loss_net; it does not in "
            f"{np.count_nonzero(bad)} path-months (first: path {ds['path'].values[p]}, month "
            f"{ds['month'].values[t]}: gross {gross[p, t]!r}, parts {parts[p, t]!r})"
        )


def tail_weights(x: np.ndarray, w: np.ndarray, var: float, level: float) -> np.ndarray:
    """Per-path tail weights ``h = w 1{x > var} + beta w 1{x == var}``, summing to n (1 - level).

    Parameters
    ----------
    x, w : ndarray of shape (n_paths,)
        Losses (e.g. the gross horizon loss) and path weights, float64.
    var : float
        The VaR of ``x`` at ``level``, a sample value (:func:`stresslab.results.var_es`).
    level : float
        The tail level a, in (0, 1).

    Returns
    -------
    ndarray of shape (n_paths,)
        ``h``: ``sum(h X) / sum(h)`` is the mean of X over the Acerbi-Tasche tail of ``x``
        (``party_tail`` of :func:`layer_metrics`, the ES bar of
        :func:`stresslab.plots.loss_allocation`).

    Notes
    -----
    The paths tied at the VaR share the weight the tail still needs,
    ``need = n (1 - level) - sum(w 1{x > var})``, in proportion to their weights:
    ``beta = need / sum(w 1{x == var})``, in [0, 1] unless the VaR is the smallest loss and
    the weights sum to less than n (1 - level); if the tied paths all have weight 0 they
    share ``need`` equally; ``need`` < 0 (the 1e-12 slack of the VaR) counts as 0. Every
    tied path gets the same fraction, so the tail does not depend on the order of the paths.
    """
    over, at = w * (x > var), x == var
    need = max(x.size * (1.0 - level) - over.sum(), 0.0)
    tied = float(w @ at)
    return over + (need / tied * w * at if tied > 0 else need / at.sum() * at)


def layer_metrics(ds: xr.Dataset, levels: Sequence[float], ci: float) -> tuple[dict[str, xr.Variable], dict]:
    """Loss allocation and layer metrics of a run with layers (validated by :func:`validate_layers`).

    Parameters
    ----------
    ds : xarray.Dataset
        A run with a ``layer`` dimension (see the module docstring).
    levels : sequence of float
        Tail levels a, each in (0, 1).
    ci : float
        Coverage of the confidence intervals.

    Returns
    -------
    (dict, dict)
        Data variables and coordinates (``party``, ``layer`` with ``layer_kind`` and
        ``layer_capacity`` when the run has them) to merge into the summary.

    Notes
    -----
    With L the gross loss over the horizon, X_k the loss party k bears over it (a layer's
    ``layer_paid`` summed over months; the lender's ``loss_net``), n paths and weights w:

    - ``party_expected[k] = mean(w X_k)``, interval as :func:`stresslab.results.mean_ci`;
    - ``party_tail[k, a] = sum(h_a X_k) / sum(h_a)`` with the tail weights
      ``h_a = w (1{L > v_a} + beta_a 1{L == v_a})``, v_a the VaR of L at level a (the same
      sample value as ``value_at_risk``) and ``beta_a`` (in [0, 1] but for degenerate
      weights) the fraction of the paths tied at v_a that makes ``sum(h_a) = n (1 - a)``
      (see :func:`tail_weights`). As h_a depends on L only, the parts add up to
      ``sum(h_a L) / sum(h_a) = v_a + mean(w (L - v_a)^+) / (1 - a)``, which is
      ``expected_shortfall`` (gross, horizon) up to float rounding: the Acerbi-Tasche ES
      split into parties, each tied path counted with the same fraction (the tail set of
      :func:`stresslab.contributions.es_contributions` too);
    - shares: those divided by ``mean(w L)`` and by the gross tail mean (NaN when 0);
    - exhaustion by month t: ``mean(w 1{min_{s <= t} capacity_left_s == 0})``; the median
      month of first exhaustion is the smallest month m with
      ``P_w(first <= m) >= P_w(first <= T) / 2`` (the lower weighted median; NaN when no
      path with positive weight exhausts the layer).
    """
    w = np.asarray(ds["weight"].values, dtype=np.float64)
    n = w.size
    levels = tuple(float(a) for a in levels)
    month = ds["month"].values
    layers = [str(v) for v in ds["layer"].values.tolist()]
    party = layers + [LENDER]

    gross = _values(ds, "loss_gross").sum(axis=1)
    paid = _values(ds, "layer_paid").sum(axis=1)  # (path, layer)
    borne = np.column_stack([paid, _values(ds, "loss_net").sum(axis=1)])  # (path, party)
    expected = w @ borne / n
    expected_ci = np.array([mean_ci(borne[:, k], w, ci)[1:] for k in range(len(party))])
    gross_expected = float(w @ gross) / n

    xs, above = sort_losses(gross, w)
    tail = np.empty((len(party), len(levels)))
    gross_tail = np.empty(len(levels))
    paid_var = np.empty((len(layers), len(levels)))
    sorted_paid = [sort_losses(paid[:, j], w) for j in range(len(layers))]
    for k, level in enumerate(levels):
        h = tail_weights(gross, w, quantile_of_sorted(xs, above, 1.0 - level), level)
        tail[:, k], gross_tail[k] = h @ borne / h.sum(), h @ gross / h.sum()  # sum(h) = n (1 - level) > 0
        paid_var[:, k] = [quantile_of_sorted(*sp, 1.0 - level) for sp in sorted_paid]

    hit = _values(ds, "layer_capacity_left") <= 0.0  # (path, month, layer)
    ever, first = hit.any(axis=1), hit.argmax(axis=1)  # (path, layer): exhausted at all; first month index
    by_month = np.array(  # (layer, month): weight exhausted by each month
        [np.cumsum(np.bincount(first[ever[:, j], j], weights=w[ever[:, j]], minlength=month.size))
         for j in range(len(layers))]
    ).reshape(len(layers), month.size)
    median = np.full(len(layers), np.nan)
    for j, curve in enumerate(by_month):
        if curve[-1] > 0:
            median[j] = month[int(np.argmax(curve >= curve[-1] * (0.5 - TAIL_TOL)))]  # relative rounding slack
    failed = np.asarray(ds["layer_failed"].transpose("path", "layer").values, dtype=np.float64)
    failure = np.array([mean_ci(failed[:, j], w, ci) for j in range(len(layers))])
    fees = w @ _values(ds, "layer_fee").sum(axis=1) / n

    def share(values: np.ndarray, total: np.ndarray | float) -> np.ndarray:
        return np.divide(values, total, out=np.full(np.shape(values), np.nan), where=np.asarray(total) != 0)

    pct = f"{100 * ci:g}%"

    def var(dims: tuple[str, ...], values: np.ndarray, long_name: str, units: str = "CNY") -> xr.Variable:
        return xr.Variable(dims, values, {"long_name": long_name, "units": units})

    tail_of = "in the tail of the gross horizon loss beyond its VaR (its ES split into parties)"
    data = {
        "party_expected": var(("party",), expected, "expected loss borne over the horizon"),
        "party_expected_ci": var(("party", "bound"), expected_ci, f"{pct} Monte Carlo confidence interval of the expected loss borne"),
        "party_tail": var(("party", "level"), tail, f"mean loss borne {tail_of}"),
        "party_share_expected": var(("party",), share(expected, gross_expected), "share of the expected gross loss borne", "1"),
        "party_share_tail": var(("party", "level"), share(tail, gross_tail), "share of the gross tail mean borne", "1"),
        "layer_exhaustion_probability": var(
            ("layer", "month"), by_month / n, "probability that the capacity left has reached 0 by the month", "1"
        ),
        "layer_exhaustion_median_month": var(
            ("layer",), median, "median month of first exhaustion, given exhaustion (NaN if never)", "month"
        ),
        "layer_failure_probability": var(("layer",), failure[:, 0], "probability that the provider fails within the horizon", "1"),
        "layer_failure_probability_ci": var(
            ("layer", "bound"), failure[:, 1:], f"{pct} Monte Carlo confidence interval of the failure probability", "1"
        ),
        "layer_fee_expected": var(("layer",), fees, "expected fee income of the provider over the horizon"),
        "layer_paid_var": var(("layer", "level"), paid_var, "quantile at the level of the layer's total payout over the horizon"),
    }
    coords: dict = {
        "party": ("party", np.array(party), {"long_name": "who bears the loss: the layers in order, then the lender"}),
        "layer": ("layer", np.array(layers), dict(ds["layer"].attrs) or {"long_name": "credit enhancement layer"}),
    }
    defaults = {
        "layer_kind": {"long_name": "kind of layer"},
        "layer_capacity": {"long_name": "aggregate capacity (inf = unlimited)", "units": "CNY"},
    }
    for name, attrs in defaults.items():
        if name in ds.coords:
            coords[name] = ("layer", ds[name].values, dict(ds[name].attrs) or attrs)
    return data, coords


# ----------------------------------------------------------------------------- terminal
def _pct(v: float) -> str:
    return f"{100 * v:.1f}%" if np.isfinite(v) else "-"


def _capacity(v: float) -> str:
    return "unlimited" if v == np.inf else format_money(v)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Rows of cells as text lines: the first column left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(r: list[str]) -> str:
        return "  " + f"{r[0]:<{widths[0]}}" + "".join(f"{c:>{wd + 3}}" for c, wd in zip(r[1:], widths[1:]))

    return [line(r) for r in [header, *rows]]


def format_layers(s: xr.Dataset) -> list[str]:
    """Lines of the "Who bears the loss" and layer tables of a summary with ``party``/``layer``."""
    levels = s["level"].values
    parties = [str(p) for p in s["party"].values.tolist()]
    header = ["party", "expected"] + [f"tail {100 * a:g}%" for a in levels]
    rows = []
    for p in parties:
        cells = [f"{format_money(float(s['party_expected'].sel(party=p)))} {_pct(float(s['party_share_expected'].sel(party=p)))}"]
        cells += [f"{format_money(float(s['party_tail'].sel(party=p, level=a)))} {_pct(float(s['party_share_tail'].sel(party=p, level=a)))}"
                  for a in levels]
        rows.append([p] + cells)
    gross_expected = float(s["expected_loss"].sel(measure="gross", window="horizon"))
    gross_es = s["expected_shortfall"].sel(measure="gross", window="horizon")
    rows.append(["gross", f"{format_money(gross_expected)} 100.0%"] + [f"{format_money(float(gross_es.sel(level=a)))} 100.0%" for a in levels])
    lines = ["", "Who bears the loss over the horizon, CNY and % of gross",
             "  (tail a%: the gross ES a% split into the loss each party bears in the tail beyond VaR a%)"]
    lines += _table(header, rows)

    months = s["month"].values
    last = int(months[-1])
    header = ["layer", "kind", "capacity", f"exhausted by month {last}", "by month 12", "median month", "failure", "fees"]
    rows = []
    for layer in s["layer"].values.tolist():
        at = s.sel(layer=layer)
        exh = at["layer_exhaustion_probability"]
        median = float(at["layer_exhaustion_median_month"])
        rows.append([
            str(layer),
            str(at["layer_kind"].values) if "layer_kind" in at.coords else "-",
            _capacity(float(at["layer_capacity"])) if "layer_capacity" in at.coords else "-",
            _pct(float(exh.sel(month=last))),
            _pct(float(exh.sel(month=12))) if 12 in months else "-",
            f"{median:g}" if np.isfinite(median) else "never",
            _pct(float(at["layer_failure_probability"])),
            format_money(float(at["layer_fee_expected"])),
        ])
    lines += ["", "Credit enhancement layers (probabilities; fees: expected income over the horizon, CNY)"]
    return lines + _table(header, rows)
