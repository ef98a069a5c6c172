"""The key tables of docs/scenarios.md, written from the schema (:mod:`stresslab.scenario.keys`).

Every TOML table of the schema (the top level, ``[factors]``, ``[[layers]]``,
``[policy.deferral]`` ...) becomes one markdown table with a row per key: the key, the
values allowed (the parser's ``what``, the text of its error messages), the default
(from the ``_Key``, or its ``shown`` text) and the meaning (the ``_Key``'s ``doc``).
docs/scenarios.md holds each table between the markers ``<!-- keys:NAME -->`` and
``<!-- /keys -->`` (NAME = ``top``, ``factors``, ``layers.eligibility``,
``policy.deferral`` ...); the prose around them is written by hand. Regenerate them with::

    python -m stresslab.scenario.key_reference --write docs/scenarios.md

and check them (exit status 1 and a message per stale table) with ``--check``;
tests/test_scenario_reference_docs.py does the same.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stresslab._files import write_atomically
from stresslab.scenario.keys import _SCENARIO
from stresslab.scenario.schema import _REQUIRED, _Key

__all__ = ["COMMAND", "key_tables", "problems", "render"]

COMMAND = "python -m stresslab.scenario.key_reference --write docs/scenarios.md"
"""The command that rewrites the key tables of docs/scenarios.md."""

_TOP = "top"  # marker name of the top-level table
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")  # a '<' that markdown could take for the start of an HTML tag
_BLOCK = re.compile(r"<!-- keys:(?P<name>\S+) -->\n(?P<body>.*?)<!-- /keys -->", re.DOTALL)


def _tables() -> dict[str, Mapping[str, _Key]]:
    """Every key table of the schema by marker name, in the order of the schema.

    A table reached again (``calibration_reference.delinquency`` is ``[delinquency]``) is
    listed once, under the name first reached.
    """
    out: dict[str, Mapping[str, _Key]] = {}
    seen: set[int] = set()

    def walk(name: str, keys: Mapping[str, _Key]) -> None:
        if id(keys) in seen:
            return
        seen.add(id(keys))
        out[name] = keys
        for key, spec in keys.items():
            if spec.parser.keys is not None:
                walk(key if name == _TOP else f"{name}.{key}", spec.parser.keys)

    assert _SCENARIO.keys is not None
    walk(_TOP, _SCENARIO.keys)
    return out


def _literal(value: Any) -> str:
    """A raw default as TOML writes it: ``"ead"``, ``0.25``, ``true``, ``["C", "M1"]``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, (int, float)):
        return repr(value)
    raise TypeError(f"no TOML literal for the default {value!r}: give its _Key a shown= text")


def _default(spec: _Key) -> str:
    if spec.shown is not None:
        return spec.shown
    if spec.default is _REQUIRED:
        return "required"
    if spec.default is None:
        return "unset"
    if isinstance(spec.default, Mapping) and not spec.default:
        return "each key's default" if spec.parser.keys is not None else "none"
    return f"`{_literal(spec.default)}`"


def _cell(text: str) -> str:
    """Text safe in a markdown table cell (``|`` would split it, ``<lever>`` would be read as HTML)."""
    return _TAG_START.sub("&lt;", text.replace("|", "\\|"))


def _markdown(name: str, keys: Mapping[str, _Key]) -> str:
    rows = ["| key | allowed | default | meaning |", "| --- | --- | --- | --- |"]
    for key, spec in keys.items():
        if not spec.doc:
            where = "the top level" if name == _TOP else f"[{name}]"
            raise ValueError(f"stresslab/scenario/keys.py: the key {key!r} of {where} has no doc= "
                             f"(its meaning in docs/scenarios.md)")
        rows.append(f"| `{key}` | {_cell(spec.parser.what)} | {_cell(_default(spec))} | {_cell(spec.doc)} |")
    return "\n".join(rows) + "\n"


