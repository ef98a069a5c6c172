"""Loan books: load, validate, fingerprint, save and synthesise books of micro-loans.

A :class:`Portfolio` holds one read-only numpy array per column, one entry per loan, in
file order. Every way of making one (:func:`load_portfolio`, :meth:`Portfolio.from_frame`,
:func:`synthetic_portfolio`, :meth:`Portfolio.subset`, direct construction) runs the same
validation; the first problem raises :class:`~stresslab.errors.PortfolioError` naming the
file, the row (1-based data row, with the loan id when known), the column, the value as
written and what is allowed. The file format is described in ``docs/portfolio.md``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr

from stresslab._files import refuse_special_file
from stresslab._memory import available_memory
from stresslab.errors import PortfolioError, did_you_mean

__all__ = [
    "AMORTIZATIONS", "BORROWER_TYPES", "COLUMNS", "OPTIONAL_COLUMNS", "REQUIRED_COLUMNS", "STATES",
    "SUFFIXES", "Portfolio", "load_portfolio", "synthetic_portfolio",
]  # fmt: skip

BORROWER_TYPES = ("enterprise", "individual")
AMORTIZATIONS = ("annuity", "equal_principal", "interest_only", "bullet")
STATES = ("C", "M1", "M2", "M3")
REQUIRED_COLUMNS = (
    "loan_id", "borrower_id", "borrower_type", "industry", "region",
    "balance", "annual_rate", "remaining_term", "amortization", "pd",
)  # fmt: skip
#: Optional columns and the value used where a column (or one of its cells) is not given.
OPTIONAL_COLUMNS: Mapping[str, str | float] = {
    "state": "C", "pledge_value": 0.0, "dscr": np.nan, "recovery_mean": np.nan, "revenue_monthly": np.nan,
}  # fmt: skip
COLUMNS = REQUIRED_COLUMNS + tuple(OPTIONAL_COLUMNS)
SUFFIXES = (".csv", ".parquet")
MAX_TERM = 360
MAX_BALANCE = 1e12  # CNY a loan: far beyond any micro-loan, and sums over books and paths stay finite with room to spare (1e300 did not)
MAX_CELL = 256  # characters of a CSV cell: ids and names are short, and a long cell costs memory per row
_SYNTHETIC_BYTES_PER_LOAN = 1_200  # peak memory of synthetic_portfolio (measured: ~1 KB a loan)
_TEXT_COLUMNS = ("loan_id", "borrower_id", "borrower_type", "industry", "region", "amortization", "state")


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class Portfolio:
    """A validated loan book: one read-only array per column, one entry per loan.

    Prefer :func:`load_portfolio`, :meth:`from_frame` or :func:`synthetic_portfolio`; direct
    construction needs every column (any array-like: text or numbers) and validates and
    converts them in the same way.

    Attributes
    ----------
    loan_id, borrower_id, industry, region : ndarray of str, shape (n_loans,)
        Free text, stripped, case kept. ``loan_id`` is unique; a borrower has one type.
    borrower_type : ndarray of str, shape (n_loans,)
        ``'enterprise'`` or ``'individual'`` (sole proprietor).
    balance : ndarray of float64, shape (n_loans,)
        Outstanding principal in currency units, > 0.
    annual_rate : ndarray of float64, shape (n_loans,)
        Contractual interest rate a year as a fraction (0.18 = 18 %), in [0, 1].
    remaining_term : ndarray of int64, shape (n_loans,)
        Months to maturity, in 1..360.
    amortization : ndarray of str, shape (n_loans,)
        ``'annuity'``, ``'equal_principal'``, ``'interest_only'`` or ``'bullet'``.
    pd : ndarray of float64, shape (n_loans,)
        Probability of default within the scenario's ``pd_horizon_months`` (default 12) of a
        current loan, unconditional (MODEL.md §2), in [0, 1).
    state : ndarray of str, shape (n_loans,)
        Delinquency state at the start: ``'C'``, ``'M1'``, ``'M2'`` or ``'M3'``.
    pledge_value : ndarray of float64, shape (n_loans,)
        Value of pledged receivables, >= 0 (0 = unsecured).
    dscr, recovery_mean, revenue_monthly : ndarray of float64, shape (n_loans,)
        Debt-service coverage ratio (> 0), expected recovery rate of the unsecured part
        (in [0, 1]) and monthly revenue of the borrower (>= 0); NaN where not given.
    source : str
        Where the book came from: a file path, ``"<frame>"`` or
        ``"<synthetic n=..., seed=...>"``. Not part of :attr:`digest`.
    """

    loan_id: NDArray[np.str_]
    borrower_id: NDArray[np.str_]
    borrower_type: NDArray[np.str_]
    industry: NDArray[np.str_]
    region: NDArray[np.str_]
    balance: NDArray[np.float64]
    annual_rate: NDArray[np.float64]
    remaining_term: NDArray[np.int64]
    amortization: NDArray[np.str_]
    pd: NDArray[np.float64]
    state: NDArray[np.str_]
    pledge_value: NDArray[np.float64]
    dscr: NDArray[np.float64]
    recovery_mean: NDArray[np.float64]
    revenue_monthly: NDArray[np.float64]
    source: str = "<frame>"

    def __post_init__(self) -> None:
        columns = _validate({name: getattr(self, name) for name in COLUMNS}, str(self.source))
        for name, values in columns.items():
            values.flags.writeable = False
            object.__setattr__(self, name, values)
        object.__setattr__(self, "source", str(self.source))

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, source: str = "<frame>") -> Portfolio:
        """Validate a table with one row per loan (text or typed columns) into a Portfolio.

        Parameters
        ----------
        frame : pandas.DataFrame
            Columns named as in :data:`COLUMNS`; optional columns may be left out.
        source : str
            Name used in error messages and kept as :attr:`source`.

        Raises
        ------
        PortfolioError
            On missing, duplicate or unknown columns, an empty book or any invalid cell.
        """
        names = [str(name).strip() for name in frame.columns]
        _check_header(names, source)
        columns: dict[str, np.ndarray] = {}
        for j, name in enumerate(names):
            series = frame.iloc[:, j]
            if isinstance(series.dtype, np.dtype):
                columns[name] = series.to_numpy()
            else:  # pandas extension dtypes (str, Int64, category): missing cells become None
                columns[name] = series.to_numpy(dtype=object, na_value=None)
        for name, default in OPTIONAL_COLUMNS.items():
            columns.setdefault(name, np.full(len(frame), default))
        return cls(**columns, source=source)

    def __len__(self) -> int:
        return self.n_loans

    def __repr__(self) -> str:
        return f"Portfolio(n_loans={self.n_loans}, source={self.source!r}, digest={self.digest[:12]!r})"

    @property
    def n_loans(self) -> int:
        """Number of loans in the book."""
        return int(self.loan_id.size)

    @cached_property
    def industries(self) -> tuple[str, ...]:
        """Industries present in the book, sorted."""
        return self.codes("industry")[0]

    @cached_property
    def regions(self) -> tuple[str, ...]:
        """Regions present in the book, sorted."""
        return self.codes("region")[0]

    @cached_property
    def digest(self) -> str:
        """SHA-256 (hex) of a canonical encoding of every column, independent of `source`.

        Notes
        -----
        Columns in :data:`COLUMNS` order, each as ``name:byte_count\\0`` then its bytes:
        text as a JSON list (UTF-8), floats as little-endian float64 (NaN and -0.0 are
        normalised at validation), ``remaining_term`` as little-endian int64.
        """
        sha = hashlib.sha256(b"stresslab-portfolio-v1\0")
        for name in COLUMNS:
            values = getattr(self, name)
            if values.dtype.kind == "U":
                data = json.dumps(values.tolist(), ensure_ascii=False).encode("utf-8")
            else:
                data = values.astype(values.dtype.newbyteorder("<")).tobytes()
            sha.update(f"{name}:{len(data)}\0".encode())
            sha.update(data)
        return sha.hexdigest()

    def codes(self, column: str) -> tuple[tuple[str, ...], NDArray[np.int32]]:
        """Sorted unique labels of a text column and each loan's index into them.

        Parameters
        ----------
        column : str
            One of ``loan_id``, ``borrower_id``, ``borrower_type``, ``industry``,
            ``region``, ``amortization``, ``state``.

        Returns
        -------
        labels : tuple of str
            The labels present in the book (not every allowed value), sorted.
        codes : ndarray of int32, shape (n_loans,)
            ``labels[codes[j]]`` is loan j's value.
        """
        if column not in _TEXT_COLUMNS:
            raise ValueError(
                f"codes() takes a text column, one of {', '.join(_TEXT_COLUMNS)}; "
                f"got {column!r}{did_you_mean(column, _TEXT_COLUMNS)}"
            )
        labels, index = np.unique(getattr(self, column), return_inverse=True)
        return tuple(str(label) for label in labels), index.astype(np.int32)

    def to_frame(self) -> pd.DataFrame:
        """Return the book as a DataFrame with the columns of :data:`COLUMNS`, in that order."""
        return pd.DataFrame({name: getattr(self, name).copy() for name in COLUMNS})

    def subset(self, mask_or_index: ArrayLike) -> Portfolio:
        """Return the loans selected by a boolean mask or by integer positions (in that order).

        Parameters
        ----------
        mask_or_index : array_like of bool, shape (n_loans,), or of int
            The loans to keep. The result is validated like any book, so it must hold at
            least one loan and may not repeat a loan.
        """
        selector = np.asarray(mask_or_index)
        if selector.dtype == bool:
            if selector.shape != (self.n_loans,):
                raise ValueError(f"a boolean mask needs shape ({self.n_loans},); got {selector.shape}")
        else:
            selector = selector.astype(np.intp, casting="safe")
        return Portfolio(**{name: getattr(self, name)[selector] for name in COLUMNS}, source=self.source)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the book to ``.csv`` or ``.parquet`` (chosen by suffix), atomically.

        The book is written to a temporary file in the same directory, which then replaces
        `path` in one step; if writing fails the temporary file is removed and any earlier
        file at `path` is left as it was. Empty optional cells (NaN) are written empty.
        """
        path = Path(path)
        writer = _WRITERS.get(path.suffix.lower())
        if writer is None:
            raise PortfolioError(_unsupported_suffix(path))
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            writer(self.to_frame(), tmp)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def load_portfolio(path: str | os.PathLike[str]) -> Portfolio:
    """Read and validate a loan book from a ``.csv`` or ``.parquet`` file.

    CSV files are read as text (UTF-8, an optional byte-order mark, comma separated, one
    header row) and every cell is converted and checked here; Parquet columns may be typed
    and get the same checks. See ``docs/portfolio.md`` for the columns.

    Raises
    ------
    PortfolioError
        If the suffix is not supported, the file is missing, empty, unreadable or corrupt,
        or the book is invalid (the message names file, row, column, value and what is
        allowed).
    """
    path = Path(path)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise PortfolioError(_unsupported_suffix(path))
    refuse_special_file(path, "loan book", PortfolioError)
    if not path.is_file():
        raise PortfolioError(f"{path}: no such file")
    return Portfolio.from_frame(reader(path), source=str(path))


