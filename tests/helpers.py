"""Small books and scenarios for engine tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from stresslab.book.portfolio import Portfolio
from stresslab.scenario.scenario import Scenario


def book(
    n: int,
    *,
    pd_: float = 0.05,
    balance: float = 1.0,
    rate: float = 0.0,
    term: int = 1,
    amortization: str = "bullet",
    state: str = "C",
    industries: tuple[str, ...] = ("retail",),
    regions: tuple[str, ...] = ("east",),
    **extra: Any,
) -> Portfolio:
    """A homogeneous book of ``n`` loans spread evenly over industries and regions."""
    frame = pd.DataFrame(
        {
            "loan_id": [f"L{j:06d}" for j in range(n)],
            "borrower_id": [f"B{j:06d}" for j in range(n)],
            "borrower_type": "individual",
            "industry": [industries[j % len(industries)] for j in range(n)],
            "region": [regions[(j // len(industries)) % len(regions)] for j in range(n)],
            "balance": balance,
            "annual_rate": rate,
            "remaining_term": term,
            "amortization": amortization,
            "pd": pd_,
            "state": state,
            **extra,
        }
    )
    return Portfolio.from_frame(frame, source="<test book>")


def scenario(horizon: int = 1, name: str = "test", **tables: dict[str, Any]) -> Scenario:
    """A scenario with the given horizon and tables (merged over a no-recovery default).

    With default_after = 1 (the default here) the book's pd is a one-month PD
    (pd_horizon_months = 1), so a loan's monthly miss probability is its pd exactly.
    """
    data: dict[str, Any] = {
        "name": name,
        "horizon_months": horizon,
        "factors": {"global_loading": 0.0, "industry_loading": 0.0, "region_loading": 0.0},
        "delinquency": {"default_after": 1},
        "recovery": {"unsecured_mean": 0.0},
    }
    for key, table in tables.items():
        data[key] = {**data.get(key, {}), **table}
    if data["delinquency"].get("default_after", 4) == 1:
        data["pd_horizon_months"] = 1
    return Scenario.from_dict(data)


def tail_check(counts: np.ndarray, cdf_ref: np.ndarray, ks: list[int]) -> list[tuple[int, float, float, float]]:
    """(k, P_mc(N >= k), P_ref(N >= k), se) for each k; se = sqrt(q (1 - q) / n_paths)."""
    n_paths = counts.size
    rows = []
    for k in ks:
        ref = 1.0 - (cdf_ref[k - 1] if k > 0 else 0.0)
        mc = float(np.mean(counts >= k))
        rows.append((k, mc, ref, float(np.sqrt(ref * (1 - ref) / n_paths))))
    return rows
