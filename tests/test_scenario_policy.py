"""Tests of the scenario's ``[policy.*]`` tables (policy levers, MODEL.md §6) and the policy library."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

import stresslab
from stresslab.compile.model import compile_model
from stresslab.errors import ScenarioError
from stresslab.scenario.scenario import Scenario, load_scenario
from stresslab.scenario.specs import (
    COLLECTION_PRESETS,
    POLICY_LEVERS,
    CollectionSpec,
    DeferralSpec,
    LoanCapSpec,
    PolicySpec,
    RateCapSpec,
    RevenueSupportSpec,
    SeasonalScheduleSpec,
    ShockRamp,
    SubsidySpec,
    shock_path,
)

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
MACRO = ["manufacturing_slump", "regional_downturn", "rising_funding_costs"]
POLICY = ["loan_cap_2020", "deferral_programme", "interest_subsidy", "combined_response"]


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def with_policy(**levers: object) -> dict:
    return {"horizon_months": 36, "policy": levers}


# --------------------------------------------------------------------------- defaults and fields


def test_no_policy_by_default() -> None:
    s = Scenario.from_dict({"horizon_months": 12})
    assert s.policy == PolicySpec()
    assert all(getattr(s.policy, name) is None for name in POLICY_LEVERS)
    assert s.policy.active == ()
    assert s.to_dict()["policy"] == {}
    assert Scenario.from_dict({"horizon_months": 12, "policy": {}}) == s


def test_field_names_are_the_engine_contract() -> None:
    names = {cls: [f.name for f in dataclasses.fields(cls)] for cls in (
        PolicySpec, LoanCapSpec, DeferralSpec, SubsidySpec, RateCapSpec, RevenueSupportSpec, SeasonalScheduleSpec,
        CollectionSpec)}
    assert names[PolicySpec] == list(POLICY_LEVERS) == [
        "loan_cap", "deferral", "interest_subsidy", "rate_cap", "revenue_support", "seasonal_schedule", "collection"]
    assert names[LoanCapSpec] == ["caps", "transition_months", "refinanced_share"]
    assert names[DeferralSpec] == ["industries", "regions", "borrower_types", "states", "start_month", "months",
                                   "interest", "extend_term"]
    assert names[SubsidySpec] == ["points", "industries", "regions", "borrower_types", "max_balance", "start_month",
                                  "months"]
    assert names[RateCapSpec] == ["cap", "from_month"]
    assert names[RevenueSupportSpec] == ["uplift", "industries", "regions", "borrower_types"]
    assert names[SeasonalScheduleSpec] == ["industries"]
    assert names[CollectionSpec] == ["strategy"]


def test_lever_defaults() -> None:
    p = Scenario.from_dict(with_policy(
        loan_cap={"caps": {"individual": 3e5}}, deferral={"months": 6}, interest_subsidy={"points": 0.02},
        rate_cap={"cap": 0.24}, revenue_support={"uplift": 0.05}, seasonal_schedule={},
        collection={"strategy": "reminders"})).policy
    assert p.active == POLICY_LEVERS
    assert p.loan_cap == LoanCapSpec(caps=(("individual", 3e5),), transition_months=0)
    assert p.deferral == DeferralSpec(months=6)
    assert (p.deferral.industries, p.deferral.regions, p.deferral.borrower_types) == (None, None, None)
    assert (p.deferral.states, p.deferral.start_month, p.deferral.interest, p.deferral.extend_term) == (
        ("C", "M1"), 1, "accrued", True)
    assert p.interest_subsidy == SubsidySpec(points=0.02)
    assert (p.interest_subsidy.max_balance, p.interest_subsidy.start_month, p.interest_subsidy.months) == (None, 1, None)
    assert p.rate_cap == RateCapSpec(cap=0.24, from_month=1)
    assert p.revenue_support == RevenueSupportSpec(uplift=0.05)
    assert p.seasonal_schedule == SeasonalScheduleSpec(industries=None)
    assert p.collection == CollectionSpec(strategy="reminders")
    assert isinstance(p.loan_cap.caps[0][1], float) and isinstance(p.rate_cap.from_month, int)


def test_every_key_parsed(tmp_path: Path) -> None:
    path = write(tmp_path, "full.toml", """
horizon_months = 36
[policy.loan_cap]
transition_months = 12
[policy.loan_cap.caps]
individual = 300_000
enterprise = 1e6

[policy.deferral]
industries = ["retail", "catering"]
regions = ["south", "east"]
borrower_types = ["individual"]
states = ["M2", "C"]
start_month = 3
months = 0
interest = "waived"
extend_term = false

[policy.interest_subsidy]
points = 0.2
industries = ["services"]
regions = ["north"]
borrower_types = ["enterprise", "individual"]
max_balance = 200_000
start_month = 2
months = 120

