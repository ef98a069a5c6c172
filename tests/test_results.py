"""Tests of stresslab.estimators: weighted VaR/ES and their confidence intervals, the summary,
its text table, and lossless atomic result files.

Statistical checks use |estimate - truth| < 4 se, or a 95% interval's coverage within 4
binomial standard deviations; seeds are fixed, so every run checks the same draws.
"""

from __future__ import annotations

import errno
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from stresslab.errors import StresslabError
from stresslab.estimators import (
    controlled_terms,
    effective_paths,
    es_ci,
    mean_ci,
    mean_weight_check,
    paths_needed,
    var_ci,
    var_es,
    weighted_quantile,
)
from stresslab.io import load_results, save_results
from stresslab.metrics.summary import summary
from stresslab.text import format_summary

Z95 = stats.norm.ppf(0.975)
STATES = ["C", "M1", "M2", "M3", "D", "P"]


# ----------------------------------------------------------------------------- VaR and ES
@pytest.mark.parametrize(
    ("level", "var", "es"),
    [(0.5, 5, 8), (0.75, 8, 9.2), (0.8, 8, 9.5), (0.9, 9, 10), (0.95, 10, 10)],
)
def test_var_es_with_unit_weights_are_the_textbook_values(level, var, es):
    # 1..10: VaR is the order statistic ceil(a n); ES the Acerbi-Tasche mean of the top n(1-a)
    x = np.array([3.0, 9, 1, 10, 5, 2, 8, 4, 7, 6])
    assert var_es(x, np.ones(10), level) == (pytest.approx(var, abs=1e-12), pytest.approx(es, abs=1e-12))
    assert weighted_quantile(x, np.ones(10), level) == var


def test_var_es_with_ties():
    x, w = np.array([2.0, 1, 3, 2, 2]), np.ones(5)
    assert var_es(x, w, 0.5) == (2.0, pytest.approx(2.4, abs=1e-12))  # (3 + 2 + 0.5 * 2) / 2.5
    np.testing.assert_array_equal(weighted_quantile(x, w, [0.2, 0.5, 0.9]), [1.0, 2.0, 3.0])


def test_weights_act_as_replication():
    x, w = np.array([1.0, 2, 3, 4]), np.array([2.0, 0, 1, 1])
    same = np.array([1.0, 1, 3, 4])
    for level in (0.25, 0.5, 0.6, 0.75, 0.9):
        assert var_es(x, w, level) == pytest.approx(var_es(same, np.ones(4), level), abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.integers(-1000, 1000), min_size=2, max_size=60), permille=st.integers(1, 999))
def test_unit_weight_var_is_order_statistic_and_es_is_acerbi_tasche(values, permille):
    x, n, level = np.array(values, dtype=float), len(values), permille / 1000
    var, es = var_es(x, np.ones(n), level)
    descending = np.sort(x)[::-1]
    assert var == descending[n - math.ceil(permille * n / 1000)]  # x_(ceil(a n)), integer arithmetic
    m = (1000 - permille) * n / 1000
    whole = math.floor(m + 1e-9)
    acerbi_tasche = (descending[:whole].sum() + (m - whole) * descending[min(whole, n - 1)]) / m
    assert es == pytest.approx(acerbi_tasche, rel=1e-9, abs=1e-9)
    assert es >= var


def test_intervals_cover_the_truth_for_exponential_losses():
    # Exp(1): EL 1, VaR_a = -log(1 - a), ES_a = VaR_a + 1
    x = np.random.default_rng(2024).exponential(size=20_000)
    w = np.ones_like(x)
    el, low, high = mean_ci(x, w)
    assert low < 1 < high and abs(el - 1) < 4 * (high - low) / (2 * Z95)
    for level in (0.9, 0.99):
        true_var = -np.log1p(-level)
        var, es = var_es(x, w, level)
        (v_low, v_high), (e_low, e_high) = var_ci(x, w, level), es_ci(x, w, level)
        assert v_low <= true_var <= v_high and abs(var - true_var) < 4 * (v_high - v_low) / (2 * Z95)
        assert e_low <= true_var + 1 <= e_high and abs(es - true_var - 1) < 4 * (e_high - e_low) / (2 * Z95)


