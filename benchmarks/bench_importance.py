"""Importance sampling: variance reduction and effective sample size against plain Monte Carlo.

Run: python benchmarks/bench_importance.py [--scenario FILE] [--loans 2000] [--plain 20000] [--paths 4000]

A plain run with many paths gives the reference VaR and ES; the tail probability
P(L > VaR) and ES at 99% and 99.9% are then estimated by plain MC and by importance
sampling with the same number of paths. VR = plain variance / IS variance per path (for
ES, from the variance of the ES estimator's influence terms). Without --scenario it uses
the one-factor homogeneous book of MODEL.md §9 (1,000 loans, p = 1%, rho = 0.2).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import stresslab
from stresslab.estimators import var_es

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def one_factor_case() -> tuple[stresslab.Portfolio, stresslab.Scenario]:
    from helpers import book, scenario

    return book(1000, pd_=0.01), scenario(1, factors={"global_loading": float(np.sqrt(0.2))})


def measure(book, scenario, n_plain: int, n_paths: int, seed: int = 3) -> list[dict[str, float]]:
    """Rows per level: reference VaR, IS and plain estimates, ESS and variance reductions."""
    ref = stresslab.simulate(book, scenario, n_paths=n_plain, seed=seed + 1)
    plain = stresslab.simulate(book, scenario, n_paths=n_paths, seed=seed)
    t0 = time.perf_counter()
    tilted = stresslab.simulate(book, scenario, n_paths=n_paths, seed=seed, tail="is", target=0.999)
    is_seconds = time.perf_counter() - t0
    rows = []
    lr = ref.loss_gross.sum("month").values
    for level in (0.99, 0.999):
        v, _ = var_es(lr, ref.weight.values, level)
        row = {"level": level, "var": v, "is_seconds": is_seconds}
        for name, ds in (("plain", plain), ("is", tilted)):
            loss, w = ds.loss_gross.sum("month").values, ds.weight.values
            tail = w * (loss > v)
            excess = w * np.maximum(loss - v, 0.0) / (1 - level)
            row[f"{name}_p"] = tail.mean()
            row[f"{name}_p_var"] = tail.var(ddof=1)
            row[f"{name}_es_var"] = excess.var(ddof=1)
            row[f"{name}_ess"] = w.sum() ** 2 / (w**2).sum()
        p = max(row["plain_p"], 1.0 / n_paths)
        row["vr_p"] = p * (1 - p) / row["is_p_var"] if row["plain_p_var"] == 0 else row["plain_p_var"] / row["is_p_var"]
        row["vr_es"] = row["plain_es_var"] / row["is_es_var"] if row["is_es_var"] > 0 else np.inf
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path)
    parser.add_argument("--loans", type=int, default=2000)
    parser.add_argument("--plain", type=int, default=20_000)
    parser.add_argument("--paths", type=int, default=4_000)
    args = parser.parse_args()
    if args.scenario is None:
        book, scenario = one_factor_case()
    else:
        book, scenario = stresslab.synthetic_portfolio(args.loans, seed=0), stresslab.load_scenario(args.scenario)
    for r in measure(book, scenario, args.plain, args.paths):
        print(f"level {r['level']}: VaR {r['var']:,.0f}; P(L > VaR) plain {r['plain_p']:.5f}, IS {r['is_p']:.5f}; "
              f"VR tail probability {r['vr_p']:.1f}x, VR ES {r['vr_es']:.1f}x; ESS {r['is_ess']:,.0f} of {args.paths:,}")


if __name__ == "__main__":
    main()
