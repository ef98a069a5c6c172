"""Run the benchmark suite and print one table.

Run: python benchmarks/run_all.py [--quick]

Speed figures are ratios measured in one process where possible (these machines are
noisy); absolute rates are for 2 cores. --quick uses smaller sizes (minutes, not tens of
minutes), for a smoke run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_engine  # noqa: E402
import bench_glasserman_li
import bench_importance  # noqa: E402
import bench_layers  # noqa: E402
import bench_memory  # noqa: E402
import bench_one_period  # noqa: E402
import bench_pooled  # noqa: E402
import bench_reverse  # noqa: E402

import stresslab  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    q = args.quick
    rows: list[tuple[str, str, str]] = []

    e = bench_engine.measure(n_loans=5_000 if q else 20_000, n_paths=500 if q else 2_000, numpy_paths=5 if q else 20)
    rate = e["nominal_steps"] / e["engine_s"]
    rows.append(("kernel, standard book", f"{rate:.3g} loan-months/s ({e['draws'] / e['engine_s']:.3g} live draws/s)", ""))
    rows.append(("engine / RNG floor (a draw per loan-month step)", f"{e['engine_s'] / e['floor_nominal_s']:.2f}x", "target <= 3"))
    rows.append(("engine / live-draw floor (draws the engine makes)", f"{e['engine_s'] / e['floor_s']:.1f}x", ""))
    rows.append(("numpy / engine", f"{e['numpy_s'] / e['engine_s']:.0f}x", "target >= 5"))

    o = bench_one_period.measure(n_paths=20_000 if q else 200_000)
    rows.append(("one period, 1,000 loans, 21 factors", f"{o['loan_paths_per_s']:.3g} loan-paths/s", ""))

    lay = bench_layers.measure(HERE.parent / "scenarios" / "risk_sharing.toml", n_loans=5_000 if q else 20_000,
                               n_paths=200 if q else 1_000)
    rows.append((f"layers ({lay['layers']:.0f}, risk_sharing)", f"+{100 * lay['extra']:.1f}% time", "target < 30%"))

    book, scenario = bench_importance.one_factor_case()
    for r in bench_importance.measure(book, scenario, n_plain=5_000 if q else 20_000, n_paths=2_000 if q else 4_000):
        rows.append((f"IS, one factor, level {r['level']}", f"VR P(L>VaR) {r['vr_p']:.0f}x, ES {r['vr_es']:.0f}x",
                     "target >= 20x at 0.999"))

    strong = stresslab.load_scenario(HERE.parent / "scenarios" / "concentrated_sectors.toml")
    n_strong = 5_000 if q else 20_000
    for r in bench_importance.measure(stresslab.synthetic_portfolio(n_strong, seed=0), strong,
                                      n_plain=5_000 if q else 20_000, n_paths=2_000 if q else 4_000):
        rows.append((f"IS, concentrated sectors, {n_strong:,} loans, level {r['level']}",
                     f"VR P(L>VaR) {r['vr_p']:.0f}x, ES {r['vr_es']:.0f}x", "target >= 20x at 0.999"))

    for r in bench_glasserman_li.measure(1000, 40_000 if q else 400_000, 10_000 if q else 40_000, seed=1,
                                         probabilities=tuple(bench_glasserman_li.TABLE1)):
        rows.append((f"IS, Glasserman-Li 21 factors, P(L > x) = {r['plain_p']:.4f}",
                     f"VR {r['vr']:.0f}x +- {r['vr_se']:.0f}", f"Table 1: {bench_glasserman_li.TABLE1[r['target_p']]:.0f}x"))

    rev = bench_reverse.measure(n_loans=5_000 if q else 20_000, n_paths=2_000 if q else 10_000)
    rows.append((f"reverse stress test, {5_000 if q else 20_000:,} loans, event at VaR 99.9%",
                 f"{rev['seconds']:.0f} s (load {rev['load_before']:.1f})", "target < 120 s"))

    pool = bench_pooled.measure(200_000 if q else 2_000_000, 20 if q else 100, 2 if q else 4)
    rows.append((f"pooled, {pool['loans']:,} standard loans in {pool['pools']:,} pools",
                 f"{pool['loan_s_per_path'] / pool['pooled_s_per_path']:.0f}x faster per path than loan level", ""))

    dask = subprocess.run([sys.executable, str(HERE / "bench_dask.py"), "--paths", "300" if q else "2000"],
                          capture_output=True, text=True)
    line = next((ln for ln in dask.stdout.splitlines() if "overhead" in ln.lower()), dask.stderr.strip()[-200:])
    rows.append(("Dask, 2 workers x 1 thread vs 2 threads", line.strip(), "target < 15%"))

    m = bench_memory.measure(20_000 if q else 200_000, 1_000 if q else 10_000)
    size = "20k x 1k" if q else "200k x 10k"
    rows.append((f"peak memory, {size} x 36 months", f"{m['peak_gib']:.2f} GiB in {m['seconds']:.0f} s", "target < 2 GiB"))

    width = max(len(r[0]) for r in rows) + 2
    for name, value, target in rows:
        print(f"{name:<{width}}{value:<58}{target}")


if __name__ == "__main__":
    main()
