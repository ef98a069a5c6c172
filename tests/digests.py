"""Fingerprints of the results of every shipped scenario on the standard synthetic book.

The stored fingerprints (tests/data/result_digests.json) pin the engine's numbers: a
change of layout, a refactor or a speed-up must leave them alone (to 1e-9 relative, see
:func:`fingerprint`; on one machine a refactor should also check them bitwise, by running
the runs before and after). A change that is meant to move the numbers (a model
correction) rewrites them with::

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
# attributes computed in floating point (importance-sampling tuning, totals): compared as numbers
_FLOAT_ATTRS = ("book_exposure", "chi2_shape", "defensive_share", "factor_shift", "weight_bound")
RTOL = 1e-9  # floating-point results: equal to this relative tolerance (see the module docstring)


def fingerprint(ds) -> dict:
    """What pins a run: a SHA-256 of everything exact, and four numbers per floating-point variable.

    Exact: the attributes (but the machine's own and the computed floats), the coordinates,
    and the integer and text variables (counts, months). Floating point: the sum, an
    index-weighted sum (which sees values move between paths or months), the minimum and
    the maximum of each variable, and the computed float attributes. Numpy's SIMD
    transcendental functions differ in the last bit between CPUs (AVX2 or AVX-512 against
    AVX only), so results are bitwise the same on one machine but only equal to about 1e-15
    across machines; :data:`RTOL` is far above that and far below any change of the model.
    """
    h = hashlib.sha256()
    for key in sorted(set(ds.attrs) - set(_MACHINE_ATTRS) - set(_FLOAT_ATTRS)):
        h.update(f"{key}={ds.attrs[key]!r}".encode())
    numbers: dict[str, list[float]] = {}
    for key in _FLOAT_ATTRS:
        if key in ds.attrs:
            value = ds.attrs[key]
            numbers["attr:" + key] = _summary(np.ravel(json.loads(value) if isinstance(value, str) else value))
    for name in sorted(ds.variables):
        var = ds.variables[name]
        values = np.ascontiguousarray(var.values)
        if values.dtype.kind == "f":
            numbers[name] = _summary(values.ravel())
            h.update(f"{name}|{var.dims}|{values.dtype.str}|{values.shape}".encode())
            continue
        if values.dtype.kind in "OUS":
            values = np.array([str(v) for v in values.ravel()], dtype="U")
        h.update(f"{name}|{var.dims}|{values.dtype.str}|{values.shape}".encode())
        h.update(values.tobytes())
    return {"exact": h.hexdigest(), "numbers": numbers}


def _summary(flat: np.ndarray) -> list[float]:
    """Sum, index-weighted sum, minimum and maximum of a flat array."""
    flat = flat.astype(float)
    index = 1.0 + np.arange(flat.size) % 97
    return [float(np.sum(flat)), float(flat @ index), float(np.min(flat, initial=np.inf)),
            float(np.max(flat, initial=-np.inf))]


def differences(now: dict, stored: dict) -> list[str]:
    """What differs between two fingerprints (empty when they agree)."""
    out = [] if now["exact"] == stored["exact"] else ["attributes, coordinates, counts or text"]
    for name in sorted(set(now["numbers"]) | set(stored["numbers"])):
        a, b = now["numbers"].get(name), stored["numbers"].get(name)
        if a is None or b is None or len(a) != len(b) or not np.allclose(a, b, rtol=RTOL, atol=0.0, equal_nan=True):
            out.append(name)
    return out


def compute() -> dict[str, dict]:
    """Fingerprint of each run in :data:`RUNS`."""
    import stresslab

    book = stresslab.synthetic_portfolio(N_LOANS, seed=BOOK_SEED)
    out = {}
    for name, (file, kwargs) in RUNS.items():
        scenario = stresslab.load_scenario(ROOT / "scenarios" / file)
        ds = stresslab.simulate(book, scenario, N_PATHS, seed=SEED, progress=False, **kwargs)
        out[name] = fingerprint(ds)
    return out


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/digests.py --write")
    runs = compute()
    lines = ["{"]
    for k, name in enumerate(sorted(runs)):  # one line per variable: readable diffs
        numbers = runs[name]["numbers"]
        body = ",\n".join(f"   {json.dumps(key)}: {json.dumps(numbers[key])}" for key in sorted(numbers))
        comma = "," if k < len(runs) - 1 else ""
        lines.append(f' {json.dumps(name)}: {{\n  "exact": {json.dumps(runs[name]["exact"])},\n  "numbers": {{\n{body}\n  }}\n }}{comma}')
    lines.append("}")
    STORE.write_text("\n".join(lines) + "\n")
    print(f"wrote {STORE}")
