"""Loan tapes (histories): one row per loan and month-end, validated into a :class:`History`.

The format is specified in docs/history.md. Everything is vectorised (one sort of the
tape, then array comparisons): no Python loop per loan or row.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stresslab._files import write_atomically
from stresslab.book.formats import READERS, WRITERS, unsupported_suffix
from stresslab.errors import PortfolioError
from stresslab.vocabulary import STATES

__all__ = ["DEFAULT_DPD", "STATE_CODES", "History", "load_history", "month_index", "month_label"]

#: days past due above which a loan is in default (D), unless the caller says otherwise
DEFAULT_DPD = 90

#: state name -> code (index into STATES): C 0, M1 1, M2 2, M3 3, D 4, P 5
STATE_CODES = {name: k for k, name in enumerate(STATES)}

_ABSORBING = (STATE_CODES["D"], STATE_CODES["P"])

_REQUIRED = ("loan_id", "month", "balance")

# optional numeric columns: name -> (lowest, highest, integer, what is allowed)
_NUMERIC = {
    "pd": (0.0, 1.0 - 1e-12, False, "a pd is a number in [0, 1)"),
    "annual_rate": (0.0, 1.0, False, "an annual rate is a number in [0, 1]"),
    "remaining_term": (0, 360, True, "remaining_term is an integer number of months in 0..360"),
}


def month_index(year: np.ndarray | int, month: np.ndarray | int) -> np.ndarray | int:
    """Months since year 0: ``12 * year + month - 1`` (consecutive months differ by 1)."""
    return 12 * year + month - 1


def month_label(index: np.ndarray | int) -> np.ndarray | str:
    """``YYYY-MM`` text of month indices (:func:`month_index`)."""
    if np.ndim(index) == 0:
        return f"{int(index) // 12:04d}-{int(index) % 12 + 1:02d}"
    index = np.asarray(index, dtype=np.int64)
    return np.char.add(np.char.add(np.char.zfill((index // 12).astype(str), 4), "-"),
                       np.char.zfill((index % 12 + 1).astype(str), 2))


@dataclass(frozen=True, eq=False)
class History:
    """A validated loan tape, sorted by loan and month.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per loan and month-end, sorted by ``loan_id`` then ``month``. Columns:
        ``loan_id`` (str), ``month`` (int64 month index, :func:`month_index`), ``state``
        (int8 code into ``stresslab.vocabulary.STATES``), ``balance`` (float64),
        ``origination_month`` (int64 month index) where given, and every
        other column of the tape unchanged (static columns such as ``industry``,
        ``region``, ``borrower_type``, ``pd``, ``remaining_term``, ``origination_month``).
    source : str
        The file the tape was read from (or ``"<frame>"``, ``"<simulated ...>"``).
    gaps : int
        Month pairs of a loan with missing months between them: their transitions are not
        counted by the estimators (stresslab.calibrate), and the fit report says so.
    """

    frame: pd.DataFrame
    source: str = "<frame>"
    gaps: int = 0

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, source: str = "<frame>", *, default_dpd: int = DEFAULT_DPD) -> History:
        """Validate a table with one row per loan and month-end (see :func:`load_history`)."""
        return _validate(frame, str(source), default_dpd)

    @property
    def n_loans(self) -> int:
        return int(self.frame["loan_id"].nunique())

    @property
    def months(self) -> tuple[str, ...]:
        """The calendar months of the tape, first to last (``YYYY-MM``), gaps included."""
        m = self.frame["month"].to_numpy()
        return tuple(month_label(np.arange(m.min(), m.max() + 1)))

    def __len__(self) -> int:
        return len(self.frame)

    def __repr__(self) -> str:
        months = self.months
        return f"<History {self.n_loans:,} loans, {len(self):,} rows, {months[0]}..{months[-1]}, from {self.source}>"

    def to_frame(self) -> pd.DataFrame:
        """The tape in its file format: ``month`` as ``YYYY-MM``, ``state`` as its name."""
        out = self.frame.copy()
        out["month"] = month_label(out["month"].to_numpy())
        if "origination_month" in out.columns:
            out["origination_month"] = month_label(out["origination_month"].to_numpy())
        out["state"] = np.asarray(STATES)[out["state"].to_numpy()]
        return out

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the tape to a .csv or .parquet file, atomically (readable by :func:`load_history`)."""
        path = Path(path)
        writer = WRITERS.get(path.suffix.lower())
        if writer is None:
            raise PortfolioError(unsupported_suffix(path))
        frame = self.to_frame()
        write_atomically(path, lambda tmp: writer(frame, tmp))


