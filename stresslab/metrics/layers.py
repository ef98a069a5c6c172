"""Who bears which loss: per-layer metrics of a run with credit-enhancement layers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from stresslab.estimators import TAIL_TOL, mean_ci, quantile_of_sorted, sort_losses
from stresslab.run.schema import LENDER, variable_values

__all__ = ["tail_weights", "layer_metrics"]


def tail_weights(x: np.ndarray, w: np.ndarray, var: float, level: float) -> np.ndarray:
    """Per-path tail weights ``h = w 1{x > var} + beta w 1{x == var}``, summing to n (1 - level).

    Parameters
    ----------
    x, w : ndarray of shape (n_paths,)
        Losses (e.g. the gross horizon loss) and path weights, float64.
    var : float
        The VaR of ``x`` at ``level``, a sample value (:func:`stresslab.estimators.var_es`).
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

    - ``party_expected[k] = mean(w X_k)``, interval as :func:`stresslab.estimators.mean_ci`;
    - ``party_tail[k, a] = sum(h_a X_k) / sum(h_a)`` with the tail weights
      ``h_a = w (1{L > v_a} + beta_a 1{L == v_a})``, v_a the VaR of L at level a (the same
      sample value as ``value_at_risk``) and ``beta_a`` (in [0, 1] but for degenerate
      weights) the fraction of the paths tied at v_a that makes ``sum(h_a) = n (1 - a)``
      (see :func:`tail_weights`). As h_a depends on L only, the parts add up to
      ``sum(h_a L) / sum(h_a) = v_a + mean(w (L - v_a)^+) / (1 - a)``, which is
      ``expected_shortfall`` (gross, horizon) up to float rounding: the Acerbi-Tasche ES
      split into parties, each tied path counted with the same fraction (the tail set of
      :func:`stresslab.metrics.contributions.es_contributions` too);
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

    gross = variable_values(ds, "loss_gross").sum(axis=1)
    paid = variable_values(ds, "layer_paid").sum(axis=1)  # (path, layer)
    borne = np.column_stack([paid, variable_values(ds, "loss_net").sum(axis=1)])  # (path, party)
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

    hit = variable_values(ds, "layer_capacity_left") <= 0.0  # (path, month, layer)
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
    fees = w @ variable_values(ds, "layer_fee").sum(axis=1) / n

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