def test_importance_sampling_estimates_the_normal_tail_within_4_se():
    # target N(0, 1); draws from N(3, 1) weighted by the likelihood ratio phi(x) / phi(x - 3)
    mu, level, n = 3.0, 0.999, 20_000
    x = np.random.default_rng(99).normal(mu, 1.0, n)
    w = np.exp(-mu * x + mu**2 / 2)
    true_var = stats.norm.ppf(level)
    true_es = stats.norm.pdf(true_var) / (1 - level)
    var, es = var_es(x, w, level)
    (v_low, v_high), (e_low, e_high) = var_ci(x, w, level), es_ci(x, w, level)
    se_var, se_es = (v_high - v_low) / (2 * Z95), (e_high - e_low) / (2 * Z95)
    assert abs(var - true_var) < 4 * se_var
    assert abs(es - true_es) < 4 * se_es
    # plain MC with the same n: se of VaR = sqrt(a (1 - a) / n) / density
    assert se_var < np.sqrt(level * (1 - level) / n) / stats.norm.pdf(true_var) / 5


def test_95_percent_intervals_cover_95_percent_of_the_time():
    reps, n, level = 200, 2000, 0.95
    true_var = -np.log1p(-level)
    rng = np.random.default_rng(5)
    covered = np.zeros(3)
    for _ in range(reps):
        x, w = rng.exponential(size=n), np.ones(n)
        _, low, high = mean_ci(x, w)
        v_low, v_high = var_ci(x, w, level)
        e_low, e_high = es_ci(x, w, level)
        covered += [low <= 1 <= high, v_low <= true_var <= v_high, e_low <= true_var + 1 <= e_high]
    tolerance = 4 * np.sqrt(0.95 * 0.05 / reps)  # 4 binomial standard deviations: 0.062
    for name, rate in zip(("EL", "VaR", "ES"), covered / reps):
        assert abs(rate - 0.95) < tolerance, (name, rate)


def test_intervals_are_unbounded_above_when_the_sample_cannot_bound_them():
    x, w = np.arange(100.0), np.ones(100)  # 0.1 paths expected above the 99.9% VaR
    assert var_es(x, w, 0.999) == (99.0, 99.0)
    assert var_ci(x, w, 0.999) == (97.0, np.inf)  # order statistic ceil(100 (0.999 - 0.0196)) = 98
    assert es_ci(x, w, 0.999) == (99.0, np.inf)  # ES >= VaR: not the point [99, 99]


# ----------------------------------------------------------------------------- summary
def hand_run(weight=(1.0, 1.0, 1.0, 1.0)) -> xr.Dataset:
    """4 paths, 14 months: horizon gross losses 1e6, 4e6, 3e6, 0; first 12 months 1e6, 0, 2e6, 0."""
    months = 14
    gross = np.zeros((4, months))
    gross[0, 0], gross[1, 12], gross[2, 4], gross[2, 13] = 1e6, 4e6, 2e6, 1e6
    balance = np.zeros((4, months, 6))
    balance[:, :, 0] = 100.0
    balance[0, 0, :4] = [60, 20, 10, 10]  # DPD30+ 20%
    balance[1, 0, :] = [0, 0, 0, 0, 50, 0]  # nothing live: 0
    balance[2, 0, :4] = [50, 0, 50, 0]  # 50%
    count = np.zeros((4, months, 6), dtype=np.int64)
    count[:, :, 0] = 1
    count[0, 0, :4] = [1, 0, 1, 0]  # 50% by count
    count[1, 0, 0] = 0
    return xr.Dataset(
        {
            "loss_gross": (("path", "month"), gross, {"units": "CNY"}),
            "loss_net": (("path", "month"), gross / 2, {"units": "CNY"}),
            "balance_by_state": (("path", "month", "state"), balance, {"units": "CNY"}),
            "count_by_state": (("path", "month", "state"), count, {"units": "1"}),
            "weight": (("path",), np.array(weight, dtype=float), {"units": "1"}),
        },
        coords={"path": np.arange(4), "month": np.arange(1, months + 1), "state": STATES},
        attrs={"scenario_name": "hand", "seed": 42, "portfolio_digest": "abc123", "versions": "stresslab 0.1.0", "n_paths": 4},
    )