def load_history(path: str | os.PathLike[str], *, default_dpd: int = DEFAULT_DPD) -> History:
    """Read and validate a loan tape: one row per loan and month-end (docs/history.md).

    Parameters
    ----------
    path : path
        A ``.csv`` (UTF-8, header row) or ``.parquet`` file.
    default_dpd : int
        With a ``days_past_due`` column instead of ``state``: days past due above which a
        loan is in default, D (default 90, as MODEL.md §3 with ``default_after = 4``). Below
        it: 0 days C, 1-30 M1, 31-60 M2, 61-90 M3 (capped by the default bucket, so with
        ``default_dpd = 60`` a loan 61+ days past due is D); a row with 0 days past due and
        balance 0 is a closed loan, P.

    Returns
    -------
    History

    Raises
    ------
    PortfolioError
        Naming file, row (data rows count from 1, the header is row 0), column and value:
        a missing column, a month not ``YYYY-MM``, an unknown state, a negative or
        non-integer days past due, a balance that is not a finite number >= 0, a duplicate
        (loan, month), a loan whose rows are not in month order, a loan leaving an absorbing
        state (D or P). Gaps in a loan's months are not errors (:attr:`History.gaps`).
    """
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise PortfolioError(unsupported_suffix(path))
    if not path.is_file():
        raise PortfolioError(f"{path}: no such file")
    return _validate(reader(path), str(path), default_dpd)


def _fail(source: str, row: int, column: str, value: object, allowed: str) -> PortfolioError:
    return PortfolioError(f"{source}: row {row + 1}, column '{column}': {value!r}; {allowed}")


def _validate(frame: pd.DataFrame, source: str, default_dpd: int) -> History:
    names = [str(c).strip() for c in frame.columns]
    frame = frame.set_axis(names, axis=1)
    missing = [c for c in _REQUIRED if c not in names]
    if "state" not in names and "days_past_due" not in names:
        missing.append("state (or days_past_due)")
    if missing:
        raise PortfolioError(f"{source}: missing column(s) {', '.join(missing)}; a loan tape needs loan_id, month, "
                             "balance and state (C, M1, M2, M3, D, P) or days_past_due (docs/history.md)")
    duplicated = sorted({c for c in names if names.count(c) > 1})
    if duplicated:
        raise PortfolioError(f"{source}: column(s) {', '.join(duplicated)} appear more than once")
    if len(frame) == 0:
        raise PortfolioError(f"{source}: the tape has no rows")
    if isinstance(default_dpd, bool) or not isinstance(default_dpd, (int, np.integer)) or not 0 <= default_dpd <= 90:
        raise PortfolioError(f"default_dpd must be an integer in 0..90 (days past due above which a loan is D); got {default_dpd!r}")

    loan_id = frame["loan_id"].astype(str).str.strip().to_numpy()
    empty = np.flatnonzero((loan_id == "") | frame["loan_id"].isna().to_numpy())
    if empty.size:
        raise _fail(source, int(empty[0]), "loan_id", frame["loan_id"].iloc[empty[0]], "every row needs a loan id")
    month = _months(frame["month"], source)
    balance = pd.to_numeric(frame["balance"], errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~(np.isfinite(balance) & (balance >= 0.0)))
    if bad.size:
        raise _fail(source, int(bad[0]), "balance", frame["balance"].iloc[bad[0]], "a balance is a finite number >= 0")
    numeric = {name: _numeric(frame[name], name, source) for name in _NUMERIC if name in names}
    if "origination_month" in names:
        numeric["origination_month"] = _months(frame["origination_month"], source, "origination_month")
    if "state" in names:
        state = _states(frame["state"], source)
    else:
        state = _dpd_states(frame["days_past_due"], balance, source, default_dpd)

    order = np.lexsort((month, loan_id))  # by loan, then month; stable, so file order breaks ties
    lid, mon, st = loan_id[order], month[order], state[order]
    same = lid[1:] == lid[:-1]
    step = mon[1:] - mon[:-1]
    dup = np.flatnonzero(same & (step == 0))
    if dup.size:
        a, b = sorted((int(order[dup[0]]), int(order[dup[0] + 1])))
        raise PortfolioError(f"{source}: row {b + 1}, column 'month': loan {lid[dup[0]]!r} has month "
                             f"{month_label(mon[dup[0]])} already in row {a + 1}; one row per loan and month")
    # month order within a loan in the file: the next row of the same loan is a later month
    file_order = np.argsort(loan_id, kind="stable")
    fl, fm = loan_id[file_order], month[file_order]
    back = np.flatnonzero((fl[1:] == fl[:-1]) & (fm[1:] < fm[:-1]))
    if back.size:
        r = int(file_order[back[0] + 1])
        raise _fail(source, r, "month", month_label(month[r]),
                    f"loan {loan_id[r]!r} has month {month_label(fm[back[0]])} in an earlier row "
                    f"(row {int(file_order[back[0]]) + 1}); a loan's rows must be in month order")
    absorbed = np.isin(st[:-1], _ABSORBING)
    leave = np.flatnonzero(same & absorbed & (st[1:] != st[:-1]))
    if leave.size:
        k = leave[0]
        r = int(order[k + 1])
        raise _fail(source, r, "state", STATES[st[k + 1]],
                    f"loan {lid[k]!r} was {STATES[st[k]]} (absorbing) in {month_label(mon[k])}; "
                    "a loan in D (default) or P (paid off) stays there or leaves the tape")
    gaps = int(np.count_nonzero(same & (step > 1)))

    out = frame.iloc[order].reset_index(drop=True)
    out["loan_id"] = lid
    out["month"] = mon
    out["state"] = st
    out["balance"] = balance[order]
    for name, values in numeric.items():
        out[name] = values[order]
    if "days_past_due" in out.columns and "state" not in names:
        out = out.drop(columns="days_past_due")
    front = ["loan_id", "month", "state", "balance"]
    out = out[front + [c for c in out.columns if c not in front]]
    return History(frame=out, source=source, gaps=gaps)


