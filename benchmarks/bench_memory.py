"""Peak memory of a large run, measured by /usr/bin/time -v in a child process.

Run: python benchmarks/bench_memory.py [--loans 200000] [--paths 10000]

The child simulates the synthetic book under the baseline scenario (36 months) with the
progress bar on; the parent reports the child's maximum resident set size and wall time.
Target: peak memory under 2 GiB for 200,000 loans x 10,000 paths x 36 months.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import sys, stresslab
book = stresslab.synthetic_portfolio(int(sys.argv[1]), seed=0)
scenario = stresslab.load_scenario(sys.argv[3])
ds = stresslab.simulate(book, scenario, n_paths=int(sys.argv[2]), seed=1, progress=True)
print(f"EL {float(ds.loss_gross.sum('month').mean()):,.0f}")
"""


def measure(n_loans: int, n_paths: int) -> dict[str, float]:
    """Peak RSS (GiB) and wall seconds of the child run."""
    cmd = ["/usr/bin/time", "-v", sys.executable, "-c", CHILD, str(n_loans), str(n_paths),
           str(ROOT / "scenarios" / "baseline.toml")]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    rss_kib = float(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", proc.stderr).group(1)
    seconds = sum(float(part) * 60**i for i, part in enumerate(reversed(wall.split(":"))))
    return {"peak_gib": rss_kib / 2**20, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loans", type=int, default=200_000)
    parser.add_argument("--paths", type=int, default=10_000)
    args = parser.parse_args()
    m = measure(args.loans, args.paths)
    print(f"{args.loans:,} loans x {args.paths:,} paths x 36 months: peak memory {m['peak_gib']:.2f} GiB "
          f"(target < 2 GiB), {m['seconds']:.0f} s")


if __name__ == "__main__":
    main()
