"""Cost of credit-enhancement layers: a layered library scenario vs the same run without layers.

Run: python benchmarks/bench_layers.py [--scenario scenarios/guarantee_insurance.toml]
     [--loans 20000] [--paths 1000] [--repeat 3]

Both runs use the same book, seed and scenario apart from the layers, in one process,
alternating, best of ``--repeat`` (compilation excluded). Target: under 30% extra time.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import stresslab

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path, default=ROOT / "scenarios" / "guarantee_insurance.toml")
    parser.add_argument("--loans", type=int, default=20_000)
    parser.add_argument("--paths", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    book = stresslab.synthetic_portfolio(args.loans, seed=0)
    layered = stresslab.load_scenario(args.scenario)
    bare = layered.with_overrides({"layers": []})
    for scen in (bare, layered):  # compile and warm up
        stresslab.simulate(book.subset(np.arange(200)), scen, n_paths=4, seed=1)
    best = {"without layers": np.inf, "with layers": np.inf}
    for _ in range(args.repeat):
        for name, scen in (("without layers", bare), ("with layers", layered)):
            t0 = time.perf_counter()
            stresslab.simulate(book, scen, n_paths=args.paths, seed=7)
            best[name] = min(best[name], time.perf_counter() - t0)
    print(f"{args.scenario.name}: {len(layered.layers)} layers, {book.n_loans:,} loans x {args.paths:,} paths "
          f"x {layered.horizon_months} months (best of {args.repeat})")
    for name, sec in best.items():
        print(f"  {name:16}{sec:8.3f} s")
    print(f"  extra time of layers: {100 * (best['with layers'] / best['without layers'] - 1):.1f}% (target < 30%)")


if __name__ == "__main__":
    main()
