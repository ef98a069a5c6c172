"""Tests of stresslab.book.portfolio: file round trips, digest, validation messages, synthetic books."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stresslab.book.portfolio import COLUMNS, Portfolio, load_portfolio
from stresslab.book.synthetic import synthetic_portfolio
from stresslab.errors import PortfolioError
from stresslab.vocabulary import AMORTIZATIONS, BORROWER_TYPES
from stresslab.vocabulary import LIVE_STATES as STATES

HEADER = list(COLUMNS)
ROWS = [
    ["L1", "B1", "individual", "retail", "east", "30000", "0.18", "12", "annuity", "0.03", "C", "0", "1.5", "", "20000"],
    ["L2", "B2", "enterprise", "catering", "south", "150000", "0.12", "24", "equal_principal", "0.02", "M1", "50000", "", "0.4", ""],
    ["L3", "B3", "individual", "services", "north", "8000.5", "0.2", "3", "bullet", "0.05", "C", "", "", "", ""],
    ["L4", "B1", "individual", "retail", "east", "12000", "0.15", "6", "interest_only", "0.04", "M2", "0", "2", "0.3", ""],
]  # fmt: skip
INDUSTRIES = ("agriculture", "catering", "construction", "manufacturing", "retail", "services", "transport", "wholesale")


def write_csv(directory: Path, rows=ROWS, header=HEADER, name: str = "book.csv") -> Path:
    path = directory / name
    path.write_text("\n".join(",".join(cells) for cells in [header, *rows]) + "\n", encoding="utf-8")
    return path


def with_cell(row: int, column: str, value: str, rows=ROWS) -> list[list[str]]:
    """Copy of `rows` with the cell at 1-based data `row` and `column` replaced."""
    changed = [list(cells) for cells in rows]
    changed[row - 1][HEADER.index(column)] = value
    return changed


def load_error(path: Path) -> str:
    with pytest.raises(PortfolioError) as info:
        load_portfolio(path)
    return str(info.value)


# --------------------------------------------------------------------------- round trips, digest


def test_load_csv_converts_and_defaults(tmp_path):
    book = load_portfolio(write_csv(tmp_path))
    assert book.n_loans == len(book) == 4
    assert book.source == str(tmp_path / "book.csv")
    assert book.balance.dtype == np.float64 and book.remaining_term.dtype == np.int64
    np.testing.assert_array_equal(book.balance, [30000, 150000, 8000.5, 12000])
    np.testing.assert_array_equal(book.pledge_value, [0, 50000, 0, 0])  # empty -> 0
    np.testing.assert_array_equal(book.dscr, [1.5, np.nan, np.nan, 2.0])  # empty -> NaN
    assert book.industries == ("catering", "retail", "services")
    assert book.regions == ("east", "north", "south")
    with pytest.raises(ValueError):
        book.balance[0] = 1.0  # columns are read-only


def test_optional_columns_may_be_left_out_and_text_is_stripped(tmp_path):
    required = HEADER[:10]
    rows = [[f" {cell} " for cell in cells[:10]] for cells in ROWS]
    book = load_portfolio(write_csv(tmp_path, rows=rows, header=required))
    assert list(book.loan_id) == ["L1", "L2", "L3", "L4"]
    assert list(book.state) == ["C"] * 4
    assert (book.pledge_value == 0).all()
    assert np.isnan(book.dscr).all() and np.isnan(book.recovery_mean).all() and np.isnan(book.revenue_monthly).all()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip(tmp_path, suffix):
    book = synthetic_portfolio(500, seed=3)
    path = tmp_path / f"book{suffix}"
    book.save(path)
    loaded = load_portfolio(path)
    assert loaded.digest == book.digest
    assert loaded.source == str(path)
    pd.testing.assert_frame_equal(loaded.to_frame(), book.to_frame())


def test_digest_depends_on_values_not_source():
    frame = synthetic_portfolio(50, seed=1).to_frame()
    book = Portfolio.from_frame(frame)
    assert re.fullmatch(r"[0-9a-f]{64}", book.digest)
    assert Portfolio.from_frame(frame, source="elsewhere.csv").digest == book.digest
    changed = frame.copy()
    changed.loc[7, "balance"] += 0.01
    assert Portfolio.from_frame(changed).digest != book.digest
    renamed = frame.copy()
    renamed.loc[0, "region"] = "west"
    assert Portfolio.from_frame(renamed).digest != book.digest
    negative_zero = frame.copy()
    negative_zero["pledge_value"] = -0.0
    positive_zero = frame.copy()
    positive_zero["pledge_value"] = 0.0
    assert Portfolio.from_frame(negative_zero).digest == Portfolio.from_frame(positive_zero).digest


# --------------------------------------------------------------------------- cell errors


@pytest.mark.parametrize(
    ("row", "column", "value", "expected"),
    [
        (3, "pd", "1.2", "1.2 is outside [0, 1)"),
        (2, "pd", "-0.01", "-0.01 is outside [0, 1)"),
        (2, "pd", "3", "pd is a probability: write 0.03 for 3%"),
        (1, "pd", "nan", "nan is not allowed; a number in [0, 1) is required"),
        (2, "balance", "abc", "'abc' is not a number; allowed: [0, 1e12] CNY"),
        (1, "balance", "", "value is empty; a number in [0, 1e12] CNY is required"),
        (2, "balance", "-0.01", "-0.01 is outside [0, 1e12] CNY"),
        (4, "balance", "-5", "-5 is outside [0, 1e12] CNY"),
        (1, "balance", "inf", "inf is not allowed; allowed: [0, 1e12] CNY (finite)"),
        (1, "balance", "NaN", "NaN is not allowed"),
        (2, "annual_rate", "18", "18 is outside [0, 1]; rates are fractions a year: write 0.18 for 18%"),
        (2, "annual_rate", "-0.1", "-0.1 is outside [0, 1]"),
        (1, "remaining_term", "3.5", "3.5 is not a whole number"),
        (1, "remaining_term", "0", "0 is outside 1..360 months"),
        (4, "remaining_term", "361", "361 is outside 1..360 months"),
        (3, "amortization", "anuity", "'anuity' is not allowed (did you mean 'annuity'?); "
         "allowed: 'annuity', 'equal_principal', 'interest_only', 'bullet'"),
        (1, "borrower_type", "Individual", "'Individual' is not allowed (did you mean 'individual'?); "
         "allowed: 'enterprise', 'individual'"),
        (2, "borrower_type", "", "value is empty; allowed: 'enterprise', 'individual'"),
        (2, "state", "M4", "'M4' is not allowed; allowed: 'C', 'M1', 'M2', 'M3'"),
        (2, "state", "m1", "(did you mean 'M1'?)"),
        (1, "pledge_value", "-1", "-1 is outside [0, inf)"),
        (1, "dscr", "0", "0 is outside (0, inf)"),
        (2, "recovery_mean", "1.5", "1.5 is outside [0, 1]"),
        (1, "revenue_monthly", "-100", "-100 is outside [0, inf)"),
        (2, "industry", "", "value is empty"),
        (3, "region", "  ", "value is empty"),
        (2, "borrower_id", "", "value is empty"),
    ],
)  # fmt: skip
def test_bad_cell_is_named(tmp_path, row, column, value, expected):
    path = write_csv(tmp_path, rows=with_cell(row, column, value))
    message = load_error(path)
    assert message.startswith(f"{path}: row {row} (loan_id 'L{row}'), column '{column}': ")
    assert expected in message
    assert "more row" not in message


def test_message_of_the_spec(tmp_path):
    message = load_error(write_csv(tmp_path, rows=with_cell(3, "pd", "1.2")))
    assert "book.csv: row 3 (loan_id 'L3'), column 'pd': 1.2 is outside [0, 1)" in message


def test_empty_loan_id_names_the_row_only(tmp_path):
    message = load_error(write_csv(tmp_path, rows=with_cell(2, "loan_id", "")))
    assert f"{tmp_path / 'book.csv'}: row 2, column 'loan_id': value is empty" in message


def test_first_bad_row_is_reported_with_the_count_of_others(tmp_path):
    rows = with_cell(4, "pd", "2", with_cell(3, "pd", "-1", with_cell(2, "pd", "7")))
    message = load_error(write_csv(tmp_path, rows=rows))
    assert "row 2 (loan_id 'L2'), column 'pd': 7 is outside [0, 1)" in message
    assert message.endswith("(and 2 more rows)")


def test_first_failing_column_in_file_order_wins(tmp_path):
    rows = with_cell(1, "pd", "5", with_cell(4, "balance", "-1"))
    message = load_error(write_csv(tmp_path, rows=rows))
    assert "row 4 (loan_id 'L4'), column 'balance'" in message


def test_duplicate_loan_id_names_both_rows(tmp_path):
    message = load_error(write_csv(tmp_path, rows=with_cell(4, "loan_id", "L2")))
    assert "row 4 (loan_id 'L2'), column 'loan_id': 'L2' is already the loan_id of row 2" in message


def test_borrower_with_two_types_names_both_rows(tmp_path):
    message = load_error(write_csv(tmp_path, rows=with_cell(4, "borrower_type", "enterprise")))
    assert (
        "row 4 (loan_id 'L4'), column 'borrower_type': borrower 'B1' is 'enterprise' here "
        "but 'individual' in row 1 (loan_id 'L1')"
    ) in message


# --------------------------------------------------------------------------- file-level errors


def test_missing_and_misspelt_columns(tmp_path):
    header = [{"borrower_id": "borower_id", "pd": "PD"}.get(name, name) for name in HEADER]
    message = load_error(write_csv(tmp_path, header=header))
    assert "missing required column(s) 'borrower_id', 'pd'" in message
    assert "'borower_id' (did you mean 'borrower_id'?)" in message
    assert "'PD' (did you mean 'pd'?)" in message
    assert "Required columns: loan_id, borrower_id" in message


def test_unknown_extra_column(tmp_path):
    rows = [[*cells, "x"] for cells in ROWS]
    message = load_error(write_csv(tmp_path, rows=rows, header=[*HEADER, "pledge"]))
    assert "unknown column(s) 'pledge' (did you mean 'pledge_value'?)" in message


def test_duplicate_column(tmp_path):
    rows = [[*cells, cells[9]] for cells in ROWS]
    message = load_error(write_csv(tmp_path, rows=rows, header=[*HEADER, "pd"]))
    assert "column 'pd' appears twice in the header (columns 10 and 16)" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty"),
        ("\n\n", "the file is empty"),
        (",".join(HEADER) + "\n", "the book has no loans"),
        ("a,b\n1,2,3\n", "cannot read as CSV"),
    ],
)
def test_empty_and_unreadable_csv(tmp_path, text, expected):
    path = tmp_path / "book.csv"
    path.write_text(text)
    message = load_error(path)
    assert message.startswith(f"{path}: ") and expected in message


def test_empty_frame_is_refused():
    with pytest.raises(PortfolioError, match="<frame>: the book has no loans"):
        Portfolio.from_frame(pd.DataFrame(columns=HEADER))


def test_unsupported_suffix_and_missing_file(tmp_path):
    message = load_error(tmp_path / "book.xlsx")
    assert "unsupported file type '.xlsx'; allowed suffixes: .csv, .parquet" in message
    assert load_error(tmp_path / "absent.csv") == f"{tmp_path / 'absent.csv'}: no such file"


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_parquet(tmp_path, damage):
    path = tmp_path / "book.parquet"
    synthetic_portfolio(100).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"not parquet at all")
    message = load_error(path)
    assert message.startswith(f"{path}: cannot read as Parquet")


def typed_frame() -> pd.DataFrame:
    frame = pd.DataFrame(ROWS, columns=HEADER)
    for name in ["balance", "annual_rate", "pd", "pledge_value", "dscr", "recovery_mean", "revenue_monthly"]:
        frame[name] = pd.to_numeric(frame[name]).astype(float)
    frame["remaining_term"] = frame["remaining_term"].astype(np.int64)
    return frame


@pytest.mark.parametrize(
    ("row", "column", "value", "expected"),
    [
        (2, "pd", 1.2, "1.2 is outside [0, 1)"),
        (3, "remaining_term", 3.5, "3.5 is not a whole number"),
        (1, "balance", np.nan, "nan is not allowed"),
        (4, "annual_rate", np.inf, "inf is not allowed"),
    ],
)
def test_typed_parquet_gets_the_same_checks(tmp_path, row, column, value, expected):
    frame = typed_frame()
    if column == "remaining_term":
        frame[column] = frame[column].astype(float)
    frame.loc[row - 1, column] = value
    path = tmp_path / "book.parquet"
    frame.to_parquet(path, index=False)
    message = load_error(path)
    assert message.startswith(f"{path}: row {row} (loan_id 'L{row}'), column '{column}': {expected}")


def test_typed_parquet_loads_like_csv(tmp_path):
    path = tmp_path / "book.parquet"
    typed_frame().to_parquet(path, index=False)
    assert load_portfolio(path).digest == load_portfolio(write_csv(tmp_path)).digest


def test_direct_construction_is_validated():
    columns = {name: synthetic_portfolio(5).to_frame()[name].to_numpy() for name in COLUMNS}
    columns["pd"] = np.array([0.01, 0.02, 1.5, 0.01, 0.02])
    with pytest.raises(PortfolioError, match=r"<frame>: row 3 \(loan_id 'L0000003'\), column 'pd': 1.5 is outside"):
        Portfolio(**columns)
    columns["pd"] = np.array([0.01, 0.02])
    with pytest.raises(PortfolioError, match="columns have different lengths"):
        Portfolio(**columns)


# --------------------------------------------------------------------------- save, codes, subset


@pytest.mark.parametrize(("suffix", "method"), [(".csv", "to_csv"), (".parquet", "to_parquet")])
def test_failed_save_keeps_the_earlier_file(tmp_path, monkeypatch, suffix, method):
    path = tmp_path / f"book{suffix}"
    synthetic_portfolio(20, seed=1).save(path)
    before = path.read_bytes()

    def half_write_then_fail(frame, target, *args, **kwargs):
        Path(target).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, method, half_write_then_fail)
    with pytest.raises(OSError, match="disk full"):
        synthetic_portfolio(30, seed=2).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
    monkeypatch.undo()
    assert load_portfolio(path).digest == synthetic_portfolio(20, seed=1).digest


def test_save_replaces_and_refuses_unknown_suffix(tmp_path):
    path = tmp_path / "book.csv"
    synthetic_portfolio(20, seed=1).save(path)
    synthetic_portfolio(30, seed=2).save(path)
    assert load_portfolio(path).n_loans == 30
    with pytest.raises(PortfolioError, match=r"unsupported file type '\.json'"):
        synthetic_portfolio(5).save(tmp_path / "book.json")


def test_codes():
    book = synthetic_portfolio(300, seed=5)
    labels, codes = book.codes("industry")
    assert labels == book.industries == tuple(sorted(set(book.industry)))
    assert codes.dtype == np.int32 and codes.shape == (300,)
    np.testing.assert_array_equal(np.array(labels)[codes], book.industry)
    states, state_codes = book.codes("state")
    assert set(states) <= set(STATES)
    assert state_codes.max() < len(states)
    with pytest.raises(ValueError, match="did you mean 'region'"):
        book.codes("regoin")
    with pytest.raises(ValueError, match="takes a text column"):
        book.codes("balance")


def test_subset():
    book = synthetic_portfolio(100, seed=2)
    mask = book.pd > np.median(book.pd)
    part = book.subset(mask)
    assert part.n_loans == mask.sum() and part.source == book.source
    np.testing.assert_array_equal(part.loan_id, book.loan_id[mask])
    expected = book.to_frame()[mask].reset_index(drop=True)
    assert part.digest == Portfolio.from_frame(expected).digest
    picked = book.subset([5, 2, 9])
    assert list(picked.loan_id) == [book.loan_id[5], book.loan_id[2], book.loan_id[9]]
    with pytest.raises(PortfolioError, match="no loans"):
        book.subset(np.zeros(100, dtype=bool))
    with pytest.raises(PortfolioError, match="is already the loan_id of row 1"):
        book.subset([3, 3])
    with pytest.raises(ValueError, match="boolean mask needs shape"):
        book.subset(np.ones(5, dtype=bool))


# --------------------------------------------------------------------------- synthetic book


@pytest.fixture(scope="module")
def big_book() -> Portfolio:
    return synthetic_portfolio(20_000, seed=11)


def test_synthetic_is_deterministic_per_seed():
    assert synthetic_portfolio(1000, seed=4).digest == synthetic_portfolio(1000, seed=4).digest
    assert synthetic_portfolio(1000, seed=4).digest != synthetic_portfolio(1000, seed=5).digest
    assert synthetic_portfolio(1000, seed=4).source == "<synthetic n=1000, seed=4>"
    assert synthetic_portfolio(1).n_loans == 1
    with pytest.raises(PortfolioError, match="n_loans must be an integer >= 1"):
        synthetic_portfolio(0)


def test_synthetic_passes_validation(big_book):
    assert Portfolio.from_frame(big_book.to_frame()).digest == big_book.digest


def test_synthetic_segments(big_book):
    assert big_book.industries == INDUSTRIES
    assert len(big_book.regions) >= 6
    frame = big_book.to_frame()
    assert 0.65 < (frame.borrower_type == "individual").mean() < 0.75
    share = frame.industry.value_counts(normalize=True)
    assert set(share.index[:3]) == {"retail", "services", "catering"}
    by_borrower = frame.groupby("borrower_id")
    assert (by_borrower[["borrower_type", "industry", "region"]].nunique() == 1).all().all()
    assert by_borrower.size().between(1, 3).all()
    assert re.fullmatch(r"L\d{7}", big_book.loan_id[0]) and re.fullmatch(r"B\d{6}", big_book.borrower_id[0])


def test_synthetic_caps_and_ranges(big_book):
    frame = big_book.to_frame()
    individual = frame.borrower_type == "individual"
    assert frame.balance.min() >= 1_000
    totals = frame.groupby(["borrower_id", "borrower_type"]).balance.sum().unstack()
    assert totals["individual"].max() <= 300_000 and totals["enterprise"].max() <= 1_000_000
    assert 20_000 < frame.balance[individual].median() < 45_000
    assert 100_000 < frame.balance[~individual].median() < 220_000
    assert frame.remaining_term.between(1, 36).all()
    assert frame.annual_rate.between(0.07, 0.24).all()
    assert frame.pd.between(0.005, 0.15).all()
    assert 0.01 < frame.pd.median() < 0.06
    assert np.corrcoef(np.log(frame.pd), frame.annual_rate)[0, 1] > 0.5
    median_pd = frame.groupby("industry").pd.median()
    assert min(median_pd["catering"], median_pd["retail"]) > median_pd.drop(["catering", "retail"]).max()


def test_synthetic_states_pledges_and_optional_columns(big_book):
    frame = big_book.to_frame()
    state_share = frame.state.value_counts(normalize=True)
    assert 0.85 < state_share["C"] < 0.95 and {"M1", "M2", "M3"} <= set(state_share.index)
    assert frame.pd[frame.state != "C"].median() > frame.pd[frame.state == "C"].median()
    bullet = frame.amortization == "bullet"
    assert 0 < bullet.mean() < 0.06 and (frame.remaining_term[bullet] <= 6).all() and (frame.state[bullet] == "C").all()
    assert set(frame.amortization) == set(AMORTIZATIONS)
    enterprise = frame.borrower_type == "enterprise"
    pledged = frame.pledge_value > 0
    assert not (pledged & ~enterprise).any() and 0.10 < pledged[enterprise].mean() < 0.20
    ratio = frame.pledge_value[pledged] / frame.balance[pledged]
    assert ratio.between(0.29, 1.01).all()
    assert 0.4 < frame.dscr.notna().mean() < 0.6 and frame.dscr.dropna().between(1.1, 3.0).all()
    assert frame.revenue_monthly[enterprise].gt(0).all() and frame.revenue_monthly[~enterprise].isna().all()
    assert frame.recovery_mean.isna().all()


# --------------------------------------------------------------------------- property tests

NAMES = st.text(st.characters(categories=("L", "N", "P", "S")), min_size=1, max_size=6)
BAD_CELLS = {
    "loan_id": [""],
    "borrower_id": [" "],
    "borrower_type": ["company", "", "Enterprise"],
    "industry": [""],
    "region": [""],
    "balance": ["-0.5", "-1", "abc", "", "inf", "nan"],
    "annual_rate": ["1.5", "-0.1", "18%", ""],
    "remaining_term": ["0", "3.5", "361", "x", ""],
    "amortization": ["annuitty", "", "BULLET"],
    "pd": ["1", "-0.01", "3%", "", "nan"],
    "state": ["M4", "m1", "D"],
    "pledge_value": ["-1", "abc", "-inf"],
    "dscr": ["0", "-2", "abc", "inf"],
    "recovery_mean": ["1.01", "-0.5", "x"],
    "revenue_monthly": ["-1", "inf", "x"],
}
OPTIONAL_FLOAT = {
    "dscr": st.floats(0.01, 100),
    "recovery_mean": st.floats(0, 1),
    "revenue_monthly": st.floats(0, 1e8),
}


@st.composite
def valid_text_frames(draw) -> pd.DataFrame:
    """Random valid books as text, one cell per string (as read from CSV)."""
    n = draw(st.integers(1, 6))
    types = draw(st.lists(st.sampled_from(BORROWER_TYPES), min_size=n, max_size=n))
    owner = draw(st.lists(st.integers(0, n - 1), min_size=n, max_size=n))
    rows = []
    for j in range(n):
        row = {
            "loan_id": f"L{j}-{draw(NAMES)}",
            "borrower_id": f"B{owner[j]}",
            "borrower_type": types[owner[j]],
            "industry": draw(NAMES),
            "region": draw(NAMES),
            "balance": repr(draw(st.floats(0.01, 1e7))),
            "annual_rate": repr(draw(st.floats(0, 1))),
            "remaining_term": str(draw(st.integers(1, 360))),
            "amortization": draw(st.sampled_from(AMORTIZATIONS)),
            "pd": repr(draw(st.floats(0, 1, exclude_max=True))),
            "state": draw(st.sampled_from(STATES)),
            "pledge_value": repr(draw(st.floats(0, 1e7))),
        }
        for name, values in OPTIONAL_FLOAT.items():
            row[name] = draw(st.one_of(st.just(""), values.map(repr)))
        rows.append(row)
    return pd.DataFrame(rows, columns=HEADER)


@settings(max_examples=60, deadline=None)
@given(frame=valid_text_frames())
def test_random_valid_books_load(frame):
    book = Portfolio.from_frame(frame)
    np.testing.assert_array_equal(book.loan_id, frame.loan_id.str.strip())
    np.testing.assert_array_equal(book.industry, frame.industry.str.strip())
    np.testing.assert_array_equal(book.balance, frame.balance.astype(float))
    np.testing.assert_array_equal(book.remaining_term, frame.remaining_term.astype(int))
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "book.csv"
        frame.to_csv(path, index=False)
        assert load_portfolio(path).digest == book.digest
        book.save(path)
        assert load_portfolio(path).digest == book.digest


@settings(max_examples=150, deadline=None)
@given(frame=valid_text_frames(), data=st.data())
def test_random_corrupted_cell_is_refused(frame, data):
    row = data.draw(st.integers(0, len(frame) - 1), label="row")
    column = data.draw(st.sampled_from(sorted(BAD_CELLS)), label="column")
    value = data.draw(st.sampled_from(BAD_CELLS[column]), label="value")
    frame.loc[row, column] = value
    with pytest.raises(PortfolioError) as info:
        Portfolio.from_frame(frame)
    message = str(info.value)
    assert re.match(rf"<frame>: row {row + 1}[ ,]", message)
    assert f", column '{column}': " in message
    if value.strip():
        assert value.strip() in message
