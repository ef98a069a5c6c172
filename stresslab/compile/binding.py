"""Binding a scenario to a book: every name the scenario uses, checked once with one rule set.

A scenario names industries, regions and borrower types (loadings and volatilities by
industry, shocks, seasonality, correlation matrices, the eligibility of layers and policy
levers). :func:`bind_names` is the one place they meet the book, at the start of
:func:`stresslab.compile.model.compile_model`: it returns the scenario with every name in
the book's spelling, and everything after it (the scenario's arrays by industry,
:func:`eligible_loans`) takes the names as bound. The rules:

1. Names compare case- and space-insensitively: ``"Construction"``, ``"construction"``
   and ``" construction "`` name the same industry (two scenario names that do are an
   error: they would set one thing twice).
2. A name absent from the book is ignored, said in one StresslabWarning per compile that
   lists them all (with a did-you-mean where a book name is close), and not again for the
   same scenario object (a sweep compiles it many times).
3. It is an error when the scenario's effect would vanish entirely: a segment list (an
   eligibility) that names nothing in the book (the layer or lever would apply to no
   loan), or revenue shocks none of whose industries and regions is in the book.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np

from stresslab.book.portfolio import Portfolio
from stresslab.errors import ScenarioError, StresslabWarning, did_you_mean
from stresslab.scenario.scenario import Scenario
from stresslab.scenario.specs import CorrelationMatrix

__all__ = ["bind_names", "eligible_loans"]

_NEAR_MISS = 0.8  # difflib ratio from which an absent name is shown with a did-you-mean
_PLURAL = {"industry": "industries", "region": "regions", "borrower_type": "borrower types"}
_LOADINGS = ("global_loading", "industry_loading", "region_loading")
_SEGMENT_LEVERS = ("deferral", "interest_subsidy", "revenue_support")  # levers with an eligibility


class _Use(NamedTuple):
    where: str  # the key path, e.g. "[shocks.industry]"
    column: str  # the book column the names are values of
    names: tuple[str, ...]
    segment: bool  # an eligibility list: it must name at least one value in the book


def _uses(scenario: Scenario) -> Iterator[_Use]:
    """Every use of a book value's name in the scenario."""
    fac = scenario.factors
    for key in _LOADINGS:
        yield _Use(f"[factors] {key}", "industry", tuple(n for n, _ in getattr(fac, key).overrides), False)
    for key, column in (("industry_correlation", "industry"), ("region_correlation", "region")):
        spec = getattr(fac, key)
        if isinstance(spec, CorrelationMatrix):
            yield _Use(f"[factors] {key}.names", column, tuple(spec.names), False)
    if fac.innovation_mean is not None:
        for column in ("industry", "region"):
            names = tuple(n for n, _ in getattr(fac.innovation_mean, column))
            yield _Use(f"[factors.innovation_mean.{column}]", column, names, False)
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
    for lever in _SEGMENT_LEVERS:
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


def _canonical(name: str) -> str:
    return " ".join(str(name).split()).casefold()


def bind_names(portfolio: Portfolio, scenario: Scenario) -> Scenario:
    """The scenario with every industry and region name in the book's spelling, checked.

    Parameters
    ----------
    portfolio : Portfolio
    scenario : Scenario

    Returns
    -------
    Scenario
        Equal to ``scenario`` when it already spells every name as the book does.

    Raises
    ------
    ScenarioError
        If a segment list (an eligibility) names nothing in the book, the revenue shocks
        name no industry or region of the book, or two names of one list are the same name
        but for case and spaces. The message names the scenario file, the key, the names
        and the book's values.

    Warns
    -----
    StresslabWarning
        Once per scenario object and name, listing the names absent from the book (ignored:
        their shock, loading or seasonality acts on no loan), with a did-you-mean.
    """
    present = {column: sorted({str(v) for v in getattr(portfolio, column).tolist()}) for column in _PLURAL}
    spelling = {column: {_canonical(v): v for v in values} for column, values in present.items()}
    absent, shocked, shocks_hit = [], 0, 0
    for use in _uses(scenario):
        known = present[use.column]
        seen: dict[str, str] = {}
        for name in use.names:
            other = seen.setdefault(_canonical(name), name)
            if other != name:
                raise ScenarioError(f"{scenario.source}: {use.where}: '{other}' and '{name}' are the same "
                                    f"{use.column.replace('_', ' ')} (names compare case- and space-insensitively)")
        missing = [name for name in use.names if _canonical(name) not in spelling[use.column]]
        if use.where.startswith("[shocks."):
            shocked += len(use.names)
            shocks_hit += len(use.names) - len(missing)
        hints = {name: _hint(name, spelling[use.column]) for name in missing}
        if use.segment and missing and len(missing) == len(use.names):
            raise ScenarioError(
                f"{scenario.source}: {use.where}: none of {list(use.names)} is among the book's "
                f"{_PLURAL[use.column]}{next((h for h in hints.values() if h), '')}, so it would apply to no "
                f"loan; the book has {known}"
            )
        for name in missing:
            if (use.where, name) not in scenario._warned:
                scenario._warned.add((use.where, name))
                absent.append(f"{_PLURAL[use.column]} '{name}' ({use.where}){hints[name]}")
    if shocked and not shocks_hit:
        raise ScenarioError(
            f"{scenario.source}: [shocks]: none of the shocked industries and regions is in the book, so the "
            f"scenario's revenue shocks would act on no loan; the book has industries {present['industry']} "
            f"and regions {present['region']}"
        )
    if absent:
        warnings.warn(f"{scenario.source}: names absent from the book, ignored: {', '.join(absent)}",
                      StresslabWarning, stacklevel=3)
    return _respelled(scenario, {column: spelling[column] for column in ("industry", "region")})


