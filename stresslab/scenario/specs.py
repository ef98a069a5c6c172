"""The frozen spec dataclasses a :class:`~stresslab.scenario.scenario.Scenario` is made of.

Value types (:class:`PerIndustry`, :class:`CorrelationMatrix`, :class:`ShockRamp`,
:data:`Shock` and :func:`shock_path`), the model specs (:class:`FactorSpec`,
:class:`DelinquencySpec`, :class:`RecoverySpec`, :class:`LayerSpec`), the policy lever
specs gathered in :class:`PolicySpec`, and the constants they are checked against
(:data:`LAYER_KINDS`, :data:`POLICY_LEVERS`, :data:`COLLECTION_PRESETS` ...). They are
built by :mod:`stresslab.scenario.scenario`, which validates the TOML keys and re-exports every
public name here. :func:`to_table` writes any of them back as the canonical table the
schema reads, driven by the field metadata below (:data:`TABLE_METADATA`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stresslab.errors import ScenarioError

__all__ = [
    "FactorSpec",
    "InnovationMean",
    "DelinquencySpec",
    "CalibrationReference",
    "RecoverySpec",
    "LayerSpec",
    "LAYER_KINDS",
    "LAYER_BASES",
    "PerIndustry",
    "CorrelationMatrix",
    "ShockRamp",
    "FundingSpec",
    "CapitalSpec",
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
    "to_table",
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
_TOL = 1e-10  # symmetry, unit diagonal and PSD tolerance of correlation matrices


# --------------------------------------------------------------------------- value types


@dataclass(frozen=True, kw_only=True)
class PerIndustry:
    """A number per industry: a default and per-industry overrides (sorted by name)."""

    default: float
    overrides: tuple[tuple[str, float], ...] = field(default=(), metadata={"pairs": True, "inline": True})

    def values(self, industries: Sequence[str]) -> np.ndarray:
        """Return the value of each industry, ndarray of shape (n_industries,)."""
        table = dict(self.overrides)
        return np.array([table.get(str(name), self.default) for name in industries], dtype=float)


@dataclass(frozen=True, kw_only=True)
class CorrelationMatrix:
    """An explicit correlation matrix among named industries (or regions)."""

    names: tuple[str, ...]
    matrix: tuple[tuple[float, ...], ...]


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


# --------------------------------------------------------------------------- the canonical table

TABLE_METADATA = {
    "key": "the dotted TOML key path of the field in its spec's table, when it is not the field name",
    "written": "False: never written (file labels, raw text); a callable spec -> bool: written when true",
    "pairs": "True: a tuple of (name, value) pairs, written as a table {name: value, ...}",
    "inline": "True (with pairs): the pairs are written into the spec's own table, not under a key",
    "omit_none": "True: left out when None (an absent policy lever)",
    "attribute": "the attribute (e.g. a property) whose value is written in place of the field's",
}
"""Field metadata :func:`to_table` reads, and what each entry means. Fields whose name starts
with ``_`` are internal state (caches) and never written."""

_NOT_WRITTEN = {"written": False}


def to_table(spec: Any) -> dict[str, Any]:
    """Return the canonical table of a spec: what the schema (``keys.py``) reads back into an equal spec.

    Parameters
    ----------
    spec : dataclass instance
        A :class:`~stresslab.scenario.scenario.Scenario` or one of the specs and value types here.

    Returns
    -------
    dict
        JSON-able: each written field under its TOML key (the field name unless the
        field's ``metadata["key"]`` says otherwise), nested specs as tables, tuples as lists.

    Notes
    -----
    The field metadata (:data:`TABLE_METADATA`) makes the schema's TOML form from the
    fields: a new key is one field here, written under its name, and one ``_Key`` in
    ``keys.py``. Unknown metadata entries are errors (a typo must not silently drop a rule).
    """
    out: dict[str, Any] = {}
    for f in dataclasses.fields(spec):
        meta = f.metadata
        unknown = set(meta) - set(TABLE_METADATA)
        if unknown:
            raise TypeError(f"{type(spec).__name__}.{f.name}: unknown field metadata {sorted(unknown)}; "
                            f"known: {', '.join(TABLE_METADATA)}")
        written = meta.get("written", True)
        if f.name.startswith("_") or written is False or (callable(written) and not written(spec)):
            continue
        value = getattr(spec, meta.get("attribute", f.name))
        if value is None and meta.get("omit_none", False):
            continue
        *tables, key = meta.get("key", f.name).split(".")
        node = out
        for table in tables:
            node = node.setdefault(table, {})
        if not meta.get("pairs", False):
            node[key] = _plain(value)
        elif meta.get("inline", False):
            node.update((name, _plain(item)) for name, item in value)
        else:
            node[key] = {name: _plain(item) for name, item in value}
    return out


def _plain(value: Any) -> Any:
    """JSON-able form of a parsed value: specs as their :func:`to_table`, tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_table(value)
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True, kw_only=True)
class InnovationMean:
    """Mean of the standardised factor innovations eta_t, t = 0..T (``[factors.innovation_mean]``).

    Under the model eta_t ~ N(0, I) (MODEL.md §1); with this table eta_t ~ N(m_t, I): a
    stress path of the factors with the model's own noise around it (the scenario a reverse
    stress test writes, docs/reverse_stress.md). Entry 0 of each list is the mean of the
    start innovation (Z_0 = A eta_0), entry t that of month t; months not listed are 0.

    Attributes
    ----------
    global_ : tuple of float
        m_t of the global factor (TOML key ``global``).
    industry, region : tuple of (name, tuple of float) pairs, sorted by name
        m_t of each industry and region factor named.
    """

    global_: tuple[float, ...] = field(default=(), metadata={"key": "global"})
    industry: tuple[tuple[str, tuple[float, ...]], ...] = field(default=(), metadata={"pairs": True})
    region: tuple[tuple[str, tuple[float, ...]], ...] = field(default=(), metadata={"pairs": True})

    def matrix(self, industries: Sequence[str], regions: Sequence[str], horizon_months: int) -> np.ndarray:
        """The means as an array in the kernel's factor order.

        Parameters
        ----------
        industries, regions : sequence of str
            The book's names (already bound: names not in the book are left out).
        horizon_months : int
            T.

        Returns
        -------
        ndarray of shape (T + 1, K), K = 1 + n_industries + n_regions
            Row t: the mean of eta_t for [global, industries..., regions...].
        """
        out = np.zeros((horizon_months + 1, 1 + len(industries) + len(regions)))
        columns = [(0, self.global_)]
        columns += [(1 + list(industries).index(n), v) for n, v in self.industry if n in industries]
        columns += [(1 + len(industries) + list(regions).index(n), v) for n, v in self.region if n in regions]
        for k, values in columns:
            out[: len(values), k] = values
        return out


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
    innovation_mean : InnovationMean or None
        A mean path of the factor innovations (None: mean 0, the model's own law).
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
    innovation_mean: InnovationMean | None = field(default=None, metadata={"omit_none": True})
    source: str = field(default="<dict>", compare=False, repr=False, metadata=_NOT_WRITTEN)

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
        Monthly prepayment probability of a paying current loan (unconditional).
    cycle_sensitivity : float
        kappa: scales the loading of the delinquent states' latent on the loan's systematic
        index (their cycle response relative to the current state's); kappa^2 rho < 1.
    """

    default_after: int
    roll_rates: tuple[float, float, float]
    cure_rates: tuple[float, float, float]
    prepayment_rate: float
    roll_sensitivity: float = field(metadata={"key": "sensitivities.roll"})
    cure_sensitivity: float = field(metadata={"key": "sensitivities.cure"})
    cycle_sensitivity: float = 1.0


@dataclass(frozen=True, kw_only=True)
class CalibrationReference:
    """What the book's PDs were measured under: the reference's chain and seasonality (MODEL.md §2).

    Attributes
    ----------
    delinquency : DelinquencySpec
        Roll and cure rates, default_after, sensitivities and prepayment of the reference
        (its ``cycle_sensitivity`` is not used: the cycle response is the scenario's own).
    seasonal_factors : tuple of (industry, 12 floats) pairs
        The reference's seasonality, as written.
    """

    delinquency: DelinquencySpec
    seasonal_factors: tuple[tuple[str, tuple[float, ...]], ...] = field(
        default=(), metadata={"key": "seasonality", "pairs": True})


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
    cycle_sensitivity: float = 1.0


ALLOWANCE_MODES = ("off", "point_in_time", "through_the_cycle")


@dataclass(frozen=True, kw_only=True)
class IFRS9Spec:
    """``[ifrs9]``: what a run records of IFRS 9 provisions (docs/ifrs9.md).

    ``allowance``: "off" (the default: stage balances and transitions only), or the loss
    allowance by stage at every year end of every path, "point_in_time" (conditional on
    the path's systematic index that month) or "through_the_cycle" (averaged over it).
    """

    allowance: str = "off"


CREDIT_COST_BASES = ("net_loss", "ifrs9")
"""``[capital] credit_cost``: the net loss booked, or the IFRS 9 impairment net of enhancements (docs/capital.md)."""


RISK_WEIGHT_APPROACHES = ("standardised",)
"""``[capital] risk_weights``: only the Basel standardised weights are built (docs/capital.md)."""


STANDARDISED_RISK_WEIGHTS = {"individual": 0.75, "enterprise": 1.00}
"""Basel standardised risk weights by borrower type: regulatory retail 75% for individuals and
sole proprietors (BCBS CRE20.65, Basel II §69), corporate 100% for enterprises (CRE20.42)."""


@dataclass(frozen=True, kw_only=True)
class FundingSpec:
    """``[funding]``: the lender's annual funding rate, month by month (docs/capital.md).

    The rate of horizon month t is ``rate + shock_path(rise, T)[t - 1]``: a constant base
    plus a rise in the three forms of a ``[shocks]`` value (a constant, monthly values, or
    a ramp up to ``trough`` = the peak rise and back). Only the lender's funding cost uses
    it; the pass-through to floating-rate borrowers is not modelled (it needs the kernel).
    """

    rate: float
    rise: Shock = 0.0

    def path(self, horizon_months: int) -> np.ndarray:
        """Return the annual funding rate of horizon months 1..T, ndarray of shape (T,)."""
        return self.rate + shock_path(self.rise, horizon_months)


@dataclass(frozen=True, kw_only=True)
class CapitalSpec:
    """``[capital]``: the lender's capital, P&L conventions and breach level (docs/capital.md).

    Exactly one of ``initial_ratio`` (capital at the start over the start RWA) and
    ``initial_amount`` (CNY) is set. ``credit_cost``: "net_loss" (the loss booked after
    enhancements) or "ifrs9" (the impairment charge net of enhancements; needs
    ``[ifrs9] allowance``). Profit is taxed at ``tax_rate`` when positive;
    ``dividend_payout`` of the positive after-tax profit leaves the capital (0: off). The
    ratio breaches when it is below ``threshold + buffer`` at a year end.
    """

    initial_ratio: float | None = field(default=None, metadata={"omit_none": True})
    initial_amount: float | None = field(default=None, metadata={"omit_none": True})
    tax_rate: float = 0.25
    dividend_payout: float = 0.0
    credit_cost: str = "net_loss"
    risk_weights: str = "standardised"
    threshold: float = 0.08
    buffer: float = 0.0

    @property
    def breach_level(self) -> float:
        """The capital ratio below which a year end counts as a breach: threshold + buffer."""
        return self.threshold + self.buffer


def _excess_of_loss(layer: LayerSpec) -> bool:
    """``attachment`` and ``limit`` are written for an excess-of-loss layer only (not allowed otherwise)."""
    return layer.kind == "excess_of_loss"


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
    None means unset (unlimited, no restriction). In the table (:func:`to_table`) the
    eligibility and counterparty fields sit in the ``eligibility`` and ``counterparty``
    sub-tables, and a ``quota_share`` layer has no ``attachment`` or ``limit``.

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
    attachment: float = field(default=0.0, metadata={"written": _excess_of_loss})
    limit: float | None = field(default=None, metadata={"written": _excess_of_loss})
    basis: str = "ead"
    per_loan_limit: float | None = None
    capacity: float | None = None
    topup_every_months: int | None = None
    annual_cap: float | None = None
    lag_months: int = 0
    fee_rate: float = 0.0
    industries: tuple[str, ...] | None = field(default=None, metadata={"key": "eligibility.industries"})
    regions: tuple[str, ...] | None = field(default=None, metadata={"key": "eligibility.regions"})
    borrower_types: tuple[str, ...] | None = field(default=None, metadata={"key": "eligibility.borrower_types"})
    max_balance: float | None = field(default=None, metadata={"key": "eligibility.max_balance"})
    failure_probability: float = field(default=0.0, metadata={"key": "counterparty.failure_probability"})
    failure_sensitivity: float = field(default=0.0, metadata={"key": "counterparty.sensitivity"})


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
    refinanced_share : float
        0..1, default 0. Share of each gap that other lenders refinance (the borrower
        needs only the rest in cash); 0 = nobody steps in (docs/policy.md says why).
    """

    caps: tuple[tuple[str, float], ...] = field(metadata={"pairs": True})
    transition_months: int = 0
    refinanced_share: float = 0.0

    def cap(self, borrower_type: str) -> float | None:
        """The cap of a borrower type, CNY, or None if that type is not capped."""
        return dict(self.caps).get(borrower_type)


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


_LEVER = {"omit_none": True}  # the [policy] table holds the set levers only


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

    loan_cap: LoanCapSpec | None = field(default=None, metadata=_LEVER)
    deferral: DeferralSpec | None = field(default=None, metadata=_LEVER)
    interest_subsidy: SubsidySpec | None = field(default=None, metadata=_LEVER)
    rate_cap: RateCapSpec | None = field(default=None, metadata=_LEVER)
    revenue_support: RevenueSupportSpec | None = field(default=None, metadata=_LEVER)
    seasonal_schedule: SeasonalScheduleSpec | None = field(default=None, metadata=_LEVER)
    collection: CollectionSpec | None = field(default=None, metadata=_LEVER)

    @property
    def active(self) -> tuple[str, ...]:
        """Names of the levers that are set, in :data:`POLICY_LEVERS` order."""
        return tuple(name for name in POLICY_LEVERS if getattr(self, name) is not None)


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

