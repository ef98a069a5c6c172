"""Tests of stresslab.scenario.scenario: loading, defaults, validation messages, inheritance, arrays."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import book

from stresslab.compile.binding import bind_names
from stresslab.compile.model import compile_model
from stresslab.errors import ScenarioError, StresslabWarning
from stresslab.scenario.scenario import Scenario, load_scenario
from stresslab.scenario.specs import CorrelationMatrix, PerIndustry, ShockRamp

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
SHIPPED = sorted(SCENARIOS.glob("*.toml"))


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def minimal(**tables: object) -> dict:
    return {"horizon_months": 12, **tables}


# --------------------------------------------------------------------------- shipped files


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_scenarios_load_and_round_trip(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.name == path.stem
    assert scenario.description
    assert scenario.text.startswith("# --- file: ")
    assert Scenario.from_dict(scenario.to_dict()) == scenario
    assert Scenario.from_dict(json.loads(scenario.to_json())) == scenario


def test_shipped_files_are_both_there() -> None:
    assert {p.name for p in SHIPPED} >= {"baseline.toml", "services_downturn.toml"}


def test_baseline_is_the_defaults_written_out() -> None:
    baseline = load_scenario(SCENARIOS / "baseline.toml")
    assert baseline.horizon_months == 36
    same = Scenario.from_dict({"name": "baseline", "description": baseline.description, "horizon_months": 36,
                               "seasonality": dict(baseline.seasonal_factors)})
    assert baseline == same
    assert {"agriculture", "retail", "catering", "construction"} <= dict(baseline.seasonal_factors).keys()


def test_services_downturn_extends_baseline() -> None:
    baseline = load_scenario(SCENARIOS / "baseline.toml")
    downturn = load_scenario(SCENARIOS / "services_downturn.toml")
    assert downturn.name == "services_downturn"
    assert downturn.recovery.unsecured_mean == 0.2
    assert downturn.factors.global_loading.default > baseline.factors.global_loading.default
    assert downturn.delinquency == baseline.delinquency
    assert downturn.seasonal_factors == baseline.seasonal_factors
    shock = downturn.revenue_shock(["retail", "catering", "services"], ["north"])[:, 0, :]
    assert shock[0].min() == pytest.approx(-0.25) and shock[0].argmin() + 1 == 3
    assert shock[1].min() == pytest.approx(-0.30) and shock[1].argmin() + 1 == 4
    assert -0.25 < shock[2].min() < 0
    assert np.all(shock[:, 18:] == 0)
    # The text holds both files, parent first.
    first = downturn.text.index("# --- file: ")
    assert downturn.text[first:].startswith(f"# --- file: {SCENARIOS / 'baseline.toml'}")
    assert f"# --- file: {SCENARIOS / 'services_downturn.toml'}" in downturn.text
    assert 'extends = "baseline.toml"' in downturn.text


# --------------------------------------------------------------------------- defaults


def test_defaults() -> None:
    s = Scenario.from_dict({"horizon_months": 24})
    assert (s.name, s.description, s.start_month, s.source, s.text) == ("unnamed", "", 1, "<dict>", "")
    f = s.factors
    assert (f.copula, f.dof, f.ar1) == ("gaussian", None, 0.9)
    assert (f.global_loading, f.industry_loading, f.region_loading) == (
        PerIndustry(default=0.25), PerIndustry(default=0.25), PerIndustry(default=0.15))
    assert f.industry_correlation == f.region_correlation == 0.0
    assert s.cashflow_volatility == PerIndustry(default=0.35)
    assert s.industry_shocks == s.region_shocks == s.seasonal_factors == ()
    d = s.delinquency
    assert d.default_after == 4
    assert d.roll_rates == (0.35, 0.55, 0.75) and d.cure_rates == (0.30, 0.15, 0.08)
    assert (d.roll_sensitivity, d.cure_sensitivity, d.prepayment_rate) == (1.0, 1.0, 0.0)
    r = s.recovery
    assert (r.unsecured_mean, r.dispersion, r.lag_months, r.cost) == (0.25, 0.2, 6, 0.1)
    assert (r.pledge_haircut, r.pledge_lag_months, r.lgd_sensitivity, r.discount_rate) == (0.3, 3, 1.0, None)


def test_minimal_file_is_valid_and_named_after_its_stem(tmp_path: Path) -> None:
    path = write(tmp_path, "tiny.toml", "horizon_months = 1\n[factors]\n[delinquency]\ndefault_after = 1\n"
                                        "[recovery]\nunsecured_mean = 0\n")
    s = load_scenario(path)
    assert s.name == "tiny" and s.source == str(path)
    assert s.delinquency.default_after == 1 and s.recovery.unsecured_mean == 0.0
    assert s.text == f"# --- file: {path}\n" + path.read_text()


def test_int_accepted_where_float_wanted_and_objects_are_frozen() -> None:
    s = Scenario.from_dict(minimal(factors={"ar1": 1}, delinquency={"sensitivities": 2}))
    assert s.factors.ar1 == 1.0 and isinstance(s.factors.ar1, float)
    assert (s.delinquency.roll_sensitivity, s.delinquency.cure_sensitivity) == (2.0, 2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.horizon_months = 3  # type: ignore[misc]
    assert hash(s) == hash(Scenario.from_dict(s.to_dict()))


def test_from_dict_does_not_change_its_input() -> None:
    data = minimal(factors={"industry_loading": {"retail": 0.3}}, shocks={"industry": {"retail": [0.1]}})
    before = json.dumps(data, sort_keys=True)
    Scenario.from_dict(data).with_overrides({"factors.industry_loading.retail": 0.4})
    assert json.dumps(data, sort_keys=True) == before


def test_key_order_does_not_matter() -> None:
    a = Scenario.from_dict(minimal(seasonality={"a": [1] * 12, "b": [2] * 12}, factors={"ar1": 0.5, "copula": "t", "dof": 5}))
    b = Scenario.from_dict(minimal(factors={"dof": 5, "copula": "t", "ar1": 0.5}, seasonality={"b": [2] * 12, "a": [1] * 12}))
    assert a == b


# --------------------------------------------------------------------------- errors


ERRORS = [
    # (TOML body, fragments the message must contain besides the file name)
    ("[delinquency]\ndefault_after = 7", ["[delinquency] default_after", "an integer in 1..4", "got 7"]),
    ("[delinquency]\ndefault_after = 2.0", ["[delinquency] default_after", "an integer in 1..4", "got 2.0"]),
    ("[factors]\nar = 0.3", ["unknown key [factors] 'ar'", "(did you mean 'ar1'?)"]),
    ("horizon = 3", ["unknown top-level key 'horizon'", "did you mean 'horizon_months'"]),
    ("[[layers]]\nshare = 0.5", ["[[layers]][0] name is required", "a non-empty string"]),
    ("[factors]\nar1 = true", ["[factors] ar1", "a number in [0, 1]", "got True"]),
    ("[factors]\nar1 = 1.5", ["[factors] ar1", "a number in [0, 1]", "got 1.5"]),
    ("[factors]\nar1 = nan", ["[factors] ar1", "a number in [0, 1]", "got nan"]),
    ("[factors]\nar1 = '0.5'", ["[factors] ar1", "a number in [0, 1]", "got '0.5'"]),
    ("[factors]\nglobal_loading = 1.0", ["[factors] global_loading", "a number in [0, 1)", "got 1.0"]),
    ("[factors]\nindustry_loading = { retail = -0.1 }", ["[factors] industry_loading.retail", "[0, 1)", "got -0.1"]),
    ("[factors]\nregion_loading = { default = 1 }", ["[factors] region_loading.default", "[0, 1)", "got 1"]),
    ("[factors]\nregion_loading = 'high'", ["[factors] region_loading", "by industry", "got 'high'"]),
    ("[factors]\nindustri_loading = 0.2", ["unknown key [factors] 'industri_loading'", "did you mean 'industry_loading'"]),
    ("[factors]\nglobal_loading = 0.8\nindustry_loading = { retail = 0.6 }",
     ["[factors] loadings of industry 'retail'", "rho = 0.8^2 + 0.6^2 + 0.15^2 = 1.0225", "must be < 1"]),
    ("[factors]\nglobal_loading = 0.7\nindustry_loading = 0.7\nregion_loading = 0.2",
     ["[factors] loadings of the default loadings", "rho", "= 1.02", "must be < 1"]),
    ("[factors]\ncopula = 'student'", ["[factors] copula", "one of 'gaussian', 't'", "got 'student'"]),
    ("[factors]\ncopula = 't'", ["[factors] dof is required when copula = 't'", "a number > 2"]),
    ("[factors]\ndof = 5", ["[factors] dof must not be set when copula = 'gaussian'", "got 5.0"]),
    ("[factors]\ncopula = 't'\ndof = 2", ["[factors] dof", "a number > 2", "got 2"]),
    ("[factors]\nindustry_correlation = 1.0", ["[factors] industry_correlation", "a number in (-1, 1)", "got 1.0"]),
    ("[factors]\nregion_correlation = { names = ['a', 'b'], matrix = [[1, 0.5], [0.4, 1]] }",
     ["[factors] region_correlation.matrix must be symmetric", "matrix[0][1] = 0.5", "matrix[1][0] = 0.4"]),
    ("[factors]\nregion_correlation = { names = ['a', 'b'], matrix = [[1, 0.5], [0.5, 0.9]] }",
     ["[factors] region_correlation.matrix must have 1 on the diagonal", "[1.0, 0.9]"]),
    ("[factors]\nregion_correlation = { names = ['a', 'b'], matrix = [[1, 0.5]] }",
     ["[factors] region_correlation.matrix must be a 2 x 2 matrix", "got 1 rows of lengths [2]"]),
    ("[factors]\nregion_correlation = { names = ['a', 'a'], matrix = [[1, 0], [0, 1]] }",
     ["[factors] region_correlation.names", "distinct names", "got ['a', 'a']"]),
    ("[factors]\nregion_correlation = { names = ['a', 'b'], matrix = [[1, 2], [2, 1]] }",
     ["[factors] region_correlation.matrix.0", "numbers in [-1, 1]", "got [1, 2]"]),
    ("[factors]\nregion_correlation = { names = ['a', 'b'] }",
     ["[factors] region_correlation.matrix is required"]),
    ("[cashflow]\nvolatility = 0", ["[cashflow] volatility", "a number > 0", "got 0"]),
    ("[cashflow]\nvolatility = { retail = -1 }", ["[cashflow] volatility.retail", "a number > 0", "got -1"]),
    ("[delinquency]\nroll_rates = [0.3, 0.5]", ["[delinquency] roll_rates", "a list of 3 numbers in (0, 1)", "got [0.3, 0.5]"]),
    ("[delinquency]\nroll_rates = [0.3, 0.5, 1.0]", ["[delinquency] roll_rates", "(0, 1)", "got [0.3, 0.5, 1.0]"]),
    ("[delinquency]\ncure_rates = [0.3, 0.5, 1.0]", ["[delinquency] cure_rates", "a list of 3 numbers in [0, 1)"]),
    ("[delinquency]\nroll_rates = [0.3, 0.6, 0.7]\ncure_rates = [0.3, 0.5, 0.1]",
     ["[delinquency] roll_rates[1] + cure_rates[1]", "(leaving M2)", "must be <= 1", "got 0.6 + 0.5 = 1.1"]),
    ("[delinquency]\nsensitivities = { roll = 11 }", ["[delinquency] sensitivities.roll", "a number in [0, 10]", "got 11"]),
    ("[delinquency]\nsensitivities = { rol = 1 }", ["unknown key [delinquency.sensitivities] 'rol'", "did you mean 'roll'"]),
    ("[delinquency]\nsensitivities = -1", ["[delinquency] sensitivities", "a number in [0, 10]", "got -1"]),
    ("[delinquency]\nprepayment_rate = 1", ["[delinquency] prepayment_rate", "a number in [0, 1)", "got 1"]),
    ("[recovery]\nlag_months = 6.0", ["[recovery] lag_months", "an integer in 0..120", "got 6.0"]),
    ("[recovery]\npledge_lag_months = 121", ["[recovery] pledge_lag_months", "an integer in 0..120", "got 121"]),
    ("[recovery]\ndispersion = 1", ["[recovery] dispersion", "a number in [0, 1)", "got 1"]),
    ("[recovery]\nunsecured_mean = 1.2", ["[recovery] unsecured_mean", "a number in [0, 1]", "got 1.2"]),
    ("[recovery]\ndiscount_rate = 1.5", ["[recovery] discount_rate", "a number in [0, 1]", "got 1.5"]),
    ("[recovery]\nlgd_sensitivity = -0.5", ["[recovery] lgd_sensitivity", "a number in [0, 10]", "got -0.5"]),
    ("[recovery]\nrecovery_lag = 3", ["unknown key [recovery] 'recovery_lag'"]),
    ("[shocks.industry]\nretail = [0.1, 0.1, 0.1, 0.1, 0.1]",
     ["[shocks.industry] retail has 5 monthly values but horizon_months = 3", "at most 3"]),
    ("[shocks.industry]\nretail = -1", ["[shocks.industry] retail", "a number in (-1, 10]", "got -1"]),
    ("[shocks.region]\nnorth = 10.5", ["[shocks.region] north", "a number in (-1, 10]", "got 10.5"]),
    ("[shocks.region]\nnorth = [0.1, -1.2]", ["[shocks.region] north", "numbers in (-1, 10]", "got [0.1, -1.2]"]),
    ("[shocks.region]\nnorth = 'down'", ["[shocks.region] north", "a ramp table", "got 'down'"]),
    ("[shocks]\nsector = {}", ["unknown key [shocks] 'sector'", "allowed: industry, region"]),
    ("[shocks.industry]\nretail = { start = 3, trough = -0.3, trough_month = 2, recovery_month = 5 }",
     ["[shocks.industry] retail must have start <= trough_month <= recovery_month",
      "got start = 3, trough_month = 2, recovery_month = 5"]),
    ("[shocks.industry]\nretail = { start = 1, trough = -0.3, trough_month = 2 }",
     ["[shocks.industry] retail.recovery_month is required", "an integer >= 1"]),
    ("[shocks.industry]\nretail = { strat = 1, trough = -0.3, trough_month = 2, recovery_month = 3 }",
     ["unknown key [shocks.industry.retail] 'strat'", "did you mean 'start'"]),
    ("[shocks.industry]\nretail = { start = 0, trough = -0.3, trough_month = 2, recovery_month = 3 }",
     ["[shocks.industry] retail.start", "an integer >= 1", "got 0"]),
    ("[shocks.industry]\nretail = { start = 1, trough = -1.3, trough_month = 2, recovery_month = 3 }",
     ["[shocks.industry] retail.trough", "(-1, 10]", "got -1.3"]),
    ("[seasonality]\nretail = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]", ["[seasonality] retail", "a list of 12 numbers > 0"]),
    ("[seasonality]\nretail = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]", ["[seasonality] retail", "a list of 12 numbers > 0"]),
    ("seasonality = 3", ["seasonality", "a table mapping names to", "got 3"]),
    ("factors = 3", ["factors must be a table", "got 3"]),
    ("start_month = 13", ["start_month", "an integer in 1..12", "got 13"]),
    ("name = ''", ["name", "a non-empty string", "got ''"]),
    ("description = 3", ["description", "a string", "got 3"]),
]


@pytest.mark.parametrize("body, fragments", ERRORS)
def test_error_messages_name_file_key_value_and_range(tmp_path: Path, body: str, fragments: list[str]) -> None:
    path = write(tmp_path, "bad.toml", "horizon_months = 3\n" + body + "\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("text, fragment", [
    ("", "horizon_months is required: an integer in 1..120"),
    ("horizon_months = 0", "horizon_months must be an integer in 1..120; got 0"),
    ("horizon_months = 121", "horizon_months must be an integer in 1..120; got 121"),
    ("horizon_months = 36.0", "horizon_months must be an integer in 1..120; got 36.0"),
    ("horizon_months = true", "horizon_months must be an integer in 1..120; got True"),
])
def test_horizon(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path, "h.toml", text)
    with pytest.raises(ScenarioError, match=f"^{path}: "):
        load_scenario(path)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert fragment in str(info.value)


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "syntax.toml", "horizon_months = 3\n[factors\nar1 = 0.5\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(info.value).startswith(f"{path}: invalid TOML: ")
    assert "line 2" in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="nope.toml: scenario file not found"):
        load_scenario(tmp_path / "nope.toml")


def test_error_class_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        Scenario.from_dict({"horizon_months": -1})


@pytest.mark.parametrize("data, fragment", [
    (3, "<dict>: a scenario must be a table (mapping); got 3"),
    ({"horizon_months": 12, "factors": {"dof": None, "ar1": np.float64(0.5)}}, None),
    ({"horizon_months": np.int64(12), "recovery": {"lag_months": np.int32(2)}}, None),
    ({"horizon_months": 12, "recovery": {"lag_months": np.float64(2.0)}}, "[recovery] lag_months must be an integer"),
    ({"horizon_months": 12, "factors": {"ar1": np.bool_(True)}}, "[factors] ar1 must be a number"),
])
def test_from_dict_types(data: object, fragment: str | None) -> None:
    if fragment is None:
        Scenario.from_dict(data)  # type: ignore[arg-type]
    else:
        with pytest.raises(ScenarioError) as info:
            Scenario.from_dict(data)  # type: ignore[arg-type]
        assert fragment in str(info.value)


# --------------------------------------------------------------------------- inheritance


def test_extends_deep_merge_tables_and_replace_arrays(tmp_path: Path) -> None:
    write(tmp_path, "parent.toml", """
