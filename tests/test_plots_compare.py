"""Comparison plots (stresslab.plots.scenario_comparison, sweep_curve) and save_figure.

What is drawn must equal what the estimators of stresslab.estimators give, on real runs of
stresslab.run.compare / stresslab.sweep (common random numbers).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import xarray as xr
from matplotlib.collections import PolyCollection
from matplotlib.container import BarContainer, ErrorbarContainer
from scipy.stats import norm

import stresslab
from stresslab import plots
from stresslab.metrics import paired
from stresslab.errors import StresslabError
from stresslab.estimators import es_ci, mean_ci, var_es
from stresslab.run.compare import compare, sweep

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("error")
Z = float(norm.ppf(0.975))


# ------------------------------------------------------------------ data
@pytest.fixture(scope="module")
def book() -> stresslab.Portfolio:
    return stresslab.synthetic_portfolio(200, seed=1)


@pytest.fixture(scope="module")
def cmp(book: stresslab.Portfolio) -> xr.Dataset:
    scenarios = [stresslab.load_scenario(ROOT / "scenarios" / f"{name}.toml") for name in ("baseline", "services_downturn")]
    return compare(book, scenarios, n_paths=800, seed=3)  # enough to bound VaR 99% (paths_needed)


@pytest.fixture(scope="module")
def swept(book: stresslab.Portfolio) -> xr.Dataset:
    scenario = stresslab.load_scenario(ROOT / "scenarios" / "compensation_fund.toml")
    return sweep(book, scenario, "layers.0.capacity", [0.0, 1e6, 1e7], n_paths=100, seed=3)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _totals(ds: xr.Dataset, name: str = "loss_gross") -> np.ndarray:
    """Horizon loss, shape (scenario, path)."""
    return ds[name].transpose("scenario", "path", "month").values.sum(axis=2)


def _weights(ds: xr.Dataset) -> np.ndarray:
    w = ds["weight"]
    return (w.isel(scenario=0) if "scenario" in w.dims else w).values.astype(np.float64)


def _bars(ax) -> np.ndarray:
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(bars) == 1
    return np.array([patch.get_height() for patch in bars[0].patches])


def _error_segments(ax) -> dict[float, tuple[float, float]]:
    """x position -> (low, high) of the drawn error bars."""
    out = {}
    for c in ax.containers:
        if isinstance(c, ErrorbarContainer):
            for segment in c.lines[2][0].get_segments():
                (x0, y0), (_, y1) = segment
                out[float(x0)] = (min(y0, y1), max(y0, y1))
    return out


def _legend_outside(fig, ax) -> None:
    fig.canvas.draw()
    legend = ax.get_legend()
    assert legend is not None and legend.get_frame_on()
    assert legend.get_window_extent().x0 >= ax.get_window_extent().x1 - 1  # beside the axes, not over the data


# ------------------------------------------------------------------ scenario_comparison
@pytest.mark.parametrize("metric", ["expected_loss", "retained_loss", "var99", "es99", "var95", "es99.9"])
def test_scenario_comparison_bars_are_the_estimates(cmp: xr.Dataset, metric: str) -> None:
    fig = plots.scenario_comparison(cmp, metric=metric)
    ax = fig.axes[0]
    x = _totals(cmp, "loss_net" if metric == "retained_loss" else "loss_gross")
    w = _weights(cmp)
    if metric in ("expected_loss", "retained_loss"):
        expected = [mean_ci(x[i], w)[0] for i in range(2)]
    else:
        a = float(metric.lstrip("vares")) / 100
        expected = [var_es(x[i], w, a)[0 if metric.startswith("var") else 1] for i in range(2)]
    np.testing.assert_array_equal(_bars(ax), expected)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["baseline", "services_downturn"]
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and dashed[0].get_ydata()[0] == expected[0]  # the baseline value
    _legend_outside(fig, ax)


def test_scenario_comparison_mean_interval_is_the_paired_mean_ci(cmp: xr.Dataset) -> None:
    ax = plots.scenario_comparison(cmp).axes[0]
    x, w = _totals(cmp), _weights(cmp)
    d, low, high = mean_ci(x[1] - x[0], w)
    base = mean_ci(x[0], w)[0]
    drawn = _error_segments(ax)
    assert list(drawn) == [1.0]  # none on the baseline
    np.testing.assert_allclose(drawn[1.0], (base + low, base + high), rtol=1e-12)
    # the paired interval is much narrower than two independent intervals would be
    se_paired = np.std(w * (x[1] - x[0]), ddof=1)
    se_independent = np.hypot(np.std(w * x[0], ddof=1), np.std(w * x[1], ddof=1))
    assert se_paired < 0.7 * se_independent
    texts = [t.get_text() for t in ax.texts]
    assert texts[0] == "baseline" and texts[1].startswith("Δ +")


def test_scenario_comparison_es_and_var_intervals_are_those_of_compare_summary(cmp: xr.Dataset) -> None:
    """One function computes the interval of a comparison: the plot of the runs draws the
    difference_ci that compare_summary (default replicates and seed) prints for it. (Seen
    before: table [-82.9M, -4.26M], plot [-87.9M, +1.21M] for the same ES 99% change.)"""
    s = paired.compare_summary(cmp, levels=(0.95, 0.99))
    for metric, label in (("es99", "es_99"), ("var95", "var_95"), ("var99", "var_99")):
        ax = plots.scenario_comparison(cmp, metric=metric).axes[0]
        at = s.sel(metric=label)
        low, high = at["difference_ci"].sel(scenario="services_downturn", bound=["low", "high"]).values
        base = float(at["value"].sel(scenario="baseline"))
        np.testing.assert_allclose(_error_segments(ax)[1.0], (base + low, base + high), rtol=1e-12)


def test_scenario_comparison_honours_weights(cmp: xr.Dataset) -> None:
    w = np.random.default_rng(5).gamma(2.0, 0.5, cmp.sizes["path"])
    weighted = cmp.assign(weight=(("scenario", "path"), np.tile(w, (2, 1))))
    ax = plots.scenario_comparison(weighted, metric="retained_loss").axes[0]
    x = _totals(weighted, "loss_net")
    np.testing.assert_array_equal(_bars(ax), [np.mean(w * x[0]), np.mean(w * x[1])])
    d = w * (x[1] - x[0])
    half = Z * np.std(d, ddof=1) / np.sqrt(d.size)
    np.testing.assert_allclose(_error_segments(ax)[1.0], np.mean(w * x[0]) + np.array([d.mean() - half, d.mean() + half]), rtol=1e-12)


def test_scenario_comparison_of_identical_scenarios_has_zero_width_intervals(cmp: xr.Dataset) -> None:
    same = xr.concat([cmp.isel(scenario=[0]), cmp.isel(scenario=[0]).assign_coords(scenario=["copy"])], dim="scenario")
    for metric in ("expected_loss", "var95", "es99"):
        ax = plots.scenario_comparison(same, metric=metric).axes[0]
        value = _bars(ax)[0]
        np.testing.assert_allclose(_error_segments(ax)[1.0], (value, value), rtol=1e-12, atol=1e-6)


def test_scenario_comparison_of_a_compare_summary_draws_its_numbers(cmp: xr.Dataset) -> None:
    paired = pytest.importorskip("stresslab.metrics.paired")
    s = paired.compare_summary(cmp, n_boot=50)
    for metric, label in (("expected_loss", "expected_gross_loss"), ("var99", "var_99"), ("es99", "es_99")):
        ax = plots.scenario_comparison(s, metric=metric).axes[0]
        at = s.sel(metric=label)
        np.testing.assert_array_equal(_bars(ax), at["value"].values)
        low, high = at["difference_ci"].sel(scenario="services_downturn", bound=["low", "high"]).values
        base = float(at["value"].sel(scenario="baseline"))
        np.testing.assert_allclose(_error_segments(ax)[1.0], (base + low, base + high), rtol=1e-12)
    # the exact paired interval of the expected loss is the same in both
    run_ax = plots.scenario_comparison(cmp).axes[0]
    sum_ax = plots.scenario_comparison(s).axes[0]
    np.testing.assert_allclose(_error_segments(run_ax)[1.0], _error_segments(sum_ax)[1.0], rtol=1e-12)


def test_scenario_comparison_withholds_intervals_its_runs_cannot_bound(cmp: xr.Dataset) -> None:
    """200 paths cannot bound a VaR 99% from above (about 381 are needed): the plot, like
    compare_summary, draws no interval and says why, rather than a confident wrong one."""
    few = cmp.isel(path=slice(0, 200))
    s = paired.compare_summary(few, levels=(0.99,), n_boot=50)
    assert int(s["paths_needed"].sel(metric="var_99", scenario="services_downturn")) > 200
    for source in (few, s):
        ax = plots.scenario_comparison(source, metric="var99").axes[0]
        assert 1.0 not in _error_segments(ax)
        assert any("no interval: too few paths" in t.get_text() for t in ax.texts)


def test_scenario_comparison_errors(cmp: xr.Dataset) -> None:
    with pytest.raises(StresslabError, match="scenario"):
        plots.scenario_comparison(cmp.isel(scenario=0))
    with pytest.raises(StresslabError, match="did you mean 'expected_loss'"):
        plots.scenario_comparison(cmp, metric="expected_los")
    with pytest.raises(StresslabError, match="var<p>"):
        plots.scenario_comparison(cmp, metric="var100")
    uneven = cmp.assign(weight=(("scenario", "path"), np.vstack([np.ones(cmp.sizes["path"]), np.full(cmp.sizes["path"], 2.0)])))
    with pytest.raises(StresslabError, match="weights"):
        plots.scenario_comparison(uneven)
    with pytest.raises(StresslabError, match="ci"):
        plots.scenario_comparison(cmp, ci=1.5)


# ------------------------------------------------------------------ sweep_curve
def _band(ax, k: int) -> np.ndarray:
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    return bands[k].get_paths()[0].vertices


def test_sweep_curve_draws_the_estimates_along_the_sweep(swept: xr.Dataset) -> None:
    fig = plots.sweep_curve(swept, metrics=("expected_loss", "retained_loss", "es99"))
    ax = fig.axes[0]
    assert ax.get_xlabel() == "layers.0.capacity"
    w = _weights(swept)
    gross, net = _totals(swept), _totals(swept, "loss_net")
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["expected gross loss", "expected retained loss (net)", "ES 99% of the gross loss"]
    for line in lines:
        np.testing.assert_array_equal(line.get_xdata(), [0.0, 1e6, 1e7])
    np.testing.assert_array_equal(lines[0].get_ydata(), [mean_ci(gross[i], w)[0] for i in range(3)])
    np.testing.assert_array_equal(lines[1].get_ydata(), [mean_ci(net[i], w)[0] for i in range(3)])
    np.testing.assert_array_equal(lines[2].get_ydata(), [var_es(gross[i], w, 0.99)[1] for i in range(3)])
    # the retained loss falls once the fund has capacity; the gross loss does not move (same draws)
    assert np.ptp(lines[0].get_ydata()) == 0 and lines[1].get_ydata()[1] < lines[1].get_ydata()[0]
    # pointwise bands: mean_ci of each scenario; ES bands unbounded above on 100 paths run to the axis top
    vertices = _band(ax, 1)
    for i, xv in enumerate([0.0, 1e6, 1e7]):
        ys = vertices[vertices[:, 0] == xv, 1]
        _, low, high = mean_ci(net[i], w)
        assert np.isclose(ys, low, rtol=1e-12).any() and np.isclose(ys, high, rtol=1e-12).any()
    es_low = [es_ci(gross[i], w, 0.99)[0] for i in range(3)]
    assert all(np.isinf(es_ci(gross[i], w, 0.99)[1]) for i in range(3))
    top = _band(ax, 2)[:, 1].max()
    assert top == pytest.approx(ax.get_ylim()[1])
    assert np.isclose(_band(ax, 2)[:, 1][:, None], es_low).any(axis=0).all()
    assert "unbounded" in ax.get_legend().get_title().get_text()
    _legend_outside(fig, ax)


def test_sweep_curve_sorts_by_sweep_value(swept: xr.Dataset) -> None:
    shuffled = swept.isel(scenario=[2, 0, 1])
    a = plots.sweep_curve(swept).axes[0].get_lines()
    b = plots.sweep_curve(shuffled).axes[0].get_lines()
    for la, lb in zip(a, b):
        np.testing.assert_array_equal(la.get_xdata(), lb.get_xdata())
        np.testing.assert_array_equal(la.get_ydata(), lb.get_ydata())


def test_sweep_curve_of_a_compare_summary(swept: xr.Dataset) -> None:
    paired = pytest.importorskip("stresslab.metrics.paired")
    s = paired.compare_summary(swept, n_boot=50)
    ax = plots.sweep_curve(s, metrics=("expected_loss", "var99")).axes[0]
    for line, label in zip(ax.get_lines(), ("expected_gross_loss", "var_99")):
        np.testing.assert_array_equal(line.get_xdata(), s["sweep_value"].values)
        np.testing.assert_array_equal(line.get_ydata(), s["value"].sel(metric=label).values)
    vertices = _band(ax, 0)
    at = s.sel(metric="expected_gross_loss", scenario=s["scenario"].values[1])
    ys = vertices[vertices[:, 0] == float(at["sweep_value"]), 1]
    for bound in (float(at["value"] - Z * at["value_se"]), float(at["value"] + Z * at["value_se"])):
        assert np.isclose(ys, bound, rtol=1e-12).any()


def test_sweep_curve_errors(cmp: xr.Dataset, swept: xr.Dataset) -> None:
    with pytest.raises(StresslabError, match="sweep_value"):
        plots.sweep_curve(cmp)  # a comparison, not a numeric sweep
    with pytest.raises(StresslabError, match="scenario"):
        plots.sweep_curve(swept.isel(scenario=0, drop=True))
    with pytest.raises(StresslabError, match="at least one"):
        plots.sweep_curve(swept, metrics=())
    with pytest.raises(StresslabError, match="did you mean 'retained_loss'"):
        plots.sweep_curve(swept, metrics=("retained_los",))


def test_comparison_plots_draw_on_the_given_axes(cmp: xr.Dataset, swept: xr.Dataset) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8), layout="constrained")
    assert plots.scenario_comparison(cmp, ax=left) is fig
    assert plots.sweep_curve(swept, ax=right) is fig
    assert left.has_data() and right.has_data() and left.get_title() and right.get_title()


# ------------------------------------------------------------------ save_figure
PNG = b"\x89PNG\r\n\x1a\n"


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_save_figure_writes_a_png_and_replaces_the_old_file(cmp: xr.Dataset, tmp_path: Path) -> None:
    target = tmp_path / "cmp.png"
    target.write_bytes(b"old")
    fig = plots.scenario_comparison(cmp)
    plots.save_figure(fig, target)
    data = target.read_bytes()
    assert data[:8] == PNG
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (round(fig.get_figwidth() * fig.dpi), round(fig.get_figheight() * fig.dpi))
    plots.save_figure(fig, target, dpi=50)
    assert int.from_bytes(target.read_bytes()[16:20], "big") == round(fig.get_figwidth() * 50)
    assert _leftovers(tmp_path) == []


def test_save_figure_failure_keeps_the_earlier_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "fig.png"
    target.write_bytes(b"earlier")
    bad = plt.figure()
    bad.text(0.5, 0.5, r"$\undefinedcommand{x}$")  # mathtext fails while drawing
    with pytest.raises(StresslabError, match="could not save the figure.*unchanged"):
        plots.save_figure(bad, target)
    assert target.read_bytes() == b"earlier" and _leftovers(tmp_path) == []

    good = plt.figure()

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", str(dst))

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(StresslabError, match="permission denied"):
        plots.save_figure(good, target)
    assert target.read_bytes() == b"earlier" and _leftovers(tmp_path) == []


def test_save_figure_bad_paths(tmp_path: Path) -> None:
    fig = plt.figure()
    with pytest.raises(StresslabError, match="does not exist"):
        plots.save_figure(fig, tmp_path / "missing" / "fig.png")
    with pytest.raises(StresslabError, match=r"must end in \.png"):
        plots.save_figure(fig, tmp_path / "fig.svg")
    assert list(tmp_path.iterdir()) == []