def key_tables() -> dict[str, str]:
    """Return the markdown key table of every TOML table of the schema.

    Returns
    -------
    dict of str to str
        Marker name (``"top"``, ``"factors"``, ``"layers.eligibility"``,
        ``"policy.deferral"`` ...) -> the table: a header and one row per key (key,
        allowed values, default, meaning), ending in a newline. In the schema's order.

    Raises
    ------
    ValueError
        If a key of a table has no ``doc``.
    """
    return {name: _markdown(name, keys) for name, keys in _tables().items()}


def problems(text: str, label: str = "docs/scenarios.md") -> list[str]:
    """Say how the key tables in ``text`` differ from the schema's; [] when they agree.

    Parameters
    ----------
    text : str
        The markdown document (docs/scenarios.md).
    label : str
        Its name, for the messages.

    Returns
    -------
    list of str
        One message per table that is stale, missing, given twice or unknown, each naming
        the table and the command that rewrites it (:data:`COMMAND`).
    """
    tables = key_tables()
    found: dict[str, list[str]] = {}
    for match in _BLOCK.finditer(text):
        found.setdefault(match["name"], []).append(match["body"])
    out = []
    for name, table in tables.items():
        bodies = found.get(name, [])
        if not bodies:
            out.append(f"{label}: the key table of {_title(name)} is missing: add the lines "
                       f"'<!-- keys:{name} -->' and '<!-- /keys -->' where it belongs, then run {COMMAND}")
        elif len(bodies) > 1:
            out.append(f"{label}: the key table <!-- keys:{name} --> appears {len(bodies)} times; keep one")
        elif bodies[0] != table:
            out.append(f"{label}: the key table <!-- keys:{name} --> ({_title(name)}) differs from the schema in "
                       f"stresslab/scenario/keys.py: run {COMMAND}")
    for name in found:
        if name not in tables:
            out.append(f"{label}: <!-- keys:{name} --> names no table of the schema; tables: {', '.join(tables)}")
    return out


def render(text: str) -> str:
    """Return ``text`` with every ``<!-- keys:NAME -->`` block replaced by the schema's table.

    Raises
    ------
    ValueError
        If a block names no table of the schema (the prose around the blocks is kept as is).
    """
    tables = key_tables()

    def table(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in tables:
            raise ValueError(f"<!-- keys:{name} --> names no table of the schema; tables: {', '.join(tables)}")
        return f"<!-- keys:{name} -->\n{tables[name]}<!-- /keys -->"

    return _BLOCK.sub(table, text)


def _title(name: str) -> str:
    if name == _TOP:
        return "the top level"
    return "[[layers]]" if name == "layers" else f"[{name}]"


def main(argv: Sequence[str] | None = None) -> int:
    """Print the key tables, or rewrite (``--write``) or check (``--check``) them in a markdown file."""
    parser = argparse.ArgumentParser(prog="python -m stresslab.scenario.key_reference",
                                     description=(__doc__ or "").split("\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", metavar="FILE", type=Path, help="rewrite the key tables of FILE in place")
    mode.add_argument("--check", metavar="FILE", type=Path, help="exit 1 if the key tables of FILE are stale")
    args = parser.parse_args(argv)
    if args.write is None and args.check is None:
        for name, table in key_tables().items():
            print(f"<!-- keys:{name} -->\n{table}<!-- /keys -->\n")
        return 0
    path = args.write if args.write is not None else args.check
    text = path.read_text(encoding="utf-8")
    if args.write is not None:
        new = render(text)
        if new != text:
            write_atomically(path, lambda tmp: tmp.write_text(new, encoding="utf-8"))
        print(f"{path}: {'rewrote the key tables' if new != text else 'key tables up to date'}")
        left = problems(new, str(path))  # a table without markers cannot be placed automatically
        for message in left:
            print(message, file=sys.stderr)
        return 1 if left else 0
    found = problems(text, str(path))
    for message in found:
        print(message, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