name = "parent"
horizon_months = 6
[factors]
ar1 = 0.5
industry_loading = { default = 0.2, retail = 0.3 }
[delinquency]
roll_rates = [0.1, 0.2, 0.3]
cure_rates = [0.1, 0.1, 0.1]
[shocks.industry]
retail = [-0.1, -0.2, -0.3]
catering = -0.05
[shocks.region]
north = { start = 1, trough = -0.2, trough_month = 2, recovery_month = 4 }
""")
    child = write(tmp_path, "child.toml", """
extends = "parent.toml"
[factors]
industry_loading = { catering = 0.4 }
[delinquency]
roll_rates = [0.4, 0.5, 0.6]
[shocks.industry]
retail = [-0.5]
[shocks.region]
north = { trough = -0.4 }
""")
    s = load_scenario(child)
    assert s.name == "parent"  # inherited like any key
    assert s.horizon_months == 6 and s.factors.ar1 == 0.5
    assert s.factors.industry_loading == PerIndustry(default=0.2, overrides=(("catering", 0.4), ("retail", 0.3)))
    assert s.delinquency.roll_rates == (0.4, 0.5, 0.6)
    assert s.delinquency.cure_rates == (0.1, 0.1, 0.1)
    shocks = dict(s.industry_shocks)
    assert shocks == {"retail": (-0.5,), "catering": -0.05}  # the child's list replaces the parent's
    assert dict(s.region_shocks)["north"] == ShockRamp(start=1, trough=-0.4, trough_month=2, recovery_month=4)
    assert s.text.index("# --- file: ") < s.text.index(f"# --- file: {child}")


def test_extends_chain_and_name_defaults_to_child_stem(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", "horizon_months = 6\n[recovery]\ncost = 0.2\n")
    (tmp_path / "sub").mkdir()
    write(tmp_path, "sub/b.toml", 'extends = "../a.toml"\n[recovery]\nlag_months = 2\n')
    c = write(tmp_path, "sub/c.toml", 'extends = "b.toml"\n[recovery]\nunsecured_mean = 0.5\n')
    with pytest.raises(ScenarioError, match="outside"):  # a parent above the file's directory needs permission
        load_scenario(c)
    s = load_scenario(c, allowed_root=tmp_path)
    assert s.name == "c"
    assert (s.recovery.cost, s.recovery.lag_months, s.recovery.unsecured_mean) == (0.2, 2, 0.5)
    assert s.text.count("# --- file: ") == 3
    assert s.text.index("a.toml") < s.text.index("b.toml") < s.text.index(f"# --- file: {c}")


@pytest.mark.parametrize("files, start, chain", [
    ({"a.toml": 'extends = "b.toml"', "b.toml": 'extends = "a.toml"\nhorizon_months = 3'}, "a.toml",
     ["a.toml", "b.toml", "a.toml"]),
    ({"self.toml": 'extends = "self.toml"\nhorizon_months = 3'}, "self.toml", ["self.toml", "self.toml"]),
])
def test_extends_cycle_lists_the_chain(tmp_path: Path, files: dict, start: str, chain: list[str]) -> None:
    for name, text in files.items():
        write(tmp_path, name, text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path / start)
    message = str(info.value)
    assert "extends cycle: " in message
    assert message.split("extends cycle: ")[1] == " -> ".join(str(tmp_path / name) for name in chain)


def test_extends_missing_parent_names_child_and_path(tmp_path: Path) -> None:
    child = write(tmp_path, "child.toml", 'extends = "gone.toml"\nhorizon_months = 3\n')
    with pytest.raises(ScenarioError) as info:
        load_scenario(child)
    assert str(info.value) == f"{child}: extends = 'gone.toml': parent file {tmp_path / 'gone.toml'} not found"


def test_extends_must_be_a_string(tmp_path: Path) -> None:
    child = write(tmp_path, "child.toml", "extends = 3\nhorizon_months = 3\n")
    with pytest.raises(ScenarioError, match="child.toml: extends must be the path of a parent scenario file"):
        load_scenario(child)


def test_parent_syntax_error_names_parent(tmp_path: Path) -> None:
    write(tmp_path, "parent.toml", "horizon_months = \n")
    child = write(tmp_path, "child.toml", 'extends = "parent.toml"\n')
    with pytest.raises(ScenarioError, match=f"^{tmp_path / 'parent.toml'}: invalid TOML"):
        load_scenario(child)


def test_error_names_the_file_that_set_the_value(tmp_path: Path) -> None:
    parent = write(tmp_path, "parent.toml", "horizon_months = 3\n[factors]\nar1 = 2\n")
    child = write(tmp_path, "child.toml", 'extends = "parent.toml"\n[factors]\ncopula = "gaussian"\n')
    with pytest.raises(ScenarioError) as info:
        load_scenario(child)
    assert str(info.value) == f"{parent}: [factors] ar1 must be a number in [0, 1]; got 2"


def test_from_dict_extends_relative_to_base_dir(tmp_path: Path) -> None:
    parent = write(tmp_path, "parent.toml", "horizon_months = 9\n")
    s = Scenario.from_dict({"extends": "parent.toml", "name": "x"}, base_dir=tmp_path)
    assert s.horizon_months == 9 and s.name == "x"
    assert s.text == f"# --- file: {parent}\nhorizon_months = 9\n"
    with pytest.raises(ScenarioError, match="^<dict>: extends = 'parent.toml': parent file"):
        Scenario.from_dict({"extends": "parent.toml"}, base_dir=tmp_path / "elsewhere")


# --------------------------------------------------------------------------- shocks and seasonality


def test_ramp_values_exact() -> None:
    ramp = ShockRamp(start=2, trough=-0.35, trough_month=5, recovery_month=14)
    expected = [0.0, -0.35 / 4, -0.35 * 2 / 4, -0.35 * 3 / 4, -0.35]
    expected += [-0.35 * (14 - t) / 9 for t in range(6, 15)] + [0.0, 0.0]
    np.testing.assert_allclose(ramp.values(16), expected, rtol=0, atol=1e-15)
    assert ramp.values(16)[13] == 0.0 and ramp.values(16)[4] == -0.35


def test_ramp_degenerate_is_a_one_month_dip() -> None:
    ramp = ShockRamp(start=3, trough=-0.5, trough_month=3, recovery_month=3)
    np.testing.assert_array_equal(ramp.values(5), [0, 0, -0.5, 0, 0])


def test_shock_forms_padding_and_combination() -> None:
    s = Scenario.from_dict({"horizon_months": 5, "shocks": {
        "industry": {"retail": [0.1, -0.2], "catering": -0.1,
                     "farming": {"start": 1, "trough": -0.4, "trough_month": 2, "recovery_month": 4}},
        "region": {"north": -0.5}}})
    shock = s.revenue_shock(["retail", "catering", "farming", "other"], ["north", "south"])
    assert shock.shape == (4, 2, 5)
    np.testing.assert_allclose(shock[0, 1], [0.1, -0.2, 0, 0, 0])
    np.testing.assert_allclose(shock[1, 1], [-0.1] * 5)
    np.testing.assert_allclose(shock[2, 1], [-0.2, -0.4, -0.2, 0, 0])
    np.testing.assert_allclose(shock[3, 1], 0)
    np.testing.assert_allclose(shock[3, 0], -0.5)
    np.testing.assert_allclose(1 + shock[:, 0], (1 + shock[:, 1]) * 0.5)  # multiplicative


def test_seasonality_rescaled_and_rotated() -> None:
    raw = [float(m) for m in range(1, 13)]  # mean 6.5
    s = Scenario.from_dict({"horizon_months": 14, "start_month": 11, "seasonality": {"retail": raw}})
    season = s.seasonality(["other", "retail"])
    assert season.shape == (2, 14)
    np.testing.assert_array_equal(season[0], 1.0)
    calendar = [11, 12] + list(range(1, 13))
    np.testing.assert_allclose(season[1], np.array(calendar) / 6.5)
    assert season[1, 2:].mean() == pytest.approx(1.0)
    assert s.seasonal_factors == (("retail", tuple(raw)),)  # stored as written


# --------------------------------------------------------------------------- factors


def test_loadings_and_volatility_by_industry() -> None:
    s = Scenario.from_dict(minimal(
        factors={"global_loading": 0.3, "industry_loading": {"default": 0.2, "retail": 0.4}, "region_loading": {"farming": 0.1}},
        cashflow={"volatility": {"catering": 0.5}}))
    load = s.factors.loadings(["retail", "catering", "farming"])
    np.testing.assert_array_equal(load, [[0.3, 0.4, 0.15], [0.3, 0.2, 0.15], [0.3, 0.2, 0.1]])
    np.testing.assert_array_equal(s.volatility(["retail", "catering"]), [0.35, 0.5])
    assert s.factors.loadings([]).shape == (0, 3)


def test_correlation_identity_by_default() -> None:
    s = Scenario.from_dict(minimal())
    np.testing.assert_array_equal(s.factors.correlation(["a", "b"], ["x", "y", "z"]), np.eye(6))


def test_correlation_common_value_and_matrix_blocks() -> None:
    s = Scenario.from_dict(minimal(factors={
        "industry_correlation": 0.3,
        "region_correlation": {"names": ["north", "south", "east"],
                               "matrix": [[1, 0.5, 0.2], [0.5, 1, 0.1], [0.2, 0.1, 1]]}}))
    expected = np.eye(6)
    expected[1, 2] = expected[2, 1] = 0.3
    expected[3, 5] = expected[5, 3] = 0.5  # south-north; west is in no matrix: uncorrelated
    sigma = s.factors.correlation(["retail", "catering"], ["south", "west", "north"])
    np.testing.assert_array_equal(sigma, expected)
    assert isinstance(s.factors.region_correlation, CorrelationMatrix)


def test_psd_error_names_smallest_eigenvalue() -> None:
    matrix = [[1, 0.9, -0.9], [0.9, 1, 0.9], [-0.9, 0.9, 1]]
    smallest = np.linalg.eigvalsh(np.array(matrix)).min()
    with pytest.raises(ScenarioError) as info:
        Scenario.from_dict(minimal(factors={"industry_correlation": {"names": ["a", "b", "c"], "matrix": matrix}}))
    assert f"smallest eigenvalue is {smallest:.6g}" in str(info.value)
    assert "[factors] industry_correlation.matrix must be positive semi-definite" in str(info.value)


def test_negative_common_correlation_checked_against_the_book() -> None:
    s = Scenario.from_dict(minimal(factors={"industry_correlation": -0.4}))
    assert s.factors.correlation(["a", "b", "c"], [])[1, 2] == -0.4  # -0.4 >= -1/2: fine
    with pytest.raises(ScenarioError) as info:
        s.factors.correlation(["a", "b", "c", "d"], [])
    message = str(info.value)
    assert "[factors] industry_correlation = -0.4" in message and "4 industries" in message
    assert "smallest eigenvalue -0.2" in message and "use a value >= -0.333333" in message


def test_t_copula() -> None:
    s = Scenario.from_dict(minimal(factors={"copula": "t", "dof": 4}))
    assert (s.factors.copula, s.factors.dof) == ("t", 4.0)


# --------------------------------------------------------------------------- names vs the book
# One binding step (stresslab.compile.binding.bind_names) meets every name with the book.


def _book(industries=("retail", "catering"), regions=("north",)):
    return book(2 * len(industries) * len(regions), industries=tuple(industries), regions=tuple(regions))


def test_names_compare_case_and_space_insensitively_and_take_the_books_spelling() -> None:
    s = Scenario.from_dict(minimal(shocks={"industry": {" Retail ": -0.2}, "region": {"NORTH": -0.1}},
                                   factors={"industry_loading": {"CATERING": 0.3}},
                                   layers=[{"name": "g", "kind": "quota_share", "share": 0.5,
                                            "eligibility": {"industries": ["Retail"]}}]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bound = bind_names(_book(), s)
    assert bound.industry_shocks == (("retail", -0.2),) and bound.region_shocks == (("north", -0.1),)
    assert bound.factors.industry_loading.overrides == (("catering", 0.3),)
    assert bound.layers[0].industries == ("retail",)
    shock = bound.revenue_shock(["catering", "retail"], ["north"])[:, 0, 0]
    np.testing.assert_allclose(shock, [-0.1, 0.8 * 0.9 - 1])
    assert bind_names(_book(), bound) is bound  # already in the book's spelling


def test_two_spellings_of_one_name_are_an_error() -> None:
    s = Scenario.from_dict(minimal(shocks={"industry": {"Retail": -0.2, "retail": -0.1}}), source="x.toml")
    with pytest.raises(ScenarioError, match=r"x.toml: \[shocks.industry\]: 'Retail' and 'retail' are the same industry"):
        bind_names(_book(), s)


@pytest.mark.parametrize("data, where", [
    ({"factors": {"industry_loading": {"retial": 0.3}}}, "[factors] industry_loading"),
    ({"cashflow": {"volatility": {"retial": 0.3}}}, "[cashflow] volatility"),
    ({"seasonality": {"retai": [1] * 12}}, "[seasonality]"),
    ({"shocks": {"region": {"nort": 0.1}, "industry": {"retail": -0.1}}}, "[shocks.region]"),
    ({"factors": {"industry_correlation": {"names": ["retail", "caterin"], "matrix": [[1, 0], [0, 1]]}}},
     "[factors] industry_correlation.names"),
    ({"calibration_reference": {"seasonality": {"catring": [1] * 12}}}, "calibration_reference [seasonality]"),
    ({"layers": [{"name": "g", "kind": "quota_share", "share": 0.5, "eligibility": {"industries": ["retial", "catering"]}}]},
     "[[layers]] 'g' eligibility industries"),
])
def test_an_absent_name_is_ignored_with_a_did_you_mean_wherever_it_is_used(data: dict, where: str) -> None:
    s = Scenario.from_dict(minimal(**data), source="x.toml")
    with pytest.warns(StresslabWarning, match=re.escape(f"({where}) (did you mean")):
        bind_names(_book(), s)


@pytest.mark.parametrize("data, message", [
    ({"policy": {"deferral": {"months": 3, "industries": ["mining"]}}},
     "x.toml: [policy.deferral] industries: none of ['mining'] is among the book's industries, so it would apply to "
     "no loan; the book has ['catering', 'retail']"),
    ({"layers": [{"name": "g", "kind": "quota_share", "share": 0.5, "eligibility": {"regions": ["nrth"]}}]},
     "x.toml: [[layers]] 'g' eligibility regions: none of ['nrth'] is among the book's regions (did you mean "
     "'north'?), so it would apply to no loan; the book has ['north']"),
    ({"shocks": {"industry": {"retial": -0.2}, "region": {"south": -0.1}}},
     "x.toml: [shocks]: none of the shocked industries and regions is in the book, so the scenario's revenue shocks "
     "would act on no loan; the book has industries ['catering', 'retail'] and regions ['north']"),
])
def test_it_is_an_error_only_when_the_effect_would_vanish(data: dict, message: str) -> None:
    s = Scenario.from_dict(minimal(**data), source="x.toml")
    with pytest.raises(ScenarioError) as info:
        bind_names(_book(), s)
    assert str(info.value) == message


def test_absent_names_warn_once_in_one_warning() -> None:
    s = Scenario.from_dict(minimal(shocks={"industry": {"mining": -0.3, "retail": -0.1}, "region": {"west": 0.1}}),
                           source="x.toml")
    with pytest.warns(StresslabWarning) as record:
        bind_names(_book(), s)
    assert len(record) == 1
    assert str(record[0].message) == ("x.toml: names absent from the book, ignored: industries 'mining' "
                                      "([shocks.industry]), regions 'west' ([shocks.region])")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bind_names(_book(), s)  # already warned for this scenario object


def test_names_are_bound_by_compile_model() -> None:
    s = Scenario.from_dict(minimal(shocks={"industry": {"RETAIL": -0.5}}), source="x.toml")
    model = compile_model(_book(), s)
    loans = compile_model(_book(), Scenario.from_dict(minimal(shocks={"industry": {"retail": -0.5}})))
    np.testing.assert_array_equal(model.tables.revenue, loans.tables.revenue)
    assert not np.array_equal(model.tables.revenue, compile_model(_book(), Scenario.from_dict(minimal())).tables.revenue)


def test_baseline_runs_on_a_smaller_book() -> None:
    baseline = load_scenario(SCENARIOS / "baseline.toml")
    with pytest.warns(StresslabWarning, match="agriculture"):
        bind_names(_book(("retail", "services")), baseline)
    assert baseline.seasonality(["retail", "services"]).shape == (2, 36)


# --------------------------------------------------------------------------- serialisation and overrides


def test_to_dict_is_canonical_and_json() -> None:
    s = Scenario.from_dict(minimal(
        factors={"industry_loading": 0.2, "region_correlation": {"names": ["n"], "matrix": [[1]]}},
        delinquency={"sensitivities": {"cure": 2}}, recovery={"discount_rate": 0.1},
        shocks={"industry": {"r": {"start": 1, "trough": -0.2, "trough_month": 1, "recovery_month": 2}}}))
    d = s.to_dict()
    assert "extends" not in d
    assert d["factors"]["industry_loading"] == {"default": 0.2}
    assert d["factors"]["region_correlation"] == {"names": ["n"], "matrix": [[1.0]]}
    assert d["delinquency"]["sensitivities"] == {"roll": 1.0, "cure": 2.0}
    assert d["shocks"]["industry"]["r"] == {"start": 1, "trough": -0.2, "trough_month": 1, "recovery_month": 2}
    assert d["recovery"]["discount_rate"] == 0.1 and d["factors"]["dof"] is None
    text = s.to_json()
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    assert Scenario.from_dict(json.loads(text)) == s


def test_with_overrides() -> None:
    s = load_scenario(SCENARIOS / "baseline.toml")
    t = s.with_overrides({"factors.ar1": 0.5, "recovery.unsecured_mean": 0.3,
                          "factors.industry_loading.retail": 0.35, "shocks.industry.retail": -0.1,
                          "name": "sweep"})
    assert (t.factors.ar1, t.recovery.unsecured_mean, t.name) == (0.5, 0.3, "sweep")
    assert t.factors.loadings(["retail", "catering"])[:, 1].tolist() == [0.35, 0.25]
    assert dict(t.industry_shocks) == {"retail": -0.1}
    assert s.factors.ar1 == 0.9 and t.source == s.source and t.text == s.text
    assert t.with_overrides({"factors.ar1": 0.9, "recovery.unsecured_mean": 0.25, "name": "baseline",
                             "factors.industry_loading": {"default": 0.25}, "shocks.industry": {}}) == s
    assert s.with_overrides({}) == s


@pytest.mark.parametrize("overrides, fragment", [
    ({"factors.ar1": 1.5}, "<overrides>: [factors] ar1 must be a number in [0, 1]; got 1.5"),
    ({"factors.ar": 0.5}, "unknown key [factors] 'ar' (did you mean 'ar1'?)"),
    ({"factors.ar1.x": 0.5}, "<overrides>: cannot set 'factors.ar1.x': 'factors.ar1' is not a table"),
    ({"horizon_months": 2, "shocks.industry.retail": [0.1, 0.1, 0.1]}, "has 3 monthly values but horizon_months = 2"),
])
def test_with_overrides_revalidates(overrides: dict, fragment: str) -> None:
    s = Scenario.from_dict(minimal())
    with pytest.raises(ScenarioError) as info:
        s.with_overrides(overrides)
    assert fragment in str(info.value)


unit = st.floats(0, 1, exclude_max=True, allow_nan=False)
loading = st.floats(0, 0.57, allow_nan=False)  # 3 * 0.57^2 < 1
names = st.sampled_from(["retail", "catering", "farming", "services"])


@settings(max_examples=60, deadline=None)
@given(
    g=loading, i=st.dictionaries(names, loading, max_size=3), r=loading,
    ar1=st.floats(0, 1), vol=st.floats(0.01, 3),
    roll=st.lists(st.floats(0.01, 0.5), min_size=3, max_size=3),
    cure=st.lists(st.floats(0, 0.5), min_size=3, max_size=3),
    sens=st.floats(0, 10), prepay=unit, mean=st.floats(0, 1), dispersion=unit,
    lag=st.integers(0, 120), discount=st.none() | st.floats(0, 1),
    shock=st.floats(-0.99, 10) | st.lists(st.floats(-0.99, 10), max_size=12),
)
def test_round_trip_property(g, i, r, ar1, vol, roll, cure, sens, prepay, mean, dispersion, lag, discount, shock) -> None:
    data = {
        "horizon_months": 12,
        "factors": {"global_loading": g, "industry_loading": {"default": 0.1, **i}, "region_loading": r, "ar1": ar1},
        "cashflow": {"volatility": vol},
        "shocks": {"industry": {"retail": shock}},
        "delinquency": {"roll_rates": roll, "cure_rates": cure, "sensitivities": {"roll": sens, "cure": 1},
                        "prepayment_rate": prepay},
        "recovery": {"unsecured_mean": mean, "dispersion": dispersion, "lag_months": lag, "discount_rate": discount},
    }
    s = Scenario.from_dict(data)
    assert Scenario.from_dict(s.to_dict()) == s
    assert Scenario.from_dict(json.loads(s.to_json())) == s
    assert s.to_dict() == Scenario.from_dict(s.to_dict()).to_dict()
    book = ["retail", "catering", "farming", "services"]
    assert s.factors.loadings(book)[:, 1].tolist() == [i.get(name, 0.1) for name in book]
    assert math.isclose(s.delinquency.roll_rates[2], roll[2])


# --------------------------------------------------------------------------- the shipped library


def test_a_scenario_anywhere_extends_the_shipped_library_by_name(tmp_path: Path) -> None:
    child = write(tmp_path, "mine.toml", 'extends = "stresslab:services_downturn.toml"\n[factors]\nar1 = 0.5\n')
    mine = load_scenario(child)
    shipped = load_scenario(SCENARIOS / "services_downturn.toml")
    assert mine.factors.ar1 == 0.5
    assert mine.industry_shocks == shipped.industry_shocks and mine.delinquency == shipped.delinquency
    assert mine == shipped.with_overrides({"factors.ar1": 0.5})  # the name too is inherited
    # the library's own parents come from the library (services_downturn extends baseline.toml)
    assert any(str(f).endswith("baseline.toml") for f in mine.files)


def test_unknown_library_scenario_and_paths_outside_stay_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    child = write(tmp_path / "a", "mine.toml", 'extends = "stresslab:services_downtrun.toml"\n')
    with pytest.raises(ScenarioError, match=r"the stresslab library has no scenario 'services_downtrun.toml' "
                                            r"\(did you mean 'services_downturn.toml'\?\)"):
        load_scenario(child)
    write(tmp_path, "parent.toml", "horizon_months = 3\n")
    outside = write(tmp_path / "a", "out.toml", 'extends = "../parent.toml"\n')
    with pytest.raises(ScenarioError, match="or be a shipped one named as 'stresslab:NAME.toml'"):
        load_scenario(outside)
