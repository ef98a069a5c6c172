"""The scenario file's key tables: each TOML table a mapping key -> _Key(parser, default, doc=...) (see schema.py).

The ``doc`` of each key is its meaning in the key tables of docs/scenarios.md, which
:mod:`stresslab.scenario.key_reference` writes from these mappings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from stresslab.errors import ScenarioError, did_you_mean
from stresslab.scenario.schema import (
    _At,
    _boolean,
    _by_name,
    _choice,
    _integer,
    _Key,
    _names,
    _number,
    _numbers,
    _optional,
    _Parser,
    _subset,
    _table,
    _text,
    _union,
)
from stresslab.scenario.specs import (
    _TOL,
    ALLOWANCE_MODES,
    COLLECTION_PRESETS,
    DEFERRAL_INTEREST,
    LAYER_BASES,
    LAYER_KINDS,
    MAX_DEFERRAL_MONTHS,
    MAX_HORIZON,
    POLICY_LEVERS,
    RESERVED_LAYER_NAME,
    CREDIT_COST_BASES,
    RISK_WEIGHT_APPROACHES,
    CalibrationReference,
    CapitalSpec,
    CollectionSpec,
    CorrelationMatrix,
    DeferralSpec,
    DelinquencySpec,
    FundingSpec,
    IFRS9Spec,
    InnovationMean,
    LayerSpec,
    LoanCapSpec,
    PerIndustry,
    PolicySpec,
    RateCapSpec,
    RecoverySpec,
    RevenueSupportSpec,
    SeasonalScheduleSpec,
    ShockRamp,
    SubsidySpec,
    _smallest_eigenvalue,
)
from stresslab.vocabulary import BORROWER_TYPES, LIVE_STATES


def _per_industry(number: _Parser, default: float, *, doc: str) -> _Key:
    """A number, or a table of numbers by industry with an optional ``default`` key."""
    def table(value: Mapping[str, Any], at: _At) -> PerIndustry:
        overrides = tuple(sorted((str(k), number(v, at / k)) for k, v in value.items() if k != "default"))
        return PerIndustry(default=number(value.get("default", default), at / "default"), overrides=overrides)

    what = f"{number.what}, or a table of them by industry with an optional 'default'"
    return _Key(_union(what, number=lambda v, at: PerIndustry(default=number(v, at)), table=table), default,
                doc=doc)


_ROW = _numbers(None, -1, 1)


def _rows(value: Any, at: _At) -> tuple[tuple[float, ...], ...]:
    if not isinstance(value, (list, tuple)):
        raise at.invalid("a list of rows of numbers in [-1, 1]", value)
    return tuple(_ROW(row, at / k) for k, row in enumerate(value))


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
    capital = scenario["capital"]
    if capital is not None and capital.credit_cost == "ifrs9" and scenario["ifrs9"].allowance == "off":
        raise (at / "capital" / "credit_cost").error("= 'ifrs9' needs an allowance: set [ifrs9] allowance = "
                                                     "'point_in_time' or 'through_the_cycle'")
    funding = scenario["funding"]
    if funding is not None:
        if isinstance(funding.rise, tuple) and len(funding.rise) > horizon:
            raise (at / "funding" / "rise").error(
                f"has {len(funding.rise)} monthly values but horizon_months = {horizon}; give at most {horizon}")
        rates = funding.path(horizon)
        if rates.min() < 0:
            month = int(np.argmin(rates)) + 1
            raise (at / "funding").error(f"gives a negative funding rate {rates.min():.6g} in month {month}; "
                                         f"rate + rise must stay >= 0")
    means = scenario["factors"]["innovation_mean"]
    if means is not None:
        base = at / "factors" / "innovation_mean"
        lists = [(base / "global", means.global_)] + [(base / kind / name, values) for kind in ("industry", "region")
                                                      for name, values in getattr(means, kind)]
        for where, values in lists:
            if len(values) > horizon + 1:
                raise where.error(f"has {len(values)} values but horizon_months = {horizon}; give at most "
                                  f"{horizon + 1} (months 0..{horizon}, entry 0 the start)")


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
    return PolicySpec(**{name: lever.parser(value[name], at / name)
                         for name, lever in _LEVERS.items() if value.get(name) is not None})


def _delinquency_spec(*, sensitivities: tuple[float, float], **rest: Any) -> DelinquencySpec:
    return DelinquencySpec(roll_sensitivity=sensitivities[0], cure_sensitivity=sensitivities[1], **rest)


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


_SEASONALITY = _by_name(_numbers(12, 0, lo_open=True))


# Each key's doc is its row's meaning in docs/scenarios.md (python -m stresslab.scenario.key_reference
# --write docs/scenarios.md writes the tables; tests/test_scenario_reference_docs.py checks them).

_MEANS = _numbers(None, -10, 10)


_INNOVATION_MEAN = {
    "global": _Key(_MEANS, [], shown="`[]` (0)",
                   doc="mean of the global factor's innovation η_t, t = 0, 1, ..., T (entry 0: the start Z₀); "
                       "months not listed are 0"),
    "industry": _Key(_by_name(_MEANS), {}, doc="the same list for each industry factor named"),
    "region": _Key(_by_name(_MEANS), {}, doc="the same list for each region factor named"),
}


def _innovation_mean(**keys: Any) -> InnovationMean:
    return InnovationMean(global_=keys["global"], industry=keys["industry"], region=keys["region"])


_MEAN_TABLE = _table(_INNOVATION_MEAN, build=_innovation_mean)
# unset unless given (None: the model's own mean 0); its key table is kept for docs/scenarios.md
def _optional_table(table: _Parser) -> _Parser:
    """A table that may be absent (None: unset), keeping its key table for docs/scenarios.md."""
    return _Parser(f"{table.what} (or unset)", lambda v, at: None if v is None else table(v, at), table.keys)


_INNOVATION_MEAN_TABLE = _optional_table(_MEAN_TABLE)


_FACTORS = {
    "copula": _Key(_choice("gaussian", "t"), "gaussian", doc="dependence of borrowers' latents"),
    "dof": _Key(_optional(_number(2, lo_open=True)), None,
                doc="Student-t degrees of freedom: required iff `copula = \"t\"`, an error with `\"gaussian\"`"),
    "global_loading": _per_industry(_LOADING, 0.25, doc="a_G, loading on the global factor"),
    "industry_loading": _per_industry(_LOADING, 0.25, doc="a_I, loading on the loan's industry factor"),
    "region_loading": _per_industry(_LOADING, 0.15,
                                    doc="a_R, loading on the loan's region factor (by the loan's *industry*)"),
    "ar1": _Key(_number(0, 1), 0.9,
                doc="AR(1) coefficient φ of the factors: 0 = iid months, 1 = fixed over the horizon"),
    "industry_correlation": _Key(_CORRELATION, 0.0, shown="`0.0` (identity)",
                                 doc="correlation among industry factors (see below)"),
    "region_correlation": _Key(_CORRELATION, 0.0, shown="`0.0` (identity)",
                               doc="correlation among region factors (see below)"),
    "innovation_mean": _Key(_INNOVATION_MEAN_TABLE, None,
                            shown="none (mean 0)",
                            doc="a mean path of the factor innovations: `[factors.innovation_mean]` below"),
}


_CASHFLOW = {"volatility": _per_industry(_number(0, lo_open=True), 0.35,
                                         doc="σ, log cash-flow volatility of a borrower (model §2)")}


_SHOCKS = {
    "industry": _Key(_by_name(_SHOCK), {}, doc="revenue shock s of each industry named (forms below)"),
    "region": _Key(_by_name(_SHOCK), {}, doc="revenue shock s of each region named (forms below)"),
}


_DELINQUENCY = {
    "default_after": _Key(_integer(1, 4), 4,
                          doc="missed installments that make a default (4: M3 missing again -> D)"),
    "roll_rates": _Key(_numbers(3, 0, 1, lo_open=True, hi_open=True), [0.35, 0.55, 0.75],
                       doc="baseline monthly roll M1->M2, M2->M3, M3->D"),
    "cure_rates": _Key(_numbers(3, 0, 1, hi_open=True), [0.30, 0.15, 0.08],
                       doc="baseline monthly cure M1, M2, M3 -> current"),
    "sensitivities": _Key(_union(
        "a number in [0, 10] (roll and cure) or a table {roll, cure}",
        number=lambda v, at: (_SENSITIVITY(v, at),) * 2,
        table=_table({"roll": _Key(_SENSITIVITY, 1.0), "cure": _Key(_SENSITIVITY, 1.0)},
                     build=lambda roll, cure: (roll, cure))), 1.0,
        doc="λ_roll, λ_cure: how roll and cure rates move with stress; a number sets both, a missing "
            "table key is 1"),
    "prepayment_rate": _Key(_number(0, 1, hi_open=True), 0.0,
                            doc="monthly prepayment probability of a paying current loan (unconditional; a miss "
                                "wins over a prepayment)"),
    "cycle_sensitivity": _Key(_number(0, 10), 1.0,
                              doc="κ: scales the delinquent states' loading on the loan's systematic index, with "
                                  "κ² ρ < 1 for every industry (0: rolls and cures ignore the cycle; the rates "
                                  "themselves do not change with κ)"),
}


_RECOVERY = {
    "unsecured_mean": _Key(_number(0, 1), 0.25,
                           doc="m₀, mean unsecured recovery rate (share of EAD) before stress"),
    "dispersion": _Key(_number(0, 1, hi_open=True), 0.2,
                       doc="Beta dispersion φ: Var = φ m (1 - m); 0 = deterministic"),
    "lag_months": _Key(_integer(0, MAX_HORIZON), 6, doc="months from default to unsecured recovery cash"),
    "cost": _Key(_number(0, 1, hi_open=True), 0.1, doc="collection cost, share of the amount recovered"),
    "pledge_haircut": _Key(_number(0, 1), 0.3, doc="haircut on the value of pledged receivables"),
    "pledge_lag_months": _Key(_integer(0, MAX_HORIZON), 3, doc="months from default to pledge proceeds"),
    "lgd_sensitivity": _Key(_number(0, 10), 1.0,
                            doc="λ_lgd: how the recovery mean falls with the scenario's stress Δ"),
    "discount_rate": _Key(_optional(_number(0, 1)), None,
                          doc="annual rate for discounting recoveries; unset = each loan's own rate"),
    "cycle_sensitivity": _Key(_number(0, 10), 1.0,
                              doc="β: the recovery mean's response to the loan's systematic index (downturn LGD); "
                                  "without stress the mean over the factors stays m₀"),
}


_NAME_LIST = _optional(_Parser("a non-empty list of distinct names", lambda v, at: tuple(sorted(_names(v, at)))))


_ELIGIBILITY = {
    "industries": _Key(_NAME_LIST, None, shown="all", doc="the loan's industry is one of these"),
    "regions": _Key(_NAME_LIST, None, shown="all", doc="the loan's region is one of these"),
    "borrower_types": _Key(_optional(_subset(*BORROWER_TYPES)), None, shown="all",
                           doc="the borrower's type is one of these"),
    "max_balance": _Key(_optional(_number(0, lo_open=True)), None, shown="none",
                        doc="the loan's balance in the book (at the start) is at most this, CNY"),
}


_COUNTERPARTY = {
    "failure_probability": _Key(_number(0, 1, hi_open=True), 0.0,
                                doc="probability that the provider fails within the horizon; from its failure "
                                    "month on it pays nothing"),
    "sensitivity": _Key(_number(0, 1, hi_open=True), 0.0,
                        doc="loading of the provider's failure latent on the global factor: failures come in "
                            "bad macro paths"),
}


_AMOUNT = _optional(_number(0))


_UNLIMITED = "unset (unlimited)"


_LAYER = _table({
    "name": _Key(_text(empty=False),
                 doc="label in results (the `layer` dimension); unique among the layers; not `\"lender\"` "
                     "(the retained loss there)"),
    "kind": _Key(_choice(*LAYER_KINDS), doc="see the formulas above"),
    "share": _Key(_number(0, 1), 1.0,
                  doc="share of the base (quota share) or of the band above the attachment (excess of loss)"),
    "attachment": _Key(_AMOUNT, None, shown="`0.0`",  # None: not given (0.0 for excess_of_loss)
                       doc="CNY per loan: the part of the base the layer does not cover (a deductible); only "
                           "with `excess_of_loss`"),
    "limit": _Key(_optional(_number(0, lo_open=True)), None, shown=_UNLIMITED,
                  doc="CNY per loan: the width of the band covered above the attachment (before `share`), "
                      ">= `attachment`; only with `excess_of_loss`"),
    "basis": _Key(_choice(*LAYER_BASES), "ead",
                  doc="`ead`: the whole remaining loss; `principal`: only its principal part (remaining loss × "
                      "principal / EAD at default; interest in arrears not covered)"),
    "per_loan_limit": _Key(_optional(_number(0, lo_open=True)), None, shown=_UNLIMITED,
                           doc="CNY: the most the layer pays for one loan (after `share`)"),
    "capacity": _Key(_AMOUNT, None, shown=_UNLIMITED,
                     doc="CNY: aggregate payouts per path (the fund size, the insurer's aggregate limit); 0 pays "
                         "nothing"),
    "topup_every_months": _Key(_optional(_integer(1, MAX_HORIZON)), None,
                               doc="capacity is restored to `capacity` at the start of months 1 + n, 1 + 2n, ... "
                                   "(unused capacity does not accumulate beyond it); needs `capacity`, not with "
                                   "`annual_cap`"),
    "annual_cap": _Key(_AMOUNT, None,
                       doc="CNY: payouts per 12-month block of the horizon (months 1-12, 13-24, ...), on top of "
                           "`capacity` if that is set too; not with `topup_every_months`"),
    "lag_months": _Key(_integer(0, MAX_HORIZON), 0,
                       doc="months from the default to the payout cash (the loss is shared in the default month)"),
    "fee_rate": _Key(_number(0, 1), 0.0,
                     doc="annual fee rate on the covered balance: income of the provider, charged monthly "
                         "(rate / 12) on the exposure of the loans the layer covers (not multiplied by `share`)"),
    "eligibility": _Key(_table(_ELIGIBILITY), {}, shown="all loans",
                        doc="which loans the layer covers: `[layers.eligibility]` below"),
    "counterparty": _Key(_table(_COUNTERPARTY), {}, shown="never fails",
                         doc="failure of the provider: `[layers.counterparty]` below"),
}, check=_check_layer, build=_layer_spec)


_CAP = _number(0, lo_open=True)


_CAPS_WHAT = "a non-empty table mapping borrower types ('enterprise', 'individual') to CNY amounts > 0"


_POLICY_WHAT = "a table of policy levers ([policy.<lever>] tables)"


_POLICY_MONTH = _integer(1, MAX_HORIZON)


_POLICY_ELIGIBILITY = {key: _ELIGIBILITY[key] for key in ("industries", "regions", "borrower_types")}


_UPLIFT_VALUE = _number(0, 1)


_UPLIFT = _union(
    "a number in [0, 1], a list of them by month, or a ramp table {start, trough, trough_month, recovery_month} "
    "(trough = the peak uplift)",
    number=_UPLIFT_VALUE, array=_numbers(None, 0, 1),
    table=_table({"start": _Key(_integer(1)), "trough": _Key(_UPLIFT_VALUE),
                  "trough_month": _Key(_integer(1)), "recovery_month": _Key(_integer(1))},
                 check=_check_ramp, build=ShockRamp))


def _lever(keys: Mapping[str, _Key], build: Callable[..., Any], doc: str) -> _Key:
    """A ``[policy.<lever>]`` table: None (off) unless given."""
    return _Key(_table(keys, build=build), None, shown="off", doc=doc)


_LEVERS: dict[str, _Key] = {
    "loan_cap": _lever({
        "caps": _Key(_Parser(_CAPS_WHAT, _caps),
                     doc="cap on a borrower's total exposure in the book, CNY, by borrower type; a type not "
                         "listed is not capped"),
        "transition_months": _Key(_integer(0, MAX_HORIZON), 0,
                                  doc="the excess over the cap falls due at each loan's maturity or at the end of "
                                      "month `transition_months`, whichever comes first; 0 = at month 1"),
        "refinanced_share": _Key(_number(0, 1), 0.0,
                                 doc="share of each gap other lenders refinance; the borrower must pay the rest "
                                     "itself (docs/policy.md)"),
    }, LoanCapSpec, "single-borrower cap: a cap per borrower type on a borrower's total exposure"),
    "deferral": _lever({
        **_POLICY_ELIGIBILITY,
        "states": _Key(_subset(*LIVE_STATES), ["C", "M1"],
                       doc="a loan gets the deferral if its state at `start_month` is one of these"),
        "start_month": _Key(_POLICY_MONTH, 1, doc="first deferred month; within the horizon"),
        "months": _Key(_integer(0, MAX_DEFERRAL_MONTHS),
                       doc="length: nothing is due in months `start_month` .. `start_month + months - 1`; "
                           "0 = no deferral"),
        "interest": _Key(_choice(*DEFERRAL_INTEREST), "accrued",
                         doc="the deferred months' interest is capitalised (`accrued`) or forgiven (`waived`: "
                             "lost income)"),
        "extend_term": _Key(_boolean(), True,
                            doc="maturity moves out by `months`; false: the balance is repaid over the original "
                                "remaining term (higher installments afterwards)"),
    }, DeferralSpec, "payment holiday"),
    "interest_subsidy": _lever({
        "points": _Key(_number(0, 0.2, lo_open=True),
                       doc="annual rate points the state pays (0.02 = 2 percentage points)"),
        **_POLICY_ELIGIBILITY,
        "max_balance": _ELIGIBILITY["max_balance"],
        "start_month": _Key(_POLICY_MONTH, 1, doc="first subsidised month; within the horizon"),
        "months": _Key(_optional(_POLICY_MONTH), None, shown="unset (to the horizon end)",
                       doc="number of subsidised months"),
    }, SubsidySpec, "interest paid by the state"),
    "rate_cap": _lever({
        "cap": _Key(_number(0, 1, lo_open=True), doc="annual rate; loans above it are re-priced to it"),
        "from_month": _Key(_POLICY_MONTH, 1, doc="first month at the capped rate; within the horizon"),
    }, RateCapSpec, "interest rate cap"),
    "revenue_support": _lever({
        "uplift": _Key(_UPLIFT,
                       doc="revenue uplift u (0.03 = revenue 3% higher), in the three forms of a `[shocks]` value "
                           "(a list longer than the horizon is an error)"),
        **_POLICY_ELIGIBILITY,
    }, RevenueSupportSpec, "revenue uplift (e.g. tax relief)"),
    "seasonal_schedule": _lever({
        "industries": _Key(_NAME_LIST, None, shown="every industry in `[seasonality]`",
                           doc="loans of these industries pay installments shaped by their industry's seasonality "
                               "(same present value)"),
    }, SeasonalScheduleSpec, "seasonal installments (an empty table turns it on)"),
    "collection": _lever({
        "strategy": _Key(_choice(*COLLECTION_PRESETS), doc="a recovery preset (below)"),
    }, CollectionSpec, "collection strategy: a recovery preset"),
}


assert tuple(_LEVERS) == POLICY_LEVERS


_IFRS9 = {
    "allowance": _Key(_choice(*ALLOWANCE_MODES), "off",
                      doc="the loss allowance by stage at every year end of every path: `point_in_time` (given "
                          "the path's systematic index), `through_the_cycle`, or `off` (docs/ifrs9.md)"),
}


_RISE_VALUE = _number(-0.2, 0.5)


_FUNDING = {
    "rate": _Key(_number(0, 0.5), doc="base annual funding rate of the lender (0.03 = 3%)"),
    "rise": _Key(_union(
        "a number in [-0.2, 0.5], a list of them by month, or a ramp table {start, trough, trough_month, "
        "recovery_month} (trough = the peak rise)",
        number=_RISE_VALUE, array=_numbers(None, -0.2, 0.5),
        table=_table({"start": _Key(_integer(1)), "trough": _Key(_RISE_VALUE),
                      "trough_month": _Key(_integer(1)), "recovery_month": _Key(_integer(1))},
                     check=_check_ramp, build=ShockRamp)), 0.0,
        doc="added to `rate` month by month, in the three forms of a `[shocks]` value (0.02 = 2 points "
            "higher); the rate must stay >= 0"),
}


def _check_capital(capital: dict[str, Any], at: _At) -> None:
    given = [key for key in ("initial_ratio", "initial_amount") if capital[key] is not None]
    if len(given) != 1:
        raise at.error(f"needs exactly one of 'initial_ratio' (capital over the start RWA) and 'initial_amount' "
                       f"(CNY); got {' and '.join(given) if given else 'neither'}")


_CAPITAL = {
    "initial_ratio": _Key(_optional(_number(0, 1, lo_open=True)), None, shown="unset",
                          doc="capital at the start as a ratio of the start RWA (0.12 = 12%); this or "
                              "`initial_amount`"),
    "initial_amount": _Key(_optional(_number(0, lo_open=True)), None, shown="unset",
                           doc="capital at the start, CNY; this or `initial_ratio`"),
    "tax_rate": _Key(_number(0, 1, hi_open=True), 0.25,
                     doc="income tax on a year's positive pre-tax profit (0.25: China's enterprise income tax)"),
    "dividend_payout": _Key(_number(0, 1), 0.0, doc="share of a year's positive after-tax profit paid out; 0 = off"),
    "credit_cost": _Key(_choice(*CREDIT_COST_BASES), "net_loss",
                        doc="`net_loss`: the loss booked in the default month after enhancements; `ifrs9`: the "
                            "impairment charge net of enhancement cover (needs `[ifrs9] allowance`; the day-one "
                            "allowance of the scenario's own shock is not charged, docs/capital.md)"),
    "risk_weights": _Key(_choice(*RISK_WEIGHT_APPROACHES), "standardised",
                         doc="`standardised`: 75% for individuals (regulatory retail), 100% for enterprises "
                             "(docs/capital.md; IRB weights are not built)"),
    "threshold": _Key(_number(0, 1, lo_open=True, hi_open=True), 0.08,
                      doc="minimum capital ratio (0.08: Basel total capital)"),
    "buffer": _Key(_number(0, 1, hi_open=True), 0.0,
                   doc="buffer on top (0.025: conservation buffer); a breach is a year-end ratio below "
                       "`threshold + buffer`"),
}


_SCENARIO = _table({
    "name": _Key(_optional(_text(empty=False)), None, shown="the file stem",
                 doc="scenario label (results, plots)"),
    "description": _Key(_text(empty=True), "", doc="free text"),
    "horizon_months": _Key(_integer(1, MAX_HORIZON), doc="months simulated, T"),
    "pd_horizon_months": _Key(_integer(1, MAX_HORIZON), 12,
                              doc="H: the book's `pd` is the unconditional probability that a current loan with an "
                                  "installment every month defaults within H months (model §2); 1 needs "
                                  "`default_after = 1` and makes the monthly miss probability the pd exactly"),
    "start_month": _Key(_integer(1, 12), 1, doc="calendar month of horizon month 1 (for seasonality)"),
    "factors": _Key(_table(_FACTORS, check=_check_factors), {}, doc="systematic factors: `[factors]` below"),
    "cashflow": _Key(_table(_CASHFLOW), {}, doc="borrowers' cash flows: `[cashflow]` below"),
    "shocks": _Key(_table(_SHOCKS), {}, doc="revenue shocks: `[shocks.industry]`, `[shocks.region]` below"),
    "seasonality": _Key(_SEASONALITY, {}, shown="none (flat)",
                        doc="revenue factor of each calendar month by industry: `[seasonality]` below"),
    "delinquency": _Key(_table(_DELINQUENCY, check=_check_delinquency, build=_delinquency_spec), {},
                        doc="delinquency states and roll rates: `[delinquency]` below"),
    "recovery": _Key(_table(_RECOVERY, build=RecoverySpec), {}, doc="recoveries: `[recovery]` below"),
    "layers": _Key(_Parser("a list of tables ([[layers]])", _layers, _LAYER.keys), [],
                   shown="none (the lender keeps every loss)",
                   doc="credit enhancement layers, in order: `[[layers]]` below"),
    "policy": _Key(_Parser(_POLICY_WHAT, _policy, _LEVERS), {}, shown="no levers",
                   doc="policy levers: `[policy.*]` below"),
    "ifrs9": _Key(_table(_IFRS9, build=IFRS9Spec), {}, doc="IFRS 9 provisions along paths: `[ifrs9]` below"),
    "funding": _Key(_optional_table(_table(_FUNDING, build=FundingSpec)), None, shown="none (no funding cost)",
                    doc="the lender's funding rate: `[funding]` below"),
    "capital": _Key(_optional_table(_table(_CAPITAL, check=_check_capital, build=CapitalSpec)), None,
                    shown="none (no capital metrics)", doc="P&L and capital ratio: `[capital]` below"),
    "calibration_reference": _Key(_table({
        "delinquency": _Key(_table(_DELINQUENCY, check=_check_delinquency, build=_delinquency_spec), {},
                            doc="the reference's `[delinquency]` (its `cycle_sensitivity` is not used: the cycle "
                                "response is the scenario's own)"),
        "seasonality": _Key(_SEASONALITY, {}, shown="none (flat)", doc="the reference's `[seasonality]`"),
    }, build=lambda delinquency, seasonality: CalibrationReference(delinquency=delinquency,
                                                                  seasonal_factors=seasonality),
        what="a scenario file path, relative to this file, or a table {delinquency = {...}, seasonality = {...}}"),
        {}, shown="the root of the `extends` chain (a file that extends nothing is its own)",
        doc="the chain (roll/cure rates, default_after, sensitivities, prepayment) and seasonality under which the "
            "book's PDs were measured; a scenario's own changes of them on top are stress, not absorbed by the "
            "calibration (model §2)"),
}, check=_check_scenario)
