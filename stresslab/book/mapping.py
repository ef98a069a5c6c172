"""A lender's own export as a stresslab book: renamed columns, mapped codes, units, extra columns.

A book map (a TOML file, or a :class:`BookMap`) says how the lender's columns become the
book's (docs/portfolio.md, "Your own export")::

    [columns]                 # stresslab column = the export's column
    balance = "outstanding_principal"
    annual_rate = "rate_pct"
    [codes.amortization]      # the export's code = stresslab's value
    EMI = "annuity"
    BULLET = "bullet"
    [units]
    annual_rate = "percent"   # percent | fraction (default)
    [state]
    days_past_due = "dpd"     # the state from days past due: 0 C, 1-30 M1, 31-60 M2, 61-90 M3

Columns the map does not use are carried in :attr:`Portfolio.extra` (ignored by the model,
listed once in a warning) unless ``extra = "refuse"``.
"""

from __future__ import annotations

import os
import tomllib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stresslab.book.validation import COLUMNS, REQUIRED_COLUMNS
from stresslab.errors import PortfolioError, StresslabWarning, did_you_mean

__all__ = ["BookMap", "load_book_map", "apply_book_map", "DPD_BUCKETS"]

UNITS = ("fraction", "percent")
PERCENT_COLUMNS = ("annual_rate", "pd", "recovery_mean")  # columns a map may give in percent
CODE_COLUMNS = ("borrower_type", "industry", "region", "amortization", "state")
# days past due -> state (upper bounds, inclusive); beyond 90 days a loan is in default
DPD_BUCKETS = ((0, "C"), (30, "M1"), (60, "M2"), (90, "M3"))
_TABLES = ("columns", "codes", "units", "state", "extra")


@dataclass(frozen=True, kw_only=True)
class BookMap:
    """How an export's columns become a stresslab book.

    Attributes
    ----------
    columns : mapping of str to str
        stresslab column -> the export's column name (columns named as stresslab's need no entry).
    codes : mapping of str to mapping of str to str
        For the text columns borrower_type, industry, region, amortization, state: the
        export's code -> stresslab's value (codes not listed are kept as they are).
    units : mapping of str to str
        ``"percent"`` for annual_rate, pd or recovery_mean given in percent (18 = 18 %).
    days_past_due : str or None
        The export's column of days past due, from which the state is set (0: C, 1-30: M1,
        31-60: M2, 61-90: M3); instead of a state column.
    extra : {"keep", "refuse"}
        Columns the map does not use: carried (listed once in a warning) or refused.
    source : str
        The map file, for messages.
    """

    columns: Mapping[str, str] = field(default_factory=dict)
    codes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    units: Mapping[str, str] = field(default_factory=dict)
    days_past_due: str | None = None
    extra: str = "keep"
    source: str = "<book map>"

    def __post_init__(self) -> None:
        where = self.source
        for ours, theirs in self.columns.items():
            if ours not in COLUMNS:
                raise PortfolioError(f"{where}: [columns] '{ours}' is not a book column{did_you_mean(ours, COLUMNS)}; "
                                     f"columns: {', '.join(COLUMNS)}")
            if not isinstance(theirs, str) or not theirs.strip():
                raise PortfolioError(f"{where}: [columns] {ours} must be the export's column name (text); got {theirs!r}")
        for column, table in self.codes.items():
            if column not in CODE_COLUMNS:
                raise PortfolioError(f"{where}: [codes.{column}]: codes can be mapped for "
                                     f"{', '.join(CODE_COLUMNS)}{did_you_mean(column, CODE_COLUMNS)}")
            if not isinstance(table, Mapping) or not all(isinstance(v, str) for v in table.values()):
                raise PortfolioError(f"{where}: [codes.{column}] must map the export's codes to text values")
        for column, unit in self.units.items():
            if column not in PERCENT_COLUMNS:
                raise PortfolioError(f"{where}: [units] '{column}': units can be set for "
                                     f"{', '.join(PERCENT_COLUMNS)}{did_you_mean(column, PERCENT_COLUMNS)}")
            if unit not in UNITS:
                raise PortfolioError(f"{where}: [units] {column} must be one of {', '.join(UNITS)}; got {unit!r}"
                                     f"{did_you_mean(str(unit), UNITS)}")
        if self.days_past_due is not None and "state" in self.columns:
            raise PortfolioError(f"{where}: give the state either as [columns] state or as [state] days_past_due, not both")
        if self.extra not in ("keep", "refuse"):
            raise PortfolioError(f"{where}: extra must be 'keep' or 'refuse'; got {self.extra!r}")