[policy.rate_cap]
cap = 1
from_month = 36

[policy.revenue_support]
uplift = { start = 2, trough = 0.1, trough_month = 4, recovery_month = 10 }
industries = ["catering"]
regions = ["east"]
borrower_types = ["enterprise"]

[policy.seasonal_schedule]
industries = ["retail", "agriculture"]

[policy.collection]
strategy = "legal_action"
""")
    p = load_scenario(path).policy
    assert p.loan_cap == LoanCapSpec(caps=(("enterprise", 1e6), ("individual", 3e5)), transition_months=12)
    assert p.loan_cap.cap("individual") == 3e5 and p.loan_cap.cap("enterprise") == 1e6
    assert p.deferral == DeferralSpec(industries=("catering", "retail"), regions=("east", "south"),
                                      borrower_types=("individual",), states=("C", "M2"), start_month=3, months=0,
                                      interest="waived", extend_term=False)
    assert p.interest_subsidy == SubsidySpec(points=0.2, industries=("services",), regions=("north",),
                                             borrower_types=("enterprise", "individual"), max_balance=2e5,
                                             start_month=2, months=120)
    assert p.rate_cap == RateCapSpec(cap=1.0, from_month=36)
    assert p.revenue_support == RevenueSupportSpec(
        uplift=ShockRamp(start=2, trough=0.1, trough_month=4, recovery_month=10), industries=("catering",),
        regions=("east",), borrower_types=("enterprise",))
    assert p.seasonal_schedule == SeasonalScheduleSpec(industries=("agriculture", "retail"))
    assert p.collection == CollectionSpec(strategy="legal_action")
    assert isinstance(p.interest_subsidy.max_balance, float) and isinstance(p.deferral.extend_term, bool)


@pytest.mark.parametrize("uplift, expected", [
    (0.05, [0.05] * 6),
    ([0.1, 0.2], [0.1, 0.2, 0, 0, 0, 0]),
    ({"start": 2, "trough": 0.1, "trough_month": 3, "recovery_month": 5}, [0, 0.05, 0.1, 0.05, 0, 0]),
])
def test_revenue_support_forms_and_shock_path(uplift: object, expected: list[float]) -> None:
    spec = Scenario.from_dict({"horizon_months": 6, "policy": {"revenue_support": {"uplift": uplift}}}).policy
    assert shock_path(spec.revenue_support.uplift, 6) == pytest.approx(expected)


def test_shock_path_is_the_revenue_shock_expansion() -> None:
    ramp = ShockRamp(start=1, trough=-0.3, trough_month=3, recovery_month=8)
    s = Scenario.from_dict({"horizon_months": 10, "shocks": {"industry": {"a": -0.1, "b": [-0.2, -0.1], "c": {
        "start": 1, "trough": -0.3, "trough_month": 3, "recovery_month": 8}}}})
    shock = s.revenue_shock(["a", "b", "c"], ["x"])[:, 0, :]
    np.testing.assert_allclose(shock[0], shock_path(-0.1, 10), rtol=0, atol=1e-15)
    np.testing.assert_allclose(shock[1], shock_path((-0.2, -0.1), 10), rtol=0, atol=1e-15)
    np.testing.assert_allclose(shock[2], shock_path(ramp, 10), rtol=0, atol=1e-15)
    np.testing.assert_array_equal(shock_path(ramp, 10), ramp.values(10))
    assert shock_path((0.1, 0.2, 0.3), 2).tolist() == [0.1, 0.2]  # cut at the horizon
    assert shock_path(0.0, 3).shape == (3,)


def test_policy_specs_are_frozen_keyword_only_hashable() -> None:
    s = Scenario.from_dict(with_policy(deferral={"months": 6}, loan_cap={"caps": {"enterprise": 1e6}}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.policy.deferral.months = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        DeferralSpec(None, None, None, ("C",), 1, 6)  # type: ignore[misc]  # keyword-only
    with pytest.raises(TypeError):
        DeferralSpec()  # type: ignore[call-arg]  # months is required
    assert hash(s) == hash(Scenario.from_dict(s.to_dict()))


def test_eligibility_lists_are_sets_and_not_checked_against_a_book() -> None:
    a = Scenario.from_dict(with_policy(deferral={"months": 2, "industries": ["mining", "atlantis"], "states": ["M1", "C"]}))
    b = Scenario.from_dict(with_policy(deferral={"months": 2, "industries": ["atlantis", "mining"]}))
    assert a == b and a.policy.deferral.industries == ("atlantis", "mining")


def test_unset_values_and_levers_may_be_none_in_a_dict() -> None:
    s = Scenario.from_dict(with_policy(deferral=None, interest_subsidy={"points": 0.01, "months": None,
                                                                         "max_balance": None, "industries": None}))
    assert s.policy == PolicySpec(interest_subsidy=SubsidySpec(points=0.01))


# --------------------------------------------------------------------------- errors

ERRORS = [
    # (TOML body after horizon_months = 36, fragments the message must contain besides the file name)
    ("[policy.defferal]\nmonths = 3",
     ["unknown policy lever [policy.defferal] (did you mean 'deferral'?); levers: loan_cap, deferral, interest_subsidy"]),
    ("[policy.subsidy]\npoints = 0.02", ["unknown policy lever [policy.subsidy]", "levers: loan_cap, deferral"]),
    ("[policy.ratecap]\ncap = 0.2", ["unknown policy lever [policy.ratecap] (did you mean 'rate_cap'?)"]),
    ("policy = 3", ["policy must be a table of policy levers ([policy.<lever>] tables); got 3"]),
    ("[policy]\ndeferral = 3", ["[policy] deferral must be a table; got 3"]),
    # loan_cap
    ("[policy.loan_cap]\ntransition_months = 3", ["[policy.loan_cap] caps is required: a non-empty table mapping "
                                                  "borrower types ('enterprise', 'individual') to CNY amounts > 0"]),
    ("[policy.loan_cap]\ncaps = {}", ["[policy.loan_cap] caps must be a non-empty table mapping borrower types", "got {}"]),
    ("[policy.loan_cap]\ncaps = 300000", ["[policy.loan_cap] caps must be a non-empty table", "got 300000"]),
    ("[policy.loan_cap.caps]\nindividuals = 300000",
     ["[policy.loan_cap] caps has an unknown borrower type 'individuals' (did you mean 'individual'?); "
      "allowed: 'enterprise', 'individual'"]),
    ("[policy.loan_cap.caps]\nindividual = 0", ["[policy.loan_cap] caps.individual must be a number > 0; got 0"]),
    ("[policy.loan_cap.caps]\nenterprise = -1e6", ["[policy.loan_cap] caps.enterprise must be a number > 0; got -1000000.0"]),
    ("[policy.loan_cap.caps]\nenterprise = '1e6'", ["[policy.loan_cap] caps.enterprise must be a number > 0; got '1e6'"]),
    ("[policy.loan_cap]\ntransition_months = -1\ncaps = { individual = 1 }",
     ["[policy.loan_cap] transition_months must be an integer in 0..120; got -1"]),
    ("[policy.loan_cap]\ntransition_months = 121\ncaps = { individual = 1 }",
     ["[policy.loan_cap] transition_months must be an integer in 0..120; got 121"]),
    ("[policy.loan_cap]\ncaps = { individual = 1 }\ntransition = 6",
     ["unknown key [policy.loan_cap] 'transition' (did you mean 'transition_months'?)"]),
    # deferral
    ("[policy.deferral]\nmonths = -1", ["[policy.deferral] months must be an integer in 0..24; got -1"]),
    ("[policy.deferral]\nmonths = 25", ["[policy.deferral] months must be an integer in 0..24; got 25"]),
    ("[policy.deferral]\nmonths = 6.0", ["[policy.deferral] months must be an integer in 0..24; got 6.0"]),
    ("[policy.deferral]\nmonths = '6'", ["[policy.deferral] months must be an integer in 0..24; got '6'"]),
    ("[policy.deferral]\nstart_month = 2", ["[policy.deferral] months is required: an integer in 0..24"]),
    ("[policy.deferral]\nmonths = 6\nstates = ['C', 'M4']",
     ["[policy.deferral] states must be a non-empty list of distinct values among 'C', 'M1', 'M2', 'M3'",
      "got ['C', 'M4']: 'M4' is not allowed"]),
    ("[policy.deferral]\nmonths = 6\nstates = []", ["[policy.deferral] states must be a non-empty list", "got []"]),
    ("[policy.deferral]\nmonths = 6\nstates = 'C'", ["[policy.deferral] states must be a non-empty list", "got 'C'"]),
    ("[policy.deferral]\nmonths = 6\nstart_month = 0", ["[policy.deferral] start_month must be an integer in 1..120; got 0"]),
    ("[policy.deferral]\nmonths = 6\nstart_month = 37",
     ["[policy.deferral] start_month must be within the horizon, 1..36 (horizon_months = 36)", "got 37"]),
    ("[policy.deferral]\nmonths = 6\ninterest = 'waved'",
     ["[policy.deferral] interest must be one of 'accrued', 'waived'; got 'waved' (did you mean 'waived'?)"]),
    ("[policy.deferral]\nmonths = 6\nextend_term = 'yes'", ["[policy.deferral] extend_term must be true or false; got 'yes'"]),
    ("[policy.deferral]\nmonths = 6\nextend_term = 1", ["[policy.deferral] extend_term must be true or false; got 1"]),
    ("[policy.deferral]\nmonths = 6\nborrower_types = ['sole_proprietor']",
     ["[policy.deferral] borrower_types must be a non-empty list of distinct values among 'enterprise', 'individual'",
      "'sole_proprietor' is not allowed"]),
    ("[policy.deferral]\nmonths = 6\nborrower_types = ['enterprises']", ["(did you mean 'enterprise'?)"]),
    ("[policy.deferral]\nmonths = 6\nindustries = []",
     ["[policy.deferral] industries must be a non-empty list of distinct names; got []"]),
    ("[policy.deferral]\nmonths = 6\nregions = 'east'", ["[policy.deferral] regions must be a non-empty list", "got 'east'"]),
    ("[policy.deferral]\nmonth = 6", ["unknown key [policy.deferral] 'month' (did you mean 'months'?)"]),
    ("[policy.deferral]\nmonths = 6\nmax_balance = 1e5", ["unknown key [policy.deferral] 'max_balance'",
                                                          "allowed: industries, regions, borrower_types, states"]),
    # interest_subsidy
    ("[policy.interest_subsidy]\npoints = 0.3", ["[policy.interest_subsidy] points must be a number in (0, 0.2]; got 0.3"]),
    ("[policy.interest_subsidy]\npoints = 0", ["[policy.interest_subsidy] points must be a number in (0, 0.2]; got 0"]),
    ("[policy.interest_subsidy]\npoints = -0.01", ["[policy.interest_subsidy] points must be a number in (0, 0.2]; got -0.01"]),
    ("[policy.interest_subsidy]\npoints = 2", ["[policy.interest_subsidy] points must be a number in (0, 0.2]; got 2"]),
    ("[policy.interest_subsidy]\npoints = true", ["[policy.interest_subsidy] points must be a number in (0, 0.2]; got True"]),
    ("[policy.interest_subsidy]\nmonths = 12", ["[policy.interest_subsidy] points is required: a number in (0, 0.2]"]),
    ("[policy.interest_subsidy]\npoints = 0.02\nmonths = 0",
     ["[policy.interest_subsidy] months must be an integer in 1..120; got 0"]),
    ("[policy.interest_subsidy]\npoints = 0.02\nmax_balance = 0",
     ["[policy.interest_subsidy] max_balance must be a number > 0; got 0"]),
    ("[policy.interest_subsidy]\npoints = 0.02\nstart_month = 40",
     ["[policy.interest_subsidy] start_month must be within the horizon, 1..36", "got 40"]),
    ("[policy.interest_subsidy]\npoint = 0.02", ["unknown key [policy.interest_subsidy] 'point' (did you mean 'points'?)"]),
    # rate_cap
    ("[policy.rate_cap]\ncap = 0", ["[policy.rate_cap] cap must be a number in (0, 1]; got 0"]),
    ("[policy.rate_cap]\ncap = -0.1", ["[policy.rate_cap] cap must be a number in (0, 1]; got -0.1"]),
    ("[policy.rate_cap]\ncap = 24", ["[policy.rate_cap] cap must be a number in (0, 1]; got 24"]),
    ("[policy.rate_cap]\nfrom_month = 3", ["[policy.rate_cap] cap is required: a number in (0, 1]"]),
    ("[policy.rate_cap]\ncap = 0.24\nfrom_month = 0", ["[policy.rate_cap] from_month must be an integer in 1..120; got 0"]),
    ("[policy.rate_cap]\ncap = 0.24\nfrom_month = 48", ["[policy.rate_cap] from_month must be within the horizon", "got 48"]),
    # revenue_support
    ("[policy.revenue_support]\nuplift = 1.5", ["[policy.revenue_support] uplift must be a number in [0, 1]; got 1.5"]),
    ("[policy.revenue_support]\nuplift = -0.1", ["[policy.revenue_support] uplift must be a number in [0, 1]; got -0.1"]),
    ("[policy.revenue_support]\nuplift = [0.1, 1.2]",
     ["[policy.revenue_support] uplift must be a list of numbers in [0, 1]; got [0.1, 1.2]"]),
    ("[policy.revenue_support]\nuplift = { start = 1, trough = 2, trough_month = 2, recovery_month = 3 }",
     ["[policy.revenue_support] uplift.trough must be a number in [0, 1]; got 2"]),
    ("[policy.revenue_support]\nuplift = { start = 3, trough = 0.1, trough_month = 2, recovery_month = 3 }",
     ["[policy.revenue_support] uplift must have start <= trough_month <= recovery_month"]),
    ("[policy.revenue_support]\nuplift = 'high'", ["[policy.revenue_support] uplift must be a number in [0, 1], a list of "
                                                   "them by month, or a ramp table", "got 'high'"]),
    ("[policy.revenue_support]\nuplift = [" + ", ".join(["0.1"] * 37) + "]",
     ["[policy.revenue_support] uplift has 37 monthly values but horizon_months = 36; give at most 36"]),
    ("[policy.revenue_support]\nindustries = ['retail']", ["[policy.revenue_support] uplift is required"]),
    # seasonal_schedule and collection
    ("[policy.seasonal_schedule]\nindustries = 'retail'",
     ["[policy.seasonal_schedule] industries must be a non-empty list of distinct names; got 'retail'"]),
    ("[policy.seasonal_schedule]\nenabled = true", ["unknown key [policy.seasonal_schedule] 'enabled'", "allowed: industries"]),
    ("[policy.collection]\nstrategy = 'legal-action'",
     ["[policy.collection] strategy must be one of 'reminders', 'legal_action', 'third_party_agency'; "
      "got 'legal-action' (did you mean 'legal_action'?)"]),
    ("[policy.collection]\nstrategy = 'phone'", ["[policy.collection] strategy must be one of", "got 'phone'"]),
    ("[policy.collection]", ["[policy.collection] strategy is required: one of 'reminders', 'legal_action'"]),
]


@pytest.mark.parametrize("body, fragments", ERRORS)
def test_error_messages_name_file_key_value_and_range(tmp_path: Path, body: str, fragments: list[str]) -> None:
    path = write(tmp_path, "bad.toml", "horizon_months = 36\n" + body + "\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in message


def test_error_in_an_inherited_lever_names_the_parent(tmp_path: Path) -> None:
    parent = write(tmp_path, "parent.toml", "horizon_months = 36\n[policy.deferral]\nmonths = 30\n")
    child = write(tmp_path, "child.toml", 'extends = "parent.toml"\n[policy.deferral]\nstart_month = 2\n')
    with pytest.raises(ScenarioError) as info:
        load_scenario(child)
    assert str(info.value) == f"{parent}: [policy.deferral] months must be an integer in 0..24; got 30"


def test_from_dict_error_uses_source() -> None:
    with pytest.raises(ScenarioError) as info:
        Scenario.from_dict(with_policy(rate_cap={"cap": 2}), source="mine")
    assert str(info.value) == "mine: [policy.rate_cap] cap must be a number in (0, 1]; got 2"


# --------------------------------------------------------------------------- inheritance


def test_extends_merges_policy_tables_and_replaces_arrays(tmp_path: Path) -> None:
    write(tmp_path, "parent.toml", """
