"""Digests of the results of every shipped scenario on the standard synthetic book.

The stored digests (tests/data/result_digests.json) pin the engine's numbers bitwise: a
change of layout, a refactor or a speed-up must leave them alone. A change that is meant
to move the numbers (a model correction) rewrites them with::

    python tests/digests.py --write

and says so in its commit message.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
STORE = Path(__file__).resolve().parent / "data" / "result_digests.json"
N_LOANS, BOOK_SEED, N_PATHS, SEED = 2_000, 0, 64, 11

# run name -> (scenario file, simulate keyword arguments)
RUNS: dict[str, tuple[str, dict]] = {
    path.stem: (path.name, {}) for path in sorted((ROOT / "scenarios").glob("*.toml"))
}
RUNS["services_downturn:is"] = ("services_downturn.toml", {"tail": "is", "pilot_paths": 256})
RUNS["baseline:pooled"] = ("baseline.toml", {"pooled": True})


# attributes that name this machine's files or package versions (the resolved scenario is in "scenario")
_MACHINE_ATTRS = ("versions", "scenario_source", "scenario_text")  # scenario_text names the files read


def dataset_digest(ds) -> str:
    """SHA-256 over every variable and coordinate (name, dims, dtype, bytes) and the attributes."""
    h = hashlib.sha256()
    for key in sorted(set(ds.attrs) - set(_MACHINE_ATTRS)):
        h.update(f"{key}={ds.attrs[key]!r}".encode())
    for name in sorted(ds.variables):
        var = ds.variables[name]
        values = np.ascontiguousarray(var.values)
        if values.dtype.kind in "OUS":
            values = np.array([str(v) for v in values.ravel()], dtype="U")
        h.update(f"{name}|{var.dims}|{values.dtype.str}|{values.shape}".encode())
        h.update(values.tobytes())
    return h.hexdigest()


def compute() -> dict[str, str]:
    """Digest of each run in :data:`RUNS`."""
    import stresslab

    book = stresslab.synthetic_portfolio(N_LOANS, seed=BOOK_SEED)
    out = {}
    for name, (file, kwargs) in RUNS.items():
        scenario = stresslab.load_scenario(ROOT / "scenarios" / file)
        ds = stresslab.simulate(book, scenario, N_PATHS, seed=SEED, progress=False, **kwargs)
        out[name] = dataset_digest(ds)
    return out


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/digests.py --write")
    STORE.write_text(json.dumps(compute(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {STORE}")
