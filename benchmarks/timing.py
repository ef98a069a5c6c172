"""Timing shared by the benchmarks: best of several runs, taken in turn."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["best_of"]


def best_of(repeat: int, runs: dict[str, Callable[[], object]]) -> tuple[dict[str, float], dict[str, object]]:
    """Shortest of ``repeat`` timings of each run, and each run's last result.

    The runs take turns (one of each, ``repeat`` times over), so a noisy spell on a shared
    machine slows them alike instead of one of them; the shortest time is the least
    disturbed one, as :mod:`timeit` takes it.
    """
    best = dict.fromkeys(runs, float("inf"))
    results: dict[str, object] = {}
    for _ in range(repeat):
        for name, run in runs.items():
            t0 = time.perf_counter()
            results[name] = run()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best, results
