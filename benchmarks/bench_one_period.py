"""One-period throughput on a 1,000-loan book with 21 factors (loan-paths per second).

Run: python benchmarks/bench_one_period.py [--paths 200000]

The book: 1,000 bullet loans due in month 1 over 12 industries and 8 regions (1 global +
12 + 8 = 21 factors), default_after 1, horizon 1: the multi-factor copula default model of
MODEL.md §9 as a one-period portfolio model. Compilation is done before timing.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

import stresslab


def one_period_case(n_loans: int = 1_000) -> tuple[stresslab.Portfolio, stresslab.Scenario]:
    """The 21-factor one-period book and scenario."""
    rng = np.random.default_rng(0)
    industries = [f"ind{i:02d}" for i in range(12)]
    regions = [f"reg{r}" for r in range(8)]
    frame = pd.DataFrame({
        "loan_id": [f"L{j:05d}" for j in range(n_loans)],
        "borrower_id": [f"B{j:05d}" for j in range(n_loans)],
        "borrower_type": "enterprise",
        "industry": rng.choice(industries, n_loans),
        "region": rng.choice(regions, n_loans),
        "balance": rng.lognormal(11, 0.8, n_loans),
        "annual_rate": 0.0,
        "remaining_term": 1,
        "amortization": "bullet",
        "pd": rng.uniform(0.005, 0.05, n_loans),
    })
    scenario = stresslab.Scenario.from_dict({
        "name": "one_period_21_factors",
        "horizon_months": 1,
        "factors": {"global_loading": 0.35, "industry_loading": 0.3, "region_loading": 0.2,
                    "industry_correlation": 0.2, "region_correlation": 0.1},
        "delinquency": {"default_after": 1},
        "recovery": {"unsecured_mean": 0.0},
    })
    return stresslab.Portfolio.from_frame(frame, source="<one-period 21-factor book>"), scenario


def measure(n_paths: int = 200_000) -> dict[str, float]:
    """Seconds for ``n_paths`` paths and the loan-paths per second."""
    book, scenario = one_period_case()
    stresslab.simulate(book, scenario, n_paths=100, seed=1)  # compile
    t0 = time.perf_counter()
    stresslab.simulate(book, scenario, n_paths=n_paths, seed=2)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "loan_paths_per_s": book.n_loans * n_paths / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=int, default=200_000)
    args = parser.parse_args()
    m = measure(args.paths)
    print(f"one period, 1,000 loans, 21 factors, {args.paths:,} paths: {m['seconds']:.2f} s, "
          f"{m['loan_paths_per_s']:.3g} loan-paths/s")


if __name__ == "__main__":
    main()