def _hint(name: str, spelling: dict[str, str]) -> str:
    """" (did you mean 'x'?)" for a close book name, else ""."""
    close = difflib.get_close_matches(_canonical(name), list(spelling), n=1, cutoff=_NEAR_MISS)
    return did_you_mean(name, [spelling[close[0]]]) if close else ""


def _respelled(scenario: Scenario, spelling: dict[str, dict[str, str]]) -> Scenario:
    """``scenario`` with industry and region names as the book spells them (absent ones kept)."""

    def ind(name: str) -> str:
        return spelling["industry"].get(_canonical(name), name)

    def reg(name: str) -> str:
        return spelling["region"].get(_canonical(name), name)

    def pairs(items: tuple, rename: Callable[[str], str]) -> tuple:
        return tuple((rename(n), v) for n, v in items)

    def names(items: tuple[str, ...] | None, rename: Callable[[str], str]) -> tuple[str, ...] | None:
        return None if items is None else tuple(rename(n) for n in items)

    def segments(spec: Any) -> Any:
        return None if spec is None else replace(spec, industries=names(spec.industries, ind), regions=names(spec.regions, reg))

    fac = scenario.factors
    factors = {key: replace(getattr(fac, key), overrides=pairs(getattr(fac, key).overrides, ind)) for key in _LOADINGS}
    for key, rename in (("industry_correlation", ind), ("region_correlation", reg)):
        if isinstance(getattr(fac, key), CorrelationMatrix):
            factors[key] = replace(getattr(fac, key), names=names(getattr(fac, key).names, rename))
    if fac.innovation_mean is not None:
        means = fac.innovation_mean
        factors["innovation_mean"] = replace(means, industry=pairs(means.industry, ind), region=pairs(means.region, reg))
    pol = scenario.policy
    levers = {lever: segments(getattr(pol, lever)) for lever in _SEGMENT_LEVERS}
    if pol.seasonal_schedule is not None:
        levers["seasonal_schedule"] = replace(pol.seasonal_schedule, industries=names(pol.seasonal_schedule.industries, ind))
    reference = scenario.calibration_reference
    bound = replace(
        scenario,
        factors=replace(fac, **factors),
        cashflow_volatility=replace(scenario.cashflow_volatility, overrides=pairs(scenario.cashflow_volatility.overrides, ind)),
        industry_shocks=pairs(scenario.industry_shocks, ind),
        region_shocks=pairs(scenario.region_shocks, reg),
        seasonal_factors=pairs(scenario.seasonal_factors, ind),
        calibration_reference=None if reference is None else replace(reference, seasonal_factors=pairs(reference.seasonal_factors, ind)),
        layers=tuple(segments(layer) for layer in scenario.layers),
        policy=replace(pol, **levers),
    )
    if bound == scenario:
        return scenario  # keep the object (and its record of warnings already given)
    object.__setattr__(bound, "_warned", scenario._warned)
    return bound


def eligible_loans(
    portfolio: Portfolio,
    *,
    industries: Sequence[str] | None = None,
    regions: Sequence[str] | None = None,
    borrower_types: Sequence[str] | None = None,
    max_balance: float | None = None,
) -> np.ndarray:
    """Boolean mask of the loans in the given segments (None = no restriction).

    The names are taken as bound by :func:`bind_names` (the book's spelling).

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