def test_summary_of_a_hand_built_run():
    s = summary(hand_run(), levels=(0.5, 0.75))
    assert dict(s.sizes) == {"measure": 2, "window": 2, "level": 2, "bound": 2, "month": 14, "quantile": 4}
    assert list(s["window"].values) == ["horizon", "12m"] and list(s["measure"].values) == ["gross", "net"]
    horizon, first12 = np.array([1e6, 4e6, 3e6, 0]), np.array([1e6, 0, 2e6, 0])
    np.testing.assert_allclose(s["expected_loss"].values, [[2e6, 0.75e6], [1e6, 0.375e6]])
    np.testing.assert_allclose(s["std_dev"].sel(measure="gross").values, [np.std(horizon, ddof=1), np.std(first12, ddof=1)])
    g = s.sel(measure="gross", window="horizon")
    np.testing.assert_allclose(g["value_at_risk"].values, [1e6, 3e6])  # order statistics 2 and 3 of 0, 1e6, 3e6, 4e6
    np.testing.assert_allclose(g["expected_shortfall"].values, [3.5e6, 4e6])
    half = Z95 * np.std(horizon, ddof=1) / 2
    np.testing.assert_allclose(g["expected_loss_ci"].values, [2e6 - half, 2e6 + half])
    assert g["dpd30_ratio_mean"].sel(month=1) == pytest.approx(0.175)
    assert np.all(g["dpd30_ratio_mean"].sel(month=slice(2, None)) == 0)
    np.testing.assert_allclose(s["dpd30_ratio_quantile"].sel(month=1).values, [0, 0, 0.5, 0.5])
    assert s["dpd30_count_ratio_mean"].sel(month=1) == pytest.approx(0.125)
    assert int(s["n_paths"]) == 4 and float(s["effective_sample_size"]) == 4.0
    for key in ("seed", "scenario_name", "portfolio_digest", "versions"):
        assert s.attrs[key] == hand_run().attrs[key]
    for name, variable in s.data_vars.items():
        assert {"units", "long_name"} <= set(variable.attrs), name


def test_summary_honours_weights():
    w = (0.5, 1.5, 1.0, 1.0)
    s = summary(hand_run(weight=w))
    assert float(s["expected_loss"].sel(measure="gross", window="horizon")) == pytest.approx((0.5e6 + 6e6 + 3e6) / 4)
    assert float(s["effective_sample_size"]) == pytest.approx(16 / 4.5)
    assert float(s["dpd30_ratio_mean"].sel(month=1)) == pytest.approx((0.5 * 0.2 + 0.5) / 4)


def test_twelve_month_window_is_the_horizon_when_it_is_shorter():
    s = summary(hand_run().isel(month=slice(0, 5)))
    xr.testing.assert_equal(s["expected_shortfall"].sel(window="12m", drop=True), s["expected_shortfall"].sel(window="horizon", drop=True))


def test_format_summary_shows_the_key_numbers():
    s = summary(hand_run(), levels=(0.5, 0.75))
    text = format_summary(s)
    for piece in ("scenario hand", "paths 4", "seed 42", "effective sample size 4",
                  "Gross loss, CNY", "Net loss, CNY", "2,000,000", "750,000", "VaR 75%", "ES 50%", "3,500,000",
                  "17.50", "50.00"):
        assert piece in text, piece
    same = format_summary(summary(hand_run().assign(loss_net=lambda d: d["loss_gross"])))
    assert "Net loss" not in same and "net loss equals gross loss" in same


