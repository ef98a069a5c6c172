"""Paired comparisons of scenarios run on common random numbers: differences with bootstrap intervals."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

import numpy as np
import xarray as xr

from stresslab.compile.provisions import year_ends
from stresslab.errors import StresslabError
from stresslab.estimators import (
    TAIL_TOL,
    check_level,
    check_weights,
    mean_ci,
    paths_needed,
    var_es,
    z_value,
)
from stresslab.metrics.capital import capital_paths
from stresslab.metrics.ifrs9 import provisions
from stresslab.metrics.summary import dpd30_ratio, validate_run
from stresslab.run.schema import LAYER_VARIABLES, layers_present, validate_layers

__all__ = ["compare_summary", "tail_replicates", "paired_intervals", "DEFAULT_N_BOOT", "DEFAULT_BOOT_SEED"]


DEFAULT_N_BOOT = 400  # bootstrap replicates of compare_summary and of the comparison plots


DEFAULT_BOOT_SEED = 0


BOUNDS = ("low", "high")


_BASE_VARS = ("loss_gross", "loss_net", "balance_by_state", "count_by_state", "subsidy_cost", "weight")


_LAYER_VARS = tuple(LAYER_VARIABLES)


# Paths x replicates handled per block of the bootstrap (bounds the working memory: a few
# float64 arrays of this many elements, about 32 MB each).
_BLOCK_ELEMENTS = 4_000_000


# ----------------------------------------------------------------------------- metrics
def _metric_table(levels: tuple[float, ...], layers: list[str], n_years: int = 0, capital_years: int = 0) -> list[dict]:
    """The metrics in display order: label, long name, units, method, level, layer.

    ``n_years``: years of IFRS 9 impairment charges (0 when no scenario records an allowance);
    ``capital_years``: years of the lender's P&L (0 when no scenario has ``[capital]``).
    """

    def m(label: str, long_name: str, units: str, method: str, level: float = np.nan, layer: str = "") -> dict:
        return dict(label=label, long_name=long_name, units=units, method=method, level=level, layer=layer)

    rows = [
        m("expected_gross_loss", "expected gross loss over the horizon", "CNY", "mean"),
        m("expected_retained_loss", "expected lender retained loss (loss_net) over the horizon", "CNY", "mean"),
    ]
    for a in levels:
        rows.append(m(f"var_{100 * a:g}", f"VaR {100 * a:g}% of the gross loss over the horizon", "CNY", "bootstrap", a))
        rows.append(m(f"es_{100 * a:g}", f"ES {100 * a:g}% of the gross loss over the horizon", "CNY", "bootstrap", a))
    rows += [
        m("peak_dpd30_ratio", "peak over months of the mean DPD30+ ratio by balance (months with >= 1% of "
          "month 1's live balance)", "1", "bootstrap"),
        m("expected_defaults", "expected number of loans in default (state D) at the last month", "loans", "mean"),
    ]
    for name in layers:
        rows.append(m(f"exhaustion_probability:{name}",
                      f"probability that layer {name} is exhausted by the horizon end", "1", "mean", layer=name))
        rows.append(m(f"expected_payout:{name}", f"expected payout of layer {name} over the horizon", "CNY", "mean", layer=name))
    rows += [
        m("expected_subsidy_cost", "expected interest subsidy cost over the horizon", "CNY", "mean"),
        m("expected_interest_foregone", "expected lender's interest foregone over the horizon (rate cap, waived "
          "deferral)", "CNY", "mean"),
        m("expected_enhancement_cost", "expected fund/insurer cost: payouts of all layers over the horizon", "CNY", "mean"),
    ]
    rows += [m(f"impairment_charge_year{y}", f"expected IFRS 9 impairment charge of year {y} (docs/ifrs9.md)", "CNY",
               "mean") for y in range(1, n_years + 1)]
    rows += [m(f"pretax_profit_year{y}", f"expected lender's pre-tax profit of year {y} (docs/capital.md)", "CNY",
               "mean") for y in range(1, capital_years + 1)]
    if capital_years:
        rows.append(m("capital_breach_probability", "probability that the capital ratio falls below threshold + "
                      "buffer at some year end (docs/capital.md)", "1", "mean"))
    return rows


def _values(ds: xr.Dataset, name: str, dims: tuple[str, ...]) -> np.ndarray:
    return np.asarray(ds[name].transpose(*dims).values, dtype=np.float64)


def _mean_samples(run: xr.Dataset, present: np.ndarray, layers: list[str], n_years: int = 0,
                  capital_years: int = 0) -> np.ndarray:
    """Per-path samples (metric, path) of the mean-type metrics, in :func:`_metric_table` order."""
    pm = ("path", "month")
    rows = [_values(run, "loss_gross", pm).sum(axis=1), _values(run, "loss_net", pm).sum(axis=1)]
    counts = run["count_by_state"].sel(state="D").transpose(*pm).values
    rows.append(np.asarray(counts[:, -1], dtype=np.float64))
    n = rows[0].size
    cost = np.zeros(n)
    if layers:
        left = _values(run, "layer_capacity_left", ("path", "month", "layer"))
        paid = _values(run, "layer_paid", ("path", "month", "layer")).sum(axis=1)  # (path, layer)
        for j in range(len(layers)):
            if present[j]:
                rows += [(left[:, :, j] <= 0.0).any(axis=1).astype(np.float64), paid[:, j]]
                cost += paid[:, j]
            else:
                rows += [np.full(n, np.nan), np.full(n, np.nan)]
    rows += [_values(run, "subsidy_cost", pm).sum(axis=1), _lever_total(run, "interest_foregone"), cost]
    if n_years:
        rows += list(_impairment_charges(run, n_years))
    if capital_years:
        rows += list(_capital_samples(run, capital_years))
    return np.array(rows)


def _years_of_capital(ds: xr.Dataset) -> int:
    """Years of the lender's P&L a comparison has: 0 unless some scenario has ``[capital]``."""
    if "book_exposure_by_borrower_type" not in ds.attrs or "scenario_config" not in ds.data_vars:
        return 0
    if not any("capital" in json.loads(str(text)) for text in ds["scenario_config"].values):
        return 0
    return int(year_ends(ds.sizes["month"]).size - 1)