def _months(column: pd.Series, source: str, name: str = "month") -> np.ndarray:
    text = column.astype(str).str.strip()
    ok = text.str.fullmatch(r"\d{4}-(0[1-9]|1[0-2])").to_numpy(dtype=bool)
    bad = np.flatnonzero(~ok)
    if bad.size:
        raise _fail(source, int(bad[0]), name, column.iloc[bad[0]], "a month is written YYYY-MM (e.g. 2021-03)")
    year = text.str.slice(0, 4).astype(np.int64).to_numpy()
    mon = text.str.slice(5, 7).astype(np.int64).to_numpy()
    return month_index(year, mon)


def _numeric(column: pd.Series, name: str, source: str) -> np.ndarray:
    lo, hi, integer, allowed = _NUMERIC[name]
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(values) & (values >= lo) & (values <= hi)
    if integer:
        ok &= values == np.round(values)
    bad = np.flatnonzero(~ok)
    if bad.size:
        raise _fail(source, int(bad[0]), name, column.iloc[bad[0]], allowed)
    return values.astype(np.int64) if integer else values


def _states(column: pd.Series, source: str) -> np.ndarray:
    text = column.astype(str).str.strip().str.upper()
    code = text.map(STATE_CODES)
    bad = np.flatnonzero(code.isna().to_numpy())
    if bad.size:
        raise _fail(source, int(bad[0]), "state", column.iloc[bad[0]], f"allowed states: {', '.join(STATES)}")
    return code.to_numpy(dtype=np.int8)


def _dpd_states(column: pd.Series, balance: np.ndarray, source: str, default_dpd: int) -> np.ndarray:
    dpd = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~(np.isfinite(dpd) & (dpd >= 0) & (dpd == np.round(dpd))))
    if bad.size:
        raise _fail(source, int(bad[0]), "days_past_due", column.iloc[bad[0]], "days past due is an integer >= 0")
    bucket = np.minimum(np.ceil(dpd / 30.0), 3).astype(np.int8)  # 0: C, 1-30: M1, 31-60: M2, 61+: M3
    bucket[dpd > default_dpd] = STATE_CODES["D"]
    bucket[(dpd == 0) & (balance == 0.0)] = STATE_CODES["P"]
    return bucket