def load_book_map(path: str | os.PathLike[str]) -> BookMap:
    """Read a book map from a TOML file (see the module docstring for its tables).

    Raises
    ------
    PortfolioError
        If the file is missing or not TOML, or a table or key is unknown or invalid (the
        message names the file, the key and what is allowed).
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PortfolioError(f"{path}: book map not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PortfolioError(f"{path}: cannot read the book map: {exc}") from None
    for key in data:
        if key not in _TABLES:
            raise PortfolioError(f"{path}: unknown table [{key}]{did_you_mean(key, _TABLES)}; tables: {', '.join(_TABLES)}")
    state = data.get("state", {})
    if not isinstance(state, Mapping) or set(state) - {"days_past_due"}:
        raise PortfolioError(f"{path}: [state] takes one key, days_past_due (the export's column of days past due)")
    return BookMap(columns=data.get("columns", {}), codes=data.get("codes", {}), units=data.get("units", {}),
                   days_past_due=state.get("days_past_due"), extra=data.get("extra", "keep"), source=str(path))


def apply_book_map(frame: pd.DataFrame, book_map: BookMap, source: str) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The export ``frame`` as stresslab columns, and the extra columns carried (as text).

    Raises
    ------
    PortfolioError
        If a mapped column is not in the export, a percent or days-past-due cell is not a
        number, or a loan is more than 90 days past due (in default: not simulated as a
        live loan; leave it out of the book). Messages name the file, row, column and value.
    """
    names = [str(c).strip() for c in frame.columns]
    frame = frame.set_axis(names, axis=1)
    for ours, theirs in book_map.columns.items():
        if theirs not in names:
            raise PortfolioError(f"{source}: the book map ({book_map.source}) maps {ours} to the column '{theirs}', "
                                 f"which the export lacks{did_you_mean(theirs, names)}; it has {', '.join(names)}")
    rename = {theirs: ours for ours, theirs in book_map.columns.items()}
    used = set(rename) | ({book_map.days_past_due} if book_map.days_past_due else set())
    out = pd.DataFrame({rename.get(name, name): frame[name] for name in names if name in rename or name in COLUMNS})
    extra_names = [name for name in names if name not in used and name not in COLUMNS]
    if extra_names and book_map.extra == "refuse":
        raise PortfolioError(f"{source}: columns the book map ({book_map.source}) does not use: {', '.join(extra_names)} "
                             f"(extra = 'refuse')")
    for column, unit in book_map.units.items():
        if unit == "percent" and column in out:
            out[column] = _numbers(out[column], column, source) / 100.0
    if book_map.days_past_due:
        if book_map.days_past_due not in names:
            raise PortfolioError(f"{source}: the book map ({book_map.source}) takes the state from the column "
                                 f"'{book_map.days_past_due}', which the export lacks{did_you_mean(book_map.days_past_due, names)}")
        out["state"] = _states(_numbers(frame[book_map.days_past_due], book_map.days_past_due, source),
                               book_map.days_past_due, source)
    for column, table in book_map.codes.items():
        if column in out:
            out[column] = out[column].map(lambda v, table=table: table.get(str(v).strip(), v) if v is not None else v)
    missing = [c for c in REQUIRED_COLUMNS if c not in out]
    if missing:
        raise PortfolioError(f"{source}: after the book map ({book_map.source}) the book lacks the required column(s) "
                             f"{', '.join(missing)}; map them in [columns] (e.g. {missing[0]} = \"<the export's name>\")")
    extra = {name: frame[name].astype(str).to_numpy(dtype=str) for name in extra_names}
    if extra:
        warnings.warn(f"{source}: extra columns carried, not used by the model: {', '.join(extra_names)}",
                      StresslabWarning, stacklevel=3)
    return out, extra


def _numbers(series: pd.Series, column: str, source: str) -> pd.Series:
    values = pd.to_numeric(series, errors="coerce")
    bad = values.isna() & series.notna() & (series.astype(str).str.strip() != "")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise PortfolioError(f"{source}: row {row + 2}, column '{column}': {series.iloc[row]!r} is not a number")
    return values


def _states(days: pd.Series, column: str, source: str) -> np.ndarray:
    d = days.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(d) | (d < 0) | (d != np.floor(d))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise PortfolioError(f"{source}: row {row + 2}, column '{column}': days past due must be a whole number >= 0; "
                             f"got {days.iloc[row]!r}")
    late = d > DPD_BUCKETS[-1][0]
    if late.any():
        row = int(np.flatnonzero(late)[0])
        raise PortfolioError(
            f"{source}: row {row + 2}, column '{column}': {int(d[row])} days past due is a loan in default "
            f"({int(late.sum())} such loans); stresslab simulates live loans (at most 90 days past due): leave "
            "defaulted loans out of the book and book their expected recoveries outside the stress")
    state = np.full(d.size, DPD_BUCKETS[0][1], dtype=object)
    for (low, _), (high, name) in zip(DPD_BUCKETS, DPD_BUCKETS[1:]):
        state[(d > low) & (d <= high)] = name
    return state


def as_book_map(value: BookMap | str | os.PathLike[str] | Mapping[str, Any] | None) -> BookMap | None:
    """A BookMap from a BookMap, a TOML path or a mapping of its tables (None: no map)."""
    if value is None or isinstance(value, BookMap):
        return value
    if isinstance(value, Mapping):
        state = value.get("state", {})
        return BookMap(columns=value.get("columns", {}), codes=value.get("codes", {}), units=value.get("units", {}),
                       days_past_due=state.get("days_past_due") if isinstance(state, Mapping) else None,
                       extra=value.get("extra", "keep"), source="<book map>")
    return load_book_map(value)