# --------------------------------------------------------------------------- file formats


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        raw = pd.read_csv(path, header=None, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise PortfolioError(f"{path}: the file is empty; expected a header row naming the columns") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise PortfolioError(f"{path}: cannot read as CSV: {str(exc).strip()}") from exc
    _check_cells(raw, path)
    frame = raw.iloc[1:].reset_index(drop=True)
    frame.columns = raw.iloc[0].tolist()  # taken as text so duplicate names are seen, not renamed
    return frame


def _check_cells(raw: pd.DataFrame, path: Path) -> None:
    """Refuse cells over MAX_CELL characters and rows with fewer fields than the header (pandas pads them with '')."""
    lengths = raw.apply(lambda column: column.str.len()).to_numpy()
    if lengths.size and lengths.max() > MAX_CELL:
        row, col = (int(i[0]) for i in np.nonzero(lengths > MAX_CELL))
        where = "the header" if row == 0 else f"row {row}"
        raise PortfolioError(
            f"{path}: {where}, column {col + 1} has {int(lengths[row, col]):,} characters; "
            f"a cell may have at most {MAX_CELL}"
        )
    with open(path, encoding="utf-8-sig", newline="") as handle:
        rows = (row for row in csv.reader(handle) if row)  # pandas skips blank lines too
        for number, row in enumerate(rows):
            if len(row) < raw.shape[1]:
                raise PortfolioError(
                    f"{path}: row {number} has {len(row)} fields, the header has {raw.shape[1]}; "
                    "every row needs a value (possibly empty) for each column"
                )


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        table = pq.read_table(path)
        table.validate(full=True)  # e.g. text columns that are not valid UTF-8
    except (pa.ArrowException, OSError, ValueError) as exc:  # ValueError: a column name that is not UTF-8
        message = str(exc).strip()
        raise PortfolioError(f"{path}: cannot read as Parquet (truncated or corrupt?): {message}") from exc
    try:
        return table.to_pandas()
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001
        # to_pandas interprets the file's 'pandas' schema metadata (JSON: index, column types); bad
        # metadata fails in many ways (KeyError, TypeError, ValueError, AttributeError ...)
        raise PortfolioError(f"{path}: cannot convert the Parquet columns to a table (corrupt 'pandas' "
                             f"metadata?): {type(exc).__name__}: {str(exc).strip()}") from exc


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False, lineterminator="\n")


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    frame.to_parquet(path, index=False)


