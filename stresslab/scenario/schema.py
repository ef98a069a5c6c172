"""The declarative parser toolkit behind the scenario schema (:mod:`stresslab.scenario.scenario`).

A :class:`_Parser` validates a raw value at a key path (an :class:`_At`, which also knows
which file of an ``extends`` chain set each path) and returns its parsed form; a table
is a mapping ``key -> _Key(parser, default, doc=...)`` handed to :func:`_table`, whose
parser keeps the mapping (``keys``) so that :mod:`stresslab.scenario.key_reference` can
write the key tables of docs/scenarios.md from it. Bad values raise
:class:`~stresslab.errors.ScenarioError` naming the file, the key path, the value and
what is allowed (with a did-you-mean hint for near-miss names). :func:`_check_plain`
refuses raw data nested too deeply or holding integers outside 64 bits before any of
this runs.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from stresslab.errors import ScenarioError, did_you_mean

_MAX_DEPTH = 32  # tables and arrays nest at most this deep (a valid scenario needs 6 levels)
_INT64 = (-(2**63), 2**63 - 1)  # TOML integers are 64-bit signed
_MAX_NAMES = 10_000  # names in one table or list (industries, regions, layers): a book has far fewer
_MAX_SHOWN = 200  # characters of a given value repeated in an error message


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


# --------------------------------------------------------------------------- parsers


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
        return self.error(f"must be {what}; got {_shown(value)}")


def _shown(value: object) -> str:
    """``repr(value)``, cut to _MAX_SHOWN characters (a 200,000-element array must not fill the screen)."""
    text = repr(value)
    if len(text) <= _MAX_SHOWN:
        return text
    return f"{text[:_MAX_SHOWN]}... ({len(text):,} characters)"


def _check_count(value: Any, at: _At) -> None:
    """Refuse a table or list of more than _MAX_NAMES names, before any work per name."""
    if len(value) > _MAX_NAMES:
        raise at.error(f"names {len(value):,} entries; at most {_MAX_NAMES:,} are allowed")


@dataclass(frozen=True)
class _Parser:
    """Validate a raw value at a key path and return its parsed form; ``what`` describes it.

    ``keys`` is the key table of a parser of TOML tables (None for other values): the
    keys of the table itself, of each element of an array of tables, or of each lever.
    """

    what: str
    parse: Callable[[Any, _At], Any]
    keys: Mapping[str, _Key] | None = None

    def __call__(self, value: Any, at: _At) -> Any:
        return self.parse(value, at)


_REQUIRED = object()


@dataclass(frozen=True)
class _Key:
    """A key of a table: its parser, its default and what it means (for docs/scenarios.md).

    ``default`` is a raw value, parsed like a given one (``_REQUIRED``: the key must be
    given). ``doc`` is the one-line meaning; ``shown`` how the default reads in the docs
    when the raw value does not say it (``None`` meaning "unlimited", ``{}`` "all loans").
    """

    parser: _Parser
    default: Any = _REQUIRED
    doc: str = ""
    shown: str | None = None


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
           build: Callable[..., Any] | None = None, what: str = "a table") -> _Parser:
    """A table with known keys: unknown keys are errors, missing ones take their default.

    ``what`` describes the value where a key of this table is required, and in the docs.
    """
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
    return _Parser(what, parse, keys)


def _by_name(item: _Parser) -> _Parser:
    """A table from industry or region names to values; parsed to sorted (name, value) pairs."""
    what = f"a table mapping names to {item.what}"

    def parse(value: Any, at: _At) -> tuple[tuple[str, Any], ...]:
        if not isinstance(value, Mapping):
            raise at.invalid(what, value)
        _check_count(value, at)
        return tuple(sorted((str(name), item(v, at / name)) for name, v in value.items()))
    return _Parser(what, parse)


def _names(value: Any, at: _At) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        _check_count(value, at)
    if not (isinstance(value, (list, tuple)) and value and all(isinstance(v, str) and v for v in value)
            and len(set(value)) == len(value)):
        raise at.invalid("a non-empty list of distinct names", value)
    return tuple(value)
