"""Scenario files: TOML in, validated frozen objects out (MODEL.md §1-6 and §10).

A scenario says how the economy moves over the horizon (systematic factors, revenue
shocks, seasonality), how the lender's book behaves (roll and cure rates, recoveries),
which credit enhancement layers (guarantees, insurance, compensation funds) share its
losses and which policy levers (``[policy.*]``: caps, deferrals, subsidies ...) act.
:func:`load_scenario` reads a file (and the chain of files it ``extends``), validates every
key and returns a :class:`Scenario`; bad input raises :class:`~stresslab.errors.ScenarioError`
naming the file, the key path, the value and what is allowed. The key reference is
``docs/scenarios.md``.

The schema is declarative: each table is a mapping ``key -> _Key(parser, default)`` (see
the bottom of this module), so adding a table means adding one such mapping.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import numbers
import os
import reprlib
import tomllib
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stresslab.errors import ScenarioError, StresslabWarning, did_you_mean
from stresslab.portfolio import BORROWER_TYPES, STATES

__all__ = [
    "load_scenario",
    "Scenario",
    "FactorSpec",
    "DelinquencySpec",
    "RecoverySpec",
    "LayerSpec",
    "LAYER_KINDS",
    "LAYER_BASES",
    "PerIndustry",
    "CorrelationMatrix",
    "ShockRamp",
    "Shock",
    "shock_path",
    "PolicySpec",
    "LoanCapSpec",
    "DeferralSpec",
    "SubsidySpec",
    "RateCapSpec",
    "RevenueSupportSpec",
    "SeasonalScheduleSpec",
    "CollectionSpec",
    "POLICY_LEVERS",
    "COLLECTION_PRESETS",
    "DEFERRAL_INTEREST",
]

MAX_HORIZON = 120
LAYER_KINDS = ("quota_share", "excess_of_loss")
LAYER_BASES = ("principal", "ead")
RESERVED_LAYER_NAME = "lender"  # the retained-loss party in results (docs/metrics.md)
POLICY_LEVERS = ("loan_cap", "deferral", "interest_subsidy", "rate_cap", "revenue_support",
                 "seasonal_schedule", "collection")
DEFERRAL_INTEREST = ("accrued", "waived")
MAX_DEFERRAL_MONTHS = 24
COLLECTION_PRESETS: dict[str, dict[str, float | int]] = {
    # ASSUMPTIONS, not sourced figures: round numbers ordering the strategies by recovery,
    # speed and cost (docs/policy.md). Each sets [recovery] unsecured_mean (m_0, share of
    # EAD), lag_months (default to cash) and cost (share of the amount recovered).
    "reminders": {"unsecured_mean": 0.15, "lag_months": 3, "cost": 0.05},
    "legal_action": {"unsecured_mean": 0.35, "lag_months": 12, "cost": 0.25},
    "third_party_agency": {"unsecured_mean": 0.25, "lag_months": 6, "cost": 0.20},
}
"""``[policy.collection]`` strategy -> the [recovery] values it sets (they take precedence)."""
_NEAR_MISS = 0.8  # difflib ratio from which an absent name is taken for a typo of a book name
_TOL = 1e-10  # symmetry, unit diagonal and PSD tolerance of correlation matrices
_MAX_DEPTH = 32  # tables and arrays nest at most this deep (a valid scenario needs 6 levels)
_INT64 = (-(2**63), 2**63 - 1)  # TOML integers are 64-bit signed


# --------------------------------------------------------------------------- value types


@dataclass(frozen=True, kw_only=True)
class PerIndustry:
    """A number per industry: a default and per-industry overrides (sorted by name)."""

    default: float
    overrides: tuple[tuple[str, float], ...] = ()

    def values(self, industries: Sequence[str]) -> np.ndarray:
        """Return the value of each industry, ndarray of shape (n_industries,)."""
        table = dict(self.overrides)
        return np.array([table.get(str(name), self.default) for name in industries], dtype=float)

    def to_dict(self) -> dict[str, float]:
        """Return the canonical table form ``{"default": d, industry: value, ...}``."""
        return {"default": self.default, **dict(self.overrides)}


@dataclass(frozen=True, kw_only=True)
class CorrelationMatrix:
    """An explicit correlation matrix among named industries (or regions)."""

    names: tuple[str, ...]
    matrix: tuple[tuple[float, ...], ...]

    def to_dict(self) -> dict[str, list]:
        """Return ``{"names": [...], "matrix": [[...], ...]}``."""
        return {"names": list(self.names), "matrix": [list(row) for row in self.matrix]}


@dataclass(frozen=True, kw_only=True)
class ShockRamp:
    """A revenue shock that falls linearly to a trough and recovers linearly.

    Notes
    -----
    Value 0 for months t < start; linear from 0 at month ``start - 1`` to ``trough`` at
    ``trough_month``; linear from ``trough`` back to 0 at ``recovery_month``; 0 after.
    Requires ``1 <= start <= trough_month <= recovery_month``.
    """

    start: int
    trough: float
    trough_month: int
    recovery_month: int

    def values(self, horizon_months: int) -> np.ndarray:
        """Return the shock of horizon months 1..T, ndarray of shape (T,)."""
        t = np.arange(1, horizon_months + 1, dtype=float)
        down = self.trough * (t - (self.start - 1)) / (self.trough_month - self.start + 1)
        up = self.trough * (self.recovery_month - t) / max(self.recovery_month - self.trough_month, 1)
        after_trough = np.where(t <= self.recovery_month, up, 0.0)
        return np.where(t < self.start, 0.0, np.where(t <= self.trough_month, down, after_trough))


Shock = float | tuple[float, ...] | ShockRamp
"""A revenue shock: constant, monthly values (month 1 first; later months 0) or a ramp."""


def shock_path(shock: Shock, horizon_months: int) -> np.ndarray:
    """Expand a shock (or a revenue uplift) to its value in each horizon month.

    Parameters
    ----------
    shock : float, tuple of float or ShockRamp
        A parsed ``[shocks]`` value or ``[policy.revenue_support] uplift``.
    horizon_months : int
        T.

    Returns
    -------
    ndarray of shape (T,)
        Month 1 first: a constant every month; a list's values, 0 after its end (cut at T);
        a ramp's :meth:`ShockRamp.values`.
    """
    if isinstance(shock, ShockRamp):
        return shock.values(horizon_months)
    out = np.zeros(horizon_months)
    if isinstance(shock, tuple):
        values = shock[:horizon_months]
        out[: len(values)] = values  # later months stay 0
    else:
        out[:] = shock
    return out


def _plain(value: Any) -> Any:
    """JSON-able form of a parsed value (what the schema parsers read back unchanged)."""
    if isinstance(value, (PerIndustry, CorrelationMatrix)):
        return value.to_dict()
    if isinstance(value, ShockRamp):
        return dataclasses.asdict(value)
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value


def _fields_dict(spec: Any) -> dict[str, Any]:
    """The canonical table of a spec whose TOML keys are its field names."""
    return {f.name: _plain(getattr(spec, f.name)) for f in dataclasses.fields(spec)}


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True, kw_only=True)
class FactorSpec:
    """Systematic factors: copula, loadings, AR(1) persistence, correlations (MODEL.md §1).

    Attributes
    ----------
    copula : {"gaussian", "t"}
    dof : float or None
        Student-t degrees of freedom (> 2); None for the Gaussian copula.
    ar1 : float
        AR(1) coefficient phi of every factor, in [0, 1].
    global_loading, industry_loading, region_loading : PerIndustry
        Loadings a_G, a_I, a_R of a loan, by the loan's industry.
    industry_correlation, region_correlation : float or CorrelationMatrix
        A common pairwise correlation (0.0 = identity) or an explicit matrix.
    source : str
        The scenario file (for messages); not compared.
    """

    copula: str
    dof: float | None
    ar1: float
    global_loading: PerIndustry
    industry_loading: PerIndustry
    region_loading: PerIndustry
    industry_correlation: float | CorrelationMatrix
    region_correlation: float | CorrelationMatrix
    source: str = field(default="<dict>", compare=False, repr=False)
    _warned: set[tuple[str, str]] = field(default_factory=set, init=False, compare=False, repr=False)

    def loadings(self, industries: Sequence[str]) -> np.ndarray:
        """Factor loadings of a loan of each industry.

        Parameters
        ----------
        industries : sequence of str
            The book's industries.

        Returns
        -------
        ndarray of shape (n_industries, 3)
            Columns: global, industry and region loading.
        """
        loads = {"global_loading": self.global_loading, "industry_loading": self.industry_loading,
                 "region_loading": self.region_loading}
        _check_names(self, "industries", industries,
                     [(f"[factors] {key}", name) for key, p in loads.items() for name, _ in p.overrides])
        return np.column_stack([p.values(industries) for p in loads.values()])

    def correlation(self, industries: Sequence[str], regions: Sequence[str]) -> np.ndarray:
        """Correlation matrix Sigma of the factors Z = [global, industries..., regions...].

        Parameters
        ----------
        industries, regions : sequence of str
            The book's industries and regions.

        Returns
        -------
        ndarray of shape (K, K), K = 1 + n_industries + n_regions
            Block diagonal: 1 for the global factor, then the industry block and the region
            block. Names the matrix does not list are uncorrelated with the others.

        Raises
        ------
        ScenarioError
            If a common negative correlation is not positive semi-definite for this many
            names (it needs c >= -1 / (n - 1)), or a scenario name is a near-miss of a book name.
        """
        blocks = []
        for kind, key, spec, names in (("industries", "industry_correlation", self.industry_correlation, industries),
                                       ("regions", "region_correlation", self.region_correlation, regions)):
            if isinstance(spec, CorrelationMatrix):
                _check_names(self, kind, names, [(f"[factors] {key}.names", name) for name in spec.names])
            block = _correlation_block(spec, [str(name) for name in names])
            smallest = _smallest_eigenvalue(block)
            if smallest < -_TOL:
                raise ScenarioError(
                    f"{self.source}: [factors] {key} = {spec} is not a valid common correlation for "
                    f"{len(names)} {kind}: the matrix is not positive semi-definite (smallest eigenvalue "
                    f"{smallest:.6g}); use a value >= {-1 / (len(names) - 1):.6g}")
            blocks.append(block)
        n_ind, n_reg = len(industries), len(regions)
        sigma = np.eye(1 + n_ind + n_reg)
        sigma[1:1 + n_ind, 1:1 + n_ind] = blocks[0]
        sigma[1 + n_ind:, 1 + n_ind:] = blocks[1]
        return sigma

    def to_dict(self) -> dict[str, Any]:
        """Return the canonical ``[factors]`` table."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self) if f.compare}


