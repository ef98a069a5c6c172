"""The loan cap's gap (docs/policy.md, loan_cap): golden single-loan tables, cure rates, properties.

The gap of a loan is its share of its borrower's scheduled exposure above the cap in the
month it falls due; missed, it is gap arrears, and a cure must pay them:
Delta_cure = Delta + log(1 + gap arrears / regular need) / sigma. The golden tables are
worked by hand here from that rule (forced misses and cures by revenue shocks of -99% and
+1,000%, which put the thresholds 13 and 7 standard deviations away: deterministic for one
seed). The cure-rate checks use loans whose latents are independent across months
(no factor loading), so the month-2 cure frequency is a binomial proportion around
1 - Phi(b_1 + log(1 + g / N) / sigma). The properties (a tighter cap or a shorter window
never lowers defaults or EL) are checked on random books with common random numbers:
the paired mean difference must not be below -4 standard errors.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import book, scenario
from scipy.stats import norm

import stresslab

BALANCE, RATE, TERM = 12_000.0, 0.12, 8
R = RATE / 12


def _annuity(balance: float, r: float, n: int) -> float:
    return balance * r / (1 - (1 + r) ** -n)


def _one_loan() -> stresslab.Portfolio:
    frame = pd.DataFrame({
        "loan_id": ["L1"], "borrower_id": ["B1"], "borrower_type": "individual", "industry": "retail",
        "region": "east", "balance": BALANCE, "annual_rate": RATE, "remaining_term": TERM,
        "amortization": "annuity", "pd": 1e-9, "state": "C",
    })
    return stresslab.Portfolio.from_frame(frame, source="<gap loan>")


def _gap_run(month5_shock: float, default_after: int = 4):
    """The loan capped at 6,000 from month 4; month 4 missed (revenue -99%); month 5 shocked too."""
    shocks = [0, 0, 0, -0.99, month5_shock, 0, 0, 0, 0, 0]
    scen = stresslab.Scenario.from_dict({
        "horizon_months": 10, "shocks": {"industry": {"retail": shocks}}, "recovery": {"unsecured_mean": 0.0},
        "delinquency": {"default_after": default_after},
        "policy": {"loan_cap": {"caps": {"individual": 6_000.0}, "transition_months": 4}},
    })
    return stresslab.simulate(_one_loan(), scen, n_paths=1, seed=1, progress=False).isel(path=0)


def _hand_gap_month():
    """Months 1-4 by hand: three level payments, then the month-4 installment and the gap missed."""
    level = _annuity(BALANCE, R, TERM)
    scheduled = BALANCE * (1 + R) ** 3 - level * ((1 + R) ** 3 - 1) / R  # start of month 4: 7,247.10...
    gap = scheduled - 6_000.0  # one loan: all of the borrower's excess
    part = level - R * scheduled  # month 4's regular principal part
    performing = scheduled - part - gap
    return level, scheduled, gap, part, performing


def test_gap_missed_then_cured_golden_table():
    """Month 4: installment and gap missed (M1, gap arrears); month 5: a cure pays both."""
    ds = _gap_run(10.0)
    level, scheduled, gap, part, performing = _hand_gap_month()
    interest4 = R * scheduled
    new_level = _annuity(performing, R, 4)  # re-amortised over the 4 months left
    interest5 = R * (performing + part + gap)  # on all principal, in arrears too
    b = performing - (new_level - R * performing)  # after month 5's principal part
    exposure = [BALANCE * (1 + R) ** t - level * ((1 + R) ** t - 1) / R for t in (1, 2, 3)]
    exposure += [scheduled + interest4, b]
    income = [R * BALANCE * (1 + R) ** t - R * level * ((1 + R) ** t - 1) / R for t in (0, 1, 2)]
    income += [0.0, interest5 + interest4]
    for _ in range(3):  # months 6-8 pay the new level; month 8 repays the rest
        income.append(R * b)
        b -= new_level - R * b
        exposure.append(0.0 if len(exposure) == 7 else b)
    states = ["C", "C", "C", "M1", "C", "C", "C", "P", "P", "P"]
    live = ds.balance_by_state.sel(state=["C", "M1", "M2", "M3"]).sum("state").values
    got_states = [str(ds.state.values[np.argmax(ds.count_by_state.values[t])]) for t in range(10)]
    assert got_states == states
    np.testing.assert_allclose(live[:8], exposure, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(ds.interest_income.values[:8], income, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(ds.gap_paid.values, np.r_[np.zeros(4), gap, np.zeros(5)], rtol=1e-9, atol=1e-9)
    assert float(ds.gap_defaulted.sum()) == 0.0
    assert int(ds.capped_borrowers) == 1 and float(ds.gap_volume) == pytest.approx(gap, rel=1e-12)


def test_gap_missed_then_defaulted_golden_table():
    """default_after = 2: month 5 missed too, so the loan defaults with its gap arrears in the EAD."""
    ds = _gap_run(-0.99, default_after=2)
    _, scheduled, gap, part, performing = _hand_gap_month()
    interest5 = R * (performing + part + gap)
    ead = scheduled + R * scheduled + interest5  # all principal, two months of interest
    assert int(ds.count_by_state.sel(state="D", month=5)) == 1
    assert float(ds.balance_by_state.sel(state="D", month=5)) == pytest.approx(ead, rel=1e-12)
    assert float(ds.loss_gross.sel(month=5)) == pytest.approx(ead, rel=1e-12)  # no recoveries
    np.testing.assert_allclose(ds.gap_defaulted.values, np.r_[np.zeros(4), gap, np.zeros(5)], rtol=1e-12)
    assert float(ds.gap_paid.sum()) == 0.0


def test_refinanced_share_is_repaid_and_the_rest_is_due():
    """A quarter of the gap refinanced elsewhere: it leaves the balance in month 4 even though the
    month is missed; the borrower's own three quarters become gap arrears and are paid at the cure."""
    shocks = [0, 0, 0, -0.99, 10.0, 0, 0, 0, 0, 0]
    scen = stresslab.Scenario.from_dict({
        "horizon_months": 10, "shocks": {"industry": {"retail": shocks}}, "recovery": {"unsecured_mean": 0.0},
        "policy": {"loan_cap": {"caps": {"individual": 6_000.0}, "transition_months": 4, "refinanced_share": 0.25}},
    })
    ds = stresslab.simulate(_one_loan(), scen, n_paths=1, seed=1, progress=False).isel(path=0)
    _, scheduled, gap, _, _ = _hand_gap_month()
    assert float(ds.balance_by_state.sel(state="M1", month=4)) == pytest.approx(scheduled - 0.25 * gap + R * scheduled)
    assert float(ds.gap_paid.sel(month=5)) == pytest.approx(0.75 * gap, rel=1e-12)
    assert float(ds.gap_volume) == pytest.approx(gap, rel=1e-12)


