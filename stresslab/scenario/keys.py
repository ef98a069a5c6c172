"""The scenario file's key tables: each TOML table a mapping key -> _Key(parser, default) (see schema.py)."""

from __future__ import annotations

from collections.abc import Mapping
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
    COLLECTION_PRESETS,
    DEFERRAL_INTEREST,
    LAYER_BASES,
    LAYER_KINDS,
    MAX_DEFERRAL_MONTHS,
    MAX_HORIZON,
    POLICY_LEVERS,
    RESERVED_LAYER_NAME,
    CalibrationReference,
    CollectionSpec,
    CorrelationMatrix,
    DeferralSpec,
    DelinquencySpec,
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


def _per_industry(number: _Parser, default: float) -> _Key:
    """A number, or a table of numbers by industry with an optional ``default`` key."""
    def table(value: Mapping[str, Any], at: _At) -> PerIndustry:
        overrides = tuple(sorted((str(k), number(v, at / k)) for k, v in value.items() if k != "default"))
        return PerIndustry(default=number(value.get("default", default), at / "default"), overrides=overrides)

    what = f"{number.what}, or a table of them by industry with an optional 'default'"
    return _Key(_union(what, number=lambda v, at: PerIndustry(default=number(v, at)), table=table), default)


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
    "cycle_sensitivity": _Key(_number(0, 10), 1.0),
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
    "cycle_sensitivity": _Key(_number(0, 10), 1.0),
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
        "refinanced_share": _Key(_number(0, 1), 0.0),
    }, build=LoanCapSpec),
    "deferral": _table({
        **_POLICY_ELIGIBILITY,
        "states": _Key(_subset(*LIVE_STATES), ["C", "M1"]),
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
    "pd_horizon_months": _Key(_integer(1, MAX_HORIZON), 12),
    "start_month": _Key(_integer(1, 12), 1),
    "factors": _Key(_table(_FACTORS, check=_check_factors), {}),
    "cashflow": _Key(_table(_CASHFLOW), {}),
    "shocks": _Key(_table(_SHOCKS), {}),
    "seasonality": _Key(_by_name(_numbers(12, 0, lo_open=True)), {}),
    "delinquency": _Key(_table(_DELINQUENCY, check=_check_delinquency, build=_delinquency_spec), {}),
    "recovery": _Key(_table(_RECOVERY, build=RecoverySpec), {}),
    "layers": _Key(_Parser("a list of tables ([[layers]])", _layers), []),
    "policy": _Key(_Parser(_POLICY_WHAT, _policy), {}),
    "calibration_reference": _Key(_table({
        "delinquency": _Key(_table(_DELINQUENCY, check=_check_delinquency, build=_delinquency_spec), {}),
        "seasonality": _Key(_by_name(_numbers(12, 0, lo_open=True)), {}),
    }, build=lambda delinquency, seasonality: CalibrationReference(delinquency=delinquency,
                                                                  seasonal_factors=seasonality)), {}),
}, check=_check_scenario)
