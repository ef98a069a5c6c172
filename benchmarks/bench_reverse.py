"""Reverse stress test of the standard book: wall time for an event at the plain 99.9% VaR.

Run: python benchmarks/bench_reverse.py [--loans 20000] [--paths 10000] [--scenario FILE]

A plain run of 2,000 paths gives the 99.9% VaR x; then ``reverse_stress(book, scenario,
"loss > x")`` with its defaults (2,000 pilot paths a round, a check run of 2,000) is timed,
kernels compiled beforehand. Prints the time, the event's probability and the load
average (the machine is shared: quote it with the figure).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

import stresslab

ROOT = Path(__file__).resolve().parents[1]


def measure(n_loans: int = 20_000, n_paths: int = 10_000, scenario: Path = ROOT / "scenarios" / "baseline.toml",
            seed: int = 0) -> dict[str, float]:
    """Seconds of one reverse stress test, with what it found and the load before and after."""
    book = stresslab.synthetic_portfolio(n_loans, seed=0)
    scen = stresslab.load_scenario(scenario)
    plain = stresslab.simulate(book, scen, n_paths=2_000, seed=seed + 1, progress=False)  # also compiles
    x = float(np.quantile(plain.loss_gross.sum("month").values, 0.999))
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    r = stresslab.reverse_stress(book, scen, f"loss > {x:.6g}", n_paths=n_paths, seed=seed, progress=False)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "x": x, "probability": r.probability, "event_paths": r.event_paths,
            "reproduction": r.reproduction, "load_before": load_before, "load_after": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loans", type=int, default=20_000)
    parser.add_argument("--paths", type=int, default=10_000)
    parser.add_argument("--scenario", type=Path, default=ROOT / "scenarios" / "baseline.toml")
    args = parser.parse_args()
    m = measure(args.loans, args.paths, args.scenario)
    print(f"reverse stress test, {args.loans:,} loans, event loss > {m['x']:.4g} (plain VaR 99.9%): "
          f"{m['seconds']:.1f} s; P = {m['probability']:.3g}, {m['event_paths']:,} event paths, written scenario "
          f"shows it in {m['reproduction']:.0%}; load average {m['load_before']:.1f} -> {m['load_after']:.1f}")


if __name__ == "__main__":
    main()
