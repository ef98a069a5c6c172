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

The spec dataclasses and constants live in :mod:`stresslab.specs` (re-exported here), the
parser toolkit in :mod:`stresslab._schema`, file reading and ``extends`` in :mod:`stresslab._extends`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stresslab._extends import _extends_chain, _merge_layers, _read_toml, _record_origins
from stresslab._schema import (
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
from stresslab.errors import ScenarioError, did_you_mean
from stresslab.portfolio import BORROWER_TYPES, STATES
from stresslab import specs as _specs
from stresslab.specs import (
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
    FactorSpec,
    LayerSpec,
    LoanCapSpec,
    PerIndustry,
    PolicySpec,
    RateCapSpec,
    RecoverySpec,
    RevenueSupportSpec,
    SeasonalScheduleSpec,
    Shock,
    ShockRamp,
    SubsidySpec,
    _check_names,
    _plain,
    _shock_paths,
    _smallest_eigenvalue,
    shock_path,
)

__all__ = ["load_scenario", "Scenario", *_specs.__all__]  # the specs are re-exported here


# --------------------------------------------------------------------------- scenario


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """A validated stress scenario. Build it with :func:`load_scenario` or :meth:`from_dict`.

    Attributes
    ----------
    name, description : str
    horizon_months : int
        Months simulated, T in 1..120.
    pd_horizon_months : int
        H: the book's ``pd`` is the probability that a current loan with an installment
        every month defaults within H months, unconditionally (MODEL.md §2).
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
        is already applied to ``recovery``: its preset sets unsecured_mean, lag_months and
        cost, except those that the file setting the strategy, or a later one, sets itself.
    calibration_reference : CalibrationReference
        The chain and seasonality the PDs are calibrated under: the root of the ``extends``
        chain, or the file named by ``calibration_reference`` (MODEL.md §2).
    source : str
        The file path, or "<dict>"; not compared.
    text : str
        Raw text of the files read (parents first), each after a ``# --- file: path``
        line; "" for a dict without ``extends``. Not compared.
    files : tuple of str
        Every file the scenario was read from: itself, its ``extends`` chain and its
        calibration reference (so that no output overwrites one). Not compared.
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
    pd_horizon_months: int = 12
    calibration_reference: CalibrationReference | None = None
    source: str = field(default="<dict>", compare=False)
    text: str = field(default="", compare=False, repr=False)
    files: tuple[str, ...] = field(default=(), compare=False, repr=False)
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
        return _build(*_merge_layers(layers, base, root), source=source, default_name=default_name)

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
            "horizon_months": self.horizon_months, "pd_horizon_months": self.pd_horizon_months,
            "start_month": self.start_month,
            "factors": self.factors.to_dict(),
            "cashflow": {"volatility": self.cashflow_volatility.to_dict()},
            "shocks": {"industry": {name: _plain(s) for name, s in self.industry_shocks},
                       "region": {name: _plain(s) for name, s in self.region_shocks}},
            "seasonality": {name: list(values) for name, values in self.seasonal_factors},
            "delinquency": self.delinquency.to_dict(),
            "recovery": self.recovery.to_dict(),
            "layers": [layer.to_dict() for layer in self.layers],
            "policy": self.policy.to_dict(),
            "calibration_reference": self.reference.to_dict(),
        }

    @property
    def reference(self) -> CalibrationReference:
        """The calibration reference (this scenario's own chain when none was set)."""
        if self.calibration_reference is not None:
            return self.calibration_reference
        return CalibrationReference(delinquency=self.delinquency, seasonal_factors=self.seasonal_factors)

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
        _record_origins(data, self.source, (), origins)  # resolved values rank before the overrides
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
            origins.pop(tuple(path), None)
            origins[tuple(path)] = "<overrides>"
            if isinstance(value, Mapping):  # a table value sets every key in it
                _record_origins(value, "<overrides>", tuple(path), origins)
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
        return seasonal_profile(self.seasonal_factors, industries, self.start_month, self.horizon_months)

    def reference_seasonality(self, industries: Sequence[str]) -> np.ndarray:
        """The calibration reference's seasonal factors over the PD horizon, shape (n_industries, H)."""
        factors = self.reference.seasonal_factors
        own = {n for n, _ in self.seasonal_factors}  # names the scenario's own [seasonality] already warns about
        _check_names(self, "industries", industries,
                     [("calibration_reference [seasonality]", n) for n, _ in factors if n not in own])
        return seasonal_profile(factors, industries, self.start_month, self.pd_horizon_months)


def seasonal_profile(seasonal_factors: Sequence[tuple[str, Sequence[float]]], industries: Sequence[str],
                     start_month: int, months: int) -> np.ndarray:
    """Seasonal factor of each industry in horizon months 1..``months``, shape (n_industries, months).

    The 12 calendar-month factors are rescaled to mean 1; horizon month t is calendar month
    ``(start_month - 1 + t - 1) % 12 + 1``; industries without seasonality get 1.0.
    """
    calendar = (start_month - 1 + np.arange(months)) % 12
    table = dict(seasonal_factors)
    out = np.ones((len(industries), months))
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
    return _build(*_merge_layers(layers, path.parent, root), source=str(path), default_name=path.stem)


# --------------------------------------------------------------------------- helpers


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


def _build(data: Mapping[str, Any], origins: Mapping[tuple[str, ...], str], text: str, *,
           source: str, default_name: str) -> Scenario:
    """Validate merged data against the schema and assemble the Scenario."""
    cfg = _SCENARIO(data, _At((), origins, source))
    policy, recovery = cfg["policy"], cfg["recovery"]
    if policy.collection is not None:
        recovery = _apply_preset(recovery, policy.collection.strategy, origins)
    return Scenario(
        name=cfg["name"] or default_name, description=cfg["description"],
        horizon_months=cfg["horizon_months"], start_month=cfg["start_month"],
        factors=FactorSpec(**cfg["factors"], source=source),
        cashflow_volatility=cfg["cashflow"]["volatility"],
        industry_shocks=cfg["shocks"]["industry"], region_shocks=cfg["shocks"]["region"],
        seasonal_factors=cfg["seasonality"], delinquency=cfg["delinquency"],
        recovery=recovery, layers=cfg["layers"], policy=policy, pd_horizon_months=cfg["pd_horizon_months"],
        calibration_reference=cfg["calibration_reference"], source=source, text=text,
        files=tuple(sorted({label for label in origins.values() if Path(label).is_file()})))


def _apply_preset(recovery: RecoverySpec, strategy: str, origins: Mapping[tuple[str, ...], str]) -> RecoverySpec:
    """Apply a collection preset to the [recovery] values not set explicitly at or after the strategy.

    Files are ranked by their order in the ``extends`` chain (``origins`` keeps insertion
    order, root first; overrides come last): a value written in the file that chooses the
    strategy, or in a later one, wins over the preset; one inherited from a parent does not.
    """
    labels = [label for label in dict.fromkeys(origins.values()) if label != "<overrides>"] + ["<overrides>"]
    rank = {label: k for k, label in enumerate(labels)}

    def set_by(path: tuple[str, ...], *, tables: bool) -> int:  # rank of the file that set it; -1: none
        for n in range(len(path), 0 if tables else len(path) - 1, -1):  # tables: or a table above it
            if path[:n] in origins:
                return rank[origins[path[:n]]]
        return -1

    chosen = set_by(("policy", "collection", "strategy"), tables=True)
    preset = {key: value for key, value in COLLECTION_PRESETS[strategy].items()
              if set_by(("recovery", key), tables=False) < chosen}
    return dataclasses.replace(recovery, **preset)


# --------------------------------------------------------------------------- schema parsers


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
