"""The schema in one place: the key tables of docs/scenarios.md and Scenario.to_dict both come from it.

docs/scenarios.md must hold the tables that stresslab.scenario.key_reference writes from
stresslab/scenario/keys.py; to_dict (stresslab.scenario.specs.to_table) must write exactly
the keys the schema reads, so that a key is declared once in keys.py and once as a field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from stresslab.scenario.key_reference import COMMAND, key_tables, main, problems, render
from stresslab.scenario.keys import _SCENARIO
from stresslab.scenario.scenario import Scenario, load_scenario
from stresslab.scenario.schema import _integer, _Key
from stresslab.scenario.specs import to_table

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "scenarios.md"
SHIPPED = sorted((ROOT / "scenarios").glob("*.toml"))
SHIPPED_NAMES = frozenset(p.name for p in SHIPPED)

# every lever, an excess-of-loss and a quota-share layer, every union in its table form
FULL = {
    "horizon_months": 24,
    "factors": {"copula": "t", "dof": 6, "global_loading": {"default": 0.2, "retail": 0.3},
                "industry_correlation": {"names": ["a", "b"], "matrix": [[1, 0.4], [0.4, 1]]}},
    "shocks": {"industry": {"retail": [-0.1, -0.2]},
               "region": {"east": {"start": 2, "trough": -0.3, "trough_month": 4, "recovery_month": 9}}},
    "seasonality": {"retail": [1.0] * 11 + [2.0]},
    "delinquency": {"sensitivities": {"roll": 2.0, "cure": 0.5}},
    "recovery": {"discount_rate": 0.05},
    "layers": [
        {"name": "insurer", "kind": "excess_of_loss", "attachment": 5e3, "limit": 1e5, "capacity": 1e7,
         "topup_every_months": 12, "eligibility": {"regions": ["east"], "max_balance": 5e5},
         "counterparty": {"failure_probability": 0.02, "sensitivity": 0.5}},
        {"name": "fund", "kind": "quota_share", "share": 0.4, "basis": "principal"},
    ],
    "policy": {"loan_cap": {"caps": {"individual": 3e5}}, "deferral": {"months": 6},
               "interest_subsidy": {"points": 0.02, "months": 12}, "rate_cap": {"cap": 0.24},
               "revenue_support": {"uplift": 0.03, "industries": ["retail"]}, "seasonal_schedule": {},
               "collection": {"strategy": "legal_action"}},
    "calibration_reference": {"delinquency": {"default_after": 3}, "seasonality": {"retail": [1.0] * 12}},
    "funding": {"rate": 0.03, "rise": {"start": 1, "trough": 0.02, "trough_month": 6, "recovery_month": 18}},
    "capital": {"initial_ratio": 0.12, "buffer": 0.025},
}


# --------------------------------------------------------------------------- docs/scenarios.md


def test_docs_key_tables_are_those_the_schema_writes() -> None:
    found = problems(DOC.read_text(encoding="utf-8"))
    assert not found, "\n".join(found)


def test_a_stale_table_is_named_with_the_command_that_rewrites_it() -> None:
    text = DOC.read_text(encoding="utf-8")
    row = "| `ar1` | a number in [0, 1] | `0.9` |"
    assert text.count(row) == 1
    found = problems(text.replace(row, "| `ar1` | a number in [0, 1] | `0.8` |"))
    assert len(found) == 1
    assert "<!-- keys:factors -->" in found[0] and "[factors]" in found[0] and COMMAND in found[0]


def test_missing_duplicated_and_unknown_tables_are_reported() -> None:
    text = DOC.read_text(encoding="utf-8")
    block = f"<!-- keys:recovery -->\n{key_tables()['recovery']}<!-- /keys -->"
    assert text.count(block) == 1
    (missing,) = problems(text.replace(block, ""))
    assert "[recovery] is missing" in missing and "<!-- keys:recovery -->" in missing
    (twice,) = problems(text.replace(block, block + "\n\n" + block))
    assert "appears 2 times" in twice
    (unknown,) = problems(text + "\n<!-- keys:recovry -->\n<!-- /keys -->\n")
    assert "keys:recovry" in unknown and "names no table" in unknown
    with pytest.raises(ValueError, match="recovry"):
        render(text + "\n<!-- keys:recovry -->\n<!-- /keys -->\n")


def test_write_rewrites_stale_tables_and_keeps_the_prose(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    text = DOC.read_text(encoding="utf-8")
    stale = text
    for name, table in key_tables().items():
        stale = stale.replace(f"<!-- keys:{name} -->\n{table}", f"<!-- keys:{name} -->\n| old |\n")
    assert stale != text
    path = tmp_path / "scenarios.md"
    path.write_text(stale, encoding="utf-8")
    assert main(["--check", str(path)]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == len(key_tables())  # one line per stale table
    assert main(["--write", str(path)]) == 0
    assert path.read_text(encoding="utf-8") == text
    assert main(["--check", str(path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scenarios.md"]  # no temporary file left


def test_every_key_of_every_table_has_a_row() -> None:
    tables = key_tables()
    assert {"top", "factors", "factors.innovation_mean", "cashflow", "shocks", "delinquency", "recovery", "layers", "layers.eligibility",
            "layers.counterparty", "policy", "policy.loan_cap", "policy.deferral", "policy.interest_subsidy",
            "policy.rate_cap", "policy.revenue_support", "policy.seasonal_schedule", "policy.collection",
            "calibration_reference", "ifrs9", "funding", "capital"} == set(tables)
    for name, keys in _walk_tables(_SCENARIO.keys, "top").items():
        rows = tables[name].splitlines()[2:]
        assert [row.split(" | ")[0] for row in rows] == [f"| `{key}`" for key in keys], name


def test_a_key_without_doc_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from stresslab.scenario import keys

    monkeypatch.setitem(keys._RECOVERY, "lag_months", _Key(_integer(0, 120), 6))
    with pytest.raises(ValueError, match=r"'lag_months' of \[recovery\] has no doc="):
        key_tables()


def _walk_tables(keys: Mapping[str, _Key], name: str, seen: set[int] | None = None) -> dict[str, Mapping[str, _Key]]:
    seen = set() if seen is None else seen
    if id(keys) in seen:
        return {}
    seen.add(id(keys))
    out = {name: keys}
    for key, spec in keys.items():
        if spec.parser.keys is not None:
            out.update(_walk_tables(spec.parser.keys, key if name == "top" else f"{name}.{key}", seen))
    return out


# --------------------------------------------------------------------------- to_dict from the fields


def _check_keys(data: Any, keys: Mapping[str, _Key], where: str, omitted: frozenset[str] = frozenset()) -> int:
    """Assert that ``data`` has exactly the keys of the schema table (less ``omitted``); recurse; count tables."""
    assert isinstance(data, dict), where
    if where in SHIPPED_NAMES:  # [funding] and [capital]: written only when set (omit_none)
        omitted = omitted | frozenset({"funding", "capital"} - set(data))
    assert set(data) == set(keys) - omitted, (where, set(data) ^ (set(keys) - omitted))
    count = 1
    for key, spec in keys.items():
        sub = spec.parser.keys
        if sub is None or key not in data:
            continue
        if key == "layers":
            for k, layer in enumerate(data[key]):
                quota = frozenset({"attachment", "limit"} if layer["kind"] == "quota_share" else ())
                count += _check_keys(layer, sub, f"{where}.layers[{k}]", quota)
        elif key == "factors":  # innovation_mean: written only when set (omit_none), like a policy lever
            absent = frozenset({"innovation_mean"} - set(data[key]))
            count += _check_keys(data[key], sub, f"{where}.{key}", absent)
        elif key == "capital":  # one of initial_ratio and initial_amount: the other is unset (omit_none)
            absent = frozenset({"initial_ratio", "initial_amount"} - set(data[key]))
            count += _check_keys(data[key], sub, f"{where}.{key}", absent)
        elif key == "policy":
            assert set(data[key]) <= set(sub)
            count += 1
            for lever, table in data[key].items():
                count += _check_keys(table, sub[lever].parser.keys, f"{where}.policy.{lever}")
        else:
            count += _check_keys(data[key], sub, f"{where}.{key}")
    return count


def test_to_dict_writes_exactly_the_keys_the_schema_reads() -> None:
    s = Scenario.from_dict(FULL)
    assert s.policy.active == tuple(FULL["policy"])
    tables = _check_keys(s.to_dict(), _SCENARIO.keys, "scenario")
    # the top level; factors, cashflow, shocks, delinquency, recovery, ifrs9, funding, capital, calibration_reference and
    # its delinquency; 2 layers with eligibility and counterparty; policy and its 7 levers
    assert tables == 1 + 10 + 2 * 3 + 1 + 7
    assert Scenario.from_dict(s.to_dict()) == s


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_to_dict_of_shipped_scenarios_has_the_schema_keys(path: Path) -> None:
    s = load_scenario(path)
    _check_keys(s.to_dict(), _SCENARIO.keys, path.name)
    again = Scenario.from_dict(s.to_dict())
    assert again == s and again.to_json() == s.to_json()


def test_to_dict_forms_of_values() -> None:
    d = Scenario.from_dict(FULL).to_dict()
    assert d["factors"]["global_loading"] == {"default": 0.2, "retail": 0.3}  # pairs written inline
    assert d["factors"]["industry_correlation"] == {"names": ["a", "b"], "matrix": [[1.0, 0.4], [0.4, 1.0]]}
    assert d["delinquency"]["sensitivities"] == {"roll": 2.0, "cure": 0.5}
    assert d["shocks"]["region"]["east"] == {"start": 2, "trough": -0.3, "trough_month": 4, "recovery_month": 9}
    assert d["layers"][0]["counterparty"] == {"failure_probability": 0.02, "sensitivity": 0.5}
    assert d["layers"][0]["eligibility"] == {"industries": None, "regions": ["east"], "borrower_types": None,
                                             "max_balance": 5e5}
    assert "attachment" not in d["layers"][1] and d["layers"][0]["attachment"] == 5e3
    assert d["policy"]["loan_cap"] == {"caps": {"individual": 3e5}, "transition_months": 0, "refinanced_share": 0.0}
    assert d["calibration_reference"]["seasonality"] == {"retail": [1.0] * 12}
    bare = Scenario.from_dict({"horizon_months": 3}).to_dict()
    assert bare["policy"] == {} and bare["layers"] == [] and bare["shocks"] == {"industry": {}, "region": {}}
    assert bare["calibration_reference"] == {"delinquency": bare["delinquency"], "seasonality": {}}


def test_to_table_refuses_unknown_metadata() -> None:
    @dataclasses.dataclass(frozen=True)
    class Typo:
        x: int = dataclasses.field(default=1, metadata={"kye": "y"})

    with pytest.raises(TypeError, match=r"Typo\.x: unknown field metadata \['kye'\]"):
        to_table(Typo())
