"""The package's layers (docs/architecture.md): imports go one way and never in a cycle.

Each module of stresslab is in one layer; a module may import from its own layer's package
and from lower layers only. Every import counts, also those inside functions (a lazy import
would hide a cycle) and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "stresslab"

# lowest first; a module may import from any layer at or below its own
LAYERS: list[tuple[str, ...]] = [
    ("errors", "vocabulary", "_numba", "_rng", "_files", "_memory", "estimators"),
    ("_kernels",),
    ("book", "scenario"),
    ("compile",),
    ("run",),
    ("metrics",),
    # reverse stress tests: the engine (run) tilted toward an event, events read like metrics
    ("reverse",),
    # loan tape -> estimates -> a fitted scenario: reads books and scenarios, uses the
    # calibration integral (compile) and the engine (run) for implied PDs and checks
    ("calibrate",),
    ("text", "io"),
    ("plots",),
    ("report",),
    ("cli",),
]
# parts of one layer that must not import each other (book and scenario come in side by side)
SIBLINGS_APART = [{"book", "scenario"}, {"text", "io"}]


def _part(module: str) -> str:
    """The top-level part of a stresslab module: 'run' for 'stresslab.run.simulate'."""
    return module.split(".")[1] if "." in module else "__init__"


def _layer(part: str) -> int:
    for k, parts in enumerate(LAYERS):
        if part in parts:
            return k
    raise AssertionError(f"stresslab.{part} is in no layer of tests/test_architecture.py: add it to LAYERS and docs/architecture.md")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path, modules: dict[str, Path], type_checking: bool) -> set[str]:
    """The stresslab modules ``path`` imports (``from stresslab import plots`` is stresslab.plots)."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    if not type_checking:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skip |= {id(n) for child in node.body for n in ast.walk(child)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "stresslab"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "stresslab":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
    return found


def test_every_part_is_in_a_layer():
    parts = {_part(name) for name in _modules()} - {"__init__"}
    for part in parts:
        _layer(part)


def test_imports_go_down_the_layers():
    modules = _modules()
    wrong = []
    for name, path in modules.items():
        part = _part(name)
        if part == "__init__":
            continue  # the public API re-exports from everywhere
        for target in _imports(path, modules, type_checking=True):
            to = _part(target)
            if to == part:
                continue
            if to == "__init__":
                wrong.append(f"{name} imports the package stresslab itself (import the module that holds the name)")
            elif _layer(to) > _layer(part):
                wrong.append(f"{name} (layer {_layer(part)}) imports {target} (layer {_layer(to)})")
            elif any({part, to} <= pair for pair in SIBLINGS_APART):
                wrong.append(f"{name} imports {target}: stresslab.{part} and stresslab.{to} stay apart")
    assert not wrong, "imports against the layers:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles():
    modules = _modules()
    graph = {name: _imports(path, modules, type_checking=False) - {name} for name, path in modules.items()}
    # a package's __init__ is imported with any of its modules: fold `stresslab.x` edges to it too
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt == "stresslab" or nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize("public", ["simulate", "summary", "load_portfolio", "Scenario", "write_report", "compare_summary",
                                    "reverse_stress"])
def test_public_names_stay_at_the_top(public):
    import stresslab

    assert public in stresslab.__all__ and getattr(stresslab, public) is not None
