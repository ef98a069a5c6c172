"""Tests of the scenario's ``[[layers]]`` (credit enhancement, MODEL.md §5) and the layer library."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from stresslab.errors import ScenarioError
from stresslab.scenario.scenario import Scenario, load_scenario
from stresslab.scenario.specs import LayerSpec

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
LIBRARY = ["guarantee_insurance", "compensation_fund", "risk_sharing", "pledged_receivables"]


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def with_layers(*layers: dict) -> dict:
    return {"horizon_months": 12, "layers": list(layers)}


QS = {"name": "qs", "kind": "quota_share"}
XL = {"name": "xl", "kind": "excess_of_loss"}


# --------------------------------------------------------------------------- defaults


def test_no_layers_by_default() -> None:
    s = Scenario.from_dict({"horizon_months": 12})
    assert s.layers == ()
    assert s.to_dict()["layers"] == []


@pytest.mark.parametrize("layer", [QS, XL], ids=["quota_share", "excess_of_loss"])
def test_layer_defaults(layer: dict) -> None:
    (spec,) = Scenario.from_dict(with_layers(layer)).layers
    assert spec == LayerSpec(name=layer["name"], kind=layer["kind"])
    assert (spec.share, spec.attachment, spec.limit, spec.basis) == (1.0, 0.0, None, "ead")
    assert (spec.per_loan_limit, spec.capacity, spec.topup_every_months, spec.annual_cap) == (None,) * 4
    assert (spec.lag_months, spec.fee_rate) == (0, 0.0)
    assert (spec.industries, spec.regions, spec.borrower_types, spec.max_balance) == (None,) * 4
    assert (spec.failure_probability, spec.failure_sensitivity) == (0.0, 0.0)
    assert isinstance(spec.attachment, float) and isinstance(spec.lag_months, int)


def test_layer_field_names_are_the_engine_contract() -> None:
    assert [f.name for f in dataclasses.fields(LayerSpec)] == [
        "name", "kind", "share", "attachment", "limit", "basis", "per_loan_limit", "capacity",
        "topup_every_months", "annual_cap", "lag_months", "fee_rate", "industries", "regions",
        "borrower_types", "max_balance", "failure_probability", "failure_sensitivity"]


def test_every_key_parsed(tmp_path: Path) -> None:
    path = write(tmp_path, "full.toml", """
horizon_months = 24
[[layers]]
name = "insurer"
kind = "excess_of_loss"
share = 0.8
attachment = 5000
limit = 200000
basis = "principal"
per_loan_limit = 150000
capacity = 0
topup_every_months = 6
lag_months = 3
fee_rate = 0.02
[layers.eligibility]
industries = ["retail", "catering"]
regions = ["east"]
borrower_types = ["individual", "enterprise"]
max_balance = 500000
[layers.counterparty]
failure_probability = 0.05
sensitivity = 0.4

