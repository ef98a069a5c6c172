"""Pooled books: a book of millions of standard loans, pooled against loan level.

Run: python benchmarks/bench_pooled.py [--loans 2000000] [--paths 200]

The book is built from standard products, as an online lender sells them: industry and
region (the synthetic book's), borrower type, one of five loan amounts, an annuity over 12
or 24 months at the rate of one of four risk grades, a remaining term of 1..24 months and
a state (C 90 %, M1-M3 10 %). Loans of the same cell are identical in every model input,
so they pool. Both runs use the same seed and the baseline scenario; the loan-level run
uses fewer paths (its time is scaled per path). Prints the pools formed, the time per
path of each method and their ratio, and the expected loss of each (they agree within
their Monte Carlo errors).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

import stresslab

ROOT = Path(__file__).resolve().parents[1]
_AMOUNTS = np.array([10_000.0, 20_000.0, 50_000.0, 100_000.0, 200_000.0])
_GRADES = [(0.01, 0.08), (0.03, 0.12), (0.06, 0.16), (0.12, 0.22)]  # (12-month pd, annual rate)


def product_book(n_loans: int, seed: int = 0) -> stresslab.Portfolio:
    """A book of ``n_loans`` standard loans (see the module docstring)."""
    rng = np.random.default_rng(seed)
    base = stresslab.synthetic_portfolio(2_000, seed=seed)
    industries, regions = np.unique(base.industry), np.unique(base.region)
    grade = rng.choice(len(_GRADES), size=n_loans, p=[0.3, 0.35, 0.25, 0.1])
    term = rng.choice([12, 24], size=n_loans)
    frame = pd.DataFrame({
        "loan_id": np.char.add("P", np.arange(n_loans).astype(str)),
        "borrower_id": np.char.add("B", np.arange(n_loans).astype(str)),
        "borrower_type": np.where(rng.random(n_loans) < 0.3, "enterprise", "individual"),
        "industry": industries[rng.integers(0, industries.size, n_loans)],
        "region": regions[rng.integers(0, regions.size, n_loans)],
        "balance": _AMOUNTS[rng.choice(_AMOUNTS.size, size=n_loans, p=[0.3, 0.3, 0.2, 0.15, 0.05])],
        "annual_rate": np.array([r for _, r in _GRADES])[grade],
        "remaining_term": term - rng.integers(0, term),
        "amortization": "annuity",
        "pd": np.array([p for p, _ in _GRADES])[grade],
        "state": np.array(["C", "M1", "M2", "M3"])[rng.choice(4, size=n_loans, p=[0.9, 0.05, 0.03, 0.02])],
    })
    return stresslab.Portfolio.from_frame(frame, source=f"<product book n={n_loans}>")


def measure(n_loans: int, n_paths: int, loan_paths: int) -> dict[str, float]:
    """Pools, seconds per path pooled and loan-level, expected losses with standard errors."""
    book = product_book(n_loans)
    scenario = stresslab.load_scenario(ROOT / "scenarios" / "baseline.toml")
    stresslab.simulate(book, scenario, n_paths=2, seed=0, pooled=True)  # compile outside the timing
    stresslab.simulate(stresslab.synthetic_portfolio(100), scenario, n_paths=2, seed=0)
    t0 = time.perf_counter()
    pooled = stresslab.simulate(book, scenario, n_paths=n_paths, seed=1, pooled=True)
    t1 = time.perf_counter()
    loans = stresslab.simulate(book, scenario, n_paths=loan_paths, seed=1)
    t2 = time.perf_counter()
    result = {"loans": n_loans, "pools": pooled.attrs["n_pools"]}
    result["pooled_s_per_path"] = (t1 - t0) / n_paths
    result["loan_s_per_path"] = (t2 - t1) / loan_paths
    for name, ds in (("pooled", pooled), ("loan", loans)):
        loss = ds.loss_gross.sum("month").values
        result[f"{name}_el"] = loss.mean()
        result[f"{name}_se"] = loss.std(ddof=1) / np.sqrt(loss.size)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loans", type=int, default=2_000_000)
    parser.add_argument("--paths", type=int, default=200)
    parser.add_argument("--loan-paths", type=int, default=10)
    args = parser.parse_args()
    r = measure(args.loans, args.paths, args.loan_paths)
    print(f"{r['loans']:,} loans in {r['pools']:,} pools ({r['loans'] / r['pools']:.0f} loans a pool)")
    print(f"seconds per path: pooled {r['pooled_s_per_path']:.4f}, loan level {r['loan_s_per_path']:.3f}; "
          f"pooled is {r['loan_s_per_path'] / r['pooled_s_per_path']:.0f}x faster")
    print(f"expected loss: pooled {r['pooled_el']:,.0f} (se {r['pooled_se']:,.0f}), "
          f"loan level {r['loan_el']:,.0f} (se {r['loan_se']:,.0f})")


if __name__ == "__main__":
    main()
