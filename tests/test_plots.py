"""Plots (stresslab.plots): what is drawn equals what stresslab.estimators estimates."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import xarray as xr
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

import stresslab
from stresslab import plots
from stresslab.errors import StresslabError
from stresslab.estimators import mean_ci, var_es, weighted_quantile

ROOT = Path(__file__).resolve().parents[1]
# Every warning (from matplotlib, numpy or xarray) fails a test here: figures must draw and save cleanly.
pytestmark = pytest.mark.filterwarnings("error")


# ------------------------------------------------------------------ data
@pytest.fixture(scope="module")
def run() -> xr.Dataset:
    book = stresslab.synthetic_portfolio(300, seed=1)
    scenario = stresslab.load_scenario(ROOT / "scenarios" / "services_downturn.toml")
    return stresslab.simulate(book, scenario, n_paths=200, seed=2)


@pytest.fixture(scope="module")
def weighted(run: xr.Dataset) -> xr.Dataset:
    """The run with uneven path weights (as importance sampling gives), mean about 1."""
    w = np.random.default_rng(7).gamma(2.0, 0.5, run.sizes["path"])
    return run.assign(weight=("path", w))


@pytest.fixture(scope="module", params=["plain", "weighted"])
def any_run(request: pytest.FixtureRequest, run: xr.Dataset, weighted: xr.Dataset) -> xr.Dataset:
    return run if request.param == "plain" else weighted


def _layered() -> xr.Dataset:
    """Five paths, three months, two layers with simple numbers.

    Gross loss 100 (p + 1) in each month of path p. Layer "fund" pays half of it until its
    capacity of 400 is used up (pro rata in the month it runs out); layer "insurer"
    (unlimited) pays 20%; the lender keeps the rest. So the fund pays, by path, 150, 300,
    400, 400, 400 in all and runs out in month 3 (path 2) or 2 (paths 3 and 4).
    """
    n, t = 5, 3
    gross = np.repeat(100.0 * np.arange(1, n + 1)[:, None], t, axis=1)
    fund, left = np.zeros((n, t)), np.zeros((n, t))
    for p in range(n):
        cap = 400.0
        for m in range(t):
            fund[p, m] = min(0.5 * gross[p, m], cap)
            cap -= fund[p, m]
            left[p, m] = cap
    insurer = 0.2 * gross
    paid = np.stack([fund, insurer], axis=2)
    capacity_left = np.stack([left, np.full((n, t), np.inf)], axis=2)
    return xr.Dataset(
        {
            "loss_gross": (("path", "month"), gross),
            "loss_net": (("path", "month"), gross - fund - insurer),
            "layer_paid": (("path", "month", "layer"), paid),
            "layer_capacity_left": (("path", "month", "layer"), capacity_left),
            "weight": (("path",), np.ones(n)),
        },
        coords={
            "path": np.arange(n),
            "month": np.arange(1, t + 1),
            "layer": ["fund", "insurer"],
            "layer_capacity": ("layer", [400.0, np.inf]),
        },
        attrs={"scenario_name": "hand-built"},
    )


@pytest.fixture
def layered() -> xr.Dataset:
    return _layered()


@pytest.fixture(scope="module")
def layered_run() -> xr.Dataset:
    """A real run with three layers, the first (guarantor) with a capacity that binds in bad paths."""
    scenario = stresslab.load_scenario(ROOT / "scenarios" / "risk_sharing.toml")
    scenario = scenario.with_overrides({"layers.guarantor.capacity": 1_500_000.0})
    return stresslab.simulate(stresslab.synthetic_portfolio(300, seed=1), scenario, n_paths=200, seed=2)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _loss(ds: xr.Dataset, name: str = "loss_gross", window: str = "horizon") -> np.ndarray:
    loss = ds[name].transpose("path", "month")
    if window == "12m":
        loss = loss.sel(month=ds["month"] <= 12)
    return loss.sum("month").values


def _line(ax, label: str):
    lines = [line for line in ax.get_lines() if line.get_label() == label]
    assert len(lines) == 1, [line.get_label() for line in ax.get_lines()]
    return lines[0]


def _lines_starting(ax, prefix: str):
    lines = [line for line in ax.get_lines() if line.get_label().startswith(prefix)]
    assert len(lines) == 1, (prefix, [line.get_label() for line in ax.get_lines()])
    return lines[0]


def _bars(ax) -> tuple[list[str], np.ndarray]:
    """Parties and bar heights, shape (bar, party), of a loss_allocation axes."""
    parties = [c.get_label() for c in ax.containers]
    heights = np.array([[patch.get_height() for patch in c.patches] for c in ax.containers]).T
    return parties, heights


# ------------------------------------------------------------------ every plot
def _all_plots(run: xr.Dataset, layered: xr.Dataset):
    """(name, callable taking ax) for every plot function."""
    return [
        ("loss_distribution", lambda ax: plots.loss_distribution(run, ax=ax)),
        ("exceedance_curve", lambda ax: plots.exceedance_curve(run, ax=ax)),
        ("dpd30_fan", lambda ax: plots.dpd30_fan(run, ax=ax)),
        ("state_stack", lambda ax: plots.state_stack(run, ax=ax)),
        ("state_stack_count", lambda ax: plots.state_stack(run, by="count", include_paid=True, ax=ax)),
        ("loss_heatmap", lambda ax: plots.loss_heatmap(run, ax=ax)),
        ("loss_bars", lambda ax: plots.loss_heatmap(run.drop_vars("loss_by_cell", errors="ignore"), ax=ax)),
        ("loss_allocation", lambda ax: plots.loss_allocation(layered, ax=ax)),
        ("capacity_fan", lambda ax: plots.capacity_fan(layered, layer="fund", ax=ax)),
        ("exhaustion_curve", lambda ax: plots.exhaustion_curve(layered, ax=ax)),
        ("stage_mix", lambda ax: plots.stage_mix(run, ax=ax)),
    ]


def test_every_plot_returns_its_figure_labelled_and_saves_to_png(run: xr.Dataset, tmp_path: Path) -> None:
    for name, draw in _all_plots(run, _layered()):
        fig = draw(None)
        assert isinstance(fig, Figure), name
        ax = fig.axes[0]
        assert ax.get_title(), name
        assert ax.get_xlabel() and ax.get_ylabel(), name
        assert fig.get_size_inches().tolist() == pytest.approx([6.4, 4.8]), name
        if name != "loss_heatmap":  # the heat map has a colour bar instead
            assert ax.get_legend() is not None and ax.get_legend().get_frame_on(), name
        target = tmp_path / f"{name}.png"
        fig.savefig(target)  # warnings are errors in this module
        assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        plt.close(fig)


def test_every_plot_draws_on_the_given_axes(run: xr.Dataset) -> None:
    for name, draw in _all_plots(run, _layered()):
        fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
        assert draw(right) is fig, name
        assert not left.has_data() and right.has_data(), name
        assert right.get_title(), name
        plt.close(fig)


def test_plot_in_a_subfigure_returns_the_root_figure(run: xr.Dataset) -> None:
    fig = plt.figure(layout="constrained")
    ax = fig.subfigures(1, 2)[1].subplots()
    assert plots.exceedance_curve(run, ax=ax) is fig


# ------------------------------------------------------------------ loss distribution
@pytest.mark.parametrize(("measure", "window"), [("gross", "horizon"), ("net", "12m")])
def test_loss_distribution_marks_the_results_estimators(any_run: xr.Dataset, measure: str, window: str) -> None:
    levels = (0.95, 0.99, 0.999)
    ax = plots.loss_distribution(any_run, measure=measure, window=window, levels=levels).axes[0]
    x, w = _loss(any_run, f"loss_{measure}", window), any_run["weight"].values
    el = _lines_starting(ax, "EL ").get_xdata()
    assert el[0] == el[1] == mean_ci(x, w)[0]
    s = stresslab.summary(any_run, levels=levels).sel(measure=measure, window=window)
    assert el[0] == pytest.approx(float(s["expected_loss"]), rel=1e-12)
    for a in levels:
        var, es = var_es(x, w, a)
        assert _lines_starting(ax, f"VaR {100 * a:g}% ").get_xdata()[0] == var
        assert _lines_starting(ax, f"ES {100 * a:g}% ").get_xdata()[0] == es
        assert var == float(s["value_at_risk"].sel(level=a))
        assert es == pytest.approx(float(s["expected_shortfall"].sel(level=a)), rel=1e-12)


def test_loss_distribution_bars_are_probabilities_and_labels_carry_values(weighted: xr.Dataset) -> None:
    ax = plots.loss_distribution(weighted, levels=(0.99,)).axes[0]
    w = weighted["weight"].values
    heights = [patch.get_height() for patch in ax.patches]
    assert sum(heights) == pytest.approx(w.sum() / w.size, rel=1e-12)
    x = _loss(weighted)
    var = var_es(x, w, 0.99)[0]
    assert _lines_starting(ax, "VaR 99% ").get_label() == f"VaR 99% {var / 1e6:,.3g} CNY m"
    assert ax.get_xlabel() == "gross loss over the whole horizon, CNY m"
    assert ax.xaxis.get_major_formatter()(5e6, 0) == "5"  # CNY on the data, millions on the labels


# ------------------------------------------------------------------ exceedance
@pytest.mark.parametrize("window", ["horizon", "12m"])
def test_exceedance_curve_is_the_weighted_tail_probability(any_run: xr.Dataset, window: str) -> None:
    ax = plots.exceedance_curve(any_run, window=window).axes[0]
    assert ax.get_yscale() == "log"
    curve = _line(ax, "P(L > x)")
    x, w = _loss(any_run, window=window), any_run["weight"].values
    xs, ys = curve.get_xdata(), curve.get_ydata()
    np.testing.assert_array_equal(xs, np.unique(x))
    np.testing.assert_allclose(ys, [np.mean(w * (x > v)) for v in xs], rtol=1e-12, atol=0)
    assert ys[-1] == 0.0  # nothing exceeds the largest loss


def _band_at(ax, label: str, v: float) -> np.ndarray:
    (band,) = [c for c in ax.collections if c.get_label() == label]
    vertices = band.get_paths()[0].vertices
    return vertices[vertices[:, 0] == v, 1]  # the band's corners at v (a step: the previous level's too)


def test_exceedance_band_is_the_binomial_standard_error_without_weights(run: xr.Dataset) -> None:
    ax = plots.exceedance_curve(run, ci=0.9).axes[0]
    x, n = _loss(run), run.sizes["path"]
    for v in np.sort(x)[[n // 2, n - 10]]:
        p = np.mean(x > v)
        half = 1.6448536269514722 * np.sqrt(p * (1 - p) / (n - 1))
        at = _band_at(ax, "90% Monte Carlo band", v)
        assert np.isclose(at, p + half, rtol=1e-12, atol=0).any()
        assert np.isclose(at, p - half, rtol=1e-12, atol=0).any()


def test_exceedance_band_is_the_weighted_standard_error(weighted: xr.Dataset) -> None:
    ax = plots.exceedance_curve(weighted).axes[0]
    x, w, n = _loss(weighted), weighted["weight"].values, weighted.sizes["path"]
    v = np.sort(x)[n // 3]
    p = np.mean(w * (x > v))
    half = 1.959963984540054 * np.std(w * (x > v), ddof=1) / np.sqrt(n)
    at = _band_at(ax, "95% Monte Carlo band", v)
    assert np.isclose(at, p + half, rtol=1e-10, atol=0).any()
    assert np.isclose(at, p - half, rtol=1e-10, atol=0).any()


# ------------------------------------------------------------------ DPD30+
def _ratio(ds: xr.Dataset) -> np.ndarray:
    b = ds["balance_by_state"].transpose("path", "month", "state")
    live = b.sel(state=["C", "M1", "M2", "M3"]).sum("state").values
    late = b.sel(state=["M2", "M3"]).sum("state").values
    return np.divide(late, live, out=np.zeros_like(live), where=live > 0)


def test_dpd30_fan_median_and_mean_are_the_weighted_estimates(any_run: xr.Dataset) -> None:
    ax = plots.dpd30_fan(any_run).axes[0]
    ratio, w = _ratio(any_run), any_run["weight"].values
    median = _line(ax, "median").get_ydata()
    np.testing.assert_array_equal(median, [weighted_quantile(ratio[:, t], w, 0.5) for t in range(ratio.shape[1])])
    s = stresslab.summary(any_run)
    np.testing.assert_array_equal(median, s["dpd30_ratio_quantile"].sel(quantile=0.5).values)
    np.testing.assert_allclose(_line(ax, "mean").get_ydata(), s["dpd30_ratio_mean"].values, rtol=1e-12, atol=1e-15)
    bands = [c.get_label() for c in ax.collections if isinstance(c, PolyCollection)]
    assert bands == ["5%–95%", "25%–75%"]
    assert ax.yaxis.get_major_formatter()(0.25, 0) == "25%"


def test_dpd30_fan_of_a_summary_equals_that_of_the_run(weighted: xr.Dataset) -> None:
    qs = (0.05, 0.5, 0.95)
    from_run = plots.dpd30_fan(weighted, quantiles=qs).axes[0]
    from_summary = plots.dpd30_fan(stresslab.summary(weighted), quantiles=qs).axes[0]
    for label in ("median", "mean"):
        np.testing.assert_allclose(_line(from_summary, label).get_ydata(), _line(from_run, label).get_ydata(), rtol=1e-12)
    with pytest.raises(StresslabError, match="not 0.25, 0.75"):
        plots.dpd30_fan(stresslab.summary(weighted))


def test_dpd30_fan_odd_middle_quantile_is_named(run: xr.Dataset) -> None:
    ax = plots.dpd30_fan(run, quantiles=(0.9, 0.1, 0.3)).axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["quantile 30%", "mean"]


# ------------------------------------------------------------------ states
@pytest.mark.parametrize(("by", "paid"), [("balance", False), ("count", True)])
def test_state_stack_layers_are_weighted_means(weighted: xr.Dataset, by: str, paid: bool) -> None:
    ax = plots.state_stack(weighted, by=by, include_paid=paid).axes[0]
    states = ["C", "M1", "M2", "M3", "D"] + (["P"] if paid else [])
    w = weighted["weight"].values
    values = weighted[f"{by}_by_state"].sel(state=states).transpose("path", "month", "state").values
    tops = np.cumsum(np.einsum("p,pms->sm", w, values) / w.size, axis=0)
    months = weighted["month"].values
    polys = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert [p.get_label() for p in polys][0] == "C (current)" and len(polys) == len(states)
    for poly, top in zip(polys, tops):
        vertices = poly.get_paths()[0].vertices
        drawn = [vertices[vertices[:, 0] == m, 1].max() for m in months]
        np.testing.assert_allclose(drawn, top, rtol=1e-12)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0] == ("P (paid off)" if paid else "D (defaulted, cumulative)")  # top of the stack first


# ------------------------------------------------------------------ by segment
def test_loss_heatmap_holds_the_expected_loss_by_cell(weighted: xr.Dataset) -> None:
    ds = weighted
    if "loss_by_cell" not in ds:  # an engine without the joint variable: make one up
        shape = (ds.sizes["path"], ds.sizes["industry"], ds.sizes["region"])
        ds = ds.assign(loss_by_cell=(("path", "industry", "region"), np.random.default_rng(5).gamma(1.0, 1e5, shape)))
    fig = plots.loss_heatmap(ds)
    ax = fig.axes[0]
    (image,) = [a for a in ax.get_images() if isinstance(a, AxesImage)]
    w = ds["weight"].values
    expected = np.einsum("p,pir->ir", w, ds["loss_by_cell"].transpose("path", "industry", "region").values) / w.size
    np.testing.assert_allclose(image.get_array(), expected, rtol=1e-12)
    assert [t.get_text() for t in ax.get_yticklabels()] == ds["industry"].values.tolist()
    assert [t.get_text() for t in ax.get_xticklabels()] == ds["region"].values.tolist()
    assert len(fig.axes) == 2 and "CNY" in fig.axes[1].get_ylabel()  # the colour bar


def test_loss_heatmap_without_the_joint_variable_draws_bars_by_industry_and_region(weighted: xr.Dataset) -> None:
    ds = weighted.drop_vars("loss_by_cell", errors="ignore")
    ax = plots.loss_heatmap(ds).axes[0]
    by_industry, by_region = ax.containers
    w = ds["weight"].values
    widths = lambda c: np.array([patch.get_width() for patch in c.patches])  # noqa: E731
    np.testing.assert_allclose(widths(by_industry), w @ ds["loss_by_industry"].transpose("path", "industry").values / w.size, rtol=1e-12)
    np.testing.assert_allclose(widths(by_region), w @ ds["loss_by_region"].transpose("path", "region").values / w.size, rtol=1e-12)
    el = mean_ci(_loss(ds), w)[0]
    assert widths(by_industry).sum() == pytest.approx(el, rel=1e-9)  # each group splits the expected gross loss
    assert widths(by_region).sum() == pytest.approx(el, rel=1e-9)


def test_loss_heatmap_errors(run: xr.Dataset) -> None:
    with pytest.raises(StresslabError, match="statistic must be one of 'expected'; got 'expectd'.*did you mean"):
        plots.loss_heatmap(run, statistic="expectd")
    with pytest.raises(StresslabError, match="loss_by_cell, or with loss_by_industry and loss_by_region"):
        plots.loss_heatmap(run.drop_vars(["loss_by_cell", "loss_by_region"], errors="ignore"))


# ------------------------------------------------------------------ who bears the loss
def test_loss_allocation_without_layers_is_the_lender_alone(any_run: xr.Dataset) -> None:
    ax = plots.loss_allocation(any_run, levels=(0.95, 0.99)).axes[0]
    parties, heights = _bars(ax)
    assert parties == ["lender"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["EL", "VaR 95%", "ES 95%", "VaR 99%", "ES 99%"]
    x, w = _loss(any_run), any_run["weight"].values
    expected = [mean_ci(x, w)[0]]
    for a in (0.95, 0.99):
        expected += list(var_es(x, w, a))
    np.testing.assert_allclose(heights.sum(axis=1), expected, rtol=1e-12)


def test_loss_allocation_known_numbers(layered: xr.Dataset) -> None:
    ax = plots.loss_allocation(layered, levels=(0.8,)).axes[0]
    parties, heights = _bars(ax)
    assert parties == ["fund", "insurer", "lender"]
    # Path totals: gross 300 (p + 1); fund 150, 300, 400, 400, 400; insurer 60 (p + 1).
    gross = 300.0 * np.arange(1, 6)
    fund = np.array([150.0, 300.0, 400.0, 400.0, 400.0])
    insurer = 0.2 * gross
    lender = gross - fund - insurer
    el = [fund.mean(), insurer.mean(), lender.mean()]
    # VaR 80% of 5 paths is the 4th smallest loss (path 3, 1200); the tail of weight 1 is path 4.
    at_var = [fund[3], insurer[3], lender[3]]
    es = [fund[4], insurer[4], lender[4]]
    np.testing.assert_allclose(heights, [el, at_var, es], rtol=1e-12)
    np.testing.assert_allclose(heights.sum(axis=1), [gross.mean(), 1200.0, 1500.0], rtol=1e-12)
    assert [t.get_text() for t in ax.texts] == ["0.9 CNY k", "1.2 CNY k", "1.5 CNY k"]  # the totals
    assert ax.get_ylabel() == "loss borne over the horizon, CNY k"


def test_loss_allocation_splits_ties_at_the_var_like_es(layered: xr.Dataset) -> None:
    # Path 3 raised to the loss of path 4 (1500; its layers still pay as before, the lender
    # takes the rest): losses 300, 600, 900, 1500, 1500. VaR 70% = 1500, and the 30% tail
    # (weight 1.5 of 5) is 3/4 of each of the two tied paths: ES = 1500.
    gross, paid = layered["loss_gross"].values.copy(), layered["layer_paid"].values
    gross[3] = 500.0
    ds = layered.assign(loss_gross=(("path", "month"), gross), loss_net=(("path", "month"), gross - paid.sum(axis=2)))
    x, w = _loss(ds), ds["weight"].values
    var, es = var_es(x, w, 0.7)
    assert var == 1500.0 and es == 1500.0
    _, heights = _bars(plots.loss_allocation(ds, levels=(0.7,)).axes[0])
    assert heights[1].sum() == pytest.approx(var, rel=1e-12)
    assert heights[2].sum() == pytest.approx(es, rel=1e-12)
    both = ds["layer_paid"].sel(path=[3, 4]).sum("month").mean("path").values  # each tied path at the same fraction
    np.testing.assert_allclose(heights[2][:2], both, rtol=1e-12)


def test_loss_allocation_matches_the_summary(layered_run: xr.Dataset) -> None:
    levels = (0.95, 0.99)
    ds = layered_run.assign(weight=("path", np.random.default_rng(3).gamma(2.0, 0.5, layered_run.sizes["path"])))
    s = stresslab.summary(ds, levels=levels)
    if "party_tail" not in s:
        pytest.skip("this summary has no loss allocation (party_tail)")
    parties, heights = _bars(plots.loss_allocation(ds, levels=levels).axes[0])
    assert parties == s["party"].values.tolist()
    np.testing.assert_allclose(heights[0], s["party_expected"].values, rtol=1e-10)
    gross = s.sel(measure="gross", window="horizon")
    for k, a in enumerate(levels):
        np.testing.assert_allclose(heights[2 + 2 * k], s["party_tail"].sel(level=a).values, rtol=1e-10)
        assert heights[1 + 2 * k].sum() == pytest.approx(float(gross["value_at_risk"].sel(level=a)), rel=1e-9)
        assert heights[2 + 2 * k].sum() == pytest.approx(float(gross["expected_shortfall"].sel(level=a)), rel=1e-9)
    from_summary = plots.loss_allocation(s, levels=(0.99,)).axes[0]
    assert [t.get_text() for t in from_summary.get_xticklabels()] == ["EL", "ES 99%"]
    np.testing.assert_allclose(_bars(from_summary)[1], heights[[0, 4]], rtol=1e-10)
    with pytest.raises(StresslabError, match="holds the levels 0.95, 0.99, not 0.9"):
        plots.loss_allocation(s, levels=(0.9,))


def test_loss_allocation_of_a_summary_without_layers_asks_for_the_run(run: xr.Dataset) -> None:
    with pytest.raises(StresslabError, match="needs the run itself"):
        plots.loss_allocation(stresslab.summary(run))


# ------------------------------------------------------------------ capacity
def test_capacity_fan_known_numbers(layered: xr.Dataset) -> None:
    ax = plots.capacity_fan(layered, layer="fund").axes[0]
    # capacity left by path and month: 350 300 250 / 300 200 100 / 250 100 0 / 200 0 0 / 150 0 0
    np.testing.assert_array_equal(_line(ax, "median").get_ydata(), [250.0, 100.0, 0.0])
    np.testing.assert_allclose(_line(ax, "mean").get_ydata(), [250.0, 120.0, 70.0], rtol=1e-12)
    assert _line(ax, "capacity").get_ydata()[0] == 400.0
    assert ax.get_ylabel() == "capacity left at month end, CNY"


def test_capacity_fan_is_weighted(layered: xr.Dataset) -> None:
    ds = layered.assign(weight=("path", [0.0, 0.0, 0.0, 2.5, 2.5]))
    ax = plots.capacity_fan(ds, layer="fund").axes[0]
    # only paths 3 and 4 count, half each: month 1 holds 200 and 150, whose (lower) median is 150
    np.testing.assert_array_equal(_line(ax, "median").get_ydata(), [150.0, 0.0, 0.0])
    np.testing.assert_allclose(_line(ax, "mean").get_ydata(), [175.0, 0.0, 0.0], rtol=1e-12)


def test_capacity_plots_errors(layered: xr.Dataset, run: xr.Dataset) -> None:
    with pytest.raises(StresslabError, match="unlimited capacity"):
        plots.capacity_fan(layered, layer="insurer")
    with pytest.raises(StresslabError, match="no layer 'funds'.*did you mean 'fund'"):
        plots.capacity_fan(layered, layer="funds")
    for plot in (lambda: plots.capacity_fan(run, layer="fund"), lambda: plots.exhaustion_curve(run)):
        with pytest.raises(StresslabError, match="needs credit-enhancement layers"):
            plot()


def test_exhaustion_curve_known_numbers(layered: xr.Dataset) -> None:
    ax = plots.exhaustion_curve(layered).axes[0]
    np.testing.assert_allclose(_line(ax, "fund").get_ydata(), [0.0, 0.4, 0.6], rtol=1e-12)
    assert _line(ax, "insurer: unlimited").get_xydata().size == 0  # named, not drawn
    # once exhausted, counted as exhausted even if capacity came back (a top-up)
    ds = layered.copy(deep=True)
    ds["layer_capacity_left"][3, 2, 0] = 400.0
    ds["weight"][:] = [1.0, 1.0, 1.0, 1.0, 0.0]
    ax = plots.exhaustion_curve(ds).axes[0]
    np.testing.assert_allclose(_line(ax, "fund").get_ydata(), [0.0, 0.2, 0.4], rtol=1e-12)


def test_exhaustion_curve_of_a_summary_equals_that_of_the_run(layered_run: xr.Dataset) -> None:
    s = stresslab.summary(layered_run)
    if "layer_exhaustion_probability" not in s:
        pytest.skip("this summary has no layer exhaustion")
    from_run = plots.exhaustion_curve(layered_run).axes[0]
    from_summary = plots.exhaustion_curve(s).axes[0]
    assert [x.get_label() for x in from_run.get_lines()] == [x.get_label() for x in from_summary.get_lines()]
    for a, b in zip(from_run.get_lines(), from_summary.get_lines()):
        np.testing.assert_allclose(a.get_ydata(), b.get_ydata(), rtol=1e-12)
    assert _line(from_run, "guarantor").get_ydata()[-1] > 0  # the capacity binds in some paths


# ------------------------------------------------------------------ bad input
def test_bad_input_gives_clear_errors(run: xr.Dataset) -> None:
    with pytest.raises(StresslabError, match="measure must be one of 'gross', 'net'; got 'gros'.*did you mean 'gross'"):
        plots.loss_distribution(run, measure="gros")
    with pytest.raises(StresslabError, match="window must be one of"):
        plots.exceedance_curve(run, window="6m")
    with pytest.raises(StresslabError, match="level must be strictly between 0 and 1; got 99"):
        plots.loss_distribution(run, levels=(99,))
    with pytest.raises(StresslabError, match="by must be one of 'balance', 'count'"):
        plots.state_stack(run, by="loans")
    with pytest.raises(StresslabError, match="this is a summary: pass the run itself"):
        plots.loss_distribution(stresslab.summary(run))
    with pytest.raises(StresslabError, match="each of quantiles must be strictly between 0 and 1"):
        plots.dpd30_fan(run, quantiles=(0.5, 1.5))
    two = xr.concat([run, run], dim="scenario")
    with pytest.raises(StresslabError, match="one scenario at a time"):
        plots.exceedance_curve(two)
    with pytest.raises(StresslabError, match="weights must be finite and >= 0"):
        plots.exceedance_curve(run.assign(weight=("path", -np.ones(run.sizes["path"]))))
