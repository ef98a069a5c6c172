"""Compile a scenario's credit-enhancement layers into kernel arrays (MODEL.md §5)."""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Sequence

import numpy as np
from scipy.special import ndtri

from stresslab._kernels.allocation import BASIS_EAD, BASIS_PRINCIPAL, EXCESS_OF_LOSS, QUOTA_SHARE, LayerArrays
from stresslab._rng import name_keys
from stresslab.errors import ScenarioError, StresslabWarning, did_you_mean
from stresslab.portfolio import Portfolio
from stresslab.scenario import Scenario

__all__ = ["compile_layers"]

_NEAR_MISS = 0.8


def compile_layers(portfolio: Portfolio, scenario: Scenario) -> LayerArrays:
    """Kernel arrays of the scenario's layers for this book.

    Eligibility names are checked against the book: a near-miss of a book name is an
    error (a typo would silently exclude loans), a list none of whose names is in the book
    is an error, and other absent names give a StresslabWarning.

    The provider's monthly failure hazard h = 1 - (1 - p)^(1/T) makes the horizon
    failure probability exactly p when the global factor is serially independent (or the
    sensitivity is 0); with persistent factors failures cluster in bad paths and the
    horizon probability is somewhat below p (docs/model.md).
    """
    specs = scenario.layers
    n_layers, n_loans = len(specs), portfolio.n_loans
    eligible = np.ones((n_layers, n_loans), dtype=np.uint8)
    for k, spec in enumerate(specs):
        mask = np.ones(n_loans, dtype=bool)
        for column, names in (("industry", spec.industries), ("region", spec.regions), ("borrower_type", spec.borrower_types)):
            if names is not None:
                values = getattr(portfolio, column)
                _check_names(scenario, spec.name, column, names, np.unique(values))
                mask &= np.isin(values, list(names))
        if spec.max_balance is not None:
            mask &= portfolio.balance <= spec.max_balance
        eligible[k] = mask

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


def _check_names(scenario: Scenario, layer: str, column: str, names: Sequence[str], book: np.ndarray) -> None:
    where = f"{scenario.source}: [[layers]] '{layer}' eligibility"
    present = sorted(set(book.tolist()))
    absent = [n for n in names if n not in present]
    for name in absent:
        if difflib.get_close_matches(name, present, n=1, cutoff=_NEAR_MISS):
            raise ScenarioError(f"{where} names {column} '{name}', which is not in the book{did_you_mean(name, present)}")
    if absent and len(absent) == len(names):
        raise ScenarioError(
            f"{where}: none of the {column} values {list(names)} is in the book, so the layer would cover "
            f"no loan; the book has {present}"
        )
    if absent:
        warnings.warn(f"{where} names {column} {absent} absent from the book (it has {present})", StresslabWarning, stacklevel=3)