@pytest.mark.parametrize("cap", [None, 470_000.0, 300_000.0], ids=["no-cap", "cap-470k", "cap-300k"])
def test_cure_rate_after_the_gap_month_counts_the_gap_arrears(cap):
    """The issue's example: 500k loans, cap 300k due in month 1 (84.6% cured in month 2 before the fix,
    for an input cure rate of 0.30). Month 1 is missed by every loan (revenue -99%); the month-2 cure
    frequency must be 1 - Phi(b_1 + log(1 + g / N) / sigma): 0.30 without a gap, 0.025 with a 30k gap,
    about 7e-9 with a 200k gap. N = the month-2 installment plus the regular arrears (month 1's
    installment), g the gap arrears. Latents are independent (no factor loading): binomial s.e.
    over the 300 x 200 loan-months, floored at one loan."""
    n, n_paths, balance, q = 300, 200, 500_000.0, 0.30
    loans = book(n, pd_=0.02, balance=balance, rate=0.12, term=24, amortization="annuity", borrower_type="enterprise")
    tables = {"delinquency": {"default_after": 4, "roll_rates": [0.3, 0.3, 0.3], "cure_rates": [q, q, q]},
              "shocks": {"industry": {"retail": [-0.99, 0.0, 0.0]}}}
    if cap is not None:
        tables["policy"] = {"loan_cap": {"caps": {"enterprise": cap}, "transition_months": 1}}
    ds = stresslab.simulate(loans, scenario(3, **tables), n_paths=n_paths, seed=3, progress=False)
    assert (ds.count_by_state.sel(state="M1", month=1) == n).all()
    cured = float(ds.count_by_state.sel(state="C", month=2).sum()) / (n * n_paths)
    r = 0.01
    level = _annuity(balance, r, 24)
    gap = 0.0 if cap is None else balance - cap
    part1 = level - r * balance
    performing = balance - part1 - gap
    new_level = level if cap is None else _annuity(performing, r, 23)
    need = (new_level - r * performing) + r * balance + part1 + r * balance  # month 2 due + month 1 missed
    want = 1 - norm.cdf(norm.ppf(1 - q) + np.log1p(gap / need) / 0.35)
    se = max(np.sqrt(want * (1 - want) / (n * n_paths)), 1.0 / (n * n_paths))
    assert abs(cured - want) < 4 * se, (cured, want, se)
    if cap is not None:
        assert float(ds.gap_paid.sel(month=2).sum()) == pytest.approx(gap * cured * n * n_paths, rel=1e-9)