@dataclass(frozen=True, kw_only=True)
class DelinquencySpec:
    """Delinquency state machine parameters (MODEL.md §3).

    Attributes
    ----------
    default_after : int
        Missed installments that make a default, 1..4.
    roll_rates, cure_rates : tuple of 3 floats
        Baseline monthly roll (M1->M2, M2->M3, M3->D) and cure (M_k -> C) rates.
    roll_sensitivity, cure_sensitivity : float
        lambda_roll and lambda_cure.
    prepayment_rate : float
        Monthly prepayment probability of a current loan.
    """

    default_after: int
    roll_rates: tuple[float, float, float]
    cure_rates: tuple[float, float, float]
    roll_sensitivity: float
    cure_sensitivity: float
    prepayment_rate: float

    def to_dict(self) -> dict[str, Any]:
        """Return the canonical ``[delinquency]`` table."""
        return {"default_after": self.default_after, "roll_rates": list(self.roll_rates),
                "cure_rates": list(self.cure_rates), "prepayment_rate": self.prepayment_rate,
                "sensitivities": {"roll": self.roll_sensitivity, "cure": self.cure_sensitivity}}


@dataclass(frozen=True, kw_only=True)
class RecoverySpec:
    """Recovery parameters (MODEL.md §4); see docs/scenarios.md for each field.

    ``discount_rate`` is an annual rate, or None to discount at each loan's own rate.
    """

    unsecured_mean: float
    dispersion: float
    lag_months: int
    cost: float
    pledge_haircut: float
    pledge_lag_months: int
    lgd_sensitivity: float
    discount_rate: float | None

    def to_dict(self) -> dict[str, Any]:
        """Return the canonical ``[recovery]`` table."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, kw_only=True)
class LayerSpec:
    """One credit enhancement layer, a ``[[layers]]`` table (MODEL.md §5).

    Layers act in scenario order; each takes part of the loss the layers before it left.
    Per loan and default, with ``base`` the remaining loss (times principal / EAD when
    ``basis = "principal"``), the claim is::

        quota_share:     share * base
        excess_of_loss:  share * min(limit, max(0, base - attachment))
        then:            min(claim, per_loan_limit, remaining loss)

    Claims use the aggregate ``capacity`` (and ``annual_cap``) in the default month, pro
    rata when a month's claims exceed what is left; the cash arrives ``lag_months`` later.
    None means unset (unlimited, no restriction).

    Attributes
    ----------
    name : str
        Unique among the scenario's layers; not "lender" (the retained loss in results).
    kind : {"quota_share", "excess_of_loss"}
    share : float
        In [0, 1].
    attachment : float
        CNY per loan, >= 0; always 0.0 for ``quota_share``.
    limit : float or None
        CNY per loan, > 0 and >= attachment: the width of the layer above the attachment
        (before ``share``); always None for ``quota_share``.
    basis : {"principal", "ead"}
        What the layer covers: the whole remaining loss (``ead``) or its principal part.
    per_loan_limit : float or None
        Cap of the layer's payout for one loan (after ``share``), CNY, > 0.
    capacity : float or None
        Aggregate payouts per path, CNY, >= 0 (0 pays nothing).
    topup_every_months : int or None
        Capacity is restored to ``capacity`` at the start of months 1 + n, 1 + 2n, ...
        (1..120; requires ``capacity``; excludes ``annual_cap``).
    annual_cap : float or None
        Payouts per 12-month block of the horizon (months 1-12, 13-24, ...), CNY, >= 0.
    lag_months : int
        Months from the default to the payout cash, 0..120.
    fee_rate : float
        Annual fee rate on the covered balance (provider income), in [0, 1].
    industries, regions : tuple of str or None
        Eligible industries / regions (sorted); None = all.
    borrower_types : tuple of str or None
        Eligible borrower types, a subset of ("enterprise", "individual"); None = all.
    max_balance : float or None
        Eligible loans have a balance (at the start) <= max_balance, CNY.
    failure_probability : float
        Probability that the provider fails within the horizon, in [0, 1); 0 = never.
    failure_sensitivity : float
        Loading of the provider's failure latent on the global factor, in [0, 1).
    """

    name: str
    kind: str
    share: float = 1.0
    attachment: float = 0.0
    limit: float | None = None
    basis: str = "ead"
    per_loan_limit: float | None = None
    capacity: float | None = None
    topup_every_months: int | None = None
    annual_cap: float | None = None
    lag_months: int = 0
    fee_rate: float = 0.0
    industries: tuple[str, ...] | None = None
    regions: tuple[str, ...] | None = None
    borrower_types: tuple[str, ...] | None = None
    max_balance: float | None = None
    failure_probability: float = 0.0
    failure_sensitivity: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return the canonical ``[[layers]]`` table (unset values as None).

        ``attachment`` and ``limit`` are left out of a ``quota_share`` layer, where they
        are not allowed.
        """
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "share": self.share}
        if self.kind == "excess_of_loss":
            out.update(attachment=self.attachment, limit=self.limit)
        out.update(
            basis=self.basis, per_loan_limit=self.per_loan_limit, capacity=self.capacity,
            topup_every_months=self.topup_every_months, annual_cap=self.annual_cap,
            lag_months=self.lag_months, fee_rate=self.fee_rate,
            eligibility={"industries": _plain(self.industries), "regions": _plain(self.regions),
                         "borrower_types": _plain(self.borrower_types), "max_balance": self.max_balance},
            counterparty={"failure_probability": self.failure_probability,
                          "sensitivity": self.failure_sensitivity})
        return out


# --------------------------------------------------------------------------- policy levers
#
# Each lever is one [policy.<lever>] table (MODEL.md §6); its keys are the spec's fields.
# Eligibility (industries, regions, borrower_types, max_balance) sits directly in the
# lever's table; None = no restriction. Industry and region names are not checked against
# a book here (the engine does that when it applies the lever). docs/policy.md states what
# each lever does to the model.


@dataclass(frozen=True, kw_only=True)
class LoanCapSpec:
    """``[policy.loan_cap]``: a cap per borrower type on a borrower's total exposure.

    Attributes
    ----------
    caps : tuple of (borrower_type, float) pairs
        Sorted by type; CNY > 0. A borrower type not listed is not capped.
    transition_months : int
        0..120. The excess of a borrower's exposure over its cap falls due at each loan's
        maturity or at the end of month ``transition_months``, whichever comes first;
        0 = at month 1.
    """

    caps: tuple[tuple[str, float], ...]
    transition_months: int = 0

    def cap(self, borrower_type: str) -> float | None:
        """The cap of a borrower type, CNY, or None if that type is not capped."""
        return dict(self.caps).get(borrower_type)

    def to_dict(self) -> dict[str, Any]:
        """Return the canonical ``[policy.loan_cap]`` table."""
        return {"caps": dict(self.caps), "transition_months": self.transition_months}