[[layers]]
name = "fund"
kind = "quota_share"
annual_cap = 1e6
""")
    insurer, fund = load_scenario(path).layers
    assert insurer == LayerSpec(
        name="insurer", kind="excess_of_loss", share=0.8, attachment=5000.0, limit=200000.0, basis="principal",
        per_loan_limit=150000.0, capacity=0.0, topup_every_months=6, annual_cap=None, lag_months=3, fee_rate=0.02,
        industries=("catering", "retail"), regions=("east",), borrower_types=("enterprise", "individual"),
        max_balance=500000.0, failure_probability=0.05, failure_sensitivity=0.4)
    assert fund == LayerSpec(name="fund", kind="quota_share", annual_cap=1e6)
    assert isinstance(insurer.capacity, float) and isinstance(insurer.topup_every_months, int)


def test_layers_are_frozen_hashable_and_ordered() -> None:
    s = Scenario.from_dict(with_layers({**QS, "name": "b"}, {**QS, "name": "a"}))
    assert [layer.name for layer in s.layers] == ["b", "a"]  # scenario order, not sorted
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.layers[0].share = 0.5  # type: ignore[misc]
    assert hash(s) == hash(Scenario.from_dict(s.to_dict()))
    with pytest.raises(TypeError):
        LayerSpec("x", "quota_share")  # type: ignore[misc]  # keyword-only


def test_eligibility_lists_are_sets() -> None:
    a = Scenario.from_dict(with_layers({**QS, "eligibility": {"regions": ["south", "east"]}}))
    b = Scenario.from_dict(with_layers({**QS, "eligibility": {"regions": ["east", "south"]}}))
    assert a == b and a.layers[0].regions == ("east", "south")


def test_unset_values_may_be_none_in_a_dict() -> None:
    s = Scenario.from_dict(with_layers({**XL, "limit": None, "capacity": None, "annual_cap": None,
                                        "eligibility": {"industries": None, "max_balance": None}}))
    assert s.layers[0] == LayerSpec(name="xl", kind="excess_of_loss")


def test_eligibility_names_are_not_checked_here() -> None:
    s = Scenario.from_dict(with_layers({**QS, "eligibility": {"industries": ["mining"], "regions": ["atlantis"]}}))
    assert s.layers[0].industries == ("mining",)


# --------------------------------------------------------------------------- errors

L0 = "[[layers]][0] (name = 'fund')"
ONE = '[[layers]]\nname = "fund"\nkind = "quota_share"\n'
XOL = '[[layers]]\nname = "fund"\nkind = "excess_of_loss"\n'

ERRORS = [
    # (TOML body after horizon_months, fragments the message must contain besides the file name)
    (ONE + "share = 1.5", [f"{L0} share must be a number in [0, 1]; got 1.5"]),
    (ONE + "share = -0.1", [f"{L0} share must be a number in [0, 1]; got -0.1"]),
    (ONE + "share = '0.5'", [f"{L0} share must be a number in [0, 1]; got '0.5'"]),
    (ONE + "share = true", [f"{L0} share must be a number in [0, 1]; got True"]),
    (ONE + "capacity = -1", [f"{L0} capacity must be a number >= 0; got -1"]),
    (ONE + "capacity = nan", [f"{L0} capacity must be a number >= 0", "got nan"]),
    (ONE + "annual_cap = -5.0", [f"{L0} annual_cap must be a number >= 0; got -5.0"]),
    (ONE + "per_loan_limit = 0", [f"{L0} per_loan_limit must be a number > 0; got 0"]),
    (XOL + "limit = 0", [f"{L0} limit must be a number > 0; got 0"]),
    (XOL + "attachment = -100", [f"{L0} attachment must be a number >= 0; got -100"]),
    (XOL + "attachment = 5000\nlimit = 1000",
     [f"{L0} attachment must be <= limit", "share * min(limit, max(0, loss - attachment))",
      "got attachment = 5000, limit = 1000"]),
    (ONE + "attachment = 100",
     [f"{L0} attachment is only allowed when kind = 'excess_of_loss', not for kind = 'quota_share'", "got 100"]),
    (ONE + "attachment = 0", [f"{L0} attachment is only allowed when kind = 'excess_of_loss'", "got 0"]),
    (ONE + "limit = 1e5", [f"{L0} limit is only allowed when kind = 'excess_of_loss', not for kind = 'quota_share'",
                           "got 100000.0"]),
    ('[[layers]]\nname = "fund"\nkind = "quota"',
     [f"{L0} kind must be one of 'quota_share', 'excess_of_loss'; got 'quota' (did you mean 'quota_share'?)"]),
    ('[[layers]]\nname = "fund"\nkind = "excess_loss"', ["(did you mean 'excess_of_loss'?)"]),
    ('[[layers]]\nname = "fund"\nkind = 1', [f"{L0} kind must be one of 'quota_share', 'excess_of_loss'; got 1"]),
    ('[[layers]]\nname = "fund"', [f"{L0} kind is required: one of 'quota_share', 'excess_of_loss'"]),
    ('[[layers]]\nkind = "quota_share"', ["[[layers]][0] name is required: a non-empty string"]),
    ('[[layers]]\nname = ""\nkind = "quota_share"', ["[[layers]][0] name must be a non-empty string; got ''"]),
    ('[[layers]]\nname = 3\nkind = "quota_share"', ["[[layers]][0] name must be a non-empty string; got 3"]),
    (ONE + "basis = 'principle'",
     [f"{L0} basis must be one of 'principal', 'ead'; got 'principle' (did you mean 'principal'?)"]),
    (ONE + "shares = 0.5", [f"unknown key {L0} 'shares' (did you mean 'share'?)"]),
    (ONE + "cap = 5", [f"unknown key {L0} 'cap'", "allowed: name, kind, share"]),
    (ONE + "[layers.eligibility]\nindustry = ['retail']",
     [f"unknown key {L0} eligibility 'industry' (did you mean 'industries'?)"]),
    (ONE + "[layers.counterparty]\nfailure_prob = 0.1",
     [f"unknown key {L0} counterparty 'failure_prob' (did you mean 'failure_probability'?)"]),
    (ONE + "[layers.eligibility]\nborrower_types = ['enterprises']",
     [f"{L0} eligibility.borrower_types must be a non-empty list of distinct values among 'enterprise', 'individual'",
      "got ['enterprises']: 'enterprises' is not allowed (did you mean 'enterprise'?)"]),
    (ONE + "[layers.eligibility]\nborrower_types = ['enterprise', 'enterprise']",
     [f"{L0} eligibility.borrower_types must be a non-empty list of distinct values", "got ['enterprise', 'enterprise']"]),
    (ONE + "[layers.eligibility]\nborrower_types = []", [f"{L0} eligibility.borrower_types", "got []"]),
    (ONE + "[layers.eligibility]\nborrower_types = 'enterprise'", [f"{L0} eligibility.borrower_types", "got 'enterprise'"]),
    (ONE + "[layers.eligibility]\nindustries = []",
     [f"{L0} eligibility.industries must be a non-empty list of distinct names; got []"]),
    (ONE + "[layers.eligibility]\nregions = ['east', 'east']",
     [f"{L0} eligibility.regions must be a non-empty list of distinct names", "got ['east', 'east']"]),
    (ONE + "[layers.eligibility]\nregions = 'east'", [f"{L0} eligibility.regions", "got 'east'"]),
    (ONE + "[layers.eligibility]\nmax_balance = 0", [f"{L0} eligibility.max_balance must be a number > 0; got 0"]),
    (ONE + "eligibility = 3", [f"{L0} eligibility must be a table; got 3"]),
    (ONE + "[layers.counterparty]\nfailure_probability = 1",
     [f"{L0} counterparty.failure_probability must be a number in [0, 1); got 1"]),
    (ONE + "[layers.counterparty]\nsensitivity = -0.2", [f"{L0} counterparty.sensitivity must be a number in [0, 1); got -0.2"]),
    (ONE + "capacity = 1e6\ntopup_every_months = 12\nannual_cap = 5e5",
     [f"{L0} topup_every_months and annual_cap are mutually exclusive", "got topup_every_months = 12, annual_cap = 500000"]),
    (ONE + "topup_every_months = 12",
     [f"{L0} topup_every_months requires capacity", "got topup_every_months = 12 with capacity unset"]),
    (ONE + "capacity = 1e6\ntopup_every_months = 0",
     [f"{L0} topup_every_months must be an integer in 1..120; got 0"]),
    (ONE + "capacity = 1e6\ntopup_every_months = 12.0", [f"{L0} topup_every_months must be an integer in 1..120", "got 12.0"]),
    (ONE + "lag_months = 121", [f"{L0} lag_months must be an integer in 0..120; got 121"]),
    (ONE + "lag_months = 1.5", [f"{L0} lag_months must be an integer in 0..120; got 1.5"]),
    (ONE + "fee_rate = 1.2", [f"{L0} fee_rate must be a number in [0, 1]; got 1.2"]),
    (ONE + '[[layers]]\nname = "other"\nkind = "quota_share"\nshare = 2',
     ["[[layers]][1] (name = 'other') share must be a number in [0, 1]; got 2"]),
    (ONE + '[[layers]]\nname = "x"\nkind = "quota_share"\n' + ONE,
     ["[[layers]][2] (name = 'fund') name 'fund' is also the name of [[layers]][0]; layer names must be unique"]),
    ('[[layers]]\nname = "lender"\nkind = "quota_share"',
     ["[[layers]][0] (name = 'lender') name must not be 'lender': results use it for the party that keeps"]),
    ("layers = 3", ["layers must be a list of tables ([[layers]]); got 3"]),
    ("layers = [3]", ["[[layers]][0] must be a table; got 3"]),
    ("[layers]\nname = 'fund'", ["layers must be a list of tables ([[layers]])", "got {'name': 'fund'}"]),
]


@pytest.mark.parametrize("body, fragments", ERRORS)
def test_error_messages_name_file_layer_key_value_and_range(tmp_path: Path, body: str, fragments: list[str]) -> None:
    path = write(tmp_path, "bad.toml", "horizon_months = 12\n" + body + "\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in message


def test_error_in_an_inherited_layer_names_the_parent(tmp_path: Path) -> None:
    parent = write(tmp_path, "parent.toml", 'horizon_months = 12\n[[layers]]\nname = "fund"\nkind = "quota_share"\n'
                                            "capacity = -3\n")
    child = write(tmp_path, "child.toml", 'extends = "parent.toml"\n[recovery]\ncost = 0.2\n')
    with pytest.raises(ScenarioError) as info:
        load_scenario(child)
    assert str(info.value) == f"{parent}: {L0} capacity must be a number >= 0; got -3"


def test_from_dict_error_uses_source() -> None:
    with pytest.raises(ScenarioError) as info:
        Scenario.from_dict(with_layers({"name": "fund", "kind": "quota_share", "share": 3}), source="mine")
    assert str(info.value) == f"mine: {L0} share must be a number in [0, 1]; got 3"


# --------------------------------------------------------------------------- inheritance


def test_extends_replaces_the_layer_array_whole(tmp_path: Path) -> None:
    write(tmp_path, "parent.toml", """
