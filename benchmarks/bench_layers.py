"""Cost of credit-enhancement layers: a layered library scenario vs the same run without layers.

Run: python benchmarks/bench_layers.py [--scenario scenarios/guarantee_insurance.toml]
     [--loans 20000] [--paths 1000] [--repeat 3]

Both runs use the same book, seed and scenario apart from the layers, in one process,
alternating, best of ``--repeat`` (compilation excluded). Target: under 30% extra time.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from timing import best_of

import stresslab

ROOT = Path(__file__).resolve().parents[1]


def measure(scenario_path: Path, n_loans: int = 20_000, n_paths: int = 1_000, repeat: int = 3) -> dict[str, float]:
    """Best-of-``repeat`` seconds with and without the scenario's layers, and the layer count."""
    book = stresslab.synthetic_portfolio(n_loans, seed=0)
    layered = stresslab.load_scenario(scenario_path)
    bare = layered.with_overrides({"layers": []})
    for scen in (bare, layered):  # compile and warm up
        stresslab.simulate(book.subset(np.arange(200)), scen, n_paths=4, seed=1)
    best, _ = best_of(repeat, {
        "bare_s": lambda: stresslab.simulate(book, bare, n_paths=n_paths, seed=7),
        "layered_s": lambda: stresslab.simulate(book, layered, n_paths=n_paths, seed=7),
    })
    return {**best, "layers": float(len(layered.layers)), "extra": best["layered_s"] / best["bare_s"] - 1.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path, default=ROOT / "scenarios" / "guarantee_insurance.toml")
    parser.add_argument("--loans", type=int, default=20_000)
    parser.add_argument("--paths", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    m = measure(args.scenario, args.loans, args.paths, args.repeat)
    print(f"{args.scenario.name}: {m['layers']:.0f} layers, {args.loans:,} loans x {args.paths:,} paths (best of {args.repeat})")
    print(f"  without layers {m['bare_s']:8.3f} s")
    print(f"  with layers    {m['layered_s']:8.3f} s")
    print(f"  extra time of layers: {100 * m['extra']:.1f}% (target < 30%)")


if __name__ == "__main__":
    main()
