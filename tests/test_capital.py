"""The lender's P&L and capital ratio (docs/capital.md): by hand, identities, a stress on common random numbers, errors."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from helpers import book, scenario

import stresslab as sl
from stresslab.errors import ScenarioError
from stresslab.metrics.capital import breach_probability, capital_paths

_CAPITAL = {"initial_amount": 10_000.0, "tax_rate": 0.25}


def test_one_performing_annuity_by_hand() -> None:
    # 120,000 at 12% a year over 24 months, never defaults (pd 1e-12), funded at 4% a year
    loan = book(1, pd_=1e-12, balance=120_000.0, rate=0.12, term=24, amortization="annuity")
    sc = scenario(24, funding={"rate": 0.04}, capital=_CAPITAL)
    paths = capital_paths(sl.simulate(loan, sc, n_paths=2, seed=1, progress=False)).isel(path=0)
    installment = 120_000.0 * 0.01 / (1 - 1.01**-24)
    balance = [120_000.0]
    for _ in range(24):
        balance.append(balance[-1] * 1.01 - installment)
    start = np.array(balance[:24])  # balance at the start of each month: funded and earning interest
    income = np.array([start[:12].sum(), start[12:].sum()]) * 0.01
    funding = np.array([start[:12].sum(), start[12:].sum()]) * 0.04 / 12
    pretax = income - funding
    after = 0.75 * pretax
    np.testing.assert_allclose(paths["interest_income"], income, rtol=1e-9)
    np.testing.assert_allclose(paths["funding_cost"], funding, rtol=1e-9)
    np.testing.assert_allclose(paths["credit_cost"], 0.0, atol=1e-9)
    np.testing.assert_allclose(paths["after_tax_profit"], after, rtol=1e-9)
    np.testing.assert_allclose(paths["capital"], 10_000.0 + np.concatenate([[0.0], np.cumsum(after)]), rtol=1e-9)
    # individual: 75% risk weight on the live balance; nothing is live at the end
    np.testing.assert_allclose(paths["rwa"][:2], 0.75 * np.array([120_000.0, balance[12]]), rtol=1e-9)
    assert float(paths["capital_ratio"][1]) == pytest.approx((10_000.0 + after[0]) / (0.75 * balance[12]), rel=1e-9)
    assert float(paths["capital_ratio"][2]) == np.inf


def test_a_sure_default_net_of_a_quota_share_breaches_in_year_one() -> None:
    # defaults in month 1 for sure (pd 1 - 1e-12, default_after 1), no recovery: gross loss = EAD = 10,100;
    # a 40% quota share bears 4,040, the lender 6,060; capital 10% of the start RWA = 750
    loan = book(1, pd_=1 - 1e-12, balance=10_000.0, rate=0.12, term=12, amortization="annuity")
    sc = scenario(12, funding={"rate": 0.04}, capital={"initial_ratio": 0.10})
    sc = sl.Scenario.from_dict({**sc.to_dict(), "layers": [{"name": "fund", "kind": "quota_share", "share": 0.4}]})
    ds = sl.simulate(loan, sc, n_paths=4, seed=1, progress=False)
    paths = capital_paths(ds)
    assert paths.attrs["credit_cost_basis"] == "net_loss"
    np.testing.assert_allclose(paths["credit_cost"], 6_060.0, rtol=1e-12)
    np.testing.assert_allclose(paths["funding_cost"], 10_000.0 * 0.04 / 12, rtol=1e-12)
    np.testing.assert_allclose(paths["tax"], 0.0)
    expected = 750.0 - 10_000.0 * 0.04 / 12 - 6_060.0 - paths["enhancement_fees"].values[:, 0]
    np.testing.assert_allclose(paths["capital"].values[:, 1], expected, rtol=1e-12)
    assert np.all(paths["capital_ratio"].values[:, 1] == -np.inf)  # negative capital, nothing live: a breach
    s = sl.summary(ds)
    assert float(s["capital_breach_probability"][0]) == 1.0
    assert float(s["capital_first_breach_probability"][0]) == 1.0
    assert "P(ratio < 8.0% by year end)" in sl.format_summary(s)


_LOANS = 400


def _guarantee_insurance(**overrides: object) -> sl.Scenario:
    return sl.load_scenario("scenarios/guarantee_insurance.toml").with_overrides(
        {"capital.initial_ratio": 0.20, "funding.rate": 0.03, **overrides})


@pytest.fixture(scope="module")
def runs() -> tuple[xr.Dataset, ...]:
    """The guarantee-insurance book, calm and with services and retail revenue 40% down, on the same seed."""
    loans = sl.synthetic_portfolio(_LOANS, seed=3)
    calm = _guarantee_insurance()
    shocked = calm.with_overrides({"shocks.industry.services": -0.4, "shocks.industry.retail": -0.4})
    return tuple(sl.simulate(loans, sc, n_paths=100, seed=7, progress=False) for sc in (calm, shocked))


def test_identities_of_the_p_and_l_and_the_capital_path() -> None:
    sc = _guarantee_insurance(**{"capital.credit_cost": "ifrs9", "ifrs9.allowance": "through_the_cycle"})
    ds = sl.simulate(sl.synthetic_portfolio(_LOANS, seed=3), sc, n_paths=60, seed=7, progress=False)
    paths = capital_paths(ds)
    assert paths.attrs["credit_cost_basis"] == "ifrs9"
    np.testing.assert_allclose(paths["net_interest_income"], paths["interest_income"] - paths["funding_cost"])
    np.testing.assert_allclose(paths["pretax_profit"], paths["net_interest_income"] - paths["enhancement_fees"]
                               - paths["credit_cost"])
    np.testing.assert_allclose(paths["capital"].isel(year_end=-1),
                               paths["capital"].isel(year_end=0) + paths["after_tax_profit"].sum("year"), rtol=1e-12)
    assert np.all(paths["tax"] >= 0) and np.all(paths["tax"].values[paths["pretax_profit"].values <= 0] == 0)
    # over the horizon the credit cost is the net loss plus the change of the S1 + S2 allowance
    from stresslab.metrics.ifrs9 import provisions

    performing = provisions(ds)["allowance_by_stage"].sel(stage=["S1", "S2"]).sum("stage")
    change = performing.isel(year_end=-1).values - performing.isel(year_end=0).values
    np.testing.assert_allclose(paths["credit_cost"].sum("year"), ds["loss_net"].sum("month").values + change,
                               rtol=1e-9, atol=1e-6)
    # a higher breach level can only raise the breach probability, at every year end
    w = ds["weight"].values
    levels = np.linspace(0.0, 0.5, 11)
    probs = np.array([breach_probability(paths["capital_ratio"].values, w, level)[0] for level in levels])
    assert np.all(np.diff(probs, axis=0) >= 0)


def test_a_stress_raises_the_breach_probability_on_common_random_numbers(runs: tuple[xr.Dataset, ...]) -> None:
    calm, shocked = (sl.summary(ds) for ds in runs)
    p_calm, p_shocked = calm["capital_breach_probability"].values, shocked["capital_breach_probability"].values
    assert np.all(p_shocked >= p_calm) and p_shocked[-1] > p_calm[-1]
    profit = calm["pnl_mean"].sel(pnl_item="pretax_profit").values
    assert np.all(shocked["pnl_mean"].sel(pnl_item="pretax_profit").values[0] < profit[0])
    low, high = shocked["capital_breach_probability_ci"].values.T
    assert np.all((low <= p_shocked) & (p_shocked <= high))


@pytest.mark.parametrize(("tables", "message"), [
    ({"capital": {}}, r"capital needs exactly one of 'initial_ratio' .* and 'initial_amount' .*; got neither"),
    ({"capital": {"initial_ratio": 0.1, "initial_amount": 1e6}}, r"got initial_ratio and initial_amount"),
    ({"capital": {"initial_ratio": 0.1, "risk_weights": "irb"}}, (r"\[capital\] risk_weights must be one of "
                                                                   r"'standardised'; got 'irb'")),
    ({"capital": {"initial_ratio": 0.1, "tax": 0.2}}, r"unknown key \[capital\] 'tax'; allowed: initial_ratio, initial_amount, tax_rate"),
    ({"capital": {"initial_ratio": 0.1, "threshold": 1.5}}, r"\[capital\] threshold must be"),
    ({"funding": {"rate": 0.01, "rise": -0.05}}, r"funding gives a negative funding rate -0.04 in month 1"),
    ({"funding": {"rise": 0.01}}, r"\[funding\] rate is required"),
    ({"capital": {"initial_ratio": 0.1, "credit_cost": "ifrs9"}}, (r"\[capital\] credit_cost = 'ifrs9' needs "
                                                                   r"an allowance")),
    ({"funding": {"rate": 0.03, "rise": [0.01] * 13}}, (r"\[funding\] rise has 13 monthly values but "
                                                          r"horizon_months = 12")),
])
def test_bad_keys_give_one_line_errors(tables: dict, message: str) -> None:
    with pytest.raises(ScenarioError, match=message) as err:
        sl.Scenario.from_dict({"horizon_months": 12, **tables})
    assert "\n" not in str(err.value)


def test_capital_ratio_fan_draws_the_live_year_ends_and_the_breach_level(runs: tuple[xr.Dataset, ...]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from stresslab.plots import capital_ratio_fan

    fig = capital_ratio_fan(runs[1])
    ax = fig.axes[0]
    assert any(line.get_label().startswith("breach level 8") for line in ax.get_lines())
    assert "capital ratio" in ax.get_title()


def test_the_report_has_a_capital_section(runs: tuple[xr.Dataset, ...]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from stresslab.report.html import render

    page = render(runs[1])
    assert 'id="capital"' in page and "P&amp;L and capital" in page and "pre-tax profit" in page
    assert "P(ratio below 8.0% by the year end)" in page and "Capital ratio fan" in page