@dataclass(frozen=True, kw_only=True)
class DeferralSpec:
    """``[policy.deferral]``: payment holiday for eligible loans.

    Attributes
    ----------
    industries, regions : tuple of str or None
        Eligible industries / regions (sorted); None = all.
    borrower_types : tuple of str or None
        Subset of ("enterprise", "individual"); None = all.
    states : tuple of str
        Delinquency states (at ``start_month``) of the loans that get the deferral, a
        sorted subset of ("C", "M1", "M2", "M3"); default ("C", "M1").
    start_month : int
        First deferred horizon month, 1..120.
    months : int
        Length of the deferral, 0..24 (0 = no deferral).
    interest : {"accrued", "waived"}
        Interest of the deferred months is capitalised ("accrued") or forgiven ("waived").
    extend_term : bool
        Maturity moves out by ``months`` (True) or the remaining installments are
        re-amortised over the original remaining term (False: higher installments).
    """

    industries: tuple[str, ...] | None = None
    regions: tuple[str, ...] | None = None
    borrower_types: tuple[str, ...] | None = None
    states: tuple[str, ...] = ("C", "M1")
    start_month: int = 1
    months: int
    interest: str = "accrued"
    extend_term: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Return the canonical ``[policy.deferral]`` table (unset values as None)."""
        return _fields_dict(self)


@dataclass(frozen=True, kw_only=True)
class SubsidySpec:
    """``[policy.interest_subsidy]``: the state pays part of the interest of eligible loans.

    Attributes
    ----------
    points : float
        Annual rate points paid by the state, in (0, 0.2] (0.02 = 2 percentage points).
    industries, regions, borrower_types : tuple of str or None
        Eligibility as in :class:`DeferralSpec`; None = all.
    max_balance : float or None
        Eligible loans have a balance (at the start) <= max_balance, CNY.
    start_month : int
        First subsidised month, 1..120.
    months : int or None
        Number of subsidised months, 1..120; None = to the end of the horizon.
    """

    points: float
    industries: tuple[str, ...] | None = None
    regions: tuple[str, ...] | None = None
    borrower_types: tuple[str, ...] | None = None
    max_balance: float | None = None
    start_month: int = 1
    months: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the canonical ``[policy.interest_subsidy]`` table (unset values as None)."""
        return _fields_dict(self)


@dataclass(frozen=True, kw_only=True)
class RateCapSpec:
    """``[policy.rate_cap]``: loans above an annual rate are re-priced to it.

    Attributes
    ----------
    cap : float
        Annual rate, in (0, 1].
    from_month : int
        First horizon month at the capped rate, 1..120.
    """

    cap: float
    from_month: int = 1

    def to_dict(self) -> dict[str, Any]:
        """Return the canonical ``[policy.rate_cap]`` table."""
        return _fields_dict(self)


@dataclass(frozen=True, kw_only=True)
class RevenueSupportSpec:
    """``[policy.revenue_support]``: a revenue uplift (e.g. tax relief) for eligible loans.

    Attributes
    ----------
    uplift : Shock
        Same forms as a ``[shocks]`` value (constant, monthly list, ramp), each value in
        [0, 1] (0.05 = revenue 5% higher); expand it with :func:`shock_path`.
    industries, regions, borrower_types : tuple of str or None
        Eligibility as in :class:`DeferralSpec`; None = all.
    """

    uplift: Shock
    industries: tuple[str, ...] | None = None
    regions: tuple[str, ...] | None = None
    borrower_types: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the canonical ``[policy.revenue_support]`` table (unset values as None)."""
        return _fields_dict(self)


@dataclass(frozen=True, kw_only=True)
class SeasonalScheduleSpec:
    """``[policy.seasonal_schedule]``: installments follow the industry's seasonality.

    Attributes
    ----------
    industries : tuple of str or None
        Industries whose loans get seasonal schedules; None = every industry with
        ``[seasonality]`` (others are flat, so unaffected).
    """

    industries: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the canonical ``[policy.seasonal_schedule]`` table."""
        return _fields_dict(self)


@dataclass(frozen=True, kw_only=True)
class CollectionSpec:
    """``[policy.collection]``: the collection strategy, a recovery preset.

    ``strategy`` is one of :data:`COLLECTION_PRESETS`; its unsecured_mean, lag_months and
    cost replace those of ``[recovery]`` in :attr:`Scenario.recovery` (the preset wins).
    """

    strategy: str

    @property
    def preset(self) -> dict[str, float | int]:
        """The ``[recovery]`` values the strategy sets (a copy)."""
        return dict(COLLECTION_PRESETS[self.strategy])

    def to_dict(self) -> dict[str, Any]:
        """Return the canonical ``[policy.collection]`` table."""
        return {"strategy": self.strategy}


@dataclass(frozen=True, kw_only=True)
class PolicySpec:
    """The ``[policy.*]`` tables (MODEL.md §6): one spec per lever, None when absent.

    Attributes
    ----------
    loan_cap : LoanCapSpec or None
    deferral : DeferralSpec or None
    interest_subsidy : SubsidySpec or None
    rate_cap : RateCapSpec or None
    revenue_support : RevenueSupportSpec or None
    seasonal_schedule : SeasonalScheduleSpec or None
    collection : CollectionSpec or None
        Already reflected in :attr:`Scenario.recovery`; the engine needs not read it.
    """

    loan_cap: LoanCapSpec | None = None
    deferral: DeferralSpec | None = None
    interest_subsidy: SubsidySpec | None = None
    rate_cap: RateCapSpec | None = None
    revenue_support: RevenueSupportSpec | None = None
    seasonal_schedule: SeasonalScheduleSpec | None = None
    collection: CollectionSpec | None = None

    @property
    def active(self) -> tuple[str, ...]:
        """Names of the levers that are set, in :data:`POLICY_LEVERS` order."""
        return tuple(name for name in POLICY_LEVERS if getattr(self, name) is not None)

    def to_dict(self) -> dict[str, Any]:
        """Return the canonical ``[policy]`` table: the set levers only (absent ones left out)."""
        return {name: getattr(self, name).to_dict() for name in self.active}


