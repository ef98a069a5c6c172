"""PD calibration over the factors (docs/model.md §2): time to compile a large book.

Run: python benchmarks/bench_calibration.py [--loans 1000000] [--repeat 3]

Times the calibration of every loan's entry threshold (and DSCR volatility) of the
synthetic book under scenarios/baseline.toml (seasonality in four industries, DSCRs for
half the borrowers: the two-pass case), a copy without seasonality (one pass), and the
t copula (4 dof), best of --repeat after a warm-up that compiles the kernel; and the whole
``compile_model`` (loan keys, schedules, layers too) under the baseline.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
from timing import best_of  # noqa: E402

import stresslab  # noqa: E402
from stresslab.compile.calibration import FactorLaw  # noqa: E402
from stresslab.compile.model import _entry_thresholds, compile_model  # noqa: E402


def measure(n_loans: int = 1_000_000, repeat: int = 3) -> dict[str, float]:
    """Seconds to calibrate the book under each scenario variant, and to compile it (best of ``repeat``)."""
    book = stresslab.synthetic_portfolio(n_loans, seed=0)
    industries, industry = book.codes("industry")
    baseline = stresslab.load_scenario(HERE.parent / "scenarios" / "baseline.toml")
    flat = stresslab.Scenario.from_dict({**baseline.to_dict(), "seasonality": {}, "calibration_reference": None})
    t_copula = baseline.with_overrides({"factors.copula": "t", "factors.dof": 4.0})
    runs = {"baseline (seasonal, DSCR)": baseline, "no seasonality": flat, "t copula, 4 dof": t_copula}
    compile_model(stresslab.synthetic_portfolio(200, seed=1), t_copula)  # compile the kernels

    def calibrate(scenario: stresslab.Scenario) -> np.ndarray:
        loadings = np.asarray(scenario.factors.loadings(industries), dtype=float)
        rho = (loadings**2).sum(axis=1)[industry]
        law = FactorLaw(scenario.factors.copula, scenario.factors.dof, scenario.factors.ar1)
        return _entry_thresholds(book, scenario, industries, industry, rho, law)[0]

    jobs = {f"calibration, {name}": (lambda s=s: calibrate(s)) for name, s in runs.items()}
    jobs["compile_model, baseline"] = lambda: compile_model(book, baseline)
    times, _ = best_of(repeat, jobs)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loans", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for name, seconds in measure(args.loans, args.repeat).items():
        print(f"{name}, {args.loans:,} loans: {seconds:.2f} s")


if __name__ == "__main__":
    main()
