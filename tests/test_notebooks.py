"""The notebooks of notebooks/ run end to end in a real Jupyter kernel and are committed without outputs.

Each notebook is executed by nbclient in the default ``python3`` kernel (ipykernel's, which
runs the interpreter running the tests), with notebooks/ as the working directory, as a
reader would run it. A cell that raises fails the test with the cell and its traceback.
docs/notebooks.md describes the notebooks.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
kernelspec = pytest.importorskip("jupyter_client.kernelspec")

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
KERNEL = "python3"
CELL_TIMEOUT = 300  # seconds per cell; each notebook takes well under a minute in all


def test_notebooks_are_there() -> None:
    assert NOTEBOOKS, f"no notebooks in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [
        i for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, (
        f"{path.name}: code cells {dirty} hold outputs or execution counts; clear them before committing "
        f"(jupyter nbconvert --clear-output --inplace notebooks/{path.name}) so that diffs stay clean"
    )


def _check_kernel() -> None:
    """The python3 kernel must exist and run this interpreter (where stresslab is installed)."""
    specs = kernelspec.find_kernel_specs()
    if KERNEL not in specs:
        pytest.fail(f"no Jupyter kernel {KERNEL!r} (found {sorted(specs)}); install ipykernel in this environment")
    program = kernelspec.get_kernel_spec(KERNEL).argv[0]
    # jupyter_client starts a spec whose program is "python" with sys.executable; an absolute path runs as is
    if Path(program).is_absolute() and Path(program).absolute() != Path(sys.executable).absolute():
        pytest.fail(
            f"kernel {KERNEL!r} ({specs[KERNEL]}) runs {program}, not this interpreter {sys.executable}; "
            f"re-register it: {sys.executable} -m ipykernel install --user --name {KERNEL}"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path: Path) -> None:
    _check_kernel()
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name=KERNEL,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},  # cwd of the kernel: notebooks/
    )
    client.execute()  # raises CellExecutionError (cell source and traceback) on the first failing cell
    errors = [out for cell in nb.cells for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    assert not errors, f"{path.name}: {len(errors)} error output(s): {[e.get('ename') for e in errors]}"
