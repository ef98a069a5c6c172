"""Paired precision of every shipped lever scenario against the scenario it extends.

Run: python benchmarks/bench_paired_levers.py [--loans 4000] [--paths 600] [--seed 3]

For each shipped scenario with a policy lever, the scenario and its parent run on common
random numbers (one seed); the gain is the standard error of the difference of two
independent runs over the paired standard error of the expected gross loss (and of the
default count): sqrt(var(a) + var(b)) / sd(b - a). A gain of g means the paired
comparison needs g^2 times fewer paths for the same precision. A scenario whose lever
touches no loan of the book reproduces its parent: "identical" (issue 13 asks for a
gain of at least 5 for a deferral; docs/model.md §5 says what was tried).
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

import numpy as np

import stresslab

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def lever_scenarios() -> list[tuple[str, str]]:
    """(scenario, parent) file names of the shipped scenarios that set a policy lever."""
    pairs = []
    for path in sorted(SCENARIOS.glob("*.toml")):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        if data.get("policy") and "extends" in data:
            pairs.append((path.name, data["extends"]))
    return pairs


def gain(a: np.ndarray, b: np.ndarray) -> float:
    """Independent over paired standard error of mean(b) - mean(a)."""
    paired = np.std(b - a, ddof=1)
    return float(np.sqrt(np.var(a, ddof=1) + np.var(b, ddof=1)) / paired) if paired > 0 else float("inf")


def measure(n_loans: int = 4_000, n_paths: int = 600, seed: int = 3) -> list[dict[str, float | str]]:
    """Gains of the expected loss and of the default count, per lever scenario."""
    book = stresslab.synthetic_portfolio(n_loans, seed=0)
    rows = []
    for name, parent in lever_scenarios():
        runs = stresslab.compare(book, [stresslab.load_scenario(SCENARIOS / parent),
                                        stresslab.load_scenario(SCENARIOS / name)], n_paths, seed=seed)
        loss = [runs.loss_gross.isel(scenario=k).sum("month").values for k in range(2)]
        defaults = [runs.count_by_state.isel(scenario=k).sel(state="D").isel(month=-1).values.astype(float)
                    for k in range(2)]
        rows.append({"scenario": name, "parent": parent, "gain_loss": gain(*loss), "gain_defaults": gain(*defaults)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loans", type=int, default=4_000)
    parser.add_argument("--paths", type=int, default=600)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    for row in measure(args.loans, args.paths, args.seed):
        shown = [f"{g:6.1f}x" if np.isfinite(g) else "identical" for g in (row["gain_loss"], row["gain_defaults"])]
        print(f"{row['scenario']:28s} vs {row['parent']:24s} gain EL {shown[0]}, defaults {shown[1]}")


if __name__ == "__main__":
    main()
