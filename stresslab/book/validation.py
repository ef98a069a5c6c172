"""Column-by-column checks of a loan book, with errors naming the row, column and value."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from stresslab.errors import PortfolioError, did_you_mean
from stresslab.vocabulary import AMORTIZATIONS, BORROWER_TYPES, LIVE_STATES

__all__ = ["COLUMNS", "OPTIONAL_COLUMNS", "REQUIRED_COLUMNS", "TEXT_COLUMNS", "MAX_BALANCE", "MAX_TERM", "check_header", "validate_columns"]

TEXT_COLUMNS = ("loan_id", "borrower_id", "borrower_type", "industry", "region", "amortization", "state")

REQUIRED_COLUMNS = (
    "loan_id", "borrower_id", "borrower_type", "industry", "region",
    "balance", "annual_rate", "remaining_term", "amortization", "pd",
)  # fmt: skip
OPTIONAL_COLUMNS: Mapping[str, str | float] = {
    "state": "C", "pledge_value": 0.0, "dscr": np.nan, "recovery_mean": np.nan, "revenue_monthly": np.nan,
}  # fmt: skip
COLUMNS = REQUIRED_COLUMNS + tuple(OPTIONAL_COLUMNS)
MAX_TERM = 360
MAX_BALANCE = 1e12  # CNY a loan: far beyond any micro-loan, and sums over books and paths stay finite with room to spare (1e300 did not)


def check_header(names: list[str], source: str) -> None:
    """Refuse unnamed, repeated, missing required and unknown columns."""
    seen: dict[str, int] = {}
    for j, name in enumerate(names):
        if name == "":
            raise PortfolioError(f"{source}: column {j + 1} has no name in the header")
        if name in seen:
            raise PortfolioError(
                f"{source}: column '{name}' appears twice in the header "
                f"(columns {seen[name] + 1} and {j + 1})"
            )
        seen[name] = j
    missing = [name for name in REQUIRED_COLUMNS if name not in seen]
    unknown = [name for name in names if name not in COLUMNS]
    problems = []
    if missing:
        problems.append("missing required column(s) " + ", ".join(f"'{name}'" for name in missing))
    if unknown:
        listed = ", ".join(f"'{name}'{_suggest(name, COLUMNS)}" for name in unknown)
        problems.append(f"unknown column(s) {listed}")
    if problems:
        raise PortfolioError(
            f"{source}: {'; '.join(problems)}. Required columns: {', '.join(REQUIRED_COLUMNS)}; "
            f"optional: {', '.join(OPTIONAL_COLUMNS)}"
        )


def validate_columns(raw: Mapping[str, ArrayLike], source: str) -> dict[str, np.ndarray]:
    """Convert and check every column; return the typed columns or raise PortfolioError."""
    arrays = {name: np.asarray(values) for name, values in raw.items()}
    for name, values in arrays.items():
        if values.ndim != 1:
            raise PortfolioError(f"{source}: column '{name}' must be 1-dimensional; got shape {values.shape}")
    lengths = {values.size for values in arrays.values()}
    if len(lengths) > 1:
        sizes = ", ".join(f"{name} {values.size}" for name, values in arrays.items())
        raise PortfolioError(f"{source}: columns have different lengths ({sizes})")
    if lengths == {0}:
        raise PortfolioError(f"{source}: the book has no loans; at least one data row is needed")

    check = _Checker(source)
    out: dict[str, np.ndarray] = {}
    out["loan_id"] = check.text("loan_id", arrays["loan_id"])
    check.loan_id = out["loan_id"]
    check.unique_loan_ids(out["loan_id"])
    out["borrower_id"] = check.text("borrower_id", arrays["borrower_id"])
    out["borrower_type"] = check.text("borrower_type", arrays["borrower_type"], allowed=BORROWER_TYPES)
    out["industry"] = check.text("industry", arrays["industry"])
    out["region"] = check.text("region", arrays["region"])
    out["balance"] = check.number(
        "balance", arrays["balance"], lambda x: (x >= 0) & (x <= MAX_BALANCE), "[0, 1e12] CNY"
    )
    out["annual_rate"] = check.number(
        "annual_rate", arrays["annual_rate"], lambda x: (x >= 0) & (x <= 1), "[0, 1]",
        hint=lambda x: "; rates are fractions a year: write 0.18 for 18%" if x > 1 else "",
    )  # fmt: skip
    out["remaining_term"] = check.number(
        "remaining_term", arrays["remaining_term"], lambda x: (x >= 1) & (x <= MAX_TERM),
        f"1..{MAX_TERM} months", integer=True,
    ).astype(np.int64)  # fmt: skip
    out["amortization"] = check.text("amortization", arrays["amortization"], allowed=AMORTIZATIONS)
    out["pd"] = check.number(
        "pd", arrays["pd"], lambda x: (x >= 0) & (x < 1), "[0, 1)",
        hint=lambda x: "; pd is a probability: write 0.03 for 3%" if x >= 1 else "",
    )  # fmt: skip
    out["state"] = check.text("state", arrays["state"], allowed=LIVE_STATES, default="C")
    out["pledge_value"] = check.number(
        "pledge_value", arrays["pledge_value"], lambda x: x >= 0, "[0, inf)", default=0.0
    )
    out["dscr"] = check.number("dscr", arrays["dscr"], lambda x: x > 0, "(0, inf)", default=np.nan)
    out["recovery_mean"] = check.number(
        "recovery_mean", arrays["recovery_mean"], lambda x: (x >= 0) & (x <= 1), "[0, 1]", default=np.nan
    )
    out["revenue_monthly"] = check.number(
        "revenue_monthly", arrays["revenue_monthly"], lambda x: x >= 0, "[0, inf)", default=np.nan
    )
    check.one_type_per_borrower(out["borrower_id"], out["borrower_type"])
    return out


class _Checker:
    """Checks of one book; each raises on its first bad row, in file order."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.loan_id: NDArray[np.str_] | None = None

    def where(self, row: int) -> str:
        """``row 3 (loan_id 'L3')``: 1-based data row, with the loan id once it is known."""
        if self.loan_id is None or self.loan_id[row] == "":
            return f"row {row + 1}"
        return f"row {row + 1} (loan_id {str(self.loan_id[row])!r})"

    def fail_if(self, bad: NDArray[np.bool_], column: str, problem: Callable[[int], str]) -> None:
        rows = np.flatnonzero(bad)
        if rows.size:
            first = int(rows[0])
            more = f" (and {rows.size - 1} more row{'s' if rows.size > 2 else ''})" if rows.size > 1 else ""
            where = self.where(first)
            raise PortfolioError(f"{self.source}: {where}, column '{column}': {problem(first)}{more}")

    def text(
        self,
        column: str,
        values: np.ndarray,
        *,
        allowed: tuple[str, ...] | None = None,
        default: str | None = None,
    ) -> NDArray[np.str_]:
        """Stripped text; empty cells take `default` or are refused; values limited to `allowed`."""
        self.single_values(column, values)
        text = _as_text(values)
        try:
            np.strings.encode(text, "utf-8")
        except UnicodeEncodeError:  # lone surrogates (only possible from Python objects, not files)
            bad = np.array([not _is_utf8(str(t)) for t in text])
            self.fail_if(bad, column, lambda i: f"{str(text[i])!r} is not valid Unicode text (lone surrogate)")
        listed = f"; allowed: {', '.join(repr(a) for a in allowed)}" if allowed else ""
        empty = text == ""
        if default is None:
            self.fail_if(empty, column, lambda i: f"value is empty{listed}")
        else:
            text = np.where(empty, default, text)
        if allowed is not None:
            self.fail_if(
                ~np.isin(text, allowed), column,
                lambda i: f"{str(text[i])!r} is not allowed{_suggest(str(text[i]), allowed)}{listed}",
            )  # fmt: skip
        return text

    def number(
        self,
        column: str,
        values: np.ndarray,
        ok: Callable[[NDArray[np.float64]], NDArray[np.bool_]],
        allowed: str,
        *,
        default: float | None = None,
        integer: bool = False,
        hint: Callable[[float], str] = lambda x: "",
    ) -> NDArray[np.float64]:
        """Finite numbers satisfying `ok`; missing cells (empty, NaN) take `default` or are refused."""
        self.single_values(column, values)
        x, written, not_number = _as_number(values)
        self.fail_if(not_number, column, lambda i: f"{str(written[i])!r} is not a number; allowed: {allowed}")
        missing = np.isnan(x)
        if default is None:

            def missing_problem(i: int) -> str:
                said = "value is empty" if str(written[i]) == "" else f"{written[i]} is not allowed"
                return f"{said}; a number in {allowed} is required"

            self.fail_if(missing, column, missing_problem)
        self.fail_if(np.isinf(x), column, lambda i: f"{written[i]} is not allowed; allowed: {allowed} (finite)")
        if integer:
            fraction = ~missing & (x != np.floor(x))
            self.fail_if(fraction, column, lambda i: f"{written[i]} is not a whole number")
        with np.errstate(invalid="ignore"):
            outside = ~missing & ~ok(x)
        self.fail_if(outside, column, lambda i: f"{written[i]} is outside {allowed}{hint(float(x[i]))}")
        return np.where(missing, np.nan if default is None else default, x + 0.0)  # + 0.0: -0.0 -> 0.0

    def single_values(self, column: str, values: np.ndarray) -> None:
        """Refuse cells of an object column holding a list, array or table, or bytes that are not ASCII."""
        if values.dtype != object or pd.api.types.infer_dtype(values, skipna=True) in _PLAIN_KINDS:
            return  # the usual case, checked in one pass
        bad = np.fromiter((not _is_single_value(v) for v in values), dtype=bool, count=values.size)

        def problem(i: int) -> str:
            cell = values[i]
            if isinstance(cell, int):
                return f"an integer of {cell.bit_length()} bits is too large (beyond the float range)"
            shown = repr(cell) if len(repr(cell)) <= 60 else repr(cell)[:57] + "..."
            if isinstance(cell, bytes):
                return f"{shown} is bytes that are not ASCII text; write text (UTF-8 strings)"
            return f"{shown} is a {type(cell).__name__}, not a single value"

        self.fail_if(bad, column, problem)

    def unique_loan_ids(self, loan_id: NDArray[np.str_]) -> None:
        first = _first_row_of_value(loan_id)
        self.fail_if(
            first != np.arange(loan_id.size), "loan_id",
            lambda i: f"{str(loan_id[i])!r} is already the loan_id of row {first[i] + 1}; "
            "loan ids must be unique",
        )  # fmt: skip

    def one_type_per_borrower(self, borrower_id: NDArray[np.str_], borrower_type: NDArray[np.str_]) -> None:
        first = _first_row_of_value(borrower_id)
        self.fail_if(
            borrower_type != borrower_type[first], "borrower_type",
            lambda i: f"borrower {str(borrower_id[i])!r} is {str(borrower_type[i])!r} here but "
            f"{str(borrower_type[first[i]])!r} in {self.where(int(first[i]))}; a borrower has one type",
        )  # fmt: skip


