"""summary(): the loss metrics of one run with Monte Carlo confidence intervals."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from stresslab.compile.provisions import year_ends
from stresslab.errors import StresslabError, did_you_mean
from stresslab.estimators import (
    WEIGHT_CHECK_CI,
    _body_mean,
    _es,
    _es_ci,
    _paths_needed,
    _std,
    _var_ci_sorted,
    check_level,
    check_weights,
    controlled_terms,
    effective_paths,
    mean_ci,
    mean_weight_check,
    quantile_of_sorted,
    quantiles_by_month,
    sort_losses,
    z_value,
)
from stresslab.metrics.capital import PNL_ITEMS, RATIO_QUANTILES, capital_metrics
from stresslab.metrics.ifrs9 import CHARGE_QUANTILES, provision_metrics, scenario_text, stage_metrics
from stresslab.metrics.layers import layer_metrics
from stresslab.run.schema import (
    REQUIRED_VARIABLES,
    _check_numeric,
    has_layers,
    validate_layers,
)
from stresslab.vocabulary import DPD30_STATES, LIVE_STATES, STAGES

__all__ = ["summary", "validate_run", "dpd30_ratio", "LIVE_FLOOR"]

# Ratio series (DPD30+) are reported only for months whose mean live balance is at least
# this share of the book at the start: the last stragglers of a book would show 100%.
LIVE_FLOOR = 0.01


DPD_QUANTILES = (0.05, 0.5, 0.95, 0.99)


WINDOWS = ("horizon", "12m")


MEASURES = ("gross", "net")


BOUNDS = ("low", "high")


def validate_run(ds: xr.Dataset, levels: Sequence[float]) -> None:
    """Check a run (one scenario) before :func:`summary` reduces it; raise :class:`StresslabError` saying what is wrong.

    Checks: every data variable over paths and the ``path`` and ``month`` coordinates
    hold numbers; the variables ``loss_gross``, ``loss_net``, ``balance_by_state``,
    ``count_by_state`` and ``weight`` exist with their dims (a ``scenario`` dim is named
    in the message); the live states C, M1, M2, M3 are on ``state``; >= 2 paths and
    >= 1 month; losses and state variables are finite; the weights pass
    :func:`check_weights`; ``levels`` is not empty and each level is in (0, 1). Layer
    variables are checked by :func:`stresslab.run.schema.validate_layers`.
    """
    missing = [name for name in REQUIRED_VARIABLES if name not in ds.data_vars]
    if missing:
        raise StresslabError(
            f"results lack the variable(s) {', '.join(missing)}; a summary needs {', '.join(REQUIRED_VARIABLES)}"
        )
    _check_numeric(ds)
    for name, dims in REQUIRED_VARIABLES.items():
        if set(ds[name].dims) != set(dims):
            raise StresslabError(
                f"results variable {name} must have dims {dims}; got {ds[name].dims}"
                + (" (summarise one scenario at a time: ds.sel(scenario=...))" if "scenario" in ds[name].dims else "")
            )
    absent = [s for s in LIVE_STATES if s not in ds["state"].values]
    if absent:
        raise StresslabError(f"results lack the state(s) {', '.join(absent)} on the state dimension")
    if ds.sizes["path"] < 2 or ds.sizes["month"] < 1:
        raise StresslabError(f"results need >= 2 paths and >= 1 month; got {ds.sizes['path']} and {ds.sizes['month']}")
    for name in ("loss_gross", "loss_net", "balance_by_state", "count_by_state"):
        if not np.all(np.isfinite(ds[name].values)):
            raise StresslabError(f"results variable {name} holds NaN or infinite values")
    check_weights(np.asarray(ds["weight"].values, dtype=np.float64))
    if len(levels) == 0:
        raise StresslabError("levels must name at least one confidence level")
    for level in levels:
        check_level(level, "each of levels")


def _live_balance(ds: xr.Dataset) -> np.ndarray:
    """Balance in the live states C, M1, M2, M3, (path, month) float64."""
    column = {state: i for i, state in enumerate(ds["state"].values.tolist())}
    by_state = ds["balance_by_state"].transpose("path", "month", "state").values
    return sum(by_state[:, :, column[state]].astype(np.float64) for state in LIVE_STATES)


def dpd30_ratio(ds: xr.Dataset, by: str = "balance") -> np.ndarray:
    """DPD30+ ratio of every path and month: (M2 + M3) / (C + M1 + M2 + M3), by balance or by loan count.

    Parameters
    ----------
    ds : xarray.Dataset
        A run (one scenario) with ``balance_by_state`` or ``count_by_state``
        (path, month, state) and the states C, M1, M2 and M3 on ``state``.
    by : {"balance", "count"}, default "balance"
        The ratio of balances (``balance_by_state``) or of numbers of loans
        (``count_by_state``).

    Returns
    -------
    ndarray of shape (n_paths, n_months)
        The ratio, float64; 0 where nothing is live (C + M1 + M2 + M3 = 0).

    Raises
    ------
    StresslabError
        If ``by`` is unknown, or the variable is missing, has other dims or lacks a live
        state.

    Notes
    -----
    The ratio behind ``dpd30_ratio_mean``, ``dpd30_ratio_quantile`` and
    ``dpd30_count_ratio_mean`` of :func:`summary`, the peak DPD30+ ratio of
    :func:`stresslab.metrics.paired.compare_summary` and :func:`stresslab.plots.dpd30_fan`. The
    states are summed one (path, month) slice at a time, in float64, without copying the
    whole variable.
    """
    if by not in ("balance", "count"):
        raise StresslabError(f"by must be one of 'balance', 'count'; got {by!r}{did_you_mean(str(by), ('balance', 'count'))}")
    name, dims = f"{by}_by_state", ("path", "month", "state")
    if name not in ds.data_vars:
        raise StresslabError(f"results lack the variable {name}, which the DPD30+ ratio by {by} needs")
    if set(ds[name].dims) != set(dims):
        raise StresslabError(f"results variable {name} must have dims {dims}; got {ds[name].dims}")
    column = {state: i for i, state in enumerate(ds["state"].values.tolist())}
    absent = [s for s in LIVE_STATES if s not in column]
    if absent:
        raise StresslabError(f"results lack the state(s) {', '.join(absent)} on the state dimension")
    by_state = ds[name].transpose(*dims).values

    def total(states: tuple[str, ...]) -> np.ndarray:  # one (path, month) slice at a time: no big copies
        return sum(by_state[:, :, column[state]].astype(np.float64) for state in states)

    live, late = total(LIVE_STATES), total(DPD30_STATES)
    return np.divide(late, live, out=np.zeros_like(live), where=live > 0)


def summary(ds: xr.Dataset, levels: Sequence[float] = (0.95, 0.99, 0.999), ci: float = 0.95) -> xr.Dataset:
    """Weighted loss metrics of a run, with Monte Carlo confidence intervals.

    Parameters
    ----------
    ds : xarray.Dataset
        A run from the engine: ``loss_gross(path, month)``, ``loss_net(path, month)``,
        ``balance_by_state(path, month, state)``, ``count_by_state(path, month, state)``
        and ``weight(path)`` are used; with a ``layer`` dimension also ``layer_paid``,
        ``layer_capacity_left``, ``layer_fee`` (path, month, layer) and
        ``layer_failed(path, layer)``, and ``loss_net`` is the lender's retained loss.
    levels : sequence of float, default (0.95, 0.99, 0.999)
        Confidence levels of VaR and ES, each in (0, 1).
    ci : float, default 0.95
        Coverage of the confidence intervals.

    Returns
    -------
    xarray.Dataset
        Dims ``measure`` ("gross", "net"), ``window`` ("horizon": all months, "12m": months
        1..min(12, T)), ``level``, ``bound`` ("low", "high"), ``month``, ``quantile``
        (0.05, 0.5, 0.95, 0.99). Variables ``expected_loss(measure, window)``,
        ``expected_loss_ci(measure, window, bound)``, ``std_dev(measure, window)``,
        ``value_at_risk(measure, window, level)``,
        ``value_at_risk_ci(measure, window, level, bound)``,
        ``expected_shortfall(measure, window, level)``,
        ``expected_shortfall_ci(measure, window, level, bound)``,
        ``dpd30_ratio_mean(month)``, ``dpd30_ratio_quantile(month, quantile)``,
        ``dpd30_count_ratio_mean(month)``, scalars ``n_paths`` and
        ``effective_sample_size``; per metric the effective sample size
        (:func:`effective_paths`) ``expected_loss_ess(measure, window)``,
        ``tail_probability_ess(measure, window, level)`` (of P(L > VaR)) and
        ``expected_shortfall_ess(measure, window, level)``;
        ``value_at_risk_paths_needed(measure, window, level)`` (:func:`paths_needed`: 0 when
        the VaR and ES intervals are bounded); the mean-weight check
        (:func:`mean_weight_check`) ``mean_weight``, ``mean_weight_ci(bound)`` and
        ``weight_check``. Attrs: the run's attrs plus ``ci``. Metric names are spelt out
        (``value_at_risk``, not ``var``) so that attribute access works.
        With layers, also dims ``party`` (the layers, then "lender") and ``layer``, and
        ``party_expected(party)``, ``party_expected_ci(party, bound)``,
        ``party_tail(party, level)``, ``party_share_expected(party)``,
        ``party_share_tail(party, level)``, ``gross_tail_mean(level)``,
        ``gross_tail_probability(level)``, ``layer_exhaustion_probability(layer, month)``,
        ``layer_exhaustion_median_month(layer)``, ``layer_failure_probability(layer)``,
        ``layer_failure_probability_ci(layer, bound)``, ``layer_fee_expected(layer)``,
        ``layer_paid_var(layer, level)``: see :func:`stresslab.metrics.layers.layer_metrics`.
        For a scenario with ``[capital]``, also ``pnl_mean(year, pnl_item)``, ``pnl_ci``,
        ``capital_mean(year_end)``, ``capital_ratio_quantile(year_end, ratio_quantile)``,
        ``capital_breach_probability(year)`` with its ``_ci``,
        ``capital_first_breach_probability(year)`` and ``capital_breach_level``: see
        :func:`stresslab.metrics.capital.capital_metrics` (docs/capital.md).

    Raises
    ------
    StresslabError
        If variables are missing or malformed, weights are negative or not finite, a
        level or ``ci`` is outside (0, 1), or (with layers) layer names repeat or are
        "lender", or ``loss_gross`` is not the sum of ``layer_paid`` and ``loss_net``.

    Notes
    -----
    The loss of a window is the sum of the monthly losses over its months. The standard
    deviation is a point estimate, without interval:
    :math:`\\sqrt{\\tfrac{n}{n-1}(\\overline{w x^2} - \\overline{w x}^2)}` (0 if negative,
    which importance weights make possible); with w = 1 the sample sd. The DPD30+ ratio of
    a path and month is (M2 + M3) / (C + M1 + M2 + M3) by balance (or by count), 0 when
    nothing is live; its mean is :math:`\\overline{w r}` and its quantiles are
    :func:`weighted_quantile`. The effective sample size is
    :math:`(\\sum w)^2 / \\sum w^2`. For a run with ``attrs["sampling"] == "importance"``
    the expected loss (with its interval) and the mean DPD30+ ratios are the regression
    estimator of :func:`controlled_terms` (the weight, of known mean 1, as control
    variate; docs/importance_sampling.md); all else is as above.
    """
    levels = tuple(float(a) for a in levels)
    validate_run(ds, levels)
    layered = has_layers(ds)
    if layered:
        validate_layers(ds)
    z = z_value(ci)
    w = np.asarray(ds["weight"].values, dtype=np.float64)
    importance = ds.attrs.get("sampling") == "importance"
    month = ds["month"].values
    n_levels = len(levels)
    el, std, el_ess = np.empty((2, 2)), np.empty((2, 2)), np.empty((2, 2))
    var, es = np.empty((2, 2, n_levels)), np.empty((2, 2, n_levels))
    tail_ess, es_ess, needed = np.empty((2, 2, n_levels)), np.empty((2, 2, n_levels)), np.empty((2, 2, n_levels), dtype=np.int64)
    el_b, var_b, es_b = np.empty((2, 2, 2)), np.empty((2, 2, n_levels, 2)), np.empty((2, 2, n_levels, 2))
    for i, name in enumerate(("loss_gross", "loss_net")):  # order of MEASURES
        loss = np.asarray(ds[name].transpose("path", "month").values, dtype=np.float64)
        for j, x in enumerate((loss.sum(axis=1), loss[:, month <= 12].sum(axis=1))):  # order of WINDOWS
            terms = controlled_terms(x, w) if importance else w * x
            el[i, j], el_b[i, j, 0], el_b[i, j, 1] = mean_ci(terms, np.ones_like(w), ci)
            el_ess[i, j] = effective_paths(x, w, terms)
            std[i, j] = _std(x, w)
            xs, above = sort_losses(x, w)
            for k, level in enumerate(levels):
                var[i, j, k] = quantile_of_sorted(xs, above, 1.0 - level)
                es[i, j, k] = _es(x, w, var[i, j, k], level)
                var_b[i, j, k] = _var_ci_sorted(x, w, xs, above, level, z)
                es_b[i, j, k] = _es_ci(x, w, var[i, j, k], es[i, j, k], level, z, var_b[i, j, k, 1])
                needed[i, j, k] = _paths_needed(x, w, var[i, j, k], var_b[i, j, k, 1], level, z)
                tail_ess[i, j, k] = effective_paths((x > var[i, j, k]).astype(np.float64), w)
                es_ess[i, j, k] = effective_paths(np.maximum(x - var[i, j, k], 0.0), w)

    ratio = dpd30_ratio(ds, "balance")
    ratio_q = quantiles_by_month(ratio, w, DPD_QUANTILES)
    live = _live_balance(ds)  # (path, month)
    live_mean = w @ live / w.size
    start = float(ds.attrs.get("book_exposure", 0.0)) or float(live_mean[0])  # older results: month 1's
    live_share = live_mean / start if start > 0 else np.zeros_like(live_mean)
    mean_w, mean_w_low, mean_w_high, weight_ok = mean_weight_check(w)
    pct = f"{100 * ci:g}%"

    def money(dims: tuple[str, ...], values: np.ndarray, long_name: str) -> xr.Variable:
        return xr.Variable(dims, values, {"long_name": long_name, "units": "CNY"})

    def ratio_var(dims: tuple[str, ...], values: np.ndarray, long_name: str) -> xr.Variable:
        return xr.Variable(dims, values, {"long_name": long_name, "units": "1"})

    mw, mwl = ("measure", "window"), ("measure", "window", "level")
    data = {
        "expected_loss": money(mw, el, "expected loss"),
        "expected_loss_ci": money(mw + ("bound",), el_b, f"{pct} Monte Carlo confidence interval of the expected loss"),
        "std_dev": money(mw, std, "standard deviation of the loss (point estimate)"),
        "value_at_risk": money(mwl, var, "value at risk"),
        "value_at_risk_ci": money(mwl + ("bound",), var_b, f"{pct} Monte Carlo confidence interval of the value at risk"),
        "expected_shortfall": money(mwl, es, "expected shortfall"),
        "expected_shortfall_ci": money(mwl + ("bound",), es_b, f"{pct} Monte Carlo confidence interval of the expected shortfall"),
        "dpd30_ratio_mean": ratio_var(("month",), _body_mean(ratio, w, importance), "mean DPD30+ ratio by balance"),
        "live_share_mean": ratio_var(("month",), live_share, "mean live balance (C, M1-M3) at month end as a share of "
                                     "the book's exposure at the start; ratios are shown only where it is >= LIVE_FLOOR"),
        "dpd30_ratio_quantile": ratio_var(("month", "quantile"), ratio_q, "quantile of the DPD30+ ratio by balance"),
        "dpd30_count_ratio_mean": ratio_var(
            ("month",), _body_mean(dpd30_ratio(ds, "count"), w, importance), "mean DPD30+ ratio by loan count"
        ),
        "n_paths": ratio_var((), np.int64(w.size), "number of simulated paths"),
        "effective_sample_size": ratio_var((), w.sum() ** 2 / (w @ w), "effective sample size (sum w)^2 / sum w^2"),
        "expected_loss_ess": ratio_var(mw, el_ess, "effective sample size of the expected loss (plain paths of equal variance)"),
        "tail_probability_ess": ratio_var(mwl, tail_ess, "effective sample size of P(L > VaR) (plain paths of equal variance)"),
        "expected_shortfall_ess": ratio_var(mwl, es_ess, "effective sample size of the ES tail term (plain paths of equal variance)"),
        "value_at_risk_paths_needed": ratio_var(
            mwl, needed, "paths needed to bound VaR and ES from above (0: bounded with these paths)"
        ),
        "mean_weight": ratio_var((), mean_w, "mean path weight (1 in expectation)"),
        "mean_weight_ci": ratio_var(("bound",), np.array([mean_w_low, mean_w_high]),
                                    f"{100 * WEIGHT_CHECK_CI:g}% confidence interval of the mean weight"),
        "weight_check": ratio_var((), np.bool_(weight_ok), "the mean weight is 1 within its interval"),
    }
    coords = {
        "measure": ("measure", list(MEASURES), {"long_name": "loss measure (gross, or net of credit enhancements)"}),
        "window": ("window", list(WINDOWS), {"long_name": "loss window: all months, or months 1..min(12, T)"}),
        "level": ("level", np.array(levels), {"long_name": "confidence level of VaR and ES", "units": "1"}),
        "bound": ("bound", list(BOUNDS), {"long_name": f"bound of the {pct} Monte Carlo confidence interval"}),
        "month": ("month", month, dict(ds["month"].attrs) or {"long_name": "month of the horizon"}),
        "quantile": ("quantile", np.array(DPD_QUANTILES), {"long_name": "quantile level", "units": "1"}),
    }
    if layered:
        layer_data, layer_coords = layer_metrics(ds, levels, ci)
        data.update(layer_data)
        coords.update(layer_coords)
    if "stage_transition" in ds.data_vars and scenario_text(ds) is not None:  # S3 needs the recovery lags
        data.update(stage_metrics(ds, ci))
        for name in ("year", "from_stage", "to_stage"):
            coords[name] = ds[name].values
        coords["stage"] = ("stage", list(STAGES), {"long_name": "IFRS 9 stage"})
    if "allowance" in ds.data_vars and scenario_text(ds) is not None:
        data.update(provision_metrics(ds, ci))
        coords["year_end"] = np.arange(ds.sizes["year"] + 1)
        coords["charge_quantile"] = ("charge_quantile", np.array(CHARGE_QUANTILES), {"long_name": "quantile level"})
    if "book_exposure_by_borrower_type" in ds.attrs and scenario_text(ds) is not None:  # a run with [capital]
        data.update(capital_metrics(ds, ci))
        n_ends = year_ends(ds.sizes["month"]).size
        coords["year"] = np.arange(1, n_ends)
        coords["year_end"] = np.arange(n_ends)
        coords["pnl_item"] = ("pnl_item", list(PNL_ITEMS), {"long_name": "line of the lender's P&L"})
        coords["ratio_quantile"] = ("ratio_quantile", np.array(RATIO_QUANTILES), {"long_name": "quantile level"})
    return xr.Dataset(data, coords=coords, attrs={**ds.attrs, "ci": ci})
