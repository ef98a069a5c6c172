"""Binding a scenario to a book: every name the scenario uses, checked once with one rule set.

A scenario names industries, regions and borrower types (loadings and volatilities by
industry, shocks, seasonality, correlation matrices, the eligibility of layers and policy
levers). :func:`check_names` is the one place they meet the book, at the start of
:func:`stresslab.compile.model.compile_model`; everything after it (the scenario's arrays
by industry, :func:`eligible_loans`) takes the names as checked. The rules:

1. A name absent from the book that is a near-miss of one in it (a typo would silently
   drop loans or a shock) is an error with a did-you-mean.
2. A segment list (an eligibility) none of whose names is in the book is an error: the
   layer or lever would apply to no loan.
3. Any other absent name is ignored, said in one StresslabWarning per compile listing
   them all, and not again for the same scenario object (a sweep compiles it many times).
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np

from stresslab.book.portfolio import Portfolio
from stresslab.errors import ScenarioError, StresslabWarning, did_you_mean
from stresslab.scenario.scenario import Scenario
from stresslab.scenario.specs import CorrelationMatrix

__all__ = ["check_names", "eligible_loans"]

_NEAR_MISS = 0.8  # difflib ratio from which an absent name is taken for a typo of a book name
_PLURAL = {"industry": "industries", "region": "regions", "borrower_type": "borrower types"}


class _Use(NamedTuple):
    where: str  # the key path, e.g. "[shocks.industry]"
    column: str  # the book column the names are values of
    names: tuple[str, ...]
    segment: bool  # an eligibility list: it must name at least one value in the book


def _uses(scenario: Scenario) -> Iterator[_Use]:
    """Every use of a book value's name in the scenario."""
    fac = scenario.factors
    for key in ("global_loading", "industry_loading", "region_loading"):
        yield _Use(f"[factors] {key}", "industry", tuple(n for n, _ in getattr(fac, key).overrides), False)
    for key, column in (("industry_correlation", "industry"), ("region_correlation", "region")):
        spec = getattr(fac, key)
        if isinstance(spec, CorrelationMatrix):
            yield _Use(f"[factors] {key}.names", column, tuple(spec.names), False)
    yield _Use("[cashflow] volatility", "industry", tuple(n for n, _ in scenario.cashflow_volatility.overrides), False)
    yield _Use("[shocks.industry]", "industry", tuple(n for n, _ in scenario.industry_shocks), False)
    yield _Use("[shocks.region]", "region", tuple(n for n, _ in scenario.region_shocks), False)
    own = tuple(n for n, _ in scenario.seasonal_factors)
    yield _Use("[seasonality]", "industry", own, False)
    reference = tuple(n for n, _ in scenario.reference.seasonal_factors if n not in own)
    yield _Use("calibration_reference [seasonality]", "industry", reference, False)
    for layer in scenario.layers:
        yield from _segments(f"[[layers]] '{layer.name}' eligibility", layer)
    pol = scenario.policy
    for lever in ("deferral", "interest_subsidy", "revenue_support"):
        spec = getattr(pol, lever)
        if spec is not None:
            yield from _segments(f"[policy.{lever}]", spec)
    if pol.seasonal_schedule is not None:
        names = pol.seasonal_schedule.industries
        yield _Use("[policy.seasonal_schedule] industries", "industry", tuple(own if names is None else names), True)


def _segments(where: str, spec: object) -> Iterator[_Use]:
    for column in ("industry", "region", "borrower_type"):
        names = getattr(spec, _PLURAL[column].replace(" ", "_"))
        if names is not None:
            yield _Use(f"{where} {_PLURAL[column].replace(' ', '_')}", column, tuple(names), True)


def check_names(portfolio: Portfolio, scenario: Scenario) -> None:
    """Check every industry, region and borrower-type name of ``scenario`` against ``portfolio``.

    Parameters
    ----------
    portfolio : Portfolio
    scenario : Scenario

    Raises
    ------
    ScenarioError
        If a name is a near-miss of a name in the book, or a segment list (an
        eligibility) names nothing in the book. The message names the scenario file, the
        key, the name and the book's values.

    Warns
    -----
    StresslabWarning
        Once per scenario object and name, listing the other names absent from the book
        (ignored: their shock, loading or seasonality acts on no loan).
    """
    present = {column: sorted({str(v) for v in getattr(portfolio, column).tolist()}) for column in _PLURAL}
    absent = []
    for use in _uses(scenario):
        known = present[use.column]
        missing = [name for name in use.names if name not in known]
        for name in missing:
            close = difflib.get_close_matches(name, known, n=1, cutoff=_NEAR_MISS)
            if close:
                raise ScenarioError(
                    f"{scenario.source}: {use.where}: '{name}' is not among the book's {_PLURAL[use.column]}"
                    f"{did_you_mean(name, close)}"
                )
        if use.segment and missing and len(missing) == len(use.names):
            raise ScenarioError(
                f"{scenario.source}: {use.where}: none of {list(use.names)} is among the book's "
                f"{_PLURAL[use.column]}, so it would apply to no loan; the book has {known}"
            )
        for name in missing:
            if (use.where, name) not in scenario._warned:
                scenario._warned.add((use.where, name))
                absent.append(f"{_PLURAL[use.column]} '{name}' ({use.where})")
    if absent:
        warnings.warn(f"{scenario.source}: names absent from the book, ignored: {', '.join(absent)}",
                      StresslabWarning, stacklevel=3)


def eligible_loans(
    portfolio: Portfolio,
    *,
    industries: Sequence[str] | None = None,
    regions: Sequence[str] | None = None,
    borrower_types: Sequence[str] | None = None,
    max_balance: float | None = None,
) -> np.ndarray:
    """Boolean mask of the loans in the given segments (None = no restriction).

    The names are taken as checked by :func:`check_names`.

    Parameters
    ----------
    portfolio : Portfolio
    industries, regions, borrower_types : sequence of str, optional
    max_balance : float, optional

    Returns
    -------
    ndarray of bool, shape (n_loans,)
    """
    mask = np.ones(portfolio.n_loans, dtype=bool)
    for column, names in (("industry", industries), ("region", regions), ("borrower_type", borrower_types)):
        if names is not None:
            mask &= np.isin(getattr(portfolio, column), list(names))
    if max_balance is not None:
        mask &= portfolio.balance <= max_balance
    return mask