horizon_months = 36
[policy.deferral]
industries = ["retail", "catering"]
states = ["C", "M1", "M2"]
months = 6
interest = "waived"
[policy.loan_cap.caps]
individual = 300000
enterprise = 1000000
[policy.collection]
strategy = "legal_action"
""")
    child = write(tmp_path, "child.toml", """
extends = "parent.toml"
[policy.deferral]
industries = ["services"]
months = 3
[policy.loan_cap.caps]
individual = 100000
[policy.rate_cap]
cap = 0.24
""")
    p = load_scenario(child).policy
    # lever tables merge key by key; arrays are replaced whole
    assert p.deferral == DeferralSpec(industries=("services",), states=("C", "M1", "M2"), months=3, interest="waived")
    assert p.loan_cap.caps == (("enterprise", 1e6), ("individual", 1e5))  # the caps table merges too
    assert p.collection == CollectionSpec(strategy="legal_action")  # inherited lever
    assert p.rate_cap == RateCapSpec(cap=0.24)  # added lever
    assert p.interest_subsidy is None


# --------------------------------------------------------------------------- collection presets


@pytest.mark.parametrize("strategy", sorted(COLLECTION_PRESETS))
def test_collection_preset_sets_the_recovery(strategy: str) -> None:
    preset = COLLECTION_PRESETS[strategy]
    assert set(preset) == {"unsecured_mean", "lag_months", "cost"}
    s = Scenario.from_dict({"horizon_months": 12, "recovery": {"unsecured_mean": 0.5, "dispersion": 0.1,
                                                                "pledge_haircut": 0.4},
                            "policy": {"collection": {"strategy": strategy}}})
    # the preset sets its keys that [recovery] of the same file leaves out; an explicit value wins
    assert (s.recovery.unsecured_mean, s.recovery.lag_months, s.recovery.cost) == (
        0.5, preset["lag_months"], preset["cost"])
    assert (s.recovery.dispersion, s.recovery.pledge_haircut) == (0.1, 0.4)
    assert isinstance(s.recovery.lag_months, int)
    assert s.policy.collection.preset == preset
    assert Scenario.from_dict(s.to_dict()) == s
    assert s.to_dict()["policy"]["collection"] == {"strategy": strategy}


def test_collection_preset_figures_are_valid_recovery_values() -> None:
    assert set(COLLECTION_PRESETS) == {"reminders", "legal_action", "third_party_agency"}
    for preset in COLLECTION_PRESETS.values():
        Scenario.from_dict({"horizon_months": 12, "recovery": preset})  # in range for [recovery]
    r, legal, agency = (COLLECTION_PRESETS[k] for k in ("reminders", "legal_action", "third_party_agency"))
    assert r["unsecured_mean"] < agency["unsecured_mean"] < legal["unsecured_mean"]  # more effort, more recovered
    assert r["lag_months"] < agency["lag_months"] < legal["lag_months"]              # ... later
    assert r["cost"] < agency["cost"] < legal["cost"]                                # ... at a higher cost


def test_collection_precedence_is_documented() -> None:
    text = (ROOT / "docs" / "scenarios.md").read_text(encoding="utf-8")
    policy = (ROOT / "docs" / "policy.md").read_text(encoding="utf-8")
    for doc in (text, policy):
        assert "[policy.collection]" in doc and "precedence" in doc.lower()


def test_an_override_of_the_recovery_wins_over_the_collection_preset() -> None:
    s = Scenario.from_dict(with_policy(collection={"strategy": "reminders"}))
    assert s.recovery.cost == COLLECTION_PRESETS["reminders"]["cost"]
    assert s.with_overrides({"recovery.cost": 0.5}).recovery.cost == 0.5  # a sweep of the cost moves it
    assert s.with_overrides({"recovery.dispersion": 0.5}).recovery.dispersion == 0.5
    t = s.with_overrides({"policy.collection.strategy": "legal_action"})
    assert t.recovery.lag_months == COLLECTION_PRESETS["legal_action"]["lag_months"]


# --------------------------------------------------------------------------- serialisation and overrides


def full_scenario() -> Scenario:
    return Scenario.from_dict(with_policy(
        loan_cap={"caps": {"individual": 3e5, "enterprise": 1e6}, "transition_months": 12},
        deferral={"industries": ["retail"], "states": ["C"], "start_month": 2, "months": 6, "interest": "waived",
                  "extend_term": False},
        interest_subsidy={"points": 0.02, "borrower_types": ["individual"], "max_balance": 2e5, "months": 12},
        rate_cap={"cap": 0.24, "from_month": 3},
        revenue_support={"uplift": {"start": 1, "trough": 0.05, "trough_month": 3, "recovery_month": 12},
                         "regions": ["east"]},
        seasonal_schedule={"industries": ["agriculture"]},
        collection={"strategy": "third_party_agency"}))


def test_to_dict_round_trip_with_policy() -> None:
    s = full_scenario()
    d = s.to_dict()
    assert d["policy"] == {
        "loan_cap": {"caps": {"enterprise": 1e6, "individual": 3e5}, "transition_months": 12, "refinanced_share": 0.0},
        "deferral": {"industries": ["retail"], "regions": None, "borrower_types": None, "states": ["C"],
                     "start_month": 2, "months": 6, "interest": "waived", "extend_term": False},
        "interest_subsidy": {"points": 0.02, "industries": None, "regions": None, "borrower_types": ["individual"],
                             "max_balance": 2e5, "start_month": 1, "months": 12},
        "rate_cap": {"cap": 0.24, "from_month": 3},
        "revenue_support": {"uplift": {"start": 1, "trough": 0.05, "trough_month": 3, "recovery_month": 12},
                            "industries": None, "regions": ["east"], "borrower_types": None},
        "seasonal_schedule": {"industries": ["agriculture"]},
        "collection": {"strategy": "third_party_agency"}}
    assert d["recovery"]["cost"] == COLLECTION_PRESETS["third_party_agency"]["cost"]
    assert Scenario.from_dict(d) == s
    assert Scenario.from_dict(json.loads(s.to_json())) == s
    assert Scenario.from_dict(d).to_dict() == d


def test_absent_levers_are_left_out_of_to_dict() -> None:
    s = Scenario.from_dict(with_policy(rate_cap={"cap": 0.2}))
    assert s.to_dict()["policy"] == {"rate_cap": {"cap": 0.2, "from_month": 1}}


def test_with_overrides_on_policy_values() -> None:
    s = full_scenario()
    t = s.with_overrides({"policy.interest_subsidy.points": 0.03, "policy.deferral.months": 3,
                          "policy.loan_cap.caps.individual": 1e5, "policy.revenue_support.uplift.trough": 0.1,
                          "policy.deferral.states": ["C", "M1", "M2"]})
    assert t.policy.interest_subsidy == dataclasses.replace(s.policy.interest_subsidy, points=0.03)
    assert t.policy.deferral.months == 3 and t.policy.deferral.states == ("C", "M1", "M2")
    assert t.policy.loan_cap.caps == (("enterprise", 1e6), ("individual", 1e5))
    assert t.policy.revenue_support.uplift.trough == 0.1
    assert t.policy.rate_cap == s.policy.rate_cap and t.layers == s.layers
    sweep = [s.with_overrides({"policy.interest_subsidy.points": x}).policy.interest_subsidy.points
             for x in (0.01, 0.02, 0.05)]
    assert sweep == [0.01, 0.02, 0.05]
    # a key of an absent lever creates it (other keys default)
    u = Scenario.from_dict({"horizon_months": 12}).with_overrides({"policy.rate_cap.cap": 0.24})
    assert u.policy == PolicySpec(rate_cap=RateCapSpec(cap=0.24))
    # a whole lever table, or None to remove it
    assert s.with_overrides({"policy.deferral": None}).policy.deferral is None
    assert s.with_overrides({"policy.rate_cap": {"cap": 0.15}}).policy.rate_cap == RateCapSpec(cap=0.15)


@pytest.mark.parametrize("overrides, fragment", [
    ({"policy.interest_subsidy.points": 0.5},
     "<overrides>: [policy.interest_subsidy] points must be a number in (0, 0.2]; got 0.5"),
    ({"policy.deferral.months": 25}, "<overrides>: [policy.deferral] months must be an integer in 0..24; got 25"),
    ({"policy.deferral.monts": 3}, "unknown key [policy.deferral] 'monts' (did you mean 'months'?)"),
    ({"policy.defferal.months": 3}, "unknown policy lever [policy.defferal] (did you mean 'deferral'?)"),
    ({"policy.interest_subsidy.months": None, "policy.interest_subsidy.points": None},
     "[policy.interest_subsidy] points must be a number in (0, 0.2]; got None"),
    ({"policy.deferral.start_month": 40}, "[policy.deferral] start_month must be within the horizon"),
    ({"horizon_months": 1}, "[policy.deferral] start_month must be within the horizon, 1..1 (horizon_months = 1)"),
    ({"policy.loan_cap.caps.firm": 1}, "[policy.loan_cap] caps has an unknown borrower type 'firm'"),
])
def test_with_overrides_on_policy_revalidates(overrides: dict, fragment: str) -> None:
    with pytest.raises(ScenarioError) as info:
        full_scenario().with_overrides(overrides)
    assert fragment in str(info.value)


# --------------------------------------------------------------------------- the library


@pytest.mark.parametrize("stem", MACRO + POLICY)
def test_library_files_load_round_trip_and_say_where_figures_come_from(stem: str) -> None:
    path = SCENARIOS / f"{stem}.toml"
    s = load_scenario(path)
    assert s.name == stem and s.description
    assert Scenario.from_dict(s.to_dict()) == s
    assert Scenario.from_dict(json.loads(s.to_json())) == s
    header = path.read_text(encoding="utf-8").split("\n\n")[0]
    assert header.startswith("# ") and "ASSUMPTION" in header and "What it represents" in header
    assert s.layers == ()


@pytest.mark.parametrize("stem", MACRO)
def test_macro_scenarios_have_no_policy(stem: str) -> None:
    s = load_scenario(SCENARIOS / f"{stem}.toml")
    assert s.policy == PolicySpec()
    assert 'extends = "baseline.toml"' in s.text


def test_manufacturing_slump() -> None:
    s = load_scenario(SCENARIOS / "manufacturing_slump.toml")
    chain = ["manufacturing", "wholesale", "transport"]
    shock = s.revenue_shock([*chain, "retail", "catering"], ["east"])[:, 0, :]
    assert (shock[:3].min(axis=1) < -0.15).all() and (shock[3:] == 0).all()
    assert shock[0].min() <= shock[1].min() <= shock[2].min()  # manufacturing hit hardest
    sigma = s.factors.correlation(chain, [])
    assert (sigma[1:, 1:][~np.eye(3, dtype=bool)] > 0).all()
    baseline = load_scenario(SCENARIOS / "baseline.toml")
    loads = s.factors.loadings([*chain, "retail"])
    assert (loads[:3, 1] > baseline.factors.loadings(["retail"])[0, 1]).all()


def test_regional_downturn() -> None:
    import stresslab

    s = load_scenario(SCENARIOS / "regional_downturn.toml")
    regions = list(stresslab.synthetic_portfolio(1000).regions)
    (name, _), = s.region_shocks
    assert name in regions
    shock = s.revenue_shock(["retail"], regions)[0]
    assert shock[regions.index(name)].min() < -0.15
    assert (np.delete(shock, regions.index(name), axis=0) == 0).all()
    assert s.industry_shocks == ()
    baseline = load_scenario(SCENARIOS / "baseline.toml")
    assert s.factors.region_loading.default > baseline.factors.region_loading.default


def test_rising_funding_costs_raises_the_funding_rate_only() -> None:
    s = load_scenario(SCENARIOS / "rising_funding_costs.toml")
    baseline = load_scenario(SCENARIOS / "baseline.toml")
    rate = s.funding.path(s.horizon_months)
    assert rate[0] > 0.03 and rate.max() == pytest.approx(0.05) and int(np.argmax(rate)) == 11
    assert rate[-1] == pytest.approx(0.03) and s.capital.breach_level == pytest.approx(0.105)
    # the credit side is the baseline's: the pass-through to borrowers is not modelled (said in the file)
    assert dataclasses.replace(s, name="baseline", description=baseline.description, funding=None,
                               capital=None) == baseline
    assert "NOT MODELLED YET" in s.text and "pass-through" in s.text


def test_loan_cap_2020() -> None:
    s = load_scenario(SCENARIOS / "loan_cap_2020.toml")
    baseline = load_scenario(SCENARIOS / "baseline.toml")
    assert s.policy.active == ("loan_cap",)
    # individuals: one third of an assumed 300k income (the draft's income clause), within its 300k ceiling
    assert s.policy.loan_cap.cap("individual") == 100_000.0 and s.policy.loan_cap.cap("enterprise") == 1_000_000.0
    assert s.policy.loan_cap.refinanced_share == 0.0
    assert 0 < s.policy.loan_cap.transition_months <= s.horizon_months
    assert dataclasses.replace(s, name="baseline", description=baseline.description, policy=PolicySpec()) == baseline
    assert "2 November 2020" in s.text and "draft" in s.text and "What you should see" in s.text


def test_loan_cap_2020_caps_someone_on_the_synthetic_book() -> None:
    """The shipped scenario acts on the synthetic book (issue 13, item 6)."""
    s = load_scenario(SCENARIOS / "loan_cap_2020.toml")
    model = compile_model(stresslab.synthetic_portfolio(2_000, seed=0), s)
    assert model.policy.capped_borrowers == 60 and model.policy.gap_volume > 1e6  # as its comment says


def test_deferral_programme() -> None:
    s = load_scenario(SCENARIOS / "deferral_programme.toml")
    downturn = load_scenario(SCENARIOS / "services_downturn.toml")
    assert s.industry_shocks == downturn.industry_shocks and s.recovery == downturn.recovery
    assert s.policy.active == ("deferral",)
    assert s.policy.deferral == DeferralSpec(industries=("catering", "retail", "services"), states=("C", "M1"),
                                             start_month=1, months=6, interest="accrued", extend_term=True)


def test_interest_subsidy() -> None:
    s = load_scenario(SCENARIOS / "interest_subsidy.toml")
    downturn = load_scenario(SCENARIOS / "services_downturn.toml")
    assert s.industry_shocks == downturn.industry_shocks and s.recovery == downturn.recovery
    assert s.policy.active == ("interest_subsidy",)
    sub = s.policy.interest_subsidy
    assert sub.points == 0.02 and sub.months == 12 and sub.max_balance is not None
    assert sub.borrower_types == ("enterprise", "individual")


def test_combined_response_is_the_single_levers_together() -> None:
    s = load_scenario(SCENARIOS / "combined_response.toml")
    downturn = load_scenario(SCENARIOS / "services_downturn.toml")
    assert s.industry_shocks == downturn.industry_shocks
    assert s.policy.active == ("deferral", "interest_subsidy", "revenue_support", "collection")
    assert s.policy.deferral == load_scenario(SCENARIOS / "deferral_programme.toml").policy.deferral
    assert s.policy.interest_subsidy == load_scenario(SCENARIOS / "interest_subsidy.toml").policy.interest_subsidy
    uplift = shock_path(s.policy.revenue_support.uplift, s.horizon_months)
    assert (uplift[:12] > 0).all() and (uplift[12:] == 0).all() and uplift.max() <= 0.1
    preset = COLLECTION_PRESETS[s.policy.collection.strategy]
    assert (s.recovery.unsecured_mean, s.recovery.lag_months, s.recovery.cost) == (
        preset["unsecured_mean"], preset["lag_months"], preset["cost"])
    assert s.recovery.dispersion == downturn.recovery.dispersion