# --------------------------------------------------------------------------- scenario


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """A validated stress scenario. Build it with :func:`load_scenario` or :meth:`from_dict`.

    Attributes
    ----------
    name, description : str
    horizon_months : int
        Months simulated, T in 1..120.
    start_month : int
        Calendar month (1..12) of horizon month 1.
    factors : FactorSpec
    cashflow_volatility : PerIndustry
        sigma_j, the log cash-flow volatility by industry.
    industry_shocks, region_shocks : tuple of (name, Shock) pairs, sorted by name
    seasonal_factors : tuple of (industry, 12 floats) pairs
        As written (January first); :meth:`seasonality` rescales them to mean 1.
    delinquency : DelinquencySpec
    recovery : RecoverySpec
    layers : tuple of LayerSpec
        Credit enhancement layers in order (MODEL.md §5); () = the lender keeps every loss.
    policy : PolicySpec
        Policy levers (MODEL.md §6); every lever None = no policy. A collection strategy
        is already applied to ``recovery`` (its preset overrides unsecured_mean,
        lag_months and cost).
    source : str
        The file path, or "<dict>"; not compared.
    text : str
        Raw text of the files read (parents first), each after a ``# --- file: path``
        line; "" for a dict without ``extends``. Not compared.
    """

    name: str
    description: str
    horizon_months: int
    start_month: int
    factors: FactorSpec
    cashflow_volatility: PerIndustry
    industry_shocks: tuple[tuple[str, Shock], ...]
    region_shocks: tuple[tuple[str, Shock], ...]
    seasonal_factors: tuple[tuple[str, tuple[float, ...]], ...]
    delinquency: DelinquencySpec
    recovery: RecoverySpec
    layers: tuple[LayerSpec, ...] = ()
    policy: PolicySpec = field(default_factory=PolicySpec)
    source: str = field(default="<dict>", compare=False)
    text: str = field(default="", compare=False, repr=False)
    _warned: set[tuple[str, str]] = field(default_factory=set, init=False, compare=False, repr=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>",
                  base_dir: Path | None = None, allowed_root: str | os.PathLike[str] | None = None) -> Scenario:
        """Validate a scenario given as a mapping (the parsed TOML document).

        Parameters
        ----------
        data : mapping
            Same keys as a scenario file.
        source : str
            Label used in error messages.
        base_dir : Path, optional
            Directory that a relative ``extends`` is resolved against (default: the
            current directory).
        allowed_root : path-like, optional
            Directory that every file of the ``extends`` chain must be inside (after
            resolving symlinks); default `base_dir`.

        Returns
        -------
        Scenario
        """
        if not isinstance(data, Mapping):
            raise ScenarioError(f"{source}: a scenario must be a table (mapping); got {reprlib.repr(data)}")
        base = Path.cwd() if base_dir is None else Path(base_dir)
        root = Path(base if allowed_root is None else allowed_root).resolve()
        layers = _extends_chain(data, source, None, base, [], root)
        default_name = "unnamed" if source == "<dict>" else Path(source).stem
        return _build(*_merge_layers(layers), source=source, default_name=default_name)

    def to_dict(self) -> dict[str, Any]:
        """Return the resolved, canonical configuration (JSON-able, every default filled in).

        ``Scenario.from_dict(s.to_dict()) == s``. Per-industry values are always in table
        form ``{"default": ...}``, sensitivities as ``{"roll", "cure"}``, an identity
        correlation as ``0.0``, unset options (``dof``, ``discount_rate``, a layer's
        ``capacity`` ...) as None, ``layers`` as a list of tables (see
        :meth:`LayerSpec.to_dict`) and ``policy`` as a table of the set levers only (see
        :meth:`PolicySpec.to_dict`; ``recovery`` holds the collection preset's values).
        """
        return {
            "name": self.name, "description": self.description,
            "horizon_months": self.horizon_months, "start_month": self.start_month,
            "factors": self.factors.to_dict(),
            "cashflow": {"volatility": self.cashflow_volatility.to_dict()},
            "shocks": {"industry": {name: _plain(s) for name, s in self.industry_shocks},
                       "region": {name: _plain(s) for name, s in self.region_shocks}},
            "seasonality": {name: list(values) for name, values in self.seasonal_factors},
            "delinquency": self.delinquency.to_dict(),
            "recovery": self.recovery.to_dict(),
            "layers": [layer.to_dict() for layer in self.layers],
            "policy": self.policy.to_dict(),
        }

    def to_json(self) -> str:
        """Return :meth:`to_dict` as compact JSON with sorted keys (for result attrs)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def with_overrides(self, overrides: Mapping[str, object]) -> Scenario:
        """Return a copy with values set at dotted key paths, validated again.

        Parameters
        ----------
        overrides : mapping of str to value
            E.g. ``{"factors.ar1": 0.5, "factors.industry_loading.retail": 0.35}``. Each value
            replaces what is at its path in :meth:`to_dict` (a table value replaces the whole
            table). An array element is addressed by its 0-based index, and an element of
            ``layers`` also by its name: ``"layers.0.capacity"`` or ``"layers.fund.capacity"``
            (a key of digits only is always an index). Policy values are addressed the
            same way: ``"policy.interest_subsidy.points"``; a key of an absent lever
            creates that lever (its other keys take their defaults, so its required keys
            must be among the overrides). Errors in an overridden value are reported with
            the file ``<overrides>``.

        Returns
        -------
        Scenario
            Same ``source`` and ``text`` as this one (store :meth:`to_json` for provenance).
        """
        data = self.to_dict()
        origins: dict[tuple[str, ...], str] = {}
        for dotted, value in overrides.items():
            keys = str(dotted).split(".")
            node: Any = data
            path: list[str] = []
            for depth, key in enumerate(keys):
                if isinstance(node, list):
                    key = str(_item_index(node, key, str(dotted), ".".join(keys[:depth])))
                path.append(key)
                if depth == len(keys) - 1:
                    if isinstance(node, list):
                        node[int(key)] = value
                    else:
                        node[key] = value
                    break
                node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
                if not isinstance(node, (dict, list)):
                    raise ScenarioError(f"<overrides>: cannot set '{dotted}': "
                                        f"'{'.'.join(keys[:depth + 1])}' is not a table")
            origins[tuple(path)] = "<overrides>"
        return _build(data, origins, self.text, source=self.source, default_name=self.name)

    def volatility(self, industries: Sequence[str]) -> np.ndarray:
        """Log cash-flow volatility sigma of each industry, ndarray of shape (n_industries,)."""
        _check_names(self, "industries", industries,
                     [("[cashflow] volatility", name) for name, _ in self.cashflow_volatility.overrides])
        return self.cashflow_volatility.values(industries)

    def revenue_shock(self, industries: Sequence[str], regions: Sequence[str]) -> np.ndarray:
        """Combined revenue shock s of each (industry, region) cell and horizon month.

        Returns
        -------
        ndarray of shape (n_industries, n_regions, horizon_months)
            Month 1 first; -0.3 means revenue 30% below normal.

        Notes
        -----
        ``1 + s = (1 + s_industry) * (1 + s_region)``; cells without a shock get 0.
        """
        _check_names(self, "industries", industries, [("[shocks.industry]", n) for n, _ in self.industry_shocks])
        _check_names(self, "regions", regions, [("[shocks.region]", n) for n, _ in self.region_shocks])
        ind = _shock_paths(self.industry_shocks, industries, self.horizon_months)
        reg = _shock_paths(self.region_shocks, regions, self.horizon_months)
        return (1.0 + ind[:, None, :]) * (1.0 + reg[None, :, :]) - 1.0

    def seasonality(self, industries: Sequence[str]) -> np.ndarray:
        """Seasonal revenue factor of each industry and horizon month.

        Returns
        -------
        ndarray of shape (n_industries, horizon_months)
            1.0 for industries without seasonality.

        Notes
        -----
        The 12 calendar-month factors are rescaled to mean 1; horizon month t uses calendar
        month ``(start_month - 1 + t - 1) % 12 + 1``.
        """
        _check_names(self, "industries", industries, [("[seasonality]", n) for n, _ in self.seasonal_factors])
        calendar = (self.start_month - 1 + np.arange(self.horizon_months)) % 12
        table = dict(self.seasonal_factors)
        out = np.ones((len(industries), self.horizon_months))
        for k, name in enumerate(industries):
            if str(name) in table:
                factors = np.asarray(table[str(name)])
                out[k] = (factors / factors.mean())[calendar]
        return out


def load_scenario(path: str | os.PathLike[str], *, allowed_root: str | os.PathLike[str] | None = None) -> Scenario:
    """Read, merge (``extends``) and validate a scenario file.

    Parameters
    ----------
    path : str or path-like
        A TOML scenario file.
    allowed_root : str or path-like, optional
        Directory that every parent file of the ``extends`` chain must be inside, after
        resolving symlinks; default the directory of `path`. A parent outside it is an
        error, so a scenario file cannot read files elsewhere (``/etc/...``, ``../..``).

    Returns
    -------
    Scenario
        ``name`` defaults to the file stem.

    Raises
    ------
    ScenarioError
        Missing file, TOML syntax error, bad ``extends`` chain or any invalid key or value.
    """
    path = Path(path)
    data, text = _read_toml(path)
    root = Path(path.parent if allowed_root is None else allowed_root).resolve()
    layers = _extends_chain(data, str(path), text, path.parent, [(path.resolve(), str(path))], root)
    return _build(*_merge_layers(layers), source=str(path), default_name=path.stem)


# --------------------------------------------------------------------------- helpers


def _correlation_block(spec: float | CorrelationMatrix, names: list[str]) -> np.ndarray:
    n = len(names)
    if not isinstance(spec, CorrelationMatrix):
        return np.full((n, n), spec) + (1.0 - spec) * np.eye(n)
    position = {name: k for k, name in enumerate(spec.names)}
    book = [k for k, name in enumerate(names) if name in position]
    given = [position[names[k]] for k in book]
    block = np.eye(n)
    block[np.ix_(book, book)] = np.asarray(spec.matrix)[np.ix_(given, given)]
    return block


def _smallest_eigenvalue(matrix: np.ndarray) -> float:
    return float(np.linalg.eigvalsh(matrix)[0]) if len(matrix) else 0.0


def _shock_paths(shocks: tuple[tuple[str, Shock], ...], names: Sequence[str], horizon: int) -> np.ndarray:
    """Shock of each name and month, ndarray of shape (n_names, horizon); 0 for unnamed ones."""
    table = dict(shocks)
    out = np.zeros((len(names), horizon))
    for k, name in enumerate(names):
        out[k] = shock_path(table.get(str(name), 0.0), horizon)
    return out


def _check_names(owner: FactorSpec | Scenario, kind: str, book: Sequence[str],
                 named: Iterable[tuple[str, str]]) -> None:
    """Raise on a scenario name that is a near-miss of a book name; warn once about the rest.

    ``named`` holds (key path, name) pairs; ``kind`` is "industries" or "regions".
    """
    known = [str(name) for name in book]
    absent = []
    for where, name in named:
        if name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=_NEAR_MISS)
        if close:
            raise ScenarioError(f"{owner.source}: {where}: '{name}' is not among the book's {kind}"
                                f"{did_you_mean(name, close)}")
        if (where, name) not in owner._warned:
            owner._warned.add((where, name))
            absent.append(f"'{name}' ({where})")
    if absent:
        warnings.warn(f"{owner.source}: {kind} absent from the book, ignored: {', '.join(absent)}",
                      StresslabWarning, stacklevel=3)


def _item_index(items: list[Any], key: str, dotted: str, where: str) -> int:
    """Position of an array element named in an override path: an index, or a layer's name."""
    if key.isascii() and key.isdigit():
        if int(key) < len(items):
            return int(key)
        raise ScenarioError(f"<overrides>: cannot set '{dotted}': '{where}' has {len(items)} items, so index "
                            f"{int(key)} is out of range; set '{where}' to replace the whole array")
    names = [str(item["name"]) for item in items if isinstance(item, Mapping) and "name" in item]
    for k, item in enumerate(items):
        if isinstance(item, Mapping) and item.get("name") == key:
            return k
    known = did_you_mean(key, names) or (f"; names: {', '.join(names)}" if names else "")
    raise ScenarioError(f"<overrides>: cannot set '{dotted}': '{where}' has no item named '{key}'{known}; "
                        f"use a 0-based index or an item's name")


