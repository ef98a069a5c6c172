"""The calibration reference, the PD horizon, cycle sensitivities and preset precedence (MODEL.md §2-4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import book

import stresslab
from stresslab.compile.model import compile_model
from stresslab.errors import ScenarioError
from stresslab.scenario.scenario import Scenario, load_scenario

BASE = """
horizon_months = 12
[delinquency]
roll_rates = [0.3, 0.5, 0.7]
cure_rates = [0.3, 0.2, 0.1]
[seasonality]
retail = [0.9, 0.9, 1, 1, 1, 1, 1, 1, 1, 1, 1.1, 1.1]
[recovery]
unsecured_mean = 0.3
cost = 0.12
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_reference_is_the_root_of_the_extends_chain(tmp_path):
    write(tmp_path, "base.toml", BASE)
    write(tmp_path, "mid.toml", 'extends = "base.toml"\n[delinquency]\nroll_rates = [0.4, 0.6, 0.8]\n')
    child = load_scenario(write(tmp_path, "child.toml", 'extends = "mid.toml"\n[seasonality]\nretail = [1,1,1,1,1,1,1,1,1,1,1,1]\n'))
    assert child.delinquency.roll_rates == (0.4, 0.6, 0.8)
    assert child.reference.delinquency.roll_rates == (0.3, 0.5, 0.7)
    assert dict(child.reference.seasonal_factors)["retail"][0] == 0.9
    standalone = load_scenario(tmp_path / "base.toml")
    assert standalone.reference.delinquency == standalone.delinquency


def test_reference_named_by_path_or_table_and_round_trip(tmp_path):
    write(tmp_path, "base.toml", BASE)
    named = load_scenario(write(tmp_path, "s.toml", 'horizon_months = 6\ncalibration_reference = "base.toml"\n'))
    assert named.reference.delinquency.cure_rates == (0.3, 0.2, 0.1)
    assert named.delinquency.cure_rates == (0.30, 0.15, 0.08)  # its own chain: the defaults
    again = Scenario.from_dict(named.to_dict())
    assert again == named and again.reference == named.reference
    table = Scenario.from_dict({"horizon_months": 3, "calibration_reference": {"delinquency": {"default_after": 2}}})
    assert table.reference.delinquency.default_after == 2 and table.delinquency.default_after == 4


def test_overrides_keep_the_reference(tmp_path):
    write(tmp_path, "base.toml", BASE)
    scen = load_scenario(write(tmp_path, "c.toml", 'extends = "base.toml"\n'))
    swept = scen.with_overrides({"delinquency.roll_rates": [0.5, 0.7, 0.9]})
    assert swept.reference == scen.reference and swept.delinquency.roll_rates == (0.5, 0.7, 0.9)


def test_reference_outside_the_folder_is_refused(tmp_path):
    (tmp_path / "inner").mkdir()
    write(tmp_path, "base.toml", BASE)
    inner = write(tmp_path / "inner", "s.toml", 'horizon_months = 3\ncalibration_reference = "../base.toml"\n')
    with pytest.raises(ScenarioError, match="outside"):
        load_scenario(inner)
    with pytest.raises(ScenarioError, match="calibration_reference must be the path"):
        Scenario.from_dict({"horizon_months": 3, "calibration_reference": 5})


@pytest.mark.parametrize(("key", "value", "words"), [
    ("pd_horizon_months", 0, "pd_horizon_months"),
    ("pd_horizon_months", 121, "1..120"),
])
def test_pd_horizon_bounds(key, value, words):
    with pytest.raises(ScenarioError, match=words):
        Scenario.from_dict({"horizon_months": 3, key: value})


def test_cycle_sensitivity_must_keep_the_variance_below_one():
    loans = book(10, term=12, amortization="annuity")
    scen = Scenario.from_dict({"horizon_months": 3, "factors": {"global_loading": 0.6, "industry_loading": 0.5},
                               "delinquency": {"cycle_sensitivity": 1.5}})
    with pytest.raises(ScenarioError, match=r"cycle_sensitivity = 1\.5 .* kappa\^2 rho = 1\.423; it must be < 1"):
        compile_model(loans, scen)
    with pytest.raises(ScenarioError, match=r"\[delinquency\] cycle_sensitivity"):
        Scenario.from_dict({"horizon_months": 3, "delinquency": {"cycle_sensitivity": -1}})


def test_explicit_recovery_values_win_over_a_preset(tmp_path):
    write(tmp_path, "base.toml", BASE)
    inherited = load_scenario(write(tmp_path, "a.toml", 'extends = "base.toml"\n[policy.collection]\nstrategy = "legal_action"\n'))
    assert (inherited.recovery.unsecured_mean, inherited.recovery.cost) == (0.35, 0.25)  # the parent's values yield
    own = load_scenario(write(tmp_path, "b.toml", 'extends = "base.toml"\n[policy.collection]\nstrategy = "legal_action"\n'
                                                  '[recovery]\ncost = 0.05\n'))
    assert (own.recovery.unsecured_mean, own.recovery.lag_months, own.recovery.cost) == (0.35, 12, 0.05)
    swept = [inherited.with_overrides({"recovery.cost": c}).recovery.cost for c in (0.1, 0.2)]
    assert swept == [0.1, 0.2]
    assert inherited.with_overrides({"factors.ar1": 0.5}).recovery == inherited.recovery
    assert Scenario.from_dict(own.to_dict()) == own


def test_one_period_pd_is_the_monthly_miss_probability():
    loans = book(4, pd_=0.07)
    scen = Scenario.from_dict({"horizon_months": 1, "pd_horizon_months": 1, "delinquency": {"default_after": 1},
                               "factors": {"copula": "t", "dof": 5.0}})
    from scipy.stats import t as student_t
    np.testing.assert_array_equal(compile_model(loans, scen).loans.threshold, student_t.ppf(0.07, 5.0))


def test_stress_on_top_of_the_reference_is_not_absorbed(tmp_path):
    """A child raising roll rates keeps its parent's thresholds; a standalone copy absorbs them."""
    write(tmp_path, "base.toml", BASE)
    child = load_scenario(write(tmp_path, "c.toml", 'extends = "base.toml"\n[delinquency]\nroll_rates = [0.6, 0.8, 0.9]\n'))
    loans = stresslab.synthetic_portfolio(300, seed=2)
    base_c = compile_model(loans, load_scenario(tmp_path / "base.toml")).loans.threshold
    np.testing.assert_array_equal(compile_model(loans, child).loans.threshold, base_c)
    own = child.to_dict()
    own["calibration_reference"] = {"delinquency": own["delinquency"], "seasonality": own["seasonality"]}
    absorbed = compile_model(loans, Scenario.from_dict(own)).loans.threshold
    positive = loans.pd > 0
    assert np.all(absorbed[positive] < base_c[positive])  # faster rolls: fewer misses give the same pd


def test_an_unreachable_pd_names_the_book_row():
    loans = book(5, pd_=0.3, term=24, amortization="annuity")
    scen = Scenario.from_dict({"horizon_months": 3, "delinquency": {"roll_rates": [0.1, 0.1, 0.1],
                                                                    "cure_rates": [0.5, 0.4, 0.4]}})
    with pytest.raises(ScenarioError, match=r"<test book>: row 1 \(loan_id 'L000000'\), column 'pd': 0\.3 cannot be "
                                            r"reached .* \(and 4 more rows\).* at most 0\.\d+ over pd_horizon_months"):
        compile_model(loans, scen)
