"""A scenario as a standalone TOML file: :meth:`Scenario.to_dict` written back in the file's syntax.

The resolved table holds every key (defaults filled in, the calibration reference as a
table), so the file needs no ``extends`` and reads back as an equal scenario:
``Scenario.from_dict(tomllib.loads(scenario_toml(s))) == s``. Unset options (None) are
left out, which is how a file leaves them unset.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from stresslab.scenario.scenario import Scenario

__all__ = ["scenario_toml"]

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def scenario_toml(scenario: Scenario) -> str:
    """The scenario's resolved configuration as TOML text.

    Parameters
    ----------
    scenario : Scenario

    Returns
    -------
    str
        Top-level keys first, then each table (``[factors]``, ``[[layers]]`` ...) with its
        sub-tables; floats written exactly (shortest repr), ``inf`` for unlimited values.
    """
    lines: list[str] = []
    _table(scenario.to_dict(), (), lines)
    return "\n".join(lines).strip("\n") + "\n"


def _table(table: Mapping[str, Any], path: tuple[str, ...], lines: list[str]) -> None:
    tables = {k: v for k, v in table.items() if isinstance(v, Mapping)}
    arrays = {k: v for k, v in table.items() if _is_table_array(v)}
    for key, value in table.items():
        if key not in tables and key not in arrays and value is not None:
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in tables.items():
        lines += ["", f"[{'.'.join(_key(k) for k in (*path, key))}]"]
        _table(value, (*path, key), lines)
    for key, items in arrays.items():
        for item in items:
            lines += ["", f"[[{'.'.join(_key(k) for k in (*path, key))}]]"]
            _table(item, (*path, key), lines)


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, Mapping) for item in value)


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None) + " }"
    raise TypeError(f"no TOML form for {value!r}")
