"""Scenario files and their ``extends`` chains (MODEL.md §10), before any validation.

:func:`_read_toml` reads one file; :func:`_extends_chain` follows ``extends`` from a file
to its root ancestor (refusing cycles and parents outside the allowed directory);
:func:`_merge_layers` deep-merges the chain, root first, remembering which file set each
key path so that :mod:`stresslab.scenario.scenario` can name it in error messages.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stresslab._files import refuse_special_file
from stresslab.errors import ScenarioError, did_you_mean
from stresslab.scenario.schema import _INT64, _MAX_DEPTH, _check_plain

LIBRARY = Path(__file__).resolve().parents[1] / "library"  # the shipped scenarios (scenarios/ in the repository)
LIBRARY_PREFIX = "stresslab:"  # extends = "stresslab:baseline.toml" names a file of the library from anywhere
_MAX_FILE_BYTES = 1_000_000  # a scenario is a few KB; parsing a huge file would take minutes
_Layer = tuple[str, Mapping[str, Any], str | None]  # (file label, data without 'extends', raw text)


def _read_toml(path: Path) -> tuple[dict[str, Any], str]:
    refuse_special_file(path, "scenario file", ScenarioError)
    try:
        size = path.stat().st_size
    except (OSError, ValueError):
        size = 0  # missing or unreadable: read_text below says which
    if size > _MAX_FILE_BYTES:
        raise ScenarioError(f"{path}: the scenario file has {size:,} bytes; at most {_MAX_FILE_BYTES:,} are allowed")
    try:
        text = path.read_text(encoding="utf-8").removeprefix("\ufeff")  # a byte-order mark is not TOML
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


def _extends_chain(data: Mapping[str, Any], label: str, text: str | None, base_dir: Path,
                   seen: list[tuple[Path, str]], root: Path) -> list[_Layer]:
    """Return the layers of ``data`` and its ``extends`` ancestors, root first.

    Every parent must resolve (symlinks followed) to a file inside the directory ``root``,
    or be a file of the shipped library named ``"stresslab:NAME.toml"`` (whose own parents
    must then be in the library).
    """
    _check_plain(data, label)
    own = {key: value for key, value in data.items() if key != "extends"}
    if "extends" not in data:
        return [(label, own, text)]
    parent = data["extends"]
    if not isinstance(parent, str) or not parent:
        raise ScenarioError(f"{label}: extends must be the path of a parent scenario file, "
                            f"relative to this file; got {parent!r}")
    if parent.startswith(LIBRARY_PREFIX):
        name, base_dir, root = parent[len(LIBRARY_PREFIX):], LIBRARY, LIBRARY.resolve()
        shipped = sorted(p.name for p in LIBRARY.glob("*.toml"))
        if name not in shipped:
            raise ScenarioError(f"{label}: extends = {parent!r}: the stresslab library has no scenario {name!r}"
                                f"{did_you_mean(name, shipped)}; it has {', '.join(shipped)}")
        parent = name
    path = Path(os.path.normpath(base_dir / parent))
    try:
        resolved = path.resolve()
        is_file, exists = path.is_file(), path.exists()
    except (OSError, ValueError, RuntimeError) as exc:  # too long, NUL character, symlink loop ...
        raise ScenarioError(f"{label}: extends = {parent!r}: cannot use this path: {exc}") from None
    if not resolved.is_relative_to(root):
        raise ScenarioError(f"{label}: extends = {parent!r}: parent file {path} (resolved: {resolved}) is outside "
                            f"{root}; a parent scenario must be inside the directory of the scenario file loaded "
                            f"(or the allowed_root given), or be a shipped one named as 'stresslab:NAME.toml'")
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
    """Record ``label`` as the file that set each key path of ``data``.

    A path set again moves to the end, so the files appear in ``origins`` in the order they
    were merged (root first): the collection-preset precedence relies on it.
    """
    for key, value in data.items():
        origins.pop(prefix + (key,), None)
        origins[prefix + (key,)] = label
        if isinstance(value, Mapping):
            _record_origins(value, label, prefix + (key,), origins)


def _merge_layers(layers: list[_Layer], base_dir: Path,
                  root: Path) -> tuple[dict[str, Any], dict[tuple[str, ...], str], str]:
    """Return the merged data, the file that set each key path, and the files' text.

    ``calibration_reference`` comes out as a table of the reference's ``delinquency`` and
    ``seasonality`` (MODEL.md §2): the root layer's, or those of the file it names (a path
    relative to the file that names it, inside ``root``, with that file's own ``extends``
    chain). ``base_dir`` is the directory of the first layer's relative paths.
    """
    merged: dict[str, Any] = {}
    origins: dict[tuple[str, ...], str] = {}
    for label, data, _ in layers:
        merged = _deep_merge(merged, data)
        _record_origins(data, label, (), origins)
    text = "".join(f"# --- file: {label}\n{raw}" + ("" if raw.endswith("\n") else "\n")
                   for label, _, raw in layers if raw is not None)
    reference = merged.get("calibration_reference")
    if isinstance(reference, Mapping):
        return merged, origins, text
    if reference is None:
        source, chain = layers[0][0], layers[:1]
    else:
        source = origins[("calibration_reference",)]
        if not isinstance(reference, str) or not reference:
            raise ScenarioError(f"{source}: calibration_reference must be the path of a scenario file, relative "
                                f"to this file, or a table {{delinquency, seasonality}}; got {reference!r}")
        here = base_dir if source == layers[-1][0] and not Path(source).is_file() else Path(source).parent
        chain = _extends_chain({"extends": reference}, source, None, here, [], root)[:-1]
    picked: dict[str, Any] = {}
    for label, data, _ in chain:
        own = {key: data[key] for key in ("delinquency", "seasonality") if key in data}
        picked = _deep_merge(picked, own)
        _record_origins(own, label, ("calibration_reference",), origins)
    merged["calibration_reference"] = picked
    return merged, origins, text