def _random_book(seed: int) -> stresslab.Portfolio:
    return stresslab.synthetic_portfolio(150, seed=seed)


def _capped(base: stresslab.Scenario, individual: float, enterprise: float, months: int) -> stresslab.Scenario:
    caps = {"individual": individual, "enterprise": enterprise}
    return base.with_overrides({"policy": {"loan_cap": {"caps": caps, "transition_months": months}}})


_PROPERTY_BASE = {
    "factors": {"global_loading": 0.4, "industry_loading": 0.2, "region_loading": 0.0},
    "delinquency": {"default_after": 4},
}


def _defaults_and_loss(loans, scen, n_paths=300, seed=5):
    ds = stresslab.simulate(loans, scen, n_paths=n_paths, seed=seed, progress=False)
    return ds.count_by_state.sel(state="D").isel(month=-1).values.astype(float), ds.loss_gross.sum("month").values, ds


def _not_lower(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Paired mean of b - a and its standard error (common random numbers)."""
    d = b - a
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.size))


@pytest.mark.parametrize("book_seed", [1, 2, 3])
def test_tighter_cap_and_shorter_window_never_lower_defaults_or_loss(book_seed):
    """On random books: baseline <= cap <= tighter cap, and a 12-month window <= a 3-month one."""
    loans = _random_book(book_seed)
    base = scenario(24, **_PROPERTY_BASE)
    runs = {
        "none": base,
        "loose": _capped(base, 60_000.0, 300_000.0, 6),
        "tight": _capped(base, 30_000.0, 150_000.0, 6),
        "long": _capped(base, 30_000.0, 150_000.0, 12),
        "short": _capped(base, 30_000.0, 150_000.0, 3),
    }
    res = {name: _defaults_and_loss(loans, scen) for name, scen in runs.items()}
    assert int(res["loose"][2].capped_borrowers) > 0
    for lo, hi in (("none", "loose"), ("loose", "tight"), ("long", "tight"), ("tight", "short")):
        for k, what in ((0, "defaults"), (1, "loss")):
            diff, se = _not_lower(res[lo][k], res[hi][k])
            assert diff > -4 * se, f"book {book_seed}: {what} of {hi} below {lo}: {diff:.4g} (se {se:.3g})"
    # gap volumes are monotone exactly
    volume = {name: float(res[name][2].gap_volume) for name in runs if name != "none"}
    assert volume["loose"] <= volume["tight"] and volume["long"] <= volume["tight"] <= volume["short"]


@pytest.mark.parametrize("book_seed", [1, 2])
def test_cap_above_every_exposure_is_the_baseline_bitwise(book_seed):
    loans = _random_book(book_seed)
    total = pd.Series(loans.balance).groupby(loans.borrower_id).sum().max()
    base = scenario(12, **_PROPERTY_BASE)
    a = stresslab.simulate(loans, base, n_paths=40, seed=2, progress=False)
    b = stresslab.simulate(loans, _capped(base, total * 1.0001, total * 1.0001, 0), n_paths=40, seed=2, progress=False)
    for name in a.data_vars:
        assert np.array_equal(a[name].values, b[name].values), name
    assert int(b.capped_borrowers) == 0 and not b.gap_paid.values.any() and not b.gap_defaulted.values.any()


@pytest.mark.parametrize(("policy", "match"), [
    ({"loan_cap": {"caps": {"individual": 1e9}}}, r"\[policy.loan_cap\] touches no loan: .*largest exposure at the start: individual 1,000 CNY"),
    ({"rate_cap": {"cap": 0.5}}, r"\[policy.rate_cap\] touches no loan: no loan's annual_rate is above the cap 0.5"),
    ({"deferral": {"months": 3, "industries": ["retail"], "regions": ["west"]}}, r"\[policy.deferral\] touches no loan"),
    ({"interest_subsidy": {"points": 0.01, "max_balance": 10.0}}, r"\[policy.interest_subsidy\] touches no loan"),
    ({"revenue_support": {"uplift": 0.1, "industries": ["retail"], "regions": ["west"]}},
     r"\[policy.revenue_support\] touches no loan"),
])
def test_a_lever_that_touches_no_loan_warns(policy, match):
    """Names each in the book but no loan in all of them (a single absent name is an error)."""
    # catering-east, retail-east, catering-west: no retail loan in the west
    loans = book(3, balance=1_000.0, rate=0.1, term=6, amortization="annuity",
                 industries=("catering", "retail"), regions=("east", "west"))
    with pytest.warns(stresslab.StresslabWarning, match=match):
        stresslab.simulate(loans, scenario(6, policy=policy), n_paths=2, seed=1, progress=False)
