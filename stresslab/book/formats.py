"""Loan-book files: CSV and Parquet read with cell-level checks, written atomically."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from stresslab.errors import PortfolioError

__all__ = ["SUFFIXES"]


SUFFIXES = (".csv", ".parquet")


MAX_CELL = 256  # characters of a CSV cell: ids and names are short, and a long cell costs memory per row


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


READERS: dict[str, Callable[[Path], pd.DataFrame]] = {".csv": _read_csv, ".parquet": _read_parquet}


WRITERS: dict[str, Callable[[pd.DataFrame, Path], None]] = {".csv": _write_csv, ".parquet": _write_parquet}


def unsupported_suffix(path: Path) -> str:
    return f"{path}: unsupported file type {path.suffix!r}; allowed suffixes: {', '.join(SUFFIXES)}"