def _first_row_of_value(values: np.ndarray) -> NDArray[np.intp]:
    """For each row, the first row holding the same value."""
    _, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    return first[inverse]


_PLAIN_KINDS = ("string", "empty", "floating", "decimal", "boolean")
"""pandas.api.types.infer_dtype kinds of object columns whose cells are all single values (not huge ints)."""


def _is_single_value(value: object) -> bool:
    """A scalar cell; bytes only if ASCII (numpy reads bytes as ASCII text); ints only below 2**1024."""
    if isinstance(value, bytes):
        return value.isascii()
    if isinstance(value, int):  # str() of a huge int fails (sys.get_int_max_str_digits)
        return value.bit_length() <= 1024
    return bool(pd.api.types.is_scalar(value))


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _as_text(values: np.ndarray) -> NDArray[np.str_]:
    """Stripped strings; None, NaN and NA become ''."""
    if values.dtype.kind != "U":
        missing = pd.isna(values)
        values = values.astype(str)
        values[missing] = ""
    return np.strings.strip(values)


def _as_number(values: np.ndarray) -> tuple[NDArray[np.float64], np.ndarray, NDArray[np.bool_]]:
    """Return the numbers (NaN where missing or unreadable), the cells as written, and the unreadable cells.

    Typed numbers pass through; text is parsed, and '' and 'nan' (any case) mean missing.
    """
    if values.dtype.kind in "iuf":
        x = values.astype(np.float64)
        return x, values, np.zeros(x.shape, dtype=bool)
    text = _as_text(values)
    x = np.asarray(pd.to_numeric(text, errors="coerce"), dtype=np.float64)
    missing = (text == "") | (np.strings.lower(text) == "nan")
    return x, text, np.isnan(x) & ~missing


def _suggest(word: str, choices: tuple[str, ...]) -> str:
    """did_you_mean, trying a case-insensitive match first ('M1' for 'm1')."""
    folded = {choice.lower(): choice for choice in choices}
    if word.lower() in folded:
        return f" (did you mean '{folded[word.lower()]}'?)"
    return did_you_mean(word.lower(), choices)
