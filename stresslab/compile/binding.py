"""Which loans a layer or a policy lever applies to: segment lists checked against the book."""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Sequence

import numpy as np

from stresslab.book.portfolio import Portfolio
from stresslab.errors import ScenarioError, StresslabWarning, did_you_mean

__all__ = ["eligible_loans"]

_NEAR_MISS = 0.8


def eligible_loans(
    portfolio: Portfolio,
    where: str,
    *,
    industries: Sequence[str] | None = None,
    regions: Sequence[str] | None = None,
    borrower_types: Sequence[str] | None = None,
    max_balance: float | None = None,
) -> np.ndarray:
    """Boolean mask of the loans in the given segments (None = no restriction).

    Parameters
    ----------
    portfolio : Portfolio
    where : str
        Where the lists come from, for messages (e.g. "book.toml: [[layers]] 'fund' eligibility").
    industries, regions, borrower_types : sequence of str, optional
    max_balance : float, optional

    Returns
    -------
    ndarray of bool, shape (n_loans,)

    Raises
    ------
    ScenarioError
        If a name is a near-miss of a name in the book (a typo would silently exclude
        loans), or no name of a list is in the book (nothing would be covered). Other
        names absent from the book give a StresslabWarning.
    """
    mask = np.ones(portfolio.n_loans, dtype=bool)
    for column, names in (("industry", industries), ("region", regions), ("borrower_type", borrower_types)):
        if names is None:
            continue
        values = getattr(portfolio, column)
        _check_names(where, column, names, sorted(set(values.tolist())))
        mask &= np.isin(values, list(names))
    if max_balance is not None:
        mask &= portfolio.balance <= max_balance
    return mask


def _check_names(where: str, column: str, names: Sequence[str], present: list[str]) -> None:
    absent = [n for n in names if n not in present]
    for name in absent:
        if difflib.get_close_matches(name, present, n=1, cutoff=_NEAR_MISS):
            raise ScenarioError(f"{where} names {column} '{name}', which is not in the book{did_you_mean(name, present)}")
    if absent and len(absent) == len(names):
        raise ScenarioError(
            f"{where}: none of the {column} values {list(names)} is in the book, so it would apply to "
            f"no loan; the book has {present}"
        )
    if absent:
        warnings.warn(f"{where} names {column} {absent} absent from the book (it has {present})", StresslabWarning, stacklevel=4)