# ----------------------------------------------------------------------------- files
def full_run(n: int = 50, months: int = 6) -> xr.Dataset:
    rng = np.random.default_rng(3)
    gross = rng.exponential(1e4, (n, months))
    gross[0, :3] = [-0.0, 5e-324, np.nan]  # signed zero, subnormal and NaN survive bitwise
    return xr.Dataset(
        {
            "loss_gross": (("path", "month"), gross, {"long_name": "gross loss", "units": "CNY"}),
            "loss_net": (("path", "month"), gross * 0.6, {"long_name": "net loss", "units": "CNY"}),
            "interest_income": (("path", "month"), rng.random((n, months)), {"units": "CNY"}),
            "recoveries": (("path", "month"), rng.random((n, months)), {"units": "CNY"}),
            "balance_by_state": (("path", "month", "state"), rng.random((n, months, 6)), {"units": "CNY"}),
            "count_by_state": (("path", "month", "state"), rng.integers(0, 2**40, (n, months, 6)), {"units": "1"}),
            "loss_by_industry": (("path", "industry"), rng.random((n, 2)), {"units": "CNY"}),
            "loss_by_region": (("path", "region"), rng.random((n, 3)), {"units": "CNY"}),
            "weight": (("path",), rng.random(n), {"units": "1"}),
        },
        coords={
            "path": np.arange(n, dtype=np.int64),
            "month": np.arange(1, months + 1, dtype=np.int64),
            "state": np.array(STATES),
            "industry": np.array(["零售", "餐饮"]),
            "region": np.array(["east", "west", "north"]),
        },
        attrs={
            "scenario_name": "疫情 pandemic",
            "scenario": json.dumps({"shock": -0.3, "name": "疫情"}, ensure_ascii=False),
            "portfolio_digest": "abc123",
            "seed": 42,
            "n_paths": n,
            "versions": "stresslab 0.1.0; numpy 2.4.6",
        },
    )


def assert_bitwise_identical(a: xr.Dataset, b: xr.Dataset) -> None:
    xr.testing.assert_identical(a, b)
    for name, variable in a.variables.items():
        assert b[name].dtype == variable.dtype, name
        if variable.dtype.kind == "f":
            np.testing.assert_array_equal(variable.values.view(np.uint64), b[name].values.view(np.uint64))


def test_round_trip_is_bitwise(tmp_path):
    ds = full_run()
    path = tmp_path / "run.nc"
    save_results(ds, path)
    loaded = load_results(path)
    os.remove(path)  # the result is in memory and the file closed
    assert_bitwise_identical(ds, loaded)
    assert loaded.attrs["seed"] == 42 and json.loads(loaded.attrs["scenario"])["name"] == "疫情"


def test_summary_round_trips(tmp_path):
    s = summary(hand_run())
    save_results(s, tmp_path / "summary.nc")
    assert_bitwise_identical(s, load_results(tmp_path / "summary.nc"))


def test_saving_a_loaded_run_again_overwrites_it(tmp_path):
    path = tmp_path / "run.nc"
    save_results(full_run(), path)
    save_results(load_results(path).isel(path=slice(0, 10)), path)
    assert load_results(path).sizes["path"] == 10


@pytest.mark.parametrize(
    ("error", "message"),
    [(OSError(errno.ENOSPC, "No space left on device"), "no space left"), (PermissionError(errno.EACCES, "Permission denied"), "permission denied")],
)
def test_failed_save_keeps_the_earlier_file_and_leaves_no_temporary(tmp_path, monkeypatch, error, message):
    path = tmp_path / "run.nc"
    earlier = full_run()
    save_results(earlier, path)

    def fail_midway(self, target, **kwargs):
        with open(target, "wb") as f:
            f.write(b"\x89HDF half a file")
        raise error

    monkeypatch.setattr(xr.Dataset, "to_netcdf", fail_midway)
    with pytest.raises(StresslabError, match=message) as info:
        save_results(full_run(n=7), path)
    assert str(path) in str(info.value) and "unchanged" in str(info.value)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["run.nc"]
    assert_bitwise_identical(earlier, load_results(path))


