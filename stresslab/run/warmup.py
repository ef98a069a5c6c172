"""Compile every kernel variant once, so that later runs start at once (``stresslab warmup``)."""

from __future__ import annotations

import time
import warnings

from stresslab.book.synthetic import synthetic_portfolio
from stresslab.compile.provisions import expected_credit_loss
from stresslab.errors import StresslabWarning
from stresslab.run.simulate import simulate
from stresslab.scenario.scenario import Scenario

__all__ = ["warm_up_kernels"]

# tiny runs that together reach every compiled code path: each copula, layers, every lever,
# importance sampling (its pilot runs and tuner), the pooled kernel and the IFRS 9 allowance tables
_VARIANTS: tuple[tuple[dict, dict], ...] = (
    ({"horizon_months": 3}, {}),
    ({"horizon_months": 3, "factors": {"copula": "t", "dof": 5},
      "layers": [{"name": "guarantee", "kind": "quota_share", "share": 0.5, "capacity": 1e6}],
      "policy": {"deferral": {"months": 1}, "interest_subsidy": {"points": 0.01}, "rate_cap": {"cap": 0.2},
                 "loan_cap": {"caps": {"individual": 1e5, "enterprise": 1e6}}, "revenue_support": {"uplift": 0.05}}},
     {}),
    ({"horizon_months": 3}, {"tail": "is", "pilot_paths": 64}),
    ({"horizon_months": 3, "factors": {"copula": "t", "dof": 5}}, {"tail": "is", "pilot_paths": 64}),
    ({"horizon_months": 3}, {"pooled": True}),
    ({"horizon_months": 3, "ifrs9": {"allowance": "point_in_time"}}, {}),
)


def warm_up_kernels() -> float:
    """Compile (or load from numba's cache) the kernels of every kind of run.

    Returns
    -------
    float
        Seconds taken: about a minute the first time on a machine, a few seconds once
        numba's cache holds the kernels.
    """
    start = time.perf_counter()
    book = synthetic_portfolio(200, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StresslabWarning)  # pooling a tiny mixed book saves nothing: known
        for data, options in _VARIANTS:
            simulate(book, Scenario.from_dict({"name": "warmup", **data}), 8, seed=0, progress=False, **options)
        expected_credit_loss(book.subset(range(4)), Scenario.from_dict({"name": "warmup", "horizon_months": 3}))
    return time.perf_counter() - start
