"""A lender's own export loads through a book map: columns, codes, percent units, days past due, extras."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import stresslab
from stresslab.cli import main

ROOT = Path(__file__).resolve().parents[1]
MAP = """[columns]
balance = "outstanding"
annual_rate = "rate_pct"
loan_id = "contract"
[units]
annual_rate = "percent"
[state]
days_past_due = "dpd"
[codes.amortization]
EMI = "annuity"
BUL = "bullet"
EP = "equal_principal"
IO = "interest_only"
[codes.industry]
"Retail Trade" = "retail"
"""
DPD = [0, 1, 30, 31, 60, 61, 90, 0]
STATES = ["C", "M1", "M1", "M2", "M2", "M3", "M3", "C"]


def _export(tmp_path: Path, dpd=DPD) -> tuple[Path, stresslab.Portfolio]:
    book = stresslab.synthetic_portfolio(len(dpd), seed=4)
    frame = book.to_frame().drop(columns=["state"]).rename(
        columns={"balance": "outstanding", "annual_rate": "rate_pct", "loan_id": "contract"})
    frame["rate_pct"] = frame["rate_pct"] * 100
    frame["dpd"] = dpd
    frame["branch"] = [f"b{j}" for j in range(len(dpd))]
    frame["amortization"] = frame["amortization"].map({"annuity": "EMI", "bullet": "BUL", "equal_principal": "EP",
                                                       "interest_only": "IO"})
    frame.loc[0, "industry"] = "Retail Trade"
    path = tmp_path / "export.csv"
    frame.to_csv(path, index=False)
    return path, book


def test_an_export_loads_through_a_book_map(tmp_path: Path) -> None:
    path, book = _export(tmp_path)
    (tmp_path / "map.toml").write_text(MAP)
    with pytest.warns(stresslab.StresslabWarning, match="extra columns carried, not used by the model: branch"):
        mine = stresslab.load_portfolio(path, book_map=tmp_path / "map.toml")
    np.testing.assert_array_equal(mine.loan_id, book.loan_id)
    np.testing.assert_allclose(mine.balance, book.balance, rtol=1e-15)
    np.testing.assert_allclose(mine.annual_rate, book.annual_rate, rtol=1e-12)  # percent -> fraction
    np.testing.assert_array_equal(mine.amortization, book.amortization)
    assert list(mine.state) == STATES  # 0 C, 1-30 M1, 31-60 M2, 61-90 M3
    assert mine.industry[0] == "retail"
    assert list(mine.extra) == ["branch"] and list(mine.extra["branch"][:2]) == ["b0", "b1"]
    assert list(mine.subset([2, 1]).extra["branch"]) == ["b2", "b1"]
    # the same map as a mapping, and the extra column not part of the model's digest
    same = stresslab.load_portfolio(path, book_map={"columns": {"balance": "outstanding", "annual_rate": "rate_pct",
                                                                "loan_id": "contract"},
                                                    "units": {"annual_rate": "percent"}, "state": {"days_past_due": "dpd"},
                                                    "codes": {"amortization": {"EMI": "annuity", "BUL": "bullet",
                                                                               "EP": "equal_principal", "IO": "interest_only"},
                                                              "industry": {"Retail Trade": "retail"}}})
    assert same.digest == mine.digest


def test_without_a_map_unknown_columns_are_still_refused(tmp_path: Path) -> None:
    path, _ = _export(tmp_path)
    with pytest.raises(stresslab.PortfolioError, match="unknown column"):
        stresslab.load_portfolio(path)


@pytest.mark.parametrize("edit, message", [
    ({"columns": {"balanse": "outstanding"}}, "[columns] 'balanse' is not a book column (did you mean 'balance'?)"),
    ({"columns": {"balance": "outstandng"}}, "maps balance to the column 'outstandng', which the export lacks (did you mean 'outstanding'?)"),
    ({"units": {"annual_rate": "percnt"}}, "[units] annual_rate must be one of fraction, percent; got 'percnt' (did you mean 'percent'?)"),
    ({"codes": {"amortisation": {}}}, "[codes.amortisation]: codes can be mapped for"),
])
def test_bad_maps_say_what_is_wrong(tmp_path: Path, edit: dict, message: str) -> None:
    path, _ = _export(tmp_path)
    data = {"columns": {"balance": "outstanding", "annual_rate": "rate_pct", "loan_id": "contract"},
            "state": {"days_past_due": "dpd"}, **edit}
    with pytest.raises(stresslab.PortfolioError) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore", stresslab.StresslabWarning)
        stresslab.load_portfolio(path, book_map=data)
    assert message in str(info.value)


def test_defaulted_and_malformed_days_past_due_are_refused_by_row(tmp_path: Path) -> None:
    (tmp_path / "map.toml").write_text(MAP)
    path, _ = _export(tmp_path, dpd=[0, 5, 91, 0])
    with pytest.raises(stresslab.PortfolioError, match=r"row 4, column 'dpd': 91 days past due is a loan in default"):
        stresslab.load_portfolio(path, book_map=tmp_path / "map.toml")
    path, _ = _export(tmp_path, dpd=[0, 2.5, 0, 0])
    with pytest.raises(stresslab.PortfolioError, match=r"row 3, column 'dpd': days past due must be a whole number"):
        stresslab.load_portfolio(path, book_map=tmp_path / "map.toml")


def test_book_map_file_errors(tmp_path: Path) -> None:
    path, _ = _export(tmp_path)
    (tmp_path / "bad.toml").write_text("[colums]\nbalance = 'x'\n")
    with pytest.raises(stresslab.PortfolioError, match=r"bad.toml: unknown table \[colums\] \(did you mean 'columns'\?\)"):
        stresslab.load_portfolio(path, book_map=tmp_path / "bad.toml")
    with pytest.raises(stresslab.PortfolioError, match="none.toml: book map not found"):
        stresslab.load_portfolio(path, book_map=tmp_path / "none.toml")


def test_cli_inspect_and_run_with_a_map(tmp_path: Path, capsys) -> None:
    path, _ = _export(tmp_path)
    (tmp_path / "map.toml").write_text(MAP)
    scenario = str(ROOT / "scenarios" / "services_downturn.toml")
    assert main(["inspect", str(path), "--map", str(tmp_path / "map.toml"), "--scenario", scenario]) == 0
    out = capsys.readouterr().out
    assert "8 loans" in out and "extra columns carried (not used by the model): branch" in out
    assert "[shocks.industry] services:" in out and "% of the balance" in out
    assert main(["run", scenario, "--portfolio", str(path), "--map", str(tmp_path / "map.toml"),
                 "--paths", "8", "--seed", "1", "--quiet"]) == 0
    assert "EL" in capsys.readouterr().out
