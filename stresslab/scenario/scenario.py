"""Scenario files: TOML in, validated frozen objects out (MODEL.md §1-6 and §10).

A scenario says how the economy moves over the horizon (systematic factors, revenue
shocks, seasonality), how the lender's book behaves (roll and cure rates, recoveries),
which credit enhancement layers (guarantees, insurance, compensation funds) share its
losses and which policy levers (``[policy.*]``: caps, deferrals, subsidies ...) act.
:func:`load_scenario` reads a file (and the chain of files it ``extends``), validates every
key and returns a :class:`Scenario`; bad input raises :class:`~stresslab.errors.ScenarioError`
naming the file, the key path, the value and what is allowed. The key reference is
``docs/scenarios.md``.

The schema is declarative: each table is a mapping ``key -> _Key(parser, default)`` in
:mod:`stresslab.scenario.keys`, so adding a table means adding one such mapping. The spec
dataclasses and constants live in :mod:`stresslab.scenario.specs`, the parser toolkit in
:mod:`stresslab.scenario.schema`, file reading and ``extends`` in :mod:`stresslab.scenario.extends`.
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

from stresslab.errors import ScenarioError, did_you_mean
from stresslab.scenario.extends import (
    _extends_chain,
    _merge_layers,
    _read_toml,
    _record_origins,
)
from stresslab.scenario.keys import _SCENARIO
from stresslab.scenario.schema import (
    _At,
)
from stresslab.scenario.specs import (
    _NOT_WRITTEN,
    COLLECTION_PRESETS,
    CalibrationReference,
    DelinquencySpec,
    FactorSpec,
    CapitalSpec,
    FundingSpec,
    IFRS9Spec,
    LayerSpec,
    PerIndustry,
    PolicySpec,
    RecoverySpec,
    Shock,
    _shock_paths,
    to_table,
)

__all__ = ["load_scenario", "Scenario"]


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
    ifrs9 : IFRS9Spec
        What a run records of IFRS 9 provisions (``[ifrs9]``).
    funding : FundingSpec or None
        The lender's funding rate (``[funding]``); None: no funding cost.
    capital : CapitalSpec or None
        Capital and P&L conventions (``[capital]``); None: no capital metrics.
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
    pd_horizon_months: int = 12
    start_month: int
    factors: FactorSpec
    cashflow_volatility: PerIndustry = field(metadata={"key": "cashflow.volatility"})
    industry_shocks: tuple[tuple[str, Shock], ...] = field(metadata={"key": "shocks.industry", "pairs": True})
    region_shocks: tuple[tuple[str, Shock], ...] = field(metadata={"key": "shocks.region", "pairs": True})
    seasonal_factors: tuple[tuple[str, tuple[float, ...]], ...] = field(metadata={"key": "seasonality",
                                                                                  "pairs": True})
    delinquency: DelinquencySpec
    recovery: RecoverySpec
    layers: tuple[LayerSpec, ...] = ()
    policy: PolicySpec = field(default_factory=PolicySpec)
    ifrs9: IFRS9Spec = field(default_factory=IFRS9Spec)
    funding: FundingSpec | None = field(default=None, metadata={"omit_none": True})
    capital: CapitalSpec | None = field(default=None, metadata={"omit_none": True})
    calibration_reference: CalibrationReference | None = field(default=None, metadata={"attribute": "reference"})
    source: str = field(default="<dict>", compare=False, metadata=_NOT_WRITTEN)
    text: str = field(default="", compare=False, repr=False, metadata=_NOT_WRITTEN)
    files: tuple[str, ...] = field(default=(), compare=False, repr=False, metadata=_NOT_WRITTEN)
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
        ``capacity`` ...) as None, ``layers`` as a list of tables (a quota share without
        ``attachment`` and ``limit``), ``policy`` as a table of the set levers only
        (``recovery`` holds the collection preset's values) and ``calibration_reference``
        as the table of :attr:`reference`. Written by
        :func:`~stresslab.scenario.specs.to_table` from the fields' metadata.
        """
        return to_table(self)

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
        return seasonal_profile(self.seasonal_factors, industries, self.start_month, self.horizon_months)

    def reference_seasonality(self, industries: Sequence[str]) -> np.ndarray:
        """The calibration reference's seasonal factors over the PD horizon, shape (n_industries, H)."""
        return seasonal_profile(self.reference.seasonal_factors, industries, self.start_month, self.pd_horizon_months)


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
        recovery=recovery, layers=cfg["layers"], policy=policy, ifrs9=cfg["ifrs9"],
        funding=cfg["funding"], capital=cfg["capital"],
        pd_horizon_months=cfg["pd_horizon_months"],
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
