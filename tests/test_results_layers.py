"""Tests of the credit-enhancement part of stresslab.metrics.summary.summary (stresslab.metrics.layers):
who bears the loss (expected and ES-type tail allocation), layer exhaustion, provider
failure, fees and payout quantiles, on hand-built runs with exactly known answers.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from stresslab.errors import StresslabError
from stresslab.estimators import var_es, weighted_quantile
from stresslab.metrics.summary import summary
from stresslab.text import format_summary

STATES = ["C", "M1", "M2", "M3", "D", "P"]
LAYERS = ["insurer", "fund", "state"]
K = 1000.0  # CNY per unit of the hand tables below
# Horizon totals per path (in K) borne by insurer, fund, state and the lender; gross = their sum:
# 0, 10, 40, 100, 100, 200, 30, 20 (paths 3 and 4 tie).
BORNE = np.array(
    [[0, 0, 0, 0], [10, 0, 0, 0], [30, 0, 5, 5], [60, 0, 25, 15],
     [40, 0, 30, 30], [100, 0, 50, 50], [0, 0, 5, 25], [20, 0, 0, 0]],
    dtype=float,
)
SPREAD = np.array([0.25, 0.5, 0.25, 0.0])  # share of each total booked in months 1..4 (exact in binary)
# insurer capacity left (capacity 100 K), set by hand: path 3 exhausted in month 2 and topped up
# in month 3; path 5 exhausted in month 3; path 4 in month 4; the others never.
INSURER_LEFT = np.array(
    [[100, 100, 100, 100], [97.5, 92.5, 90, 90], [95, 85, 80, 80], [60, 0, 100, 100],
     [90, 70, 50, 0], [75, 25, 0, 0], [100, 100, 100, 100], [95, 85, 80, 80]],
    dtype=float,
)


def layered_run(weight=None, borne=BORNE, insurer_left=INSURER_LEFT) -> xr.Dataset:
    """8 paths, 4 months, 3 layers: insurer (capacity 100 K, refilled), fund (capacity 0), state (unlimited)."""
    n, months = borne.shape[0], SPREAD.size
    parts = borne[:, None, :] * SPREAD[None, :, None] * K  # (path, month, party)
    left = np.empty((n, months, 3))
    left[:, :, 0], left[:, :, 1], left[:, :, 2] = insurer_left * K, 0.0, np.inf
    fee = np.zeros((n, months, 3))
    fee[:, :, 0], fee[:, :, 2] = 1 * K, 0.5 * K
    failed = np.zeros((n, 3), dtype=np.int8)
    failure_month = np.zeros((n, 3), dtype=np.int64)
    failed[[5, 6], 0], failure_month[[5, 6], 0] = 1, [2, 3]
    cash = np.concatenate([np.zeros((n, 1, 3)), parts[:, :-1, :3]], axis=1)  # one month's lag
    balance = np.zeros((n, months, 6))
    balance[:, :, 0] = 1e6
    count = np.zeros((n, months, 6), dtype=np.int64)
    count[:, :, 0] = 10
    pmw, pm = ("path", "month", "layer"), ("path", "month")
    return xr.Dataset(
        {
            "loss_gross": (pm, parts.sum(axis=2), {"units": "CNY"}),
            "loss_net": (pm, parts[:, :, 3], {"units": "CNY"}),
            "layer_paid": (pmw, parts[:, :, :3], {"units": "CNY"}),
            "layer_cash": (pmw, cash, {"units": "CNY"}),
            "layer_capacity_left": (pmw, left, {"units": "CNY"}),
            "layer_fee": (pmw, fee, {"units": "CNY"}),
            "layer_failed": (("path", "layer"), failed, {"units": "1"}),
            "layer_failure_month": (("path", "layer"), failure_month, {"units": "1"}),
            "balance_by_state": (("path", "month", "state"), balance, {"units": "CNY"}),
            "count_by_state": (("path", "month", "state"), count, {"units": "1"}),
            "weight": (("path",), np.ones(n) if weight is None else np.asarray(weight, dtype=float), {"units": "1"}),
        },
        coords={
            "path": np.arange(n),
            "month": np.arange(1, months + 1),
            "state": STATES,
            "layer": LAYERS,
            "layer_capacity": ("layer", [100 * K, 0.0, np.inf], {"units": "CNY"}),
            "layer_kind": ("layer", ["excess_of_loss", "compensation_fund", "quota_share"]),
        },
        attrs={"scenario_name": "layered", "seed": 7},
    )


LEVELS = (0.5, 0.75, 0.9)
PARTIES = LAYERS + ["lender"]


def test_who_bears_the_loss_on_a_hand_case():
    s = summary(layered_run(), levels=LEVELS)
    assert list(s["party"].values) == PARTIES and list(s["layer"].values) == LAYERS
    expected = np.array([260, 0, 115, 125]) / 8 * K  # column sums of BORNE / 8 paths
    np.testing.assert_allclose(s["party_expected"].values, expected)
    np.testing.assert_allclose(s["party_share_expected"].values, [0.52, 0, 0.23, 0.25])
    gross_el = float(s["expected_loss"].sel(measure="gross", window="horizon"))
    assert gross_el == pytest.approx(500 / 8 * K) and s["party_expected"].sum() == pytest.approx(gross_el)
    half = 1.959963984540054 * np.std(BORNE[:, 0] * K, ddof=1) / np.sqrt(8)
    np.testing.assert_allclose(s["party_expected_ci"].sel(party="insurer").values, [expected[0] - half, expected[0] + half])
    # sorted gross: 0 10 20 30 40 100 100 200.
    # a = 0.5: VaR 30, tail = the 4 paths above it (path 6, at the VaR, gets fraction 0): ES 110.
    # a = 0.75: VaR 100, tail weight 2 = path 5 (200) + half of each of the tied paths 3 and 4.
    # a = 0.9: VaR 200, tail = path 5 alone.
    tail = np.array(
        [
            [(30 + 60 + 40 + 100) / 4, (100 + 0.5 * (60 + 40)) / 2, 100],  # insurer
            [0, 0, 0],  # fund
            [(5 + 25 + 30 + 50) / 4, (50 + 0.5 * (25 + 30)) / 2, 50],  # state
            [(5 + 15 + 30 + 50) / 4, (50 + 0.5 * (15 + 30)) / 2, 50],  # lender
        ]
    ) * K
    np.testing.assert_allclose(s["party_tail"].values, tail)
    es = s["expected_shortfall"].sel(measure="gross", window="horizon").values
    np.testing.assert_allclose(es, np.array([110, 150, 200]) * K)
    np.testing.assert_allclose(s["party_tail"].sum("party").values, es, rtol=1e-14)
    np.testing.assert_allclose(s["party_share_tail"].values, tail / es)
    np.testing.assert_allclose(s["party_share_tail"].sum("party").values, 1.0, rtol=1e-14)


def test_tied_paths_share_the_tail_equally_whatever_their_order():
    a = summary(layered_run(), levels=LEVELS)
    b = summary(layered_run().isel(path=[4, 0, 7, 3, 5, 2, 6, 1]), levels=LEVELS)
    for name in ("party_tail", "party_expected", "layer_paid_var", "layer_exhaustion_probability"):
        np.testing.assert_allclose(a[name].values, b[name].values, rtol=1e-14, err_msg=name)


def test_exhaustion_failure_fees_and_payout_quantiles_on_a_hand_case():
    s = summary(layered_run(), levels=LEVELS)
    exh = s["layer_exhaustion_probability"]
    assert exh.dims == ("layer", "month")
    # insurer first exhausted in months 2 (path 3, refilled in month 3: still counts), 3 and 4
    np.testing.assert_array_equal(exh.sel(layer="insurer").values, [0, 1 / 8, 2 / 8, 3 / 8])
    np.testing.assert_array_equal(exh.sel(layer="fund").values, [1, 1, 1, 1])  # capacity 0: from month 1
    np.testing.assert_array_equal(exh.sel(layer="state").values, [0, 0, 0, 0])  # unlimited
    median = s["layer_exhaustion_median_month"]
    assert float(median.sel(layer="insurer")) == 3  # first months 2, 3, 4
    assert float(median.sel(layer="fund")) == 1
    assert np.isnan(float(median.sel(layer="state")))
    np.testing.assert_array_equal(s["layer_failure_probability"].values, [0.25, 0, 0])
    se = np.std([0, 0, 0, 0, 0, 1, 1, 0], ddof=1) / np.sqrt(8)
    np.testing.assert_allclose(s["layer_failure_probability_ci"].sel(layer="insurer").values,
                               [0.25 - 1.959963984540054 * se, 0.25 + 1.959963984540054 * se])
    np.testing.assert_array_equal(s["layer_failure_probability_ci"].sel(layer="fund").values, [0, 0])
    np.testing.assert_allclose(s["layer_fee_expected"].values, np.array([4, 0, 2]) * K)
    # insurer totals sorted 0 0 10 20 30 40 60 100; state totals 0 0 0 5 5 25 30 50
    np.testing.assert_allclose(s["layer_paid_var"].values, np.array([[20, 40, 100], [0, 0, 0], [5, 25, 50]]) * K)
    for j, layer in enumerate(LAYERS):
        np.testing.assert_array_equal(s["layer_paid_var"].sel(layer=layer).values,
                                      weighted_quantile(BORNE[:, j] * K, np.ones(8), LEVELS))
    assert list(s["layer_kind"].values) == ["excess_of_loss", "compensation_fund", "quota_share"]
    np.testing.assert_array_equal(s["layer_capacity"].values, [100 * K, 0, np.inf])


def test_median_exhaustion_month_is_the_lower_weighted_median():
    left = INSURER_LEFT.copy()
    left[4, 3] = 50  # now exhausted only by paths 3 (month 2) and 5 (month 3)
    s = summary(layered_run(insurer_left=left))
    assert float(s["layer_exhaustion_median_month"].sel(layer="insurer")) == 2
    s = summary(layered_run(weight=[1, 1, 1, 0.5, 1, 1.5, 1, 1], insurer_left=left))
    assert float(s["layer_exhaustion_median_month"].sel(layer="insurer")) == 3  # 0.5 of 2 by month 2
    np.testing.assert_allclose(s["layer_exhaustion_probability"].sel(layer="insurer").values, [0, 0.5 / 8, 2 / 8, 2 / 8])


def test_weights_act_as_replication():
    # weight 2 on path 5 and 0 on path 0 == path 0 replaced by a copy of path 5, unit weights
    weighted = summary(layered_run(weight=[0, 1, 1, 1, 1, 2, 1, 1]), levels=LEVELS)
    copy = [5, 1, 2, 3, 4, 5, 6, 7]
    replicated = summary(
        layered_run(borne=BORNE[copy], insurer_left=INSURER_LEFT[copy]).pipe(
            lambda d: d.assign(layer_failed=d["layer_failed"].copy(data=d["layer_failed"].values[copy]))
        ),
        levels=LEVELS,
    )
    names = ["party_expected", "party_tail", "party_share_expected", "party_share_tail", "layer_exhaustion_probability",
             "layer_exhaustion_median_month", "layer_failure_probability", "layer_fee_expected", "layer_paid_var"]
    for name in names:
        np.testing.assert_allclose(weighted[name].values, replicated[name].values, rtol=1e-14, err_msg=name)
    # and a direct check: E_w[insurer] = (10 + 30 + 60 + 40 + 2 * 100 + 0 + 20) / 8
    assert float(weighted["party_expected"].sel(party="insurer")) == pytest.approx(360 / 8 * K)
    assert float(weighted["layer_failure_probability"].sel(layer="insurer")) == pytest.approx(3 / 8)


def test_runs_without_layers_are_summarised_as_before():
    layered = layered_run()
    plain = layered.drop_dims("layer").assign(loss_net=layered["loss_gross"] * 0.5)
    s = summary(plain, levels=LEVELS)
    assert set(s.dims) == {"measure", "window", "level", "bound", "month", "quantile"}
    assert set(s.data_vars) == {
        "expected_loss", "expected_loss_ci", "std_dev", "value_at_risk", "value_at_risk_ci", "expected_shortfall",
        "expected_shortfall_ci", "dpd30_ratio_mean", "dpd30_ratio_quantile", "dpd30_count_ratio_mean", "live_share_mean", "n_paths",
        "effective_sample_size", "expected_loss_ess", "tail_probability_ess", "expected_shortfall_ess",
        "mean_weight", "mean_weight_ci", "weight_check", "value_at_risk_paths_needed",
    }
    text = format_summary(s)
    assert "Who bears the loss" not in text and "Credit enhancement layers" not in text
    # layers add variables but change none of the others (gross metrics; net is the lender's)
    with_layers = summary(layered, levels=LEVELS)
    xr.testing.assert_identical(with_layers[list(s.data_vars)].sel(measure="gross"), s.sel(measure="gross"))
    empty = summary(layered.isel(layer=[]), levels=LEVELS)  # a layer dim of size 0 is no layers
    assert "party" not in empty.dims and "layer" not in empty.data_vars


def test_every_new_variable_has_units_and_long_name():
    s = summary(layered_run(), levels=LEVELS)
    for name in ("party_expected", "party_expected_ci", "party_tail", "party_share_expected", "party_share_tail",
                 "layer_exhaustion_probability", "layer_exhaustion_median_month", "layer_failure_probability",
                 "layer_failure_probability_ci", "layer_fee_expected", "layer_paid_var"):
        assert {"units", "long_name"} <= set(s[name].attrs), name
    assert s["party_tail"].attrs["units"] == "CNY" and s["party_share_tail"].attrs["units"] == "1"


def test_summary_with_layers_round_trips(tmp_path):
    from stresslab.io import load_results, save_results

    s = summary(layered_run())
    save_results(s, tmp_path / "s.nc")
    xr.testing.assert_identical(s, load_results(tmp_path / "s.nc"))


def test_format_summary_shows_who_bears_the_loss():
    text = format_summary(summary(layered_run(), levels=LEVELS))
    for piece in ("Who bears the loss", "tail 75%", "insurer", "lender", "gross",
                  "32,500 52.0%",  # insurer expected
                  "75,000 50.0%",  # insurer tail 75%
                  "62,500 100.0%", "150,000 100.0%",
                  "Credit enhancement layers", "exhausted by month 4", "excess_of_loss", "100,000", "unlimited",
                  "37.5%",  # insurer exhausted by month 4
                  "25.0%",  # insurer failure probability
                  "never",  # state never exhausted
                  "4,000"):  # insurer fees
        assert piece in text, piece
    insurer = next(line for line in text.splitlines() if line.strip().startswith("insurer") and "excess_of_loss" in line)
    # kind, capacity, exhausted by month 4, by month 12 ("-": no month 12), median month, failure, fees
    assert insurer.split() == ["insurer", "excess_of_loss", "100,000", "37.5%", "-", "3", "25.0%", "4,000"]


def test_format_summary_shows_exhaustion_at_month_12_in_longer_runs():
    ds = layered_run().reindex(month=np.arange(1, 15), method="ffill")  # months 5..14: no new losses
    flows = ("loss_gross", "loss_net", "layer_paid", "layer_cash", "layer_fee")
    ds = ds.assign({name: ds[name].where(ds["month"] <= 4, 0.0) for name in flows})
    s = summary(ds, levels=LEVELS)
    np.testing.assert_array_equal(s["layer_exhaustion_probability"].sel(layer="insurer", month=[4, 12, 14]).values, [3 / 8] * 3)
    insurer = next(line for line in format_summary(s).splitlines() if "excess_of_loss" in line)
    assert insurer.split() == ["insurer", "excess_of_loss", "100,000", "37.5%", "37.5%", "3", "25.0%", "4,000"]
    assert "exhausted by month 14" in format_summary(s)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.drop_vars("layer_fee"), "lack the variable.*layer_fee"),
        (lambda d: d.assign_coords(layer=["insurer", "lender", "state"]), "not 'lender'"),
        (lambda d: d.assign_coords(layer=["insurer", "insurer", "state"]), "unique"),
        (lambda d: d.assign(loss_net=d["loss_net"] + 1.0), "loss_gross must equal.*path 0, month 1"),
        (lambda d: d.assign(layer_capacity_left=d["layer_capacity_left"].where(d["month"] != 2)), "NaN or negative"),
        (lambda d: d.assign(layer_paid=d["layer_paid"].transpose("layer", "path", "month").isel(month=0)), "dims"),
        (lambda d: d.assign(layer_failed=d["layer_failed"] * 2), "0 or 1"),
    ],
)
def test_malformed_layer_results_are_clear_errors(change, message):
    with pytest.raises(StresslabError, match=message):
        summary(change(layered_run()))


# ----------------------------------------------------------------------------- property
@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    n=st.integers(2, 25),
    months=st.integers(1, 3),
    n_layers=st.integers(1, 3),
    permille=st.lists(st.integers(1, 999), min_size=1, max_size=3, unique=True),
)
def test_shares_add_to_one_and_tail_parts_add_to_the_gross_tail_mean(data, n, months, n_layers, permille):
    # integer parts (many ties in the gross loss), gross = their exact sum
    parts = np.array(data.draw(st.lists(st.integers(0, 6), min_size=n * months * (n_layers + 1),
                                        max_size=n * months * (n_layers + 1))), dtype=float)
    parts = parts.reshape(n, months, n_layers + 1) * 1e3
    w = np.array(data.draw(st.lists(st.sampled_from([0.0, 0.25, 1.0, 1.5, 3.0]), min_size=n, max_size=n)))
    assume(w.sum() > 0)
    levels = tuple(p / 1000 for p in permille)
    names = [f"L{j}" for j in range(n_layers)]
    ds = xr.Dataset(
        {
            "loss_gross": (("path", "month"), parts.sum(axis=2)),
            "loss_net": (("path", "month"), parts[:, :, -1]),
            "layer_paid": (("path", "month", "layer"), parts[:, :, :-1]),
            "layer_capacity_left": (("path", "month", "layer"), np.full((n, months, n_layers), np.inf)),
            "layer_fee": (("path", "month", "layer"), np.zeros((n, months, n_layers))),
            "layer_failed": (("path", "layer"), np.zeros((n, n_layers), dtype=np.int8)),
            "balance_by_state": (("path", "month", "state"), np.ones((n, months, 6))),
            "count_by_state": (("path", "month", "state"), np.ones((n, months, 6), dtype=np.int64)),
            "weight": (("path",), w),
        },
        coords={"path": np.arange(n), "month": np.arange(1, months + 1), "state": STATES, "layer": names},
    )
    s = summary(ds, levels=levels)
    gross = parts.sum(axis=(1, 2))
    borne = parts.sum(axis=1)  # (path, party)
    el = float(s["expected_loss"].sel(measure="gross", window="horizon"))
    np.testing.assert_allclose(float(s["party_expected"].sum()), el, rtol=1e-12, atol=1e-9)
    if el > 0:
        assert float(s["party_share_expected"].sum()) == pytest.approx(1.0, rel=1e-12)
    for a in levels:
        var = weighted_quantile(gross, w, a)
        # the documented tail, re-derived here: the tied paths share what the paths above lack
        over, tied = w * (gross > var), gross == var
        need = max(n * (1 - a) - over.sum(), 0.0)
        h = over + (need * w * tied / (w @ tied) if w @ tied > 0 else need * tied / tied.sum())
        tail_mean = h @ gross / h.sum()
        parts_tail = s["party_tail"].sel(level=a).values
        np.testing.assert_allclose(parts_tail, h @ borne / h.sum(), rtol=1e-12, atol=1e-9)
        assert parts_tail.sum() == pytest.approx(tail_mean, rel=1e-12, abs=1e-9)
        assert tail_mean == pytest.approx(var_es(gross, w, a)[1], rel=1e-9, abs=1e-9)  # the gross ES itself
        if tail_mean > 0:
            assert float(s["party_share_tail"].sel(level=a).sum()) == pytest.approx(1.0, rel=1e-12)
        else:
            assert np.all(np.isnan(s["party_share_tail"].sel(level=a).values))