_Layer = tuple[str, Mapping[str, Any], str | None]  # (file label, data without 'extends', raw text)


def _read_toml(path: Path) -> tuple[dict[str, Any], str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(f"{path}: scenario file not found") from None
    except (OSError, ValueError) as exc:  # ValueError: not UTF-8, or a NUL character in the path
        raise ScenarioError(f"{path}: cannot read scenario file: {exc}") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: invalid TOML: {exc}") from None
    except ValueError:  # tomllib's int() of a literal over sys.get_int_max_str_digits() digits
        raise ScenarioError(f"{path}: invalid TOML: an integer literal is too long "
                            f"(TOML integers are 64-bit: {_INT64[0]}..{_INT64[1]})") from None
    except RecursionError:
        raise ScenarioError(f"{path}: invalid TOML: arrays or inline tables are nested too deeply "
                            f"(a scenario needs at most {_MAX_DEPTH} levels)") from None


def _check_plain(data: Mapping[str, Any], label: str) -> None:
    """Refuse data nested deeper than _MAX_DEPTH (or cyclic) and integers outside 64 bits.

    Iterative, so that neither this walk nor the recursive merge after it can overflow the stack.
    """
    stack: list[tuple[tuple[str, ...], Any]] = [((), data)]
    while stack:
        path, value = stack.pop()
        where = ".".join(path) or "scenario"
        if isinstance(value, (Mapping, list, tuple)):
            if len(path) >= _MAX_DEPTH:
                raise ScenarioError(f"{label}: {'.'.join(path[:_MAX_DEPTH])} ... is nested more than "
                                    f"{_MAX_DEPTH} levels deep; a scenario's tables and arrays nest a few levels")
            items = value.items() if isinstance(value, Mapping) else enumerate(value)
            stack.extend((path + (str(key),), item) for key, item in items)
        elif isinstance(value, int) and not isinstance(value, bool) and not _INT64[0] <= value <= _INT64[1]:
            raise ScenarioError(f"{label}: {where} is an integer of {value.bit_length()} bits, outside the "
                                f"64-bit range of TOML integers, {_INT64[0]}..{_INT64[1]}")


def _extends_chain(data: Mapping[str, Any], label: str, text: str | None, base_dir: Path,
                   seen: list[tuple[Path, str]], root: Path) -> list[_Layer]:
    """Return the layers of ``data`` and its ``extends`` ancestors, root first.

    Every parent must resolve (symlinks followed) to a file inside the directory ``root``.
    """
    _check_plain(data, label)
    own = {key: value for key, value in data.items() if key != "extends"}
    if "extends" not in data:
        return [(label, own, text)]
    parent = data["extends"]
    if not isinstance(parent, str) or not parent:
        raise ScenarioError(f"{label}: extends must be the path of a parent scenario file, "
                            f"relative to this file; got {parent!r}")
    path = Path(os.path.normpath(base_dir / parent))
    try:
        resolved = path.resolve()
        is_file, exists = path.is_file(), path.exists()
    except (OSError, ValueError, RuntimeError) as exc:  # too long, NUL character, symlink loop ...
        raise ScenarioError(f"{label}: extends = {parent!r}: cannot use this path: {exc}") from None
    if not resolved.is_relative_to(root):
        raise ScenarioError(f"{label}: extends = {parent!r}: parent file {path} (resolved: {resolved}) is outside "
                            f"{root}; a parent scenario must be inside the directory of the scenario file loaded "
                            f"(or the allowed_root given)")
    if resolved in [done for done, _ in seen]:
        chain = " -> ".join([shown for _, shown in seen] + [str(path)])
        raise ScenarioError(f"{label}: extends cycle: {chain}")
    if not is_file:
        problem = "is not a file" if exists else "not found"
        raise ScenarioError(f"{label}: extends = {parent!r}: parent file {path} {problem}")
    parent_data, parent_text = _read_toml(path)
    chain = _extends_chain(parent_data, str(path), parent_text, path.parent, seen + [(resolved, str(path))], root)
    return chain + [(label, own, text)]


def _deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Tables merge key by key; arrays and scalars are replaced whole (MODEL.md §10)."""
    out = dict(base)
    for key, value in over.items():
        both_tables = isinstance(value, Mapping) and isinstance(out.get(key), Mapping)
        out[key] = _deep_merge(out[key], value) if both_tables else value
    return out


def _record_origins(data: Mapping[str, Any], label: str, prefix: tuple[str, ...],
                    origins: dict[tuple[str, ...], str]) -> None:
    for key, value in data.items():
        origins[prefix + (key,)] = label
        if isinstance(value, Mapping):
            _record_origins(value, label, prefix + (key,), origins)


def _merge_layers(layers: list[_Layer]) -> tuple[dict[str, Any], dict[tuple[str, ...], str], str]:
    """Return the merged data, the file that set each key path, and the files' text."""
    merged: dict[str, Any] = {}
    origins: dict[tuple[str, ...], str] = {}
    for label, data, _ in layers:
        merged = _deep_merge(merged, data)
        _record_origins(data, label, (), origins)
    text = "".join(f"# --- file: {label}\n{raw}" + ("" if raw.endswith("\n") else "\n")
                   for label, _, raw in layers if raw is not None)
    return merged, origins, text


def _build(data: Mapping[str, Any], origins: Mapping[tuple[str, ...], str], text: str, *,
           source: str, default_name: str) -> Scenario:
    """Validate merged data against the schema and assemble the Scenario."""
    cfg = _SCENARIO(data, _At((), origins, source))
    policy, recovery = cfg["policy"], cfg["recovery"]
    if policy.collection is not None:  # the strategy's preset wins over [recovery]
        recovery = dataclasses.replace(recovery, **COLLECTION_PRESETS[policy.collection.strategy])
    return Scenario(
        name=cfg["name"] or default_name, description=cfg["description"],
        horizon_months=cfg["horizon_months"], start_month=cfg["start_month"],
        factors=FactorSpec(**cfg["factors"], source=source),
        cashflow_volatility=cfg["cashflow"]["volatility"],
        industry_shocks=cfg["shocks"]["industry"], region_shocks=cfg["shocks"]["region"],
        seasonal_factors=cfg["seasonality"], delinquency=cfg["delinquency"],
        recovery=recovery, layers=cfg["layers"], policy=policy, source=source, text=text)


# --------------------------------------------------------------------------- schema machinery


@dataclass(frozen=True)
class _At:
    """Where a value sits: its key path, and which file set each path (for messages).

    ``tag`` is the name of the ``[[layers]]`` table the path is in, when known.
    """

    path: tuple[str, ...]
    origins: Mapping[tuple[str, ...], str]
    source: str
    tag: str = ""

    def __truediv__(self, key: object) -> _At:
        return _At(self.path + (str(key),), self.origins, self.source, self.tag)

    def item(self, index: int, tag: str) -> _At:
        """The element ``index`` of the array at this path, named ``tag`` ("" if unknown)."""
        return _At(self.path + (str(index),), self.origins, self.source, tag)

    @property
    def file(self) -> str:
        for n in range(len(self.path), 0, -1):
            if self.path[:n] in self.origins:
                return self.origins[self.path[:n]]
        return self.source

    @property
    def where(self) -> str:
        """``key``, ``[table] key``, ``[shocks.industry] name.key``, ``[policy.deferral] months``
        or ``[[layers]][1] (name = 'fund') eligibility.regions``."""
        if self.path[:1] == ("layers",) and len(self.path) > 1:
            head = f"[[layers]][{self.path[1]}]" + (f" (name = {self.tag!r})" if self.tag else "")
            return " ".join([head, ".".join(self.path[2:])]) if len(self.path) > 2 else head
        if len(self.path) <= 1:
            return self.path[0] if self.path else "scenario"
        n = 2 if self.path[0] in ("shocks", "policy") and len(self.path) > 2 else 1
        return f"[{'.'.join(self.path[:n])}] {'.'.join(self.path[n:])}"

    @property
    def table(self) -> str:
        """The table at this path, for unknown-key messages: ``[factors]``, ``[[layers]][0] ...``."""
        if self.path[:1] == ("layers",) and len(self.path) > 1:
            return self.where
        return f"[{'.'.join(self.path)}]"

    def error(self, message: str) -> ScenarioError:
        return ScenarioError(f"{self.file}: {self.where} {message}")

    def invalid(self, what: str, value: object) -> ScenarioError:
        return self.error(f"must be {what}; got {value!r}")


@dataclass(frozen=True)
class _Parser:
    """Validate a raw value at a key path and return its parsed form; ``what`` describes it."""

    what: str
    parse: Callable[[Any, _At], Any]

    def __call__(self, value: Any, at: _At) -> Any:
        return self.parse(value, at)


_REQUIRED = object()


@dataclass(frozen=True)
class _Key:
    parser: _Parser
    default: Any = _REQUIRED  # a raw value, parsed like a given one


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _interval(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if hi is None:
        return f"{'>' if lo_open else '>='} {lo:g}"
    return f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"


def _inside(x: float, lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> bool:
    above = lo is None or (x > lo if lo_open else x >= lo)
    below = hi is None or (x < hi if hi_open else x <= hi)
    return math.isfinite(x) and above and below


def _number(lo: float, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False) -> _Parser:
    what = f"a number {_interval(lo, hi, lo_open, hi_open)}"

    def parse(value: Any, at: _At) -> float:
        if not (_is_number(value) and _inside(float(value), lo, hi, lo_open, hi_open)):
            raise at.invalid(what, value)
        return float(value)
    return _Parser(what, parse)


def _numbers(length: int | None, lo: float, hi: float | None = None, *,
             lo_open: bool = False, hi_open: bool = False) -> _Parser:
    """A list of numbers in a range, of a given length (any length if None)."""
    count = "" if length is None else f"{length} "
    what = f"a list of {count}numbers {_interval(lo, hi, lo_open, hi_open)}"

    def parse(value: Any, at: _At) -> tuple[float, ...]:
        if not (isinstance(value, (list, tuple)) and (length is None or len(value) == length)
                and all(_is_number(x) and _inside(float(x), lo, hi, lo_open, hi_open) for x in value)):
            raise at.invalid(what, value)
        return tuple(float(x) for x in value)
    return _Parser(what, parse)


def _integer(lo: int, hi: int | None = None) -> _Parser:
    what = f"an integer in {lo}..{hi}" if hi is not None else f"an integer >= {lo}"

    def parse(value: Any, at: _At) -> int:
        if not (isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
                and lo <= value and (hi is None or value <= hi)):
            raise at.invalid(what, value)
        return int(value)
    return _Parser(what, parse)


def _text(*, empty: bool) -> _Parser:
    what = "a string" if empty else "a non-empty string"

    def parse(value: Any, at: _At) -> str:
        if not isinstance(value, str) or not (empty or value):
            raise at.invalid(what, value)
        return value
    return _Parser(what, parse)


def _choice(*options: str) -> _Parser:
    what = "one of " + ", ".join(repr(o) for o in options)

    def parse(value: Any, at: _At) -> str:
        if value not in options or not isinstance(value, str):
            hint = did_you_mean(value, options) if isinstance(value, str) else ""
            raise at.error(f"must be {what}; got {value!r}{hint}")
        return value
    return _Parser(what, parse)


def _subset(*options: str) -> _Parser:
    """A non-empty list of distinct values among ``options``; parsed to a sorted tuple."""
    what = "a non-empty list of distinct values among " + ", ".join(repr(o) for o in options)

    def parse(value: Any, at: _At) -> tuple[str, ...]:
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
            bad = [v for v in value if v not in options]
            if bad:
                raise at.error(f"must be {what}; got {value!r}: {bad[0]!r} is not allowed"
                               f"{did_you_mean(bad[0], options)}")
            if len(set(value)) == len(value):
                return tuple(sorted(value))
        raise at.invalid(what, value)
    return _Parser(what, parse)


def _boolean() -> _Parser:
    what = "true or false"

    def parse(value: Any, at: _At) -> bool:
        if not isinstance(value, (bool, np.bool_)):
            raise at.invalid(what, value)
        return bool(value)
    return _Parser(what, parse)


def _optional(parser: _Parser) -> _Parser:
    """None (only possible from a dict, TOML has no null) means unset."""
    return _Parser(f"{parser.what} (or unset)", lambda v, at: None if v is None else parser(v, at))


def _union(what: str, *, number: Callable[[Any, _At], Any], table: Callable[[Any, _At], Any] | None = None,
           array: Callable[[Any, _At], Any] | None = None) -> _Parser:
    """A value that may be a number, a table or a list, each parsed its own way."""
    def parse(value: Any, at: _At) -> Any:
        if isinstance(value, Mapping) and table is not None:
            return table(value, at)
        if isinstance(value, (list, tuple)) and array is not None:
            return array(value, at)
        if _is_number(value):
            return number(value, at)
        raise at.invalid(what, value)
    return _Parser(what, parse)


def _table(keys: Mapping[str, _Key], *, check: Callable[[dict[str, Any], _At], None] | None = None,
           build: Callable[..., Any] | None = None) -> _Parser:
    """A table with known keys: unknown keys are errors, missing ones take their default."""
    def parse(value: Any, at: _At) -> Any:
        if not isinstance(value, Mapping):
            raise at.invalid("a table", value)
        for key in value:
            if key not in keys:
                hint = did_you_mean(key, keys) or f"; allowed: {', '.join(keys)}"
                place = f"key {at.table} '{key}'" if at.path else f"top-level key '{key}'"
                raise ScenarioError(f"{(at / key).file}: unknown {place}{hint}")
        out = {}
        for key, spec in keys.items():
            if key in value:
                out[key] = spec.parser(value[key], at / key)
            elif spec.default is _REQUIRED:
                raise (at / key).error(f"is required: {spec.parser.what}")
            else:
                out[key] = spec.parser(spec.default, at / key)
        if check is not None:
            check(out, at)
        return out if build is None else build(**out)
    return _Parser("a table", parse)


def _by_name(item: _Parser) -> _Parser:
    """A table from industry or region names to values; parsed to sorted (name, value) pairs."""
    what = f"a table mapping names to {item.what}"

    def parse(value: Any, at: _At) -> tuple[tuple[str, Any], ...]:
        if not isinstance(value, Mapping):
            raise at.invalid(what, value)
        return tuple(sorted((str(name), item(v, at / name)) for name, v in value.items()))
    return _Parser(what, parse)


def _per_industry(number: _Parser, default: float) -> _Key:
    """A number, or a table of numbers by industry with an optional ``default`` key."""
    def table(value: Mapping[str, Any], at: _At) -> PerIndustry:
        overrides = tuple(sorted((str(k), number(v, at / k)) for k, v in value.items() if k != "default"))
        return PerIndustry(default=number(value.get("default", default), at / "default"), overrides=overrides)

    what = f"{number.what}, or a table of them by industry with an optional 'default'"
    return _Key(_union(what, number=lambda v, at: PerIndustry(default=number(v, at)), table=table), default)


def _names(value: Any, at: _At) -> tuple[str, ...]:
    if not (isinstance(value, (list, tuple)) and value and all(isinstance(v, str) and v for v in value)
            and len(set(value)) == len(value)):
        raise at.invalid("a non-empty list of distinct names", value)
    return tuple(value)


_ROW = _numbers(None, -1, 1)


def _rows(value: Any, at: _At) -> tuple[tuple[float, ...], ...]:
    if not isinstance(value, (list, tuple)):
        raise at.invalid("a list of rows of numbers in [-1, 1]", value)
    return tuple(_ROW(row, at / k) for k, row in enumerate(value))


# --------------------------------------------------------------------------- schema checks


def _check_ramp(ramp: dict[str, Any], at: _At) -> None:
    if not ramp["start"] <= ramp["trough_month"] <= ramp["recovery_month"]:
        raise at.error(f"must have start <= trough_month <= recovery_month; got start = {ramp['start']}, "
                       f"trough_month = {ramp['trough_month']}, recovery_month = {ramp['recovery_month']}")


def _check_correlation(corr: dict[str, Any], at: _At) -> None:
    n, rows = len(corr["names"]), corr["matrix"]
    if len(rows) != n or any(len(row) != n for row in rows):
        shape = f"{len(rows)} rows of lengths {[len(row) for row in rows]}"
        raise (at / "matrix").error(f"must be a {n} x {n} matrix, one row and column per name; got {shape}")
    matrix = np.array(rows, dtype=float).reshape(n, n)
    i, j = np.unravel_index(np.argmax(np.abs(matrix - matrix.T)), matrix.shape)
    if abs(matrix[i, j] - matrix[j, i]) > _TOL:
        raise (at / "matrix").error(f"must be symmetric; got matrix[{i}][{j}] = {matrix[i, j]} "
                                    f"but matrix[{j}][{i}] = {matrix[j, i]}")
    diagonal = np.diag(matrix)
    if np.any(np.abs(diagonal - 1.0) > _TOL):
        raise (at / "matrix").error(f"must have 1 on the diagonal; got diagonal {diagonal.tolist()}")
    smallest = _smallest_eigenvalue(matrix)
    if smallest < -_TOL:
        raise (at / "matrix").error(f"must be positive semi-definite; its smallest eigenvalue is "
                                    f"{smallest:.6g} (matrix {[list(r) for r in rows]})")


def _check_factors(factors: dict[str, Any], at: _At) -> None:
    if factors["copula"] == "t" and factors["dof"] is None:
        raise (at / "dof").error("is required when copula = 't': a number > 2")
    if factors["copula"] == "gaussian" and factors["dof"] is not None:
        raise (at / "dof").error(f"must not be set when copula = 'gaussian' (it is the Student-t "
                                 f"degrees of freedom); got {factors['dof']!r}")
    loads = [factors[key] for key in ("global_loading", "industry_loading", "region_loading")]
    industries = sorted({name for p in loads for name, _ in p.overrides})
    for industry in [None, *industries]:
        g, i, r = (dict(p.overrides).get(industry, p.default) for p in loads)
        rho = g * g + i * i + r * r
        if rho >= 1.0:
            whose = "the default loadings" if industry is None else f"industry '{industry}'"
            raise ScenarioError(f"{at.file}: [factors] loadings of {whose} give a systematic variance "
                                f"rho = {g:g}^2 + {i:g}^2 + {r:g}^2 = {rho:.6g}; it must be < 1")


def _check_delinquency(delinquency: dict[str, Any], at: _At) -> None:
    for k, (roll, cure) in enumerate(zip(delinquency["roll_rates"], delinquency["cure_rates"])):
        if roll + cure > 1.0 + 1e-12:
            raise ScenarioError(f"{at.file}: [delinquency] roll_rates[{k}] + cure_rates[{k}] (leaving M{k + 1}) "
                                f"must be <= 1; got {roll:g} + {cure:g} = {roll + cure:.6g}")


def _check_scenario(scenario: dict[str, Any], at: _At) -> None:
    horizon = scenario["horizon_months"]
    for kind in ("industry", "region"):
        for name, shock in scenario["shocks"][kind]:
            if isinstance(shock, tuple) and len(shock) > horizon:
                raise (at / "shocks" / kind / name).error(
                    f"has {len(shock)} monthly values but horizon_months = {horizon}; give at most {horizon}")
    _check_policy_horizon(scenario["policy"], horizon, at / "policy")


def _check_policy_horizon(policy: PolicySpec, horizon: int, at: _At) -> None:
    """Levers must start within the horizon; a monthly uplift list must fit in it."""
    starts = [("deferral", "start_month"), ("interest_subsidy", "start_month"), ("rate_cap", "from_month")]
    for lever, key in starts:
        spec = getattr(policy, lever)
        if spec is not None and getattr(spec, key) > horizon:
            raise (at / lever / key).error(
                f"must be within the horizon, 1..{horizon} (horizon_months = {horizon}): the lever would never "
                f"act; got {getattr(spec, key)}")
    support = policy.revenue_support
    if support is not None and isinstance(support.uplift, tuple) and len(support.uplift) > horizon:
        raise (at / "revenue_support" / "uplift").error(
            f"has {len(support.uplift)} monthly values but horizon_months = {horizon}; give at most {horizon}")


def _check_layer(layer: dict[str, Any], at: _At) -> None:
    kind = layer["kind"]
    if kind != "excess_of_loss":
        for key in ("attachment", "limit"):
            if layer[key] is not None:
                raise (at / key).error(f"is only allowed when kind = 'excess_of_loss', not for kind = {kind!r} "
                                       f"(a quota share has no attachment or limit); got {layer[key]!r}")
    attachment, limit = layer["attachment"], layer["limit"]
    if attachment is not None and limit is not None and attachment > limit:
        raise (at / "attachment").error(
            f"must be <= limit (the layer pays share * min(limit, max(0, loss - attachment)) per loan); "
            f"got attachment = {attachment:g}, limit = {limit:g}")
    topup = layer["topup_every_months"]
    if topup is not None and layer["annual_cap"] is not None:
        raise (at / "topup_every_months").error(
            f"and annual_cap are mutually exclusive (two ways of renewing the capacity); "
            f"got topup_every_months = {topup}, annual_cap = {layer['annual_cap']:g}")
    if topup is not None and layer["capacity"] is None:
        raise (at / "topup_every_months").error(
            f"requires capacity (the amount it refills to: a number >= 0); got topup_every_months = {topup} "
            f"with capacity unset")


def _layer_spec(*, attachment: float | None, eligibility: dict[str, Any], counterparty: dict[str, Any],
                **rest: Any) -> LayerSpec:
    return LayerSpec(attachment=0.0 if attachment is None else attachment, **eligibility,
                     failure_probability=counterparty["failure_probability"],
                     failure_sensitivity=counterparty["sensitivity"], **rest)


def _layers(value: Any, at: _At) -> tuple[LayerSpec, ...]:
    """The ``[[layers]]`` array: a list of layer tables with unique names."""
    if not isinstance(value, (list, tuple)):
        raise at.invalid("a list of tables ([[layers]])", value)
    specs: list[LayerSpec] = []
    first: dict[str, int] = {}
    for k, item in enumerate(value):
        name = item.get("name") if isinstance(item, Mapping) else None
        item_at = at.item(k, name if isinstance(name, str) else "")
        spec = _LAYER(item, item_at)
        if spec.name == RESERVED_LAYER_NAME:
            raise (item_at / "name").error(
                f"must not be {RESERVED_LAYER_NAME!r}: results use it for the party that keeps what no layer pays")
        if spec.name in first:
            raise (item_at / "name").error(
                f"{spec.name!r} is also the name of [[layers]][{first[spec.name]}]; layer names must be unique")
        first[spec.name] = k
        specs.append(spec)
    return tuple(specs)


def _caps(value: Any, at: _At) -> tuple[tuple[str, float], ...]:
    """``[policy.loan_cap] caps``: borrower type -> CNY > 0, at least one type."""
    if not isinstance(value, Mapping) or not value:
        raise at.invalid(_CAPS_WHAT, value)
    for name in value:
        if name not in BORROWER_TYPES:
            allowed = ", ".join(repr(t) for t in BORROWER_TYPES)
            raise at.error(f"has an unknown borrower type {name!r}{did_you_mean(str(name), BORROWER_TYPES)}; "
                           f"allowed: {allowed}")
    return tuple(sorted((str(name), _CAP(v, at / name)) for name, v in value.items()))


def _policy(value: Any, at: _At) -> PolicySpec:
    """The ``[policy]`` table: one sub-table per lever; unknown levers are errors."""
    if not isinstance(value, Mapping):
        raise at.invalid(_POLICY_WHAT, value)
    for name in value:
        if name not in _LEVERS:
            hint = did_you_mean(str(name), _LEVERS)
            raise ScenarioError(f"{(at / name).file}: unknown policy lever [policy.{name}]{hint}; "
                                f"levers: {', '.join(_LEVERS)}")
    return PolicySpec(**{name: parser(value[name], at / name)
                         for name, parser in _LEVERS.items() if value.get(name) is not None})


def _delinquency_spec(*, sensitivities: tuple[float, float], **rest: Any) -> DelinquencySpec:
    return DelinquencySpec(roll_sensitivity=sensitivities[0], cure_sensitivity=sensitivities[1], **rest)


# --------------------------------------------------------------------------- the schema


_LOADING = _number(0, 1, hi_open=True)
_CORRELATION = _union(
    "a number in (-1, 1) (every pair of names) or a table {names = [...], matrix = [[...], ...]}",
    number=_number(-1, 1, lo_open=True, hi_open=True),
    table=_table({"names": _Key(_Parser("a non-empty list of distinct names", _names)),
                  "matrix": _Key(_Parser("a list of rows of numbers in [-1, 1]", _rows))},
                 check=_check_correlation, build=CorrelationMatrix))
_SHOCK_VALUE = _number(-1, 10, lo_open=True)
_SHOCK = _union(
    "a number in (-1, 10], a list of them by month, or a ramp table {start, trough, trough_month, recovery_month}",
    number=_SHOCK_VALUE, array=_numbers(None, -1, 10, lo_open=True),
    table=_table({"start": _Key(_integer(1)), "trough": _Key(_SHOCK_VALUE),
                  "trough_month": _Key(_integer(1)), "recovery_month": _Key(_integer(1))},
                 check=_check_ramp, build=ShockRamp))
_SENSITIVITY = _number(0, 10)
_FACTORS = {
    "copula": _Key(_choice("gaussian", "t"), "gaussian"),
    "dof": _Key(_optional(_number(2, lo_open=True)), None),
    "global_loading": _per_industry(_LOADING, 0.25),
    "industry_loading": _per_industry(_LOADING, 0.25),
    "region_loading": _per_industry(_LOADING, 0.15),
    "ar1": _Key(_number(0, 1), 0.9),
    "industry_correlation": _Key(_CORRELATION, 0.0),
    "region_correlation": _Key(_CORRELATION, 0.0),
}
_CASHFLOW = {"volatility": _per_industry(_number(0, lo_open=True), 0.35)}
_SHOCKS = {"industry": _Key(_by_name(_SHOCK), {}), "region": _Key(_by_name(_SHOCK), {})}
_DELINQUENCY = {
    "default_after": _Key(_integer(1, 4), 4),
    "roll_rates": _Key(_numbers(3, 0, 1, lo_open=True, hi_open=True), [0.35, 0.55, 0.75]),
    "cure_rates": _Key(_numbers(3, 0, 1, hi_open=True), [0.30, 0.15, 0.08]),
    "sensitivities": _Key(_union(
        "a number in [0, 10] (roll and cure) or a table {roll, cure}",
        number=lambda v, at: (_SENSITIVITY(v, at),) * 2,
        table=_table({"roll": _Key(_SENSITIVITY, 1.0), "cure": _Key(_SENSITIVITY, 1.0)},
                     build=lambda roll, cure: (roll, cure))), 1.0),
    "prepayment_rate": _Key(_number(0, 1, hi_open=True), 0.0),
}
_RECOVERY = {
    "unsecured_mean": _Key(_number(0, 1), 0.25),
    "dispersion": _Key(_number(0, 1, hi_open=True), 0.2),
    "lag_months": _Key(_integer(0, MAX_HORIZON), 6),
    "cost": _Key(_number(0, 1, hi_open=True), 0.1),
    "pledge_haircut": _Key(_number(0, 1), 0.3),
    "pledge_lag_months": _Key(_integer(0, MAX_HORIZON), 3),
    "lgd_sensitivity": _Key(_number(0, 10), 1.0),
    "discount_rate": _Key(_optional(_number(0, 1)), None),
}
_NAME_LIST = _optional(_Parser("a non-empty list of distinct names", lambda v, at: tuple(sorted(_names(v, at)))))
_ELIGIBILITY = {
    "industries": _Key(_NAME_LIST, None),
    "regions": _Key(_NAME_LIST, None),
    "borrower_types": _Key(_optional(_subset(*BORROWER_TYPES)), None),
    "max_balance": _Key(_optional(_number(0, lo_open=True)), None),
}
_COUNTERPARTY = {
    "failure_probability": _Key(_number(0, 1, hi_open=True), 0.0),
    "sensitivity": _Key(_number(0, 1, hi_open=True), 0.0),
}
_AMOUNT = _optional(_number(0))
_LAYER = _table({
    "name": _Key(_text(empty=False)),
    "kind": _Key(_choice(*LAYER_KINDS)),
    "share": _Key(_number(0, 1), 1.0),
    "attachment": _Key(_AMOUNT, None),  # None: not given (0.0 for excess_of_loss)
    "limit": _Key(_optional(_number(0, lo_open=True)), None),
    "basis": _Key(_choice(*LAYER_BASES), "ead"),
    "per_loan_limit": _Key(_optional(_number(0, lo_open=True)), None),
    "capacity": _Key(_AMOUNT, None),
    "topup_every_months": _Key(_optional(_integer(1, MAX_HORIZON)), None),
    "annual_cap": _Key(_AMOUNT, None),
    "lag_months": _Key(_integer(0, MAX_HORIZON), 0),
    "fee_rate": _Key(_number(0, 1), 0.0),
    "eligibility": _Key(_table(_ELIGIBILITY), {}),
    "counterparty": _Key(_table(_COUNTERPARTY), {}),
}, check=_check_layer, build=_layer_spec)
_CAP = _number(0, lo_open=True)
_CAPS_WHAT = "a non-empty table mapping borrower types ('enterprise', 'individual') to CNY amounts > 0"
_POLICY_WHAT = "a table of policy levers ([policy.<lever>] tables)"
_POLICY_MONTH = _integer(1, MAX_HORIZON)
_POLICY_ELIGIBILITY = {
    "industries": _Key(_NAME_LIST, None),
    "regions": _Key(_NAME_LIST, None),
    "borrower_types": _Key(_optional(_subset(*BORROWER_TYPES)), None),
}
_UPLIFT_VALUE = _number(0, 1)
_UPLIFT = _union(
    "a number in [0, 1], a list of them by month, or a ramp table {start, trough, trough_month, recovery_month} "
    "(trough = the peak uplift)",
    number=_UPLIFT_VALUE, array=_numbers(None, 0, 1),
    table=_table({"start": _Key(_integer(1)), "trough": _Key(_UPLIFT_VALUE),
                  "trough_month": _Key(_integer(1)), "recovery_month": _Key(_integer(1))},
                 check=_check_ramp, build=ShockRamp))
_LEVERS: dict[str, _Parser] = {
    "loan_cap": _table({
        "caps": _Key(_Parser(_CAPS_WHAT, _caps)),
        "transition_months": _Key(_integer(0, MAX_HORIZON), 0),
    }, build=LoanCapSpec),
    "deferral": _table({
        **_POLICY_ELIGIBILITY,
        "states": _Key(_subset(*STATES), ["C", "M1"]),
        "start_month": _Key(_POLICY_MONTH, 1),
        "months": _Key(_integer(0, MAX_DEFERRAL_MONTHS)),
        "interest": _Key(_choice(*DEFERRAL_INTEREST), "accrued"),
        "extend_term": _Key(_boolean(), True),
    }, build=DeferralSpec),
    "interest_subsidy": _table({
        "points": _Key(_number(0, 0.2, lo_open=True)),
        **_POLICY_ELIGIBILITY,
        "max_balance": _Key(_optional(_number(0, lo_open=True)), None),
        "start_month": _Key(_POLICY_MONTH, 1),
        "months": _Key(_optional(_POLICY_MONTH), None),
    }, build=SubsidySpec),
    "rate_cap": _table({
        "cap": _Key(_number(0, 1, lo_open=True)),
        "from_month": _Key(_POLICY_MONTH, 1),
    }, build=RateCapSpec),
    "revenue_support": _table({"uplift": _Key(_UPLIFT), **_POLICY_ELIGIBILITY}, build=RevenueSupportSpec),
    "seasonal_schedule": _table({"industries": _Key(_NAME_LIST, None)}, build=SeasonalScheduleSpec),
    "collection": _table({"strategy": _Key(_choice(*COLLECTION_PRESETS))}, build=CollectionSpec),
}
assert tuple(_LEVERS) == POLICY_LEVERS
_SCENARIO = _table({
    "name": _Key(_optional(_text(empty=False)), None),
    "description": _Key(_text(empty=True), ""),
    "horizon_months": _Key(_integer(1, MAX_HORIZON)),
    "start_month": _Key(_integer(1, 12), 1),
    "factors": _Key(_table(_FACTORS, check=_check_factors), {}),
    "cashflow": _Key(_table(_CASHFLOW), {}),
    "shocks": _Key(_table(_SHOCKS), {}),
    "seasonality": _Key(_by_name(_numbers(12, 0, lo_open=True)), {}),
    "delinquency": _Key(_table(_DELINQUENCY, check=_check_delinquency, build=_delinquency_spec), {}),
    "recovery": _Key(_table(_RECOVERY, build=RecoverySpec), {}),
    "layers": _Key(_Parser("a list of tables ([[layers]])", _layers), []),
    "policy": _Key(_Parser(_POLICY_WHAT, _policy), {}),
}, check=_check_scenario)
