"""Compile a scenario's credit-enhancement layers into kernel arrays (MODEL.md §5)."""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri

from stresslab._kernels.arrays import (
    BASIS_EAD,
    BASIS_PRINCIPAL,
    EXCESS_OF_LOSS,
    QUOTA_SHARE,
    LayerArrays,
)
from stresslab._rng import name_keys
from stresslab.book.portfolio import Portfolio
from stresslab.compile.binding import eligible_loans
from stresslab.scenario.scenario import Scenario

__all__ = ["compile_layers"]


def compile_layers(portfolio: Portfolio, scenario: Scenario) -> LayerArrays:
    """Kernel arrays of the scenario's layers for this book.

    Eligibility names were bound to the book by
    :func:`stresslab.compile.binding.bind_names`.

    The provider's monthly failure hazard h = 1 - (1 - p)^(1/T) makes the horizon
    failure probability exactly p when the global factor is serially independent (or the
    sensitivity is 0); with persistent factors failures cluster in bad paths and the
    horizon probability is somewhat below p (docs/model.md).
    """
    specs = scenario.layers
    n_layers, n_loans = len(specs), portfolio.n_loans
    eligible = np.ones((n_layers, n_loans), dtype=np.uint8)
    for k, spec in enumerate(specs):
        eligible[k] = eligible_loans(
            portfolio,
            industries=spec.industries,
            regions=spec.regions,
            borrower_types=spec.borrower_types,
            max_balance=spec.max_balance,
        )

    def values(name: str, unset: float) -> np.ndarray:
        return np.array([unset if getattr(s, name) is None else getattr(s, name) for s in specs], dtype=float)

    horizon = scenario.horizon_months
    failure = values("failure_probability", 0.0)
    hazard = -np.expm1(np.log1p(-failure) / horizon)
    # loans covered by the same set of layers form one class; fees are charged per class
    classes, cover_class = np.unique(eligible.T, axis=0, return_inverse=True)
    return LayerArrays(
        kind=np.array([QUOTA_SHARE if s.kind == "quota_share" else EXCESS_OF_LOSS for s in specs], dtype=np.int8),
        share=values("share", 1.0),
        attachment=values("attachment", 0.0),
        limit=values("limit", np.inf),
        basis=np.array([BASIS_PRINCIPAL if s.basis == "principal" else BASIS_EAD for s in specs], dtype=np.int8),
        per_loan_limit=values("per_loan_limit", np.inf),
        capacity=values("capacity", np.inf),
        topup_every=values("topup_every_months", 0.0).astype(np.int64),
        annual_cap=values("annual_cap", np.inf),
        lag=values("lag_months", 0.0).astype(np.int64),
        monthly_fee=values("fee_rate", 0.0) / 12.0,
        eligible=eligible,
        failure_threshold=np.where(failure > 0.0, ndtri(hazard), -np.inf),
        failure_loading=values("failure_sensitivity", 0.0),
        key=name_keys([f"layer:{s.name}" for s in specs]),
        cover_class=np.ascontiguousarray(cover_class.reshape(-1), dtype=np.int32),
        class_mask=np.ascontiguousarray(classes, dtype=np.uint8),
    )