_READERS: dict[str, Callable[[Path], pd.DataFrame]] = {".csv": _read_csv, ".parquet": _read_parquet}
_WRITERS: dict[str, Callable[[pd.DataFrame, Path], None]] = {".csv": _write_csv, ".parquet": _write_parquet}


def _unsupported_suffix(path: Path) -> str:
    return f"{path}: unsupported file type {path.suffix!r}; allowed suffixes: {', '.join(SUFFIXES)}"


# --------------------------------------------------------------------------- validation


def _check_header(names: list[str], source: str) -> None:
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


def _validate(raw: Mapping[str, ArrayLike], source: str) -> dict[str, np.ndarray]:
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
    out["state"] = check.text("state", arrays["state"], allowed=STATES, default="C")
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


# --------------------------------------------------------------------------- synthetic book

# Assumptions of ours (not data): name -> (share of borrowers, PD multiplier).
_INDUSTRIES = {
    "agriculture": (0.06, 1.10),
    "catering": (0.18, 1.40),
    "construction": (0.06, 1.15),
    "manufacturing": (0.10, 0.90),
    "retail": (0.26, 1.25),
    "services": (0.20, 1.00),
    "transport": (0.08, 1.00),
    "wholesale": (0.06, 0.85),
}
_REGIONS = {
    "central": 0.14, "east": 0.28, "north": 0.14, "northeast": 0.06,
    "northwest": 0.06, "south": 0.20, "southwest": 0.12,
}  # fmt: skip
# Single-borrower balance caps of the 2020 CBIRC/PBoC draft online micro-loan measures (CNY).
_BORROWER_CAP = {"individual": 300_000.0, "enterprise": 1_000_000.0}
_MIN_BALANCE = 1_000.0
_TERMS = np.array([3, 6, 12, 24, 36])
_TERM_PROBS = {"individual": [0.10, 0.20, 0.40, 0.20, 0.10], "enterprise": [0.05, 0.15, 0.35, 0.25, 0.20]}
_PD_RANGE = (0.005, 0.15)
_RATE_RANGE = (0.07, 0.24)