def _capital_samples(run: xr.Dataset, capital_years: int) -> np.ndarray:
    """(year + 1, path): pre-tax profit of each year and the breach indicator; NaN if the scenario has no [capital]."""
    if "capital" not in json.loads(str(run["scenario_config"].values)):
        return np.full((capital_years + 1, run.sizes["path"]), np.nan)
    paths = capital_paths(run)
    breached = (paths["capital_ratio"].values[:, 1:] < paths.attrs["breach_level"]).any(axis=1)
    return np.vstack([paths["pretax_profit"].transpose("year", "path").values, breached.astype(np.float64)])


def _years_of_charges(ds: xr.Dataset) -> int:
    """Years of impairment charges a comparison has: 0 unless some scenario records an allowance."""
    if "allowance" not in ds.data_vars or bool(np.isnan(ds["allowance"].values).all()):
        return 0
    if "scenario_config" not in ds.data_vars:  # stacked by hand: the recovery lags of stage 3 are not known
        return 0
    return int(ds.sizes["year"])


def _impairment_charges(run: xr.Dataset, n_years: int) -> np.ndarray:
    """(year, path) impairment charges of one scenario of a comparison; NaN if it records no allowance."""
    if bool(np.isnan(run["allowance"].values).any()):
        return np.full((n_years, run.sizes["path"]), np.nan)
    return provisions(run)["impairment_charge"].transpose("year", "path").values


def _lever_total(run: xr.Dataset, name: str) -> np.ndarray:
    """Per-path horizon total of a variable only runs with its lever have (0 without: NaN in a stack)."""
    if name not in run.data_vars:
        return np.zeros(run.sizes["path"])
    values = _values(run, name, ("path", "month"))
    if np.isnan(values).all():
        return np.zeros(run.sizes["path"])
    if not np.all(np.isfinite(values)):
        raise StresslabError(f"comparison variable {name} holds NaN or infinite values in some paths or months but not all")
    return values.sum(axis=1)