def test_unsupported_attribute_is_a_clear_error(tmp_path):
    with pytest.raises(StresslabError, match="versions"):
        save_results(full_run().assign_attrs(versions={"numpy": "2.4"}), tmp_path / "run.nc")
    assert os.listdir(tmp_path) == []


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(StresslabError, match="could not save results"):
        save_results(full_run(), tmp_path / "no" / "run.nc")


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.drop_vars("loss_net"), "lack the variable.*loss_net"),
        (lambda d: d.assign(weight=d["weight"].copy(data=[1.0, -1.0, 1.0, 1.0])), "weights must be finite and >= 0.*path 1"),
        (lambda d: d.assign(weight=d["weight"].copy(data=[1.0, 1.0, np.nan, 1.0])), "weights must be finite"),
        (lambda d: d.assign(weight=d["weight"] * 0), "weights are all zero"),
        (lambda d: d.drop_sel(state="M2"), "lack the state.*M2"),
        (lambda d: d.assign(loss_gross=d["loss_gross"].where(d["month"] != 2)), "loss_gross holds NaN"),
        (lambda d: xr.concat([d, d], "scenario"), "one scenario at a time"),
    ],
)
def test_bad_runs_are_clear_errors(change, message):
    with pytest.raises(StresslabError, match=message):
        summary(change(hand_run()))


@pytest.mark.parametrize(("kwargs", "message"), [({"levels": (0.99, 1.0)}, "levels must be strictly between 0 and 1; got 1.0"),
                                                 ({"levels": ()}, "at least one"),
                                                 ({"ci": 95}, "ci must be strictly between 0 and 1; got 95")])
def test_bad_levels_are_clear_errors(kwargs, message):
    with pytest.raises(StresslabError, match=message):
        summary(hand_run(), **kwargs)


def test_bad_samples_are_clear_errors():
    with pytest.raises(StresslabError, match="same length"):
        var_es(np.ones(3), np.ones(4), 0.9)
    with pytest.raises(StresslabError, match="at least 2 paths"):
        mean_ci([1.0], [1.0])
    with pytest.raises(StresslabError, match="level must be strictly between 0 and 1; got 0.0"):
        weighted_quantile([1.0, 2.0], [1.0, 1.0], 0.0)


def test_loading_a_missing_or_broken_file_is_a_clear_error(tmp_path):
    with pytest.raises(StresslabError, match="no such file"):
        load_results(tmp_path / "absent.nc")
    (tmp_path / "broken.nc").write_bytes(b"not netCDF")
    with pytest.raises(StresslabError, match="not a readable netCDF file"):
        load_results(tmp_path / "broken.nc")


# ----------------------------------------------------------------------------- what a summary can and cannot say
def test_paths_needed_for_an_unbounded_var_interval():
    """The upper bound exists once z s / sqrt(n) < 1 - a: N = floor((z s / (1 - a))^2) + 1, s the
    per-path sd of the tail indicator (here 1{x >= VaR}: 1 path of 100)."""
    x, w = np.arange(100.0), np.ones(100)
    s = np.std(x >= 99.0, ddof=1)
    assert paths_needed(x, w, 0.999) == int((Z95 * s / 0.001) ** 2) + 1
    assert paths_needed(x, w, 0.9) == 0  # bounded
    y = np.random.default_rng(4).exponential(1.0, paths_needed(x, w, 0.999))
    assert np.isfinite(var_ci(y, np.ones(y.size), 0.999)[1])


def test_effective_paths_per_metric():
    rng = np.random.default_rng(6)
    x = rng.exponential(1.0, 4000)
    assert effective_paths(x, np.ones_like(x)) == pytest.approx(x.size, rel=1e-12)  # plain: n
    # P(X > 5) sampled from the exponential shifted by 3 (likelihood ratio e^-3 on the support)
    y = rng.exponential(1.0, 4000) + 3.0
    assert effective_paths((y > 5.0).astype(float), np.full(y.size, np.exp(-3.0))) > 10 * y.size


