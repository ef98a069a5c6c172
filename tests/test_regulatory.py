"""Tests of stresslab.metrics.regulatory: the Basel II IRB risk-weight functions, the classification
of a book and the IRB reference beside a run's simulated capital.

Published figures: Annex 5 of BCBS, "International Convergence of Capital Measurement and
Capital Standards", June 2006 ("Illustrative IRB risk weights", M = 2.5 years). Every other
check is a formula check: against an independent transcription with scipy.stats and math,
and limiting cases of the formulas. docs/regulatory.md lists which is which.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

import stresslab
from stresslab.book.portfolio import Portfolio
from stresslab.errors import StresslabError
from stresslab.estimators import mean_ci, var_ci, var_es
from stresslab.metrics.regulatory import (
    ASSET_CLASSES,
    CNY_PER_EUR,
    DEFAULT_EUR_PER_CNY,
    corporate_correlation,
    corporate_k,
    irb_capital,
    irb_reference,
    maturity_b,
    other_retail_correlation,
    other_retail_k,
    qualifying_revolving_k,
    residential_mortgage_k,
    sme_adjustment,
)

# ----------------------------------------------------------------------------- Annex 5
# Basel II (June 2006) Annex 5, "Illustrative IRB Risk Weights for UL", risk weights in %.
# Columns: corporate LGD 45% (turnover EUR 50m, i.e. no SME adjustment), corporate LGD 45%
# (turnover EUR 5m), residential mortgages LGD 45%, 25%, other retail LGD 45%, 85%,
# qualifying revolving retail LGD 45%, 85%; M = 2.5 years. Rows PD 0.03% .. 2.50% in full,
# and the first four columns of the PD 3.00% row (the rows we could check against the text).
ANNEX5 = """
0.03   14.44  11.30    4.15   2.30   4.45    8.41   0.98   1.85
0.05   19.65  15.39    6.23   3.46   6.63   12.52   1.51   2.86
0.10   29.65  23.30   10.69   5.94  11.16   21.08   2.71   5.12
0.25   49.47  39.01   21.30  11.83  21.15   39.96   5.76  10.88
0.40   62.72  49.49   29.94  16.64  28.42   53.69   8.41  15.88
0.50   69.61  54.91   35.08  19.49  32.36   61.13  10.04  18.97
0.75   82.78  65.14   46.46  25.81  40.10   75.74  13.80  26.06
1.00   92.32  72.40   56.40  31.33  45.77   86.46  17.22  32.53
1.30  100.95  78.77   67.00  37.22  50.80   95.95  21.02  39.70
1.50  105.59  82.11   73.45  40.80  53.37  100.81  23.40  44.19
2.00  114.86  88.55   87.94  48.85  57.99  109.53  28.92  54.63
2.50  122.16  93.43  100.64  55.91  60.90  115.03  33.98  64.18
"""
ANNEX5_PD3 = (128.44, 97.58, 111.99, 62.22)
# The table is rounded to 0.01 percentage points; 7 of its 100 checked cells differ from the
# exact formula by up to 0.006 points (e.g. 72.40 for 72.3947), a few thousandths that the
# BCBS's own arithmetic leaves. Tolerance: 0.0075 points.
ANNEX5_TOL = 0.0075

COLUMNS = [
    lambda pd: corporate_k(pd, 0.45, 2.5),
    lambda pd: corporate_k(pd, 0.45, 2.5, sales_eur_m=5.0),
    lambda pd: residential_mortgage_k(pd, 0.45),
    lambda pd: residential_mortgage_k(pd, 0.25),
    lambda pd: other_retail_k(pd, 0.45),
    lambda pd: other_retail_k(pd, 0.85),
    lambda pd: qualifying_revolving_k(pd, 0.45),
    lambda pd: qualifying_revolving_k(pd, 0.85),
]


def _rows() -> list[tuple[float, int, float]]:
    out = []
    for line in ANNEX5.strip().splitlines():
        pd_pct, *rws = map(float, line.split())
        out += [(pd_pct, j, rw) for j, rw in enumerate(rws)]
    return out + [(3.0, j, rw) for j, rw in enumerate(ANNEX5_PD3)]


@pytest.mark.parametrize(("pd_pct", "column", "published"), _rows())
def test_annex5_illustrative_risk_weights_are_reproduced(pd_pct, column, published):
    rw = 100 * 12.5 * COLUMNS[column](pd_pct / 100)  # risk weight in %
    assert rw == pytest.approx(published, abs=ANNEX5_TOL)


def test_headline_figures():
    # Annex 5: corporate PD 1%, LGD 45%, M 2.5 -> 92.32%; other retail PD 1%, LGD 45% -> 45.77%
    assert round(100 * 12.5 * corporate_k(0.01, 0.45, 2.5), 2) == 92.32
    assert round(100 * 12.5 * other_retail_k(0.01, 0.45), 2) == 45.77


# ----------------------------------------------------------------------------- formula checks
def _reference_k(pd: float, lgd: float, r: float) -> float:
    n, g = stats.norm.cdf, stats.norm.ppf
    return lgd * n((1 - r) ** -0.5 * g(pd) + (r / (1 - r)) ** 0.5 * g(0.999)) - pd * lgd


def _reference_corporate(pd: float, lgd: float, m: float, s: float | None) -> float:
    f = (1 - math.exp(-50 * pd)) / (1 - math.exp(-50))
    r = 0.12 * f + 0.24 * (1 - f)
    if s is not None and s < 50:
        r -= 0.04 * (1 - (max(s, 5) - 5) / 45)
    b = (0.11852 - 0.05478 * math.log(pd)) ** 2
    return _reference_k(pd, lgd, r) * (1 - 1.5 * b) ** -1 * (1 + (m - 2.5) * b)


def _reference_other_retail(pd: float, lgd: float) -> float:
    f = (1 - math.exp(-35 * pd)) / (1 - math.exp(-35))
    return _reference_k(pd, lgd, 0.03 * f + 0.16 * (1 - f))


def test_formulas_match_an_independent_transcription():
    rng = np.random.default_rng(7)
    for _ in range(300):
        pd = float(np.exp(rng.uniform(np.log(0.0003), np.log(0.5))))
        lgd, m, s = float(rng.uniform(0.05, 1)), float(rng.uniform(1, 5)), float(rng.uniform(0, 80))
        assert corporate_k(pd, lgd, m) == pytest.approx(_reference_corporate(pd, lgd, m, None), rel=1e-12, abs=1e-15)
        assert corporate_k(pd, lgd, m, s) == pytest.approx(_reference_corporate(pd, lgd, m, s), rel=1e-12, abs=1e-15)
        assert other_retail_k(pd, lgd) == pytest.approx(_reference_other_retail(pd, lgd), rel=1e-12, abs=1e-15)
        assert residential_mortgage_k(pd, lgd) == pytest.approx(_reference_k(pd, lgd, 0.15), rel=1e-12, abs=1e-15)
        assert qualifying_revolving_k(pd, lgd) == pytest.approx(_reference_k(pd, lgd, 0.04), rel=1e-12, abs=1e-15)


def test_formulas_broadcast_over_arrays():
    pd = np.array([0.001, 0.01, 0.1])
    np.testing.assert_allclose(corporate_k(pd, 0.45, [1.0, 2.5, 5.0]), [corporate_k(p, 0.45, m) for p, m in zip(pd, [1, 2.5, 5])])
    np.testing.assert_allclose(other_retail_k(pd), [other_retail_k(p) for p in pd])


def test_correlation_bounds_and_monotonicity():
    pd = np.linspace(0, 1, 2001)
    rc, rr = corporate_correlation(pd), other_retail_correlation(pd)
    assert rc[0] == pytest.approx(0.24, abs=1e-15) and rc[-1] == pytest.approx(0.12, abs=1e-15)
    assert rr[0] == pytest.approx(0.16, abs=1e-15) and rr[-1] == pytest.approx(0.03, abs=1e-15)
    assert np.all(np.diff(rc) <= 0) and np.all(np.diff(rr) <= 0)
    assert np.all(np.diff(rc[pd <= 0.5]) < 0) and np.all(np.diff(rr[pd <= 0.5]) < 0)  # beyond, e^-50PD underflows
    assert np.all((rc >= 0.12) & (rc <= 0.24)) and np.all((rr >= 0.03) & (rr <= 0.16))


def test_sme_adjustment():
    assert sme_adjustment(5.0) == pytest.approx(-0.04)
    assert sme_adjustment(0.3) == pytest.approx(-0.04)  # sales below EUR 5m count as 5m
    assert sme_adjustment(27.5) == pytest.approx(-0.02)
    assert sme_adjustment(50.0) == 0.0 and sme_adjustment(400.0) == 0.0
    assert sme_adjustment(np.nan) == 0.0  # unknown sales: no adjustment
    assert corporate_correlation(0.01, 5.0) == pytest.approx(corporate_correlation(0.01) - 0.04)
    with pytest.raises(StresslabError):
        sme_adjustment(-1.0)


def test_k_is_increasing_in_pd_over_the_usual_range_and_zero_at_the_ends():
    pd = np.exp(np.linspace(np.log(0.0003), np.log(0.2), 400))
    for k in (corporate_k(pd), corporate_k(pd, sales_eur_m=np.full(pd.size, 5.0)), other_retail_k(pd)):
        assert np.all(np.diff(k) > 0)
    for f in (lambda p: corporate_k(p, 0.45, 1.0), other_retail_k, lambda p: residential_mortgage_k(p, 0.45)):
        assert f(0.0) == 0.0 and f(1.0) == 0.0
        small = f(np.array([1e-6, 1e-8, 1e-10]))
        assert np.all(small > 0) and np.all(np.diff(small) < 0) and small[-1] < 1e-4 * f(0.01)  # K -> 0 as PD -> 0
    assert corporate_k(0.0, 0.45, 5.0) == 0.0


def test_k_is_proportional_to_lgd():
    for f in (lambda p, lgd: corporate_k(p, lgd, 3.0), other_retail_k, qualifying_revolving_k):
        assert f(0.02, 0.0) == 0.0
        assert f(0.02, 0.9) == pytest.approx(2 * f(0.02, 0.45), rel=1e-14)


def test_maturity_adjustment():
    # (1 + (M - 2.5) b) / (1 - 1.5 b) is exactly 1 at M = 1: K is then the plain Vasicek K
    for pd in (0.0003, 0.01, 0.1):
        r = corporate_correlation(pd)
        assert corporate_k(pd, 0.45, 1.0) == pytest.approx(_reference_k(pd, 0.45, r), rel=1e-13)
        b = maturity_b(pd)
        assert corporate_k(pd, 0.45, 5.0) / corporate_k(pd, 0.45, 1.0) == pytest.approx((1 + 2.5 * b) / (1 - 1.5 * b), rel=1e-12)
        assert corporate_k(pd, 0.45, 2.5) / corporate_k(pd, 0.45, 1.0) == pytest.approx(1 / (1 - 1.5 * b), rel=1e-12)
    m = np.linspace(1, 5, 9)
    assert np.all(np.diff(corporate_k(0.01, 0.45, m)) > 0)


def test_invalid_inputs_are_refused():
    for bad in (-0.1, 1.5, np.nan):
        with pytest.raises(StresslabError):
            corporate_k(bad)
        with pytest.raises(StresslabError):
            other_retail_k(0.01, bad)


# ----------------------------------------------------------------------------- the book
EUR = CNY_PER_EUR  # CNY per EUR at the default rate


def _book(rows: list[dict]) -> Portfolio:
    base = {"industry": "retail", "region": "east", "annual_rate": 0.1, "amortization": "annuity"}
    frame = pd.DataFrame([{**base, "loan_id": f"L{j}", **row} for j, row in enumerate(rows)])
    return Portfolio.from_frame(frame, source="<test>")


def test_classification_and_per_loan_capital():
    book = _book([
        # 0: sole proprietor, small: other retail
        {"borrower_id": "A", "borrower_type": "individual", "balance": 50_000.0, "remaining_term": 12, "pd": 0.02},
        # 1, 2: one enterprise with 2 loans totalling EUR 1.2m, sales EUR 12m: corporate SME
        {"borrower_id": "B", "borrower_type": "enterprise", "balance": 0.6e6 * EUR, "remaining_term": 30, "pd": 0.01,
         "revenue_monthly": 1e6 * EUR},
        {"borrower_id": "B", "borrower_type": "enterprise", "balance": 0.6e6 * EUR, "remaining_term": 90, "pd": 0.01,
         "revenue_monthly": 1e6 * EUR},
        # 3: large enterprise, unknown sales: corporate without SME adjustment; pd below the floor
        {"borrower_id": "C", "borrower_type": "enterprise", "balance": 2e6 * EUR, "remaining_term": 6, "pd": 0.0001},
        # 4: large enterprise with sales EUR 60m: corporate, no adjustment
        {"borrower_id": "D", "borrower_type": "enterprise", "balance": 3e6 * EUR, "remaining_term": 24, "pd": 0.03,
         "revenue_monthly": 5e6 * EUR},
        # 5: sole proprietor above the threshold: not retail (para 231), corporate, sales unknown
        {"borrower_id": "E", "borrower_type": "individual", "balance": 1.5e6 * EUR, "remaining_term": 12, "pd": 0.05},
        # 6: enterprise, small, sales known: retail regardless of sales
        {"borrower_id": "F", "borrower_type": "enterprise", "balance": 100_000.0, "remaining_term": 12, "pd": 0.04,
         "revenue_monthly": 20_000.0},
    ])
    ds = irb_capital(book)
    assert ds["asset_class"].values.tolist() == [
        "other_retail", "corporate_sme", "corporate_sme", "corporate", "corporate", "corporate", "other_retail",
    ]
    np.testing.assert_allclose(ds["borrower_exposure_eur"].values[1:3], 1.2e6)
    np.testing.assert_allclose(ds["turnover_eur_m"].values[1:3], 12.0)
    assert np.isnan(ds["turnover_eur_m"].values[3])
    np.testing.assert_allclose(ds["maturity"].values[1:6], [2.5, 5.0, 1.0, 2.0, 1.0])
    assert np.isnan(ds["maturity"].values[0])
    assert ds["pd"].values[3] == 0.0003  # floored

    k = ds["k"].values
    assert k[0] == pytest.approx(other_retail_k(0.02, 0.45), rel=1e-14)
    assert k[1] == pytest.approx(corporate_k(0.01, 0.45, 2.5, 12.0), rel=1e-14)
    assert k[2] == pytest.approx(corporate_k(0.01, 0.45, 5.0, 12.0), rel=1e-14)
    assert k[3] == pytest.approx(corporate_k(0.0003, 0.45, 1.0), rel=1e-14)
    assert k[4] == pytest.approx(corporate_k(0.03, 0.45, 2.0), rel=1e-14)
    assert k[5] == pytest.approx(corporate_k(0.05, 0.45, 1.0), rel=1e-14)
    assert k[6] == pytest.approx(other_retail_k(0.04, 0.45), rel=1e-14)
    assert ds["correlation"].values[1] == pytest.approx(corporate_correlation(0.01) - 0.04 * (1 - 7 / 45))

    ead = book.balance
    np.testing.assert_allclose(ds["capital"].values, k * ead, rtol=1e-15)
    np.testing.assert_allclose(ds["rwa"].values, 12.5 * k * ead, rtol=1e-15)
    np.testing.assert_allclose(ds["risk_weight"].values, 12.5 * k, rtol=1e-15)
    np.testing.assert_allclose(ds["expected_loss"].values, ds["pd"].values * 0.45 * ead, rtol=1e-15)
    assert float(ds["total_capital"]) == pytest.approx((k * ead).sum(), rel=1e-14)
    assert float(ds["total_rwa"]) == pytest.approx(12.5 * (k * ead).sum(), rel=1e-14)
    assert float(ds["total_ead"]) == pytest.approx(ead.sum(), rel=1e-14)
    assert ds["loans_by_class"].sel(irb_class=list(ASSET_CLASSES)).values.tolist() == [2, 2, 3]
    assert float(ds["capital_by_class"].sum()) == pytest.approx(float(ds["total_capital"]), rel=1e-14)


def test_retail_threshold_is_strict_and_uses_the_fx_rate():
    at = {"borrower_type": "enterprise", "remaining_term": 12, "pd": 0.01}
    book = _book([{**at, "borrower_id": "A", "balance": 1e6 * EUR}, {**at, "borrower_id": "B", "balance": 0.999e6 * EUR}])
    assert irb_capital(book)["asset_class"].values.tolist() == ["corporate", "other_retail"]  # "less than EUR 1m"
    # at 10 CNY per EUR both borrowers are below EUR 1m
    assert irb_capital(book, eur_per_cny=0.1)["asset_class"].values.tolist() == ["other_retail", "other_retail"]
    assert irb_capital(book, retail_threshold=0.0)["asset_class"].values.tolist() == ["corporate", "corporate"]
    assert DEFAULT_EUR_PER_CNY == pytest.approx(1 / 7.5257)


def test_options_lgd_maturity_and_floor():
    book = _book([{"borrower_id": "A", "borrower_type": "enterprise", "balance": 9e6, "remaining_term": 36, "pd": 0.0}])
    ds = irb_capital(book, lgd=0.25, maturity=2.5, pd_floor=0.0005)
    assert float(ds["k"][0]) == pytest.approx(corporate_k(0.0005, 0.25, 2.5), rel=1e-14)
    ds = irb_capital(book, lgd=[0.6], maturity=[4.0])
    assert float(ds["k"][0]) == pytest.approx(corporate_k(0.0003, 0.6, 4.0), rel=1e-14)
    for kwargs in ({"lgd": 1.2}, {"maturity": 0.5}, {"maturity": 6.0}, {"eur_per_cny": 0.0}, {"lgd": [0.4, 0.5]},
                   {"pd_floor": 1.0}, {"retail_threshold": -1.0}):
        with pytest.raises(StresslabError):
            irb_capital(book, **kwargs)


def test_synthetic_book_is_all_retail_at_default_settings():
    # the synthetic book respects the online-microloan caps (<= CNY 1m a borrower), far below EUR 1m
    book = stresslab.synthetic_portfolio(500, seed=3)
    ds = irb_capital(book)
    assert set(ds["asset_class"].values.tolist()) == {"other_retail"}
    assert float(ds["total_capital"]) == pytest.approx((other_retail_k(np.maximum(book.pd, 0.0003)) * book.balance).sum(), rel=1e-12)


# ----------------------------------------------------------------------------- reference
@pytest.fixture(scope="module")
def run():
    book = stresslab.synthetic_portfolio(300, seed=1)
    ds = stresslab.simulate(book, stresslab.load_scenario("scenarios/services_downturn.toml"), n_paths=500, seed=2)
    return book, ds


def test_irb_reference_sets_both_figures_side_by_side(run):
    book, ds = run
    ref = irb_reference(ds, book, level=0.99)
    horizon = ds.sizes["month"]
    assert horizon >= 12
    assert ref["window"].values.tolist() == ["horizon", "12m"]
    assert ref["window_months"].values.tolist() == [horizon, 12]
    assert ref.attrs["horizon_months"] == horizon and ref.attrs["irb_horizon_months"] == 12
    loss = ds["loss_gross"].transpose("path", "month").values
    w = ds["weight"].values
    for window, x in (("horizon", loss.sum(axis=1)), ("12m", loss[:, :12].sum(axis=1))):
        r = ref.sel(window=window)
        var = var_es(x, w, 0.99)[0]
        el = mean_ci(x, w)[0]
        assert float(r["simulated_value_at_risk"]) == pytest.approx(var, rel=1e-14)
        assert float(r["simulated_expected_loss"]) == pytest.approx(el, rel=1e-14)
        assert float(r["simulated_capital"]) == pytest.approx(var - el, rel=1e-14)
        np.testing.assert_allclose(r["simulated_value_at_risk_ci"].values, var_ci(x, w, 0.99), rtol=1e-14)
    assert float(ref["irb_capital"]) == pytest.approx(float(irb_capital(book)["total_capital"]), rel=1e-14)
    np.testing.assert_allclose(ref["capital_ratio"].values, ref["simulated_capital"].values / float(ref["irb_capital"]))


def test_irb_reference_refuses_another_book(run):
    _, ds = run
    with pytest.raises(StresslabError, match="another book"):
        irb_reference(ds, stresslab.synthetic_portfolio(300, seed=9))


def test_irb_reference_refuses_pds_of_another_horizon(run):
    book, ds = run
    scenario = json.loads(ds.attrs["scenario"])
    other = ds.assign_attrs(scenario=json.dumps({**scenario, "pd_horizon_months": 6}))
    with pytest.raises(StresslabError, match="6-month PDs .* one-year PDs"):
        irb_reference(other, book)


def test_irb_reference_with_a_horizon_shorter_than_a_year():
    book = _book([{"borrower_id": "A", "borrower_type": "individual", "balance": 1e4, "remaining_term": 6, "pd": 0.05}])
    rng = np.random.default_rng(0)
    ds = xr.Dataset(
        {"loss_gross": (("path", "month"), rng.exponential(size=(200, 6))), "weight": ("path", np.ones(200))},
        coords={"path": np.arange(200), "month": np.arange(1, 7)},
    )
    ref = irb_reference(ds, book)
    assert ref["window"].values.tolist() == ["horizon"]
    assert ref["window_months"].values.tolist() == [6]
    assert "shorter than the IRB's one year" in ref.attrs["note"]
    with pytest.raises(StresslabError, match="scenario"):
        irb_reference(ds.expand_dims(scenario=["a"]), book)