horizon_months = 12
[[layers]]
name = "guarantor"
kind = "quota_share"
share = 0.5
capacity = 1e6
[[layers]]
name = "fund"
kind = "quota_share"
share = 0.4
""")
    child = write(tmp_path, "child.toml", """
extends = "parent.toml"
[[layers]]
name = "guarantor"
kind = "quota_share"
share = 0.7
""")
    (layer,) = load_scenario(child).layers  # no 'fund', no inherited capacity
    assert layer == LayerSpec(name="guarantor", kind="quota_share", share=0.7)
    inherit = write(tmp_path, "inherit.toml", 'extends = "parent.toml"\n[recovery]\ncost = 0.2\n')
    assert [layer.name for layer in load_scenario(inherit).layers] == ["guarantor", "fund"]
    assert load_scenario(inherit).layers[0].capacity == 1e6
    cleared = write(tmp_path, "cleared.toml", 'extends = "parent.toml"\nlayers = []\n')
    assert load_scenario(cleared).layers == ()


# --------------------------------------------------------------------------- serialisation and overrides


def full_scenario() -> Scenario:
    return Scenario.from_dict(with_layers(
        {"name": "insurer", "kind": "excess_of_loss", "share": 0.8, "attachment": 5000, "limit": 1e5,
         "basis": "principal", "per_loan_limit": 9e4, "capacity": 1e7, "topup_every_months": 6, "lag_months": 2,
         "fee_rate": 0.01, "eligibility": {"industries": ["retail"], "regions": ["east", "north"],
                                           "borrower_types": ["enterprise"], "max_balance": 5e5},
         "counterparty": {"failure_probability": 0.1, "sensitivity": 0.3}},
        {"name": "fund", "kind": "quota_share", "share": 0.4, "annual_cap": 2e6}))


def test_to_dict_round_trip_with_layers() -> None:
    s = full_scenario()
    d = s.to_dict()
    assert d["layers"][0] == {
        "name": "insurer", "kind": "excess_of_loss", "share": 0.8, "attachment": 5000.0, "limit": 1e5,
        "basis": "principal", "per_loan_limit": 9e4, "capacity": 1e7, "topup_every_months": 6, "annual_cap": None,
        "lag_months": 2, "fee_rate": 0.01,
        "eligibility": {"industries": ["retail"], "regions": ["east", "north"], "borrower_types": ["enterprise"],
                        "max_balance": 5e5},
        "counterparty": {"failure_probability": 0.1, "sensitivity": 0.3}}
    assert "attachment" not in d["layers"][1] and "limit" not in d["layers"][1]  # not allowed for quota_share
    assert Scenario.from_dict(d) == s
    assert Scenario.from_dict(json.loads(s.to_json())) == s
    assert Scenario.from_dict(d).to_dict() == d


def test_with_overrides_by_index_and_by_name() -> None:
    s = full_scenario()
    by_index = s.with_overrides({"layers.1.capacity": 5e6})
    by_name = s.with_overrides({"layers.fund.capacity": 5e6})
    assert by_index == by_name
    assert by_name.layers[1].capacity == 5e6 and s.layers[1].capacity is None
    assert by_name.layers[0] == s.layers[0]
    t = s.with_overrides({"layers.insurer.eligibility.regions": ["south"], "layers.0.counterparty.sensitivity": 0.5,
                          "layers.fund.share": 0.3})
    assert t.layers[0].regions == ("south",) and t.layers[0].failure_sensitivity == 0.5 and t.layers[1].share == 0.3
    assert s.with_overrides({"layers": []}).layers == ()
    sweep = [s.with_overrides({"layers.fund.capacity": c}).layers[1].capacity for c in (0, 1e6, 2e6)]
    assert sweep == [0.0, 1e6, 2e6]


@pytest.mark.parametrize("overrides, fragment", [
    ({"layers.fund.capacity": -1}, "<overrides>: [[layers]][1] (name = 'fund') capacity must be a number >= 0"),
    ({"layers.2.capacity": 1}, "<overrides>: cannot set 'layers.2.capacity': 'layers' has 2 items, so index 2 is out of range"),
    ({"layers.fnd.capacity": 1}, "'layers' has no item named 'fnd' (did you mean 'fund'?)"),
    ({"layers.fund.capacty": 1}, "unknown key [[layers]][1] (name = 'fund') 'capacty' (did you mean 'capacity'?)"),
    ({"layers.insurer.attachment": 2e5}, "<overrides>: [[layers]][0] (name = 'insurer') attachment must be <= limit"),
    ({"layers.fund.attachment": 10}, "attachment is only allowed when kind = 'excess_of_loss'"),
    ({"layers.fund.share.x": 1}, "cannot set 'layers.fund.share.x': 'layers.fund.share' is not a table"),
    ({"layers.fund.name": "insurer"}, "name 'insurer' is also the name of [[layers]][0]"),
])
def test_with_overrides_on_layers_revalidates(overrides: dict, fragment: str) -> None:
    with pytest.raises(ScenarioError) as info:
        full_scenario().with_overrides(overrides)
    assert fragment in str(info.value)


# --------------------------------------------------------------------------- the library


@pytest.mark.parametrize("stem", LIBRARY)
def test_library_files_load_round_trip_and_say_where_figures_come_from(stem: str) -> None:
    path = SCENARIOS / f"{stem}.toml"
    s = load_scenario(path)
    assert s.name == stem and s.description
    assert Scenario.from_dict(s.to_dict()) == s
    header = path.read_text(encoding="utf-8").split("\n\n")[0]
    assert "ASSUMPTION" in header and "Real-world arrangement" in s.text and "Where the figures come from" in s.text
    assert 'extends = "baseline.toml"' in s.text or 'extends = "services_downturn.toml"' in s.text


def test_guarantee_insurance() -> None:
    s = load_scenario(SCENARIOS / "guarantee_insurance.toml")
    downturn = load_scenario(SCENARIOS / "services_downturn.toml")
    assert s.industry_shocks == downturn.industry_shocks and s.recovery == downturn.recovery
    (insurer,) = s.layers
    assert insurer.kind == "excess_of_loss" and insurer.share == 0.8 and insurer.basis == "ead"
    assert insurer.attachment > 0 and insurer.limit is None  # per-loan deductible, no ceiling
    assert insurer.borrower_types == ("enterprise",) and insurer.max_balance is not None
    assert insurer.capacity is not None and insurer.capacity > 0 and insurer.fee_rate > 0 and insurer.lag_months > 0
    assert insurer.failure_probability > 0 and insurer.failure_sensitivity > 0


def test_compensation_fund() -> None:
    s = load_scenario(SCENARIOS / "compensation_fund.toml")
    (fund,) = s.layers
    assert (fund.kind, fund.share, fund.basis) == ("quota_share", 0.4, "principal")
    assert fund.capacity is not None and fund.capacity > 0 and fund.topup_every_months == 12 and fund.annual_cap is None
    assert fund.lag_months > 0 and fund.failure_probability == 0.0
    import stresslab  # the fund's region is one of the synthetic book's
    assert fund.regions is not None and set(fund.regions) <= set(stresslab.synthetic_portfolio(1000).regions)


def test_risk_sharing_parties_bear_the_intended_split() -> None:
    s = load_scenario(SCENARIOS / "risk_sharing.toml")
    assert [layer.name for layer in s.layers] == ["guarantor", "reguarantor", "national_fund"]
    assert all(layer.kind == "quota_share" and layer.basis == "ead" for layer in s.layers)
    left, effective = 1.0, []
    for layer in s.layers:  # each layer takes its share of what the layers before it left
        effective.append(left * layer.share)
        left -= left * layer.share
    assert effective == pytest.approx([0.4, 0.2, 0.2], abs=1e-12)
    assert left == pytest.approx(0.2, abs=1e-12)  # the bank keeps 20%
    assert math.fsum(effective) + left == pytest.approx(1.0, abs=1e-15)
    guarantor = s.layers[0]
    assert guarantor.capacity is not None and guarantor.capacity > 0 and guarantor.failure_probability > 0
    # fees quoted on a party's own share, on the engine's base (the covered loans' balance)
    assert sum(layer.fee_rate for layer in s.layers) == pytest.approx(0.01)
    assert s.layers[2].fee_rate == pytest.approx(0.003 * 0.2)


def test_pledged_receivables() -> None:
    s = load_scenario(SCENARIOS / "pledged_receivables.toml")
    baseline = load_scenario(SCENARIOS / "baseline.toml")
    assert s.layers == ()
    assert s.recovery.pledge_haircut > baseline.recovery.pledge_haircut
    assert s.recovery.pledge_lag_months > baseline.recovery.pledge_lag_months
    shock = s.revenue_shock(["manufacturing", "wholesale", "retail"], ["east"])[:, 0, :]
    assert shock[0].min() < 0 and shock[1].min() < 0 and (shock[2] == 0).all()
    sigma = s.factors.correlation(["manufacturing", "wholesale"], [])
    assert sigma[1, 2] > 0