def test_mean_weight_check_and_the_warning_that_withholds_the_body():
    assert mean_weight_check(np.ones(10)) == (1.0, 1.0, 1.0, True)
    ds = full_run(200)
    ds["loss_gross"][0, 2] = ds["loss_net"][0, 2] = 0.0
    ds["weight"][:] = 0.5  # mean weight 0.5 with zero spread: 1 is outside any interval
    ds.attrs |= {"sampling": "importance", "defensive_share": 0.1}
    s = summary(ds)
    assert not bool(s.weight_check) and float(s.mean_weight) == 0.5
    text = format_summary(s)
    warning = [line for line in text.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "EL, Std and DPD30+" in warning[0] and "more paths" in warning[0]
    assert "withheld" in text.split("  EL")[1].splitlines()[0]
    assert "10% of paths from the nominal law, every weight <= 10" in text
    assert "effective sample size per metric" in text


def test_format_summary_says_how_many_paths_an_unbounded_bound_needs():
    ds = full_run(100)
    ds["loss_gross"][0, 2] = ds["loss_net"][0, 2] = 0.0
    ds["weight"][:] = 1.0
    s = summary(ds, levels=(0.999,))
    needed = int(s.value_at_risk_paths_needed.sel(measure="gross", window="horizon", level=0.999))
    assert needed > 100
    text = format_summary(s)
    assert f"n/a (too few paths: {needed:,} needed)" in text and "inf" not in text


def test_control_variate_terms():
    """Plain weights leave the terms w h; likelihood ratios of a shifted normal (mean 1) give an
    estimate of E[h] within 4 standard errors, with a smaller variance than w h."""
    x = np.arange(5.0)
    assert np.array_equal(controlled_terms(x, np.ones(5)), x)
    rng = np.random.default_rng(12)
    y = rng.normal(1.0, 1.0, 20_000)  # sampled from N(1, 1); target N(0, 1)
    w = np.exp(0.5 - y)
    h = np.exp(y / 2)  # E_p[h] = e^(1/8)
    r = controlled_terms(h, w)
    assert abs(r.mean() - np.exp(0.125)) < 4 * r.std(ddof=1) / np.sqrt(r.size)
    assert r.var() < (w * h).var()
    two = controlled_terms(np.column_stack([h, 2 * h]), w)
    np.testing.assert_allclose(two, np.column_stack([r, 2 * r]), rtol=1e-12, atol=1e-12 * np.abs(r).max())


def test_cli_prints_na_not_inf_for_a_bound_the_paths_cannot_give(capsys):
    from pathlib import Path

    from stresslab.cli import main

    scenario = Path(__file__).resolve().parents[1] / "scenarios" / "services_downturn.toml"
    assert main(["run", str(scenario), "--synthetic", "100", "--paths", "200", "--seed", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "n/a (too few paths: " in out and "inf" not in out


def test_summary_gives_shares_of_the_book_and_no_ratio_once_the_book_has_run_off():
    """Figures as a share of the book's exposure at the start (attrs book_exposure); the DPD30+
    ratio is n/a in months with under 1% of the book live (issue 15: 100% at month 36 when
    0.5% was left)."""
    import stresslab

    book = stresslab.synthetic_portfolio(400, seed=3)
    scenario = Path(__file__).resolve().parents[1] / "scenarios" / "services_downturn.toml"
    ds = stresslab.simulate(book, stresslab.load_scenario(scenario), 200, seed=2)
    assert ds.attrs["book_exposure"] == pytest.approx(float(book.balance.sum()), rel=1e-15)
    s = stresslab.summary(ds)
    live = ds["balance_by_state"].sel(state=["C", "M1", "M2", "M3"]).sum("state").mean("path").values
    np.testing.assert_allclose(s["live_share_mean"].values, live / book.balance.sum(), rtol=1e-12)
    text = format_summary(s)
    el = float(s["expected_loss"].sel(measure="gross", window="horizon"))
    assert f"{el:,.0f} ({100 * el / book.balance.sum():.2f}%)" in text
    last = s["live_share_mean"].values[-1]
    assert last < 0.01 and "n/a: less than 1% of the book is live" in text