def synthetic_portfolio(n_loans: int, seed: int = 0) -> Portfolio:
    """A realistic, deterministic book of online micro-loans to small businesses (CNY).

    Parameters
    ----------
    n_loans : int
        Number of loans, >= 1.
    seed : int
        Seed of the numpy Generator; the same (n_loans, seed) gives the same book.

    Returns
    -------
    Portfolio
        Validated like a loaded book; ``source`` is ``"<synthetic n=..., seed=...>"``.

    Notes
    -----
    Borrowers hold 1 (75 %), 2 (18 %) or 3 (7 %) adjacent loans sharing borrower id,
    type, industry, region, DSCR and revenue. Figures are our assumptions except the caps:

    - type: individual (sole proprietor) 70 %, enterprise 30 %;
    - industry shares: retail 26 %, services 20 %, catering 18 %, manufacturing 10 %,
      transport 8 %, agriculture, construction and wholesale 6 % each; 7 regions
      (east 28 %, south 20 %, central, north 14 %, southwest 12 %, northeast, northwest 6 %);
    - pd (12-month): log-normal, median about 3 %, industry multipliers 0.85 (wholesale)
      to 1.4 (catering), 0.85 for enterprises, clipped to [0.5 %, 15 %];
    - balance: log-normal, median 30k (individuals, sigma 0.8) and 150k (enterprises,
      sigma 0.9), at least 1,000 and at most cap / (number of the borrower's loans), so a
      borrower's total stays within the single-borrower caps of the 2020 CBIRC/PBoC draft
      Interim Measures for the Administration of Online Microloan Business: 300,000 CNY
      for individuals, 1,000,000 CNY for enterprises;
    - terms: original 3, 6, 12, 24 or 36 months, uniformly elapsed, so remaining_term is
      in 1..36; amortization annuity 57 %, equal principal 31 %, interest-only 12 %;
      10 % of loans with original term <= 6 months are bullet loans;
    - annual_rate: 7 % to 24 %, rising with log pd, plus noise of 1 point;
    - state: C about 90 %, M1 5 %, M2 3 %, M3 2 %, in proportion to pd (bullet loans C);
    - pledge_value (receivables) on 15 % of enterprise loans, 0.3-1.0 x balance;
    - dscr for half the borrowers, 1.1-3.0, lower for riskier borrowers; revenue_monthly
      for enterprises, about 0.4 x their total balance (log-normal, sigma 0.5);
      recovery_mean not given (NaN).
    """
    if isinstance(n_loans, bool) or not isinstance(n_loans, int | np.integer) or n_loans < 1:
        raise PortfolioError(f"synthetic_portfolio: n_loans must be an integer >= 1; got {n_loans!r}")
    n = int(n_loans)
    room = 0.9 * available_memory()
    if n * _SYNTHETIC_BYTES_PER_LOAN > room:
        raise PortfolioError(
            f"synthetic_portfolio: {n:,} loans need about {n * _SYNTHETIC_BYTES_PER_LOAN / 2**30:,.1f} GiB of memory; "
            f"about {int(room // _SYNTHETIC_BYTES_PER_LOAN):,} loans fit in what is available"
        )
    rng = np.random.default_rng(seed)

    # Borrowers and their attributes; owner[j] is the borrower of loan j.
    per_borrower = rng.choice([1, 2, 3], size=n, p=[0.75, 0.18, 0.07])
    n_borrowers = int(np.searchsorted(np.cumsum(per_borrower), n)) + 1
    owner = np.repeat(np.arange(n_borrowers), per_borrower[:n_borrowers])[:n]
    n_loans_of_owner = np.bincount(owner)[owner]
    enterprise_b = rng.random(n_borrowers) < 0.30
    industry_b = rng.choice(len(_INDUSTRIES), size=n_borrowers, p=[w for w, _ in _INDUSTRIES.values()])
    region_b = rng.choice(len(_REGIONS), size=n_borrowers, p=list(_REGIONS.values()))
    risk_b = rng.standard_normal(n_borrowers)  # borrower credit quality, higher = riskier
    enterprise = enterprise_b[owner]

    industry_factor = np.array([factor for _, factor in _INDUSTRIES.values()])[industry_b[owner]]
    pd_factor = industry_factor * np.where(enterprise, 0.85, 1.0)
    log_pd = np.log(0.028 * pd_factor) + 0.75 * risk_b[owner] + 0.25 * rng.standard_normal(n)
    pd = np.round(np.clip(np.exp(log_pd), *_PD_RANGE), 4)
    riskiness = np.log(pd / _PD_RANGE[0]) / np.log(_PD_RANGE[1] / _PD_RANGE[0])  # 0..1
    rate = 0.07 + 0.17 * riskiness + 0.01 * rng.standard_normal(n)
    annual_rate = np.round(np.clip(rate, *_RATE_RANGE), 4)

    median = np.where(enterprise, 150_000.0, 30_000.0)
    sigma = np.where(enterprise, 0.9, 0.8)
    cap = np.where(enterprise, _BORROWER_CAP["enterprise"], _BORROWER_CAP["individual"]) / n_loans_of_owner
    balance = np.round(np.clip(median * np.exp(sigma * rng.standard_normal(n)), _MIN_BALANCE, cap), 2)

    original = np.where(
        enterprise,
        rng.choice(_TERMS, size=n, p=_TERM_PROBS["enterprise"]),
        rng.choice(_TERMS, size=n, p=_TERM_PROBS["individual"]),
    )
    remaining_term = original - rng.integers(0, original)
    bullet = (original <= 6) & (rng.random(n) < 0.10)
    amortization = np.where(bullet, 3, rng.choice(3, size=n, p=[0.57, 0.31, 0.12]))

    weight = pd / pd.mean()
    u = rng.random(n)
    state = np.select([u < 0.02 * weight, u < 0.05 * weight, u < 0.10 * weight], [3, 2, 1], default=0)
    state[bullet] = 0  # a bullet loan has no installment due before maturity

    pledged = enterprise & (rng.random(n) < 0.15)
    pledge_value = np.where(pledged, np.round(balance * rng.uniform(0.3, 1.0, n), 2), 0.0)
    dscr_b = np.clip(3.0 - 1.9 * ndtr(risk_b) + 0.2 * rng.standard_normal(n_borrowers), 1.1, 3.0)
    dscr = np.where((rng.random(n_borrowers) < 0.5)[owner], np.round(dscr_b[owner], 2), np.nan)
    total_balance = np.bincount(owner, weights=balance)[owner]
    revenue_b = 0.4 * np.exp(0.5 * rng.standard_normal(n_borrowers))
    revenue_monthly = np.where(enterprise, np.round(total_balance * revenue_b[owner], 2), np.nan)

    borrower_ids = np.array([f"B{b:06d}" for b in range(1, n_borrowers + 1)])
    return Portfolio(
        loan_id=np.array([f"L{j:07d}" for j in range(1, n + 1)]),
        borrower_id=borrower_ids[owner],
        borrower_type=np.where(enterprise, "enterprise", "individual"),
        industry=np.array(list(_INDUSTRIES))[industry_b[owner]],
        region=np.array(list(_REGIONS))[region_b[owner]],
        balance=balance,
        annual_rate=annual_rate,
        remaining_term=remaining_term,
        amortization=np.array(AMORTIZATIONS)[amortization],
        pd=pd,
        state=np.array(STATES)[state],
        pledge_value=pledge_value,
        dscr=dscr,
        recovery_mean=np.full(n, np.nan),
        revenue_monthly=revenue_monthly,
        source=f"<synthetic n={n}, seed={seed}>",
    )
