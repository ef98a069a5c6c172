"""Policy levers in the engine (MODEL.md §6): direction, exact arithmetic, levers off = baseline.

Comparisons use common random numbers (same seed), so the paired difference of a lever's
effect has a small standard error; checks are |mean diff| > 4 se in the stated direction.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import book, scenario

import stresslab

STRESS = {"global_loading": 0.4, "industry_loading": 0.2}


def _book(n: int = 300, **kw):
    args = {"pd_": 0.12, "term": 24, "amortization": "annuity", "rate": 0.12, "balance": 20_000.0,
            "industries": ("catering", "retail"), "regions": ("east", "west")}
    return book(n, **{**args, **kw})


def _pair(loans, policy: dict, horizon: int = 24, n_paths: int = 300, seed: int = 4, **tables):
    base = scenario(horizon, factors=STRESS, delinquency={"default_after": 4}, **tables)
    with_policy = base.with_overrides({"policy": policy})
    return (stresslab.simulate(loans, base, n_paths=n_paths, seed=seed),
            stresslab.simulate(loans, with_policy, n_paths=n_paths, seed=seed))


def _paired(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    d = np.asarray(b, float) - np.asarray(a, float)
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.size))


def _in_m1(ds, months) -> np.ndarray:
    return ds.count_by_state.sel(state="M1", month=list(months)).sum("month").values


def _defaults(ds) -> np.ndarray:
    return ds.count_by_state.sel(state="D").isel(month=-1).values


@pytest.mark.parametrize("policy", [
    {"deferral": {"months": 0}},
    {"rate_cap": {"cap": 0.5}},
    {"loan_cap": {"caps": {"individual": 1e9}, "transition_months": 6}},
    {"deferral": {"months": 3, "industries": ["catering"], "states": ["M3"]}},  # nobody M3 in month 1
])
def test_levers_that_change_nothing_reproduce_the_baseline_bitwise(policy):
    base, other = _pair(_book(120), policy, horizon=12, n_paths=30)
    for name in base.data_vars:
        assert np.array_equal(base[name].values, other[name].values), name


def test_deferral_lowers_misses_during_and_shows_the_cliff_after():
    loans = _book()
    policy = {"deferral": {"start_month": 1, "months": 6, "interest": "accrued", "extend_term": False}}
    base, deferred = _pair(loans, policy)
    diff, se = _paired(_in_m1(base, range(1, 7)), _in_m1(deferred, range(1, 7)))
    assert diff < -4 * se  # frozen: fewer loans fall into arrears during the deferral
    assert (deferred.deferred_count.sel(month=range(1, 7)) > 0).all()
    assert (deferred.deferred_count.sel(month=range(7, 25)) == 0).all()
    # the term is not extended: six months of installments compressed into the rest
    diff, se = _paired(_in_m1(base, range(7, 13)), _in_m1(deferred, range(7, 13)))
    assert diff > 4 * se


def test_deferral_waived_interest_is_lost_income():
    loans = _book(100, pd_=0.0)
    accrued = {"deferral": {"months": 3, "interest": "accrued"}}
    waived = {"deferral": {"months": 3, "interest": "waived"}}
    _, a = _pair(loans, accrued, n_paths=2)
    _, w = _pair(loans, waived, n_paths=2)
    assert float(w.interest_income.sum()) < float(a.interest_income.sum())
    assert float(a.interest_income.sel(month=[1, 2, 3]).sum()) == 0.0  # nothing is paid while deferred


def test_loan_cap_gap_raises_defaults_at_maturity():
    # borrowers of 2 interest-only loans of 200k each: 400k due at maturity > the 300k cap for individuals
    loans = _book(400, balance=200_000.0, term=12, amortization="interest_only",
                  borrower_id=[f"B{j // 2:05d}" for j in range(400)])
    policy = {"loan_cap": {"caps": {"individual": 300_000.0}, "transition_months": 24}}
    base, capped = _pair(loans, policy, horizon=12)
    assert int(capped.capped_borrowers) == 200
    assert float(capped.gap_volume) == pytest.approx(200 * 100_000.0, rel=1e-12)
    diff, se = _paired(_defaults(base), _defaults(capped))
    assert diff > 4 * se
    # the shock lands at maturity (month 12): earlier months are untouched
    assert np.array_equal(base.count_by_state.sel(month=range(1, 12)).values, capped.count_by_state.sel(month=range(1, 12)).values)


def test_loan_cap_window_end_is_an_extra_payment():
    loans = _book(100, pd_=0.0, balance=400_000.0, term=24, borrower_type="enterprise")
    policy = {"loan_cap": {"caps": {"enterprise": 300_000.0}, "transition_months": 6}}
    base, capped = _pair(loans, policy, n_paths=2)
    # without misses the excess of the scheduled balance at the start of month 6 (five level
    # payments made) over the cap is repaid in month 6: exposure falls by it
    level = 400_000.0 * 0.01 / (1 - 1.01**-24)
    scheduled = 400_000.0 * 1.01**5 - level * (1.01**5 - 1) / 0.01  # = 324,355.2...
    drop = base.balance_by_state.sel(state="C", month=6) - capped.balance_by_state.sel(state="C", month=6)
    np.testing.assert_allclose(drop, 100 * (scheduled - 300_000.0), rtol=1e-9)
    np.testing.assert_allclose(capped.gap_paid.sel(month=6), 100 * (scheduled - 300_000.0), rtol=1e-9)
    assert float(capped.gap_volume) == pytest.approx(100 * (scheduled - 300_000.0), rel=1e-12)
    assert (capped.count_by_state.sel(state="P", month=24) == 100).all()  # re-amortised, repaid at maturity


def test_subsidy_cost_is_exact_and_lowers_misses():
    n, balance, rate, term, points = 50, 12_000.0, 0.12, 12, 0.024
    loans = _book(n, pd_=0.0, balance=balance, rate=rate, term=term)
    _, sub = _pair(loans, {"interest_subsidy": {"points": points, "months": 6}}, horizon=12, n_paths=2)
    r = rate / 12
    level = balance * r / (1 - (1 + r) ** -term)
    b, expected = balance, []
    for _ in range(12):
        expected.append(points / 12 * b * n)
        b -= level - r * b
    np.testing.assert_allclose(sub.subsidy_cost.isel(path=0).values, np.r_[expected[:6], np.zeros(6)], rtol=1e-12)
    base, sub = _pair(_book(), {"interest_subsidy": {"points": 0.05}})
    diff, se = _paired(_in_m1(base, range(1, 25)), _in_m1(sub, range(1, 25)))
    assert diff < -4 * se
    np.testing.assert_array_equal(base.interest_income.values > 0, sub.interest_income.values > 0)


def test_revenue_support_lowers_misses():
    base, supported = _pair(_book(), {"revenue_support": {"uplift": 0.1, "industries": ["catering"]}})
    diff, se = _paired(_defaults(base), _defaults(supported))
    assert diff < -4 * se


def test_rate_cap_lowers_income_and_misses():
    loans = _book(rate=0.24)
    base, capped = _pair(loans, {"rate_cap": {"cap": 0.15, "from_month": 3}})
    assert np.array_equal(base.interest_income.sel(month=[1, 2]).values, capped.interest_income.sel(month=[1, 2]).values)
    assert float(capped.interest_income.sum()) < float(base.interest_income.sum())
    diff, se = _paired(_in_m1(base, range(3, 25)), _in_m1(capped, range(3, 25)))
    assert diff < -4 * se


def test_seasonal_schedule_repays_on_time_and_offsets_seasonal_stress():
    season = {"catering": [0.8, 0.8, 0.9, 1.0, 1.1, 1.2, 1.2, 1.1, 1.0, 1.0, 0.9, 1.0],
              "retail": [0.8, 0.8, 0.9, 1.0, 1.1, 1.2, 1.2, 1.1, 1.0, 1.0, 0.9, 1.0]}
    loans = _book(100, pd_=0.0, term=18)
    _, shaped = _pair(loans, {"seasonal_schedule": {}}, n_paths=2, seasonality=season)
    assert (shaped.count_by_state.sel(state="P", month=18) == 100).all()  # no balloon left over
    assert (shaped.balance_by_state.sel(state="C", month=18) == 0).all()
    base, shaped = _pair(_book(term=24), {"seasonal_schedule": {}}, seasonality=season)
    diff, se = _paired(_defaults(base), _defaults(shaped))
    assert diff < -4 * se


def test_collection_preset_changes_recoveries():
    loans = _book()
    base, legal = _pair(loans, {"collection": {"strategy": "legal_action"}})
    assert np.array_equal(base.count_by_state.values, legal.count_by_state.values)  # same defaults
    assert not np.array_equal(base.loss_gross.values, legal.loss_gross.values)


def test_policy_eligibility_typo_is_an_error():
    with pytest.raises(stresslab.ScenarioError, match=r"did you mean 'catering'"):
        _pair(_book(20), {"interest_subsidy": {"points": 0.02, "industries": ["cateringg"]}}, n_paths=2)


def test_compare_prints_lever_costs_that_apply_and_loss_avoided_per_public_cny():
    loans = _book(100)
    base = scenario(12, factors=STRESS, delinquency={"default_after": 4})
    subsidy = base.with_overrides({"policy": {"interest_subsidy": {"points": 0.03}}, "name": "subsidy"})
    ds = stresslab.compare(loans, [base, subsidy], n_paths=50, seed=4, progress=False)
    s = stresslab.compare_summary(ds, n_boot=20)
    text = stresslab.format_comparison(s)
    assert "(expected_subsidy_cost)" in text
    assert "(expected_interest_foregone)" not in text and "(expected_enhancement_cost)" not in text  # none applies
    avoided = -float(s.difference.sel(scenario="subsidy", metric="expected_gross_loss"))
    cost = float(s.difference.sel(scenario="subsidy", metric="expected_subsidy_cost"))
    assert cost > 0 and f"subsidy: {avoided / cost:,.2f} CNY of gross loss avoided per CNY of subsidy" in text
    assert float(s.value.sel(scenario="subsidy", metric="expected_interest_foregone")) == 0.0