# ----------------------------------------------------------------------------- bootstrap
def _count_blocks(n: int, n_boot: int, seed: int) -> Iterator[tuple[int, np.ndarray]]:
    """The multiplicities of the paths in each bootstrap replicate, a block of replicates at a time.

    Yields ``(start, counts)``: ``counts`` of shape (b, n) for replicates start..start + b - 1,
    with b n <= ``_BLOCK_ELEMENTS`` (at least one replicate), so that no replicates x paths
    matrix is ever built. Replicate r draws n path indices uniformly with replacement
    (``rng.integers``, one call per replicate) and counts them: every call with the same
    arguments yields the same counts, which is how each scenario sees the same replicates.
    """
    rng = np.random.default_rng(seed)
    dtype = np.uint8 if n < 255 else np.uint16 if n < 65_535 else np.uint32
    block = max(1, _BLOCK_ELEMENTS // n)
    for start in range(0, n_boot, block):
        counts = np.empty((min(block, n_boot - start), n), dtype=dtype)
        for r in range(counts.shape[0]):
            counts[r] = np.bincount(rng.integers(0, n, size=n), minlength=n)
        yield start, counts


def tail_replicates(
    x: np.ndarray, w: np.ndarray, levels: tuple[float, ...], n_boot: int = DEFAULT_N_BOOT,
    boot_seed: int = DEFAULT_BOOT_SEED, ratio: np.ndarray | None = None,
) -> np.ndarray:
    """Bootstrap replicates of VaR and ES (and the peak DPD30+ ratio) of one scenario.

    Parameters
    ----------
    x, w : ndarray of shape (n_paths,)
        Gross horizon losses (CNY) and path weights.
    levels : tuple of float
        Levels of VaR and ES.
    n_boot, boot_seed : int
        Replicates and the seed of the resampling: the same in every scenario of a
        comparison, so that the replicates are paired.
    ratio : ndarray of shape (n_paths, n_months), optional
        The DPD30+ ratio; with it, a last column holds the replicates' peak mean ratio.

    Returns
    -------
    ndarray of shape (n_boot, 2 * n_levels (+ 1))
        VaR and ES interleaved per level (then the peak DPD30+ ratio). The VaR and ES
        columns do not depend on ``ratio`` nor on the other levels.
    """
    out = np.empty((n_boot, 2 * len(levels) + (ratio is not None)))
    for start, counts in _count_blocks(x.size, n_boot, boot_seed):
        rows = slice(start, start + counts.shape[0])
        out[rows, : 2 * len(levels)] = _tail_replicates(x, w, counts, levels)
        if ratio is not None:
            out[rows, -1] = _peak_replicates(ratio, w, counts)
    return out


def paired_intervals(
    value: np.ndarray, reps: np.ndarray, base: int, ci: float, needed: np.ndarray | None = None, n_paths: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paired differences from the baseline, their bootstrap standard errors and intervals.

    Parameters
    ----------
    value : ndarray of shape (n_scenarios, n_metrics)
        Point estimates.
    reps : ndarray of shape (n_scenarios, n_boot, n_metrics)
        Replicates of the same metrics on the same resampled paths in every scenario.
    base : int
        Row of the baseline.
    ci : float
        Coverage.
    needed : ndarray of shape (n_scenarios, n_metrics), optional
        With ``n_paths``, the paths of the runs: paths each scenario's run needs to bound the metric from above
        (:func:`stresslab.estimators.paths_needed`; 0 for metrics other than VaR and ES).
        Where the scenario or the baseline needs more paths than the replicates have, the
        standard error and the interval are NaN: the resampled paths cannot see beyond
        the run's largest losses, so a bootstrap interval there would look confident and
        be wrong.

    Returns
    -------
    (ndarray, ndarray, ndarray)
        ``difference`` and ``difference_se`` (n_scenarios, n_metrics) and ``difference_ci``
        (n_scenarios, n_metrics, 2): d +- z se with se the sd of the replicate differences.
        The interval is centred on the estimate, so the estimate is never on a bound
        unless every replicate difference is the same (se = 0). (The percentile interval
        put it on a bound when 2.5% of the replicates repeated the estimate: VaR
        replicates are sample values, and often the same one.)
    """
    diff = value - value[base]
    diff_se = np.std(reps - reps[base], axis=1, ddof=1)
    if needed is not None:
        diff_se[np.maximum(needed, needed[base]) > n_paths] = np.nan
    half = z_value(ci) * diff_se
    return diff, diff_se, np.stack([diff - half, diff + half], axis=-1)


def _tail_replicates(
    x: np.ndarray, w: np.ndarray, counts: np.ndarray, levels: tuple[float, ...]
) -> np.ndarray:
    """(b, 2 * n_levels) VaR and ES (interleaved per level) of each replicate of a block of counts.

    A replicate with multiplicities c_i holds path i c_i times, with weight w_i each, so its
    tail probability estimate is T*(v) = (1/n) sum_i c_i w_i 1{x_i > v}. With the paths
    sorted once by loss, VaR* is the smallest sorted value whose suffix weight (after it) is
    <= n (1 - a) (the rule of :func:`stresslab.estimators.weighted_quantile`), and
    ES* = VaR* + sum_{i at or after VaR*} c_i w_i (x_i - VaR*) / (n (1 - a)); both from suffix
    sums of c w and c w x over the sorted paths: no sorting per replicate.

    Only the top ``m`` sorted paths enter the sums: ``m`` holds about twice the weight of the
    widest tail plus a margin, and a block of replicates in which the slice does not hold
    more than that tail weight (so that the VaR might lie below it) is redone on all paths.
    The suffix sums run from the largest loss down, so the slice gives the same numbers as
    the full arrays.
    """
    n, n_boot = x.size, counts.shape[0]
    order = np.argsort(x, kind="stable")
    xs, ws = x[order], w[order]
    widest = n * (1.0 - min(levels) + TAIL_TOL)
    suffix = np.cumsum(ws[::-1])  # weight of the top 1, 2, ... paths
    need = 2.0 * widest + 10.0 * np.sqrt(widest) + 10.0 * float(ws.max())
    m = min(n, int(np.count_nonzero(suffix < need)) + 64)
    out = np.empty((n_boot, 2 * len(levels)))
    block = max(1, _BLOCK_ELEMENTS // m)
    for start in range(0, n_boot, block):
        stop = min(start + block, n_boot)
        done = _tail_block(counts[start:stop], order[n - m:], xs[n - m:], ws[n - m:], n, levels, widest, check=m < n)
        out[start:stop] = done if done is not None else _tail_block(counts[start:stop], order, xs, ws, n, levels, widest, check=False)
    return out


def _tail_block(
    counts: np.ndarray, order: np.ndarray, xs: np.ndarray, ws: np.ndarray, n: int,
    levels: tuple[float, ...], widest: float, check: bool,
) -> np.ndarray | None:
    """VaR and ES of replicates on the top sorted paths ``order``; None if ``check`` fails."""
    cw = counts[:, order] * ws  # (b, m) float64
    incl = np.cumsum(cw[:, ::-1], axis=1)[:, ::-1]  # weight at or after each sorted position
    if check and not np.all(incl[:, 0] > widest):
        return None
    incl_x = np.cumsum((cw * xs)[:, ::-1], axis=1)[:, ::-1]
    rows = np.arange(cw.shape[0])
    out = np.empty((cw.shape[0], 2 * len(levels)))
    for j, a in enumerate(levels):
        k = np.count_nonzero(incl[:, 1:] > n * (1.0 - a + TAIL_TOL), axis=1)  # incl[:, 1:]: weight after
        var = xs[k]
        out[:, 2 * j] = var
        out[:, 2 * j + 1] = var + (incl_x[rows, k] - var * incl[rows, k]) / (n * (1.0 - a))
    return out


def _live_ratio(run: xr.Dataset) -> np.ndarray:
    """DPD30+ ratio by balance (path, month), 0 in months whose mean live balance is below
    1% of month 1's: at the end of a book's life a few stragglers would set the peak."""
    ratio = dpd30_ratio(run, "balance")
    live = run["balance_by_state"].sel(state=["C", "M1", "M2", "M3"]).sum("state").transpose("path", "month").values
    mean_live = live.mean(axis=0)
    ratio[:, mean_live < _LIVE_FLOOR * mean_live[0]] = 0.0
    return ratio


def _peak_dpd(ratio: np.ndarray, w: np.ndarray) -> tuple[float, int]:
    """Peak over months of the weighted mean DPD30+ ratio, and the index of its month."""
    mean = w @ ratio / w.size
    t = int(np.argmax(mean))
    return float(mean[t]), t


def _peak_replicates(ratio: np.ndarray, w: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(b,) peak DPD30+ ratio of each replicate of a block: max_t (1/n) sum_i c_i w_i r_it."""
    return (counts.astype(np.float64) @ (w[:, None] * ratio) / w.size).max(axis=1)


_LIVE_FLOOR = 0.01


# ----------------------------------------------------------------------------- checks
def _check_input(ds: xr.Dataset, baseline: str | None, levels: tuple[float, ...], ci: float, n_boot: int) -> tuple[list[str], int]:
    if "scenario" not in ds.dims:
        raise StresslabError(
            "compare_summary needs a Dataset with a scenario dimension (from stresslab.run.compare or "
            "xr.concat of runs along 'scenario'); summarise a single run with stresslab.summary"
        )
    labels = [str(v) for v in ds["scenario"].values.tolist()]
    repeated = sorted({v for v in labels if labels.count(v) > 1})
    if repeated:
        raise StresslabError(f"scenario labels must be unique; repeated: {repeated}")
    if baseline is None:
        base = 0
    elif str(baseline) in labels:
        base = labels.index(str(baseline))
    else:
        raise StresslabError(f"baseline {baseline!r} is not a scenario of the comparison; scenarios: {labels}")
    missing = [name for name in _BASE_VARS if name not in ds.data_vars]
    if missing:
        raise StresslabError(f"comparison lacks the variable(s) {', '.join(missing)}; compare_summary needs {', '.join(_BASE_VARS)}")
    if "D" not in ds["state"].values:
        raise StresslabError("comparison lacks the state D on the state dimension (needed for expected defaults)")
    if not levels:
        raise StresslabError("levels must name at least one confidence level")
    for a in levels:
        check_level(a, "each of levels")
    check_level(ci, "ci")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 2:
        raise StresslabError(f"n_boot must be an integer >= 2; got {n_boot!r}")
    if not np.all(np.isfinite(ds["subsidy_cost"].values)):
        raise StresslabError("comparison variable subsidy_cost holds NaN or infinite values")
    w = ds["weight"]
    if "scenario" in w.dims:
        wv = np.asarray(w.transpose("scenario", "path").values, dtype=np.float64)
        for i in range(wv.shape[0]):
            check_weights(wv[i])
            differ = wv[i] != wv[base]
            if np.any(differ):
                p = int(np.flatnonzero(differ)[0])
                raise StresslabError(
                    f"path weights of scenario {labels[i]!r} differ from those of the baseline {labels[base]!r} "
                    f"in {np.count_nonzero(differ)} paths (first: path {ds['path'].values[p]}, {wv[i, p]!r} vs "
                    f"{wv[base, p]!r}); paired differences need the same measure: run the scenarios with the "
                    "same importance-sampling weights (or none)"
                )
    return labels, base


def _present_layers(run: xr.Dataset, layers: list[str]) -> np.ndarray:
    """Which layers the scenario ``run`` (one scenario of a comparison) has."""
    if not layers:
        return np.zeros(0, dtype=bool)
    missing = [name for name in _LAYER_VARS if name not in run.data_vars]
    if missing:
        raise StresslabError(f"comparison has a layer dimension but lacks the variable(s) {', '.join(missing)}")
    return layers_present(run.expand_dims("scenario"))[0]


# ----------------------------------------------------------------------------- summary
def compare_summary(
    ds: xr.Dataset,
    *,
    baseline: str | None = None,
    levels: Sequence[float] = (0.99, 0.999),
    ci: float = 0.95,
    n_boot: int = DEFAULT_N_BOOT,
    boot_seed: int = DEFAULT_BOOT_SEED,
) -> xr.Dataset:
    """Metrics per scenario and paired differences against a baseline scenario.

    Parameters
    ----------
    ds : xarray.Dataset
        Runs stacked along a ``scenario`` dimension (:func:`stresslab.run.compare.compare`,
        :func:`stresslab.run.compare.sweep`, or ``xr.concat`` of runs of one seed): the
        variables of :func:`stresslab.simulate` with a leading ``scenario`` dim. Layer
        variables span the union of layers, all-NaN where a scenario has no such layer.
        ``weight`` must be the same in every scenario.
    baseline : str, optional
        Label of the baseline scenario; default the first.
    levels : sequence of float, default (0.99, 0.999)
        Levels of VaR and ES of the gross horizon loss, each in (0, 1).
    ci : float, default 0.95
        Coverage of the confidence intervals of the differences.
    n_boot : int, default 400
        Bootstrap replicates for the VaR, ES and peak DPD30+ differences (>= 2).
    boot_seed : int, default 0
        Seed of the bootstrap: the same seed gives the same intervals.

    Returns
    -------
    xarray.Dataset
        Dims ``scenario``, ``metric`` (string labels, below) and ``bound`` ("low", "high").
        Variables:

        - ``value(scenario, metric)``: the metric's estimate in each scenario;
        - ``value_se(scenario, metric)``: its standard error (sd(w x)/sqrt(n) for means,
          the bootstrap sd for the others);
        - ``difference(scenario, metric)``: value minus the baseline's value (paired);
        - ``difference_se(scenario, metric)``: its standard error, exact for means
          (sd(w (x_s - x_base)) / sqrt(n)), the paired-bootstrap sd otherwise;
        - ``difference_ci(scenario, metric, bound)``: normal interval d +- z se, with the
          exact se for means and the paired-bootstrap se for the others
          (:func:`paired_intervals`, which the comparison plots use too);
        - ``independent_se(scenario, metric)``: the standard error two independent runs
          would have had, sqrt(value_se_s^2 + value_se_base^2);
        - ``crn_se_ratio(scenario, metric)``: difference_se / independent_se, the gain of
          common random numbers (variance reduced 1 / ratio^2 times);
        - ``peak_dpd30_month(scenario)``: the month of the peak DPD30+ ratio;
        - scalars ``n_paths`` and ``effective_sample_size``.

        The baseline's row has difference 0, interval [0, 0], se 0 and NaN
        independent_se and crn_se_ratio. Metric labels: ``expected_gross_loss``,
        ``expected_retained_loss``, ``var_<100a>`` and ``es_<100a>`` per level (``var_99``,
        ``es_99.9``), ``peak_dpd30_ratio``, ``expected_defaults``, per layer
        ``exhaustion_probability:<layer>`` and ``expected_payout:<layer>`` (NaN in a scenario
        without that layer, and so are the differences involving it),
        ``expected_subsidy_cost``, ``expected_interest_foregone`` (0 in a scenario without a
        rate cap or a waived deferral), ``expected_enhancement_cost`` (payouts of all layers;
        0 without layers). Coordinates along ``metric``: ``metric_long_name``,
        ``metric_units`` ("CNY", "1" for probabilities and ratios, "loans"),
        ``metric_method`` ("mean" or "bootstrap"), ``metric_level`` (NaN but for VaR/ES),
        ``metric_layer`` ("" but for layer metrics). Coordinates of ``ds`` along
        ``scenario`` only (``sweep_value``) are kept, and so is ``scenario_config``.
        Attrs: those of ``ds``, plus ``baseline``, ``ci``, ``levels``, ``n_boot``,
        ``boot_seed``.

    Raises
    ------
    StresslabError
        If there is no ``scenario`` dim, labels repeat, the baseline is unknown, variables
        are missing or malformed (each scenario is checked like a run for
        :func:`stresslab.summary`), weights differ between scenarios, or a level, ``ci``
        or ``n_boot`` is invalid.

    Notes
    -----
    The paired bootstrap draws n path indices with replacement per replicate and uses the
    same indices in every scenario; each replicate recomputes the metric of every scenario
    with the weights of the drawn paths (the estimators of :mod:`stresslab.estimators`), and
    the difference's interval is d +- z sd(replicate differences), centred on the estimate.
    The replicates' path counts are drawn a block at a time and drawn again, identically,
    for each scenario (:func:`tail_replicates`): memory is a block, not replicates x paths.
    Losses are sorted once per block; a replicate is then O(n).
    """
    levels = tuple(float(a) for a in levels)
    labels, base = _check_input(ds, baseline, levels, ci, n_boot)
    layers = [str(v) for v in ds["layer"].values.tolist()] if "layer" in ds.dims else []
    n_years, capital_years = _years_of_charges(ds), _years_of_capital(ds)
    table = _metric_table(levels, layers, n_years, capital_years)
    mean_rows = [j for j, m in enumerate(table) if m["method"] == "mean"]
    boot_rows = [j for j, m in enumerate(table) if m["method"] == "bootstrap"]
    n_s, n_m = len(labels), len(table)

    value, value_se = np.full((n_s, n_m), np.nan), np.full((n_s, n_m), np.nan)
    diff, diff_se = np.full((n_s, n_m), np.nan), np.full((n_s, n_m), np.nan)
    diff_ci = np.full((n_s, n_m, 2), np.nan)
    peak_month = np.empty(n_s)
    needed = np.zeros((n_s, n_m), dtype=np.int64)  # paths a tail metric needs to be bounded (0: bounded)
    boot = None  # (scenario, n_boot, bootstrap metric)

    def run_of(i: int) -> tuple[xr.Dataset, np.ndarray, np.ndarray]:
        run = ds.isel(scenario=i)
        present = _present_layers(run, layers)
        try:
            validate_run(run, levels)
            if present.any():
                validate_layers(run.isel(layer=np.flatnonzero(present)))
        except StresslabError as exc:
            raise StresslabError(f"scenario {labels[i]!r}: {exc}") from exc
        return run, present, np.asarray(run["weight"].values, dtype=np.float64)

    run, present, w = run_of(base)
    n = w.size
    base_samples = _mean_samples(run, present, layers, n_years, capital_years)
    base_ratio = _live_ratio(run)
    month = ds["month"].values
    for i in range(n_s):
        if i != base:
            run, present, w = run_of(i)
            samples = _mean_samples(run, present, layers, n_years, capital_years)
            ratio = _live_ratio(run)
        else:
            samples, ratio = base_samples, base_ratio
        # means: exact paired standard errors
        for k, j in enumerate(mean_rows):
            x = samples[k]
            if np.isnan(x).any():
                continue
            value[i, j] = mean_ci(x, w, ci)[0]
            value_se[i, j] = float(np.std(w * x, ddof=1)) / np.sqrt(n)
            d = x - base_samples[k]
            if np.isnan(d).any():
                continue
            diff[i, j], diff_ci[i, j, 0], diff_ci[i, j, 1] = mean_ci(d, w, ci)
            diff_se[i, j] = float(np.std(w * d, ddof=1)) / np.sqrt(n)
        # tail metrics and peak DPD30+: point estimates, then the bootstrap replicates
        gross = samples[0]
        for k, a in enumerate(levels):
            value[i, boot_rows[2 * k]], value[i, boot_rows[2 * k + 1]] = var_es(gross, w, a)
            needed[i, boot_rows[2 * k: 2 * k + 2]] = paths_needed(gross, w, a, ci)
        value[i, boot_rows[-1]], t = _peak_dpd(ratio, w)
        peak_month[i] = month[t]
        reps = tail_replicates(gross, w, levels, n_boot, boot_seed, ratio)
        if boot is None:
            boot = np.empty((n_s,) + reps.shape)
        boot[i] = reps
        value_se[i, boot_rows] = np.std(reps, axis=0, ddof=1)

    diff[:, boot_rows], diff_se[:, boot_rows], diff_ci[:, boot_rows] = paired_intervals(
        value[:, boot_rows], boot, base, ci, needed[:, boot_rows], n
    )
    needed = np.maximum(needed, needed[base])  # a VaR or ES its runs cannot bound has no interval
    unbounded = needed > n
    # the baseline against itself: exactly 0
    known = np.isfinite(value[base])
    diff[base, known], diff_se[base, known], diff_ci[base, known] = 0.0, 0.0, 0.0
    independent = np.sqrt(value_se**2 + value_se[base] ** 2)
    independent[base] = np.nan
    ratio_se = np.divide(diff_se, independent, out=np.full_like(diff_se, np.nan), where=independent > 0)
    ratio_se[~np.isfinite(independent)] = np.nan

    pct = f"{100 * ci:g}%"
    w = np.asarray(ds["weight"].isel(scenario=base).values if "scenario" in ds["weight"].dims else ds["weight"].values,
                   dtype=np.float64)
    sm, smb = ("scenario", "metric"), ("scenario", "metric", "bound")
    data = {
        "value": (sm, value, {"long_name": "metric estimate (units: metric_units)"}),
        "value_se": (sm, value_se, {"long_name": "standard error of the estimate (means: sd(w x)/sqrt(n); else bootstrap sd)"}),
        "difference": (sm, diff, {"long_name": f"paired difference from the baseline {labels[base]!r}"}),
        "difference_se": (sm, diff_se, {"long_name": "standard error of the paired difference (means: exact; else paired bootstrap)"}),
        "difference_ci": (smb, diff_ci, {"long_name": f"{pct} confidence interval of the paired difference"}),
        "independent_se": (sm, independent, {"long_name": "standard error the difference would have from two independent runs"}),
        "crn_se_ratio": (sm, ratio_se, {
            "long_name": "difference_se / independent_se: gain of common random numbers (variance / ratio^2)", "units": "1"}),
        "peak_dpd30_month": (("scenario",), peak_month.astype(np.int64), {"long_name": "month of the peak mean DPD30+ ratio"}),
        "paths_needed": (sm, np.where(unbounded, needed, 0), {
            "long_name": "paths the scenario and the baseline need to bound this VaR / ES (0: bounded; else no interval)"}),
        "n_paths": ((), np.int64(n), {"long_name": "number of simulated paths"}),
        "effective_sample_size": ((), float(w.sum() ** 2 / (w @ w)), {"long_name": "effective sample size (sum w)^2 / sum w^2"}),
    }
    coords = {
        "scenario": ("scenario", np.array(labels, dtype=object), dict(ds["scenario"].attrs)),
        "metric": ("metric", np.array([m["label"] for m in table], dtype=object)),
        "metric_long_name": ("metric", np.array([m["long_name"] for m in table], dtype=object)),
        "metric_units": ("metric", np.array([m["units"] for m in table], dtype=object)),
        "metric_method": ("metric", np.array([m["method"] for m in table], dtype=object)),
        "metric_level": ("metric", np.array([m["level"] for m in table], dtype=np.float64)),
        "metric_layer": ("metric", np.array([m["layer"] for m in table], dtype=object)),
        "bound": ("bound", list(BOUNDS), {"long_name": f"bound of the {pct} confidence interval"}),
    }
    for name, var in ds.variables.items():
        if var.dims == ("scenario",) and name != "scenario":
            coords[name] = ("scenario", var.values, dict(var.attrs))
    attrs = {**ds.attrs, "baseline": labels[base], "ci": ci, "levels": np.array(levels), "n_boot": int(n_boot),
             "boot_seed": int(boot_seed)}
    return xr.Dataset(data, coords=coords, attrs=attrs)
