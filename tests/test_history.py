"""Loan tapes: load_history's format and errors, simulate_history against the engine's own paths."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import stresslab
from stresslab.book.history import STATE_CODES, History, load_history
from stresslab.cli import main
from stresslab.errors import PortfolioError, StresslabError
from stresslab.run.history import simulate_history

BASELINE = "scenarios/baseline.toml"


@pytest.fixture(scope="module")
def book() -> stresslab.Portfolio:
    return stresslab.synthetic_portfolio(1_500, seed=4)


def _counts(history: History, n_months: int) -> np.ndarray:
    """Month-end counts by state as simulate() reports them (D and P cumulative)."""
    f = history.frame
    cnt = np.zeros((n_months + 1, 6), dtype=np.int64)
    np.add.at(cnt, (f["month"].to_numpy() - f["month"].min(), f["state"].to_numpy()), 1)
    cnt[:, 4:] = np.cumsum(cnt[:, 4:], axis=0)
    return cnt[1:]


@pytest.mark.parametrize("scenario_file, path", [(BASELINE, 0), ("scenarios/services_downturn.toml", 2)])
def test_tape_is_a_path_of_simulate(book: stresslab.Portfolio, scenario_file: str, path: int) -> None:
    # the tape's loans, counted by month and state, are path `path` of simulate(): bitwise
    scenario = stresslab.load_scenario(scenario_file).with_overrides({"horizon_months": 18})
    tape = simulate_history(book, scenario, 18, seed=11, path=path)
    ds = stresslab.simulate(book, scenario, n_paths=path + 1, seed=11)
    np.testing.assert_array_equal(_counts(tape, 18), ds["count_by_state"].values[path])
    f = tape.frame
    live = f["state"].to_numpy() < STATE_CODES["D"]
    exposure = np.zeros((19, 4))
    np.add.at(exposure, (f["month"].to_numpy()[live] - f["month"].min(), f["state"].to_numpy()[live]), f["balance"].to_numpy()[live])
    np.testing.assert_allclose(exposure[1:], ds["balance_by_state"].values[path][:, :4], rtol=1e-12)
    # month 0 is the book as given; each loan has one row a month until it is absorbed
    first = f.groupby("loan_id", sort=False)["state"].first()
    np.testing.assert_array_equal(first.loc[book.loan_id].to_numpy(), [STATE_CODES[s] for s in book.state])
    assert tape.gaps == 0 and tape.months[0] == "2020-12" and len(tape.months) == 19


def test_save_and_load_round_trip(book: stresslab.Portfolio, tmp_path) -> None:
    tape = simulate_history(book.subset(np.arange(200)), stresslab.load_scenario(BASELINE), 12, seed=5)
    for suffix in (".csv", ".parquet"):
        tape.save(tmp_path / f"tape{suffix}")
        back = load_history(tmp_path / f"tape{suffix}")
        for column in ("loan_id", "month", "state", "balance", "industry", "pd", "remaining_term"):
            np.testing.assert_array_equal(back.frame[column].to_numpy(), tape.frame[column].to_numpy())
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically


def test_synth_history_cli(tmp_path) -> None:
    out = tmp_path / "tape.parquet"
    assert main(["synth-history", "300", "--scenario", BASELINE, "--months", "6", "--seed", "2",
                               "--out", str(out)]) == 0
    tape = load_history(out)
    assert tape.n_loans == 300 and len(tape.months) == 7


def _write(tmp_path, rows: list[dict], name: str = "tape.csv"):
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _rows(*specs: tuple[str, str, str]) -> list[dict]:
    return [{"loan_id": lid, "month": m, "state": s, "balance": 100.0} for lid, m, s in specs]


@pytest.mark.parametrize("rows, message", [
    (_rows(("a", "2021-01", "C"), ("a", "2021-01", "M1")),
     "row 2, column 'month': loan 'a' has month 2021-01 already in row 1"),
    (_rows(("a", "2021-01", "C"), ("a", "2021-02", "D"), ("a", "2021-03", "C")),
     "row 3, column 'state': 'C'; loan 'a' was D (absorbing) in 2021-02"),
    (_rows(("a", "2021-01", "P"), ("a", "2021-02", "M1")), "row 2, column 'state': 'M1'; loan 'a' was P"),
    (_rows(("a", "2021-01", "C"), ("b", "2021-01", "M5")), "row 2, column 'state': 'M5'; allowed states: C, M1"),
    (_rows(("a", "2021-02", "C"), ("b", "2021-01", "C"), ("a", "2021-01", "C")),
     "row 3, column 'month': '2021-01'; loan 'a' has month 2021-02 in an earlier row (row 1)"),
    (_rows(("a", "2021-13", "C")), "row 1, column 'month': '2021-13'; a month is written YYYY-MM"),
    (_rows(("a", "21-01", "C")), "column 'month': '21-01'"),
    ([{"loan_id": "a", "month": "2021-01", "state": "C", "balance": -1}], "row 1, column 'balance': '-1'"),
    ([{"loan_id": "a", "month": "2021-01", "state": "C", "balance": 1, "pd": 1.5}], "row 1, column 'pd': '1.5'"),
    ([{"loan_id": "a", "month": "2021-01", "balance": 1}], "missing column(s) state (or days_past_due)"),
    ([{"loan_id": "a", "month": "2021-01", "days_past_due": 3.5, "balance": 1}], "column 'days_past_due': '3.5'"),
])
def test_bad_tapes_name_file_row_column_value(tmp_path, rows: list[dict], message: str) -> None:
    path = _write(tmp_path, rows)
    with pytest.raises(PortfolioError) as info:
        load_history(path)
    assert str(info.value).startswith(str(path)) and message in str(info.value), str(info.value)


def test_gaps_are_counted_not_errors(tmp_path) -> None:
    path = _write(tmp_path, _rows(("a", "2021-01", "C"), ("a", "2021-04", "M1"), ("a", "2021-05", "M2"),
                                  ("b", "2020-12", "C"), ("b", "2021-01", "C")))
    tape = load_history(path)
    assert tape.gaps == 1 and tape.n_loans == 2 and tape.months == ("2020-12", "2021-01", "2021-02", "2021-03", "2021-04", "2021-05")


def test_days_past_due_buckets(tmp_path) -> None:
    dpd = [0, 1, 30, 31, 60, 61, 90, 91, 0]
    balance = [1.0] * 8 + [0.0]
    rows = [{"loan_id": f"l{k}", "month": "2021-01", "days_past_due": d, "balance": b} for k, (d, b) in enumerate(zip(dpd, balance))]
    path = _write(tmp_path, rows)
    names = np.asarray(stresslab.vocabulary.STATES)
    states = names[load_history(path).frame.sort_values("loan_id")["state"].to_numpy()]
    assert list(states) == ["C", "M1", "M1", "M2", "M2", "M3", "M3", "D", "P"]
    states = names[load_history(path, default_dpd=60).frame.sort_values("loan_id")["state"].to_numpy()]
    assert list(states) == ["C", "M1", "M1", "M2", "M2", "D", "D", "D", "P"]
    with pytest.raises(PortfolioError, match="default_dpd must be an integer in 0..90"):
        load_history(path, default_dpd=120)


def test_simulate_history_arguments(book: stresslab.Portfolio) -> None:
    scenario = stresslab.load_scenario(BASELINE)
    with pytest.raises(StresslabError, match="months must be an integer in 1..120"):
        simulate_history(book, scenario, 0, seed=1)
    with pytest.raises(StresslabError, match="first_month must be YYYY-MM in the scenario's start_month"):
        simulate_history(book, scenario, 3, seed=1, first_month="2021-05")
