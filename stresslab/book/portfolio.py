"""The loan book: Portfolio, a frozen set of column arrays, and load_portfolio."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from stresslab._files import refuse_special_file
from stresslab.book.formats import READERS, WRITERS, unsupported_suffix
from stresslab.book.mapping import BookMap, apply_book_map, as_book_map
from stresslab.book.validation import (
    COLUMNS,
    OPTIONAL_COLUMNS,
    TEXT_COLUMNS,
    check_header,
    validate_columns,
)
from stresslab.errors import PortfolioError, did_you_mean

__all__ = ["Portfolio", "load_portfolio"]


#: Optional columns and the value used where a column (or one of its cells) is not given.


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
    extra : mapping of str to ndarray of str, shape (n_loans,)
        Columns of a lender's export that a book map carried along (ignored by the model,
        not part of :attr:`digest`, kept by :meth:`subset`).
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
    extra: Mapping[str, NDArray[np.str_]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        columns = validate_columns({name: getattr(self, name) for name in COLUMNS}, str(self.source))
        for name, values in columns.items():
            values.flags.writeable = False
            object.__setattr__(self, name, values)
        object.__setattr__(self, "source", str(self.source))
        extra = {}
        for name, values in self.extra.items():
            values = np.asarray(values, dtype=str)
            if values.shape != (self.n_loans,):
                raise PortfolioError(f"{self.source}: extra column '{name}' has {values.size} values for {self.n_loans} loans")
            values.flags.writeable = False
            extra[str(name)] = values
        object.__setattr__(self, "extra", extra)

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame, source: str = "<frame>", book_map: BookMap | str | os.PathLike[str] | Mapping | None = None
    ) -> Portfolio:
        """Validate a table with one row per loan (text or typed columns) into a Portfolio.

        Parameters
        ----------
        frame : pandas.DataFrame
            Columns named as in :data:`COLUMNS`; optional columns may be left out.
        source : str
            Name used in error messages and kept as :attr:`source`.
        book_map : BookMap, path of a TOML book map, or mapping of its tables, optional
            How a lender's export becomes the book: renamed columns, mapped codes, percent
            units, the state from days past due, extra columns carried
            (:mod:`stresslab.book.mapping`).

        Raises
        ------
        PortfolioError
            On missing, duplicate or unknown columns (without a book map), an empty book or
            any invalid cell.
        """
        extra: dict[str, np.ndarray] = {}
        mapping = as_book_map(book_map)
        if mapping is not None:
            frame, extra = apply_book_map(frame, mapping, source)
        names = [str(name).strip() for name in frame.columns]
        check_header(names, source)
        columns: dict[str, np.ndarray] = {}
        for j, name in enumerate(names):
            series = frame.iloc[:, j]
            if isinstance(series.dtype, np.dtype):
                columns[name] = series.to_numpy()
            else:  # pandas extension dtypes (str, Int64, category): missing cells become None
                columns[name] = series.to_numpy(dtype=object, na_value=None)
        for name, default in OPTIONAL_COLUMNS.items():
            columns.setdefault(name, np.full(len(frame), default))
        return cls(**columns, source=source, extra=extra)

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
        if column not in TEXT_COLUMNS:
            raise ValueError(
                f"codes() takes a text column, one of {', '.join(TEXT_COLUMNS)}; "
                f"got {column!r}{did_you_mean(column, TEXT_COLUMNS)}"
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
        return Portfolio(**{name: getattr(self, name)[selector] for name in COLUMNS}, source=self.source,
                         extra={name: values[selector] for name, values in self.extra.items()})

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the book to ``.csv`` or ``.parquet`` (chosen by suffix), atomically.

        The book is written to a temporary file in the same directory, which then replaces
        `path` in one step; if writing fails the temporary file is removed and any earlier
        file at `path` is left as it was. Empty optional cells (NaN) are written empty.
        """
        path = Path(path)
        writer = WRITERS.get(path.suffix.lower())
        if writer is None:
            raise PortfolioError(unsupported_suffix(path))
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            writer(self.to_frame(), tmp)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def load_portfolio(path: str | os.PathLike[str], book_map: BookMap | str | os.PathLike[str] | Mapping | None = None) -> Portfolio:
    """Read and validate a loan book from a ``.csv`` or ``.parquet`` file.

    CSV files are read as text (UTF-8, an optional byte-order mark, comma separated, one
    header row) and every cell is converted and checked here; Parquet columns may be typed
    and get the same checks. See ``docs/portfolio.md`` for the columns. A lender's own
    export loads with a ``book_map`` (a TOML file or mapping: renamed columns, codes,
    percent units, days past due, extra columns; :mod:`stresslab.book.mapping`).

    Raises
    ------
    PortfolioError
        If the suffix is not supported, the file is missing, empty, unreadable or corrupt,
        or the book is invalid (the message names file, row, column, value and what is
        allowed).
    """
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise PortfolioError(unsupported_suffix(path))
    refuse_special_file(path, "loan book", PortfolioError)
    if not path.is_file():
        raise PortfolioError(f"{path}: no such file")
    return Portfolio.from_frame(reader(path), source=str(path), book_map=book_map)
