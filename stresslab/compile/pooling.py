"""Pooled books: loans identical in every model input simulated as counts (docs/model.md §11).

A book of millions of loans often holds far fewer distinct loans: standard products sold
in the same industry and region, with the same balance, term, rate, grade and state. Such
loans are exchangeable in the model, so the pooled kernel (stresslab._kernels.pools) moves
each pool's loans between states as binomial counts: the cost is per pool, not per loan.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np

from stresslab._kernels.arrays import EXCESS_OF_LOSS, LoanArrays
from stresslab._rng import mix64_array
from stresslab.compile.model import CompiledModel
from stresslab.errors import StresslabError, StresslabWarning

__all__ = ["pool_model", "pooled_events"]

# loan inputs that do not make two loans different in the model: their names (random
# stream keys) and whether the user tracks them one by one
_NOT_INPUTS = ("key", "track")


def pool_model(model: CompiledModel, *, where: str = "pooled mode") -> CompiledModel:
    """The model with identical loans grouped into pools (one row each, with its size).

    Two loans fall into one pool when every per-loan model input is bitwise equal: segment
    (industry, region, installment group), amortisation, state and arrears, term, balance,
    installment, rate, thresholds and volatility, pledge and recovery parameters, and the
    set of layers covering them. A pool takes the random-stream key of its first loan in
    book order, so results do not depend on how the book is sorted otherwise.

    Parameters
    ----------
    model : CompiledModel
        A loan-level model without policy levers that change loan terms and without
        tracked loans.
    where : str
        What to name in errors.

    Returns
    -------
    CompiledModel
        ``loans`` and the layers' per-loan arrays have one row per pool, and
        ``pool_size`` (int64, shape (n_pools,)) the number of loans of each.

    Raises
    ------
    StresslabError
        If the model tracks loans or some loan has a policy lever (deferral, loan cap,
        subsidy, rate cap or seasonal schedule): those change loans one by one.
    """
    if model.pool_size is not None:
        return model
    if model.tracked_loans:
        raise StresslabError(f"{where}: loans cannot be tracked one by one in a pooled book; drop track_loans or pooling")
    flag = model.policy.arrays.flag
    if flag.any():
        raise StresslabError(
            f"{where}: the scenario's policy levers change the terms of {int(flag.sum()):,} loans one by one; "
            "pooled books support scenarios without deferral, loan_cap, interest_subsidy, rate_cap or "
            "seasonal_schedule levers (revenue_support and collection are fine)"
        )
    columns = [a for name, a in model.loans._asdict().items() if name not in _NOT_INPUTS]
    columns.append(model.layers.cover_class)
    digest = np.zeros(model.n_loans, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for column in columns:
            bits = (np.asarray(column, dtype=np.float64) + 0.0).view(np.uint64)  # + 0.0: -0.0 == 0.0
            digest = mix64_array(digest ^ mix64_array(bits + np.uint64(0x9E3779B97F4A7C15)))
    _, first, inverse = np.unique(digest, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # pools in the order of their first loan
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    pool_of_loan = rank[inverse.reshape(-1)]
    first = first[order]
    for column in columns:  # a 64-bit digest collision would merge different loans: check
        if not np.array_equal(np.asarray(column)[first][pool_of_loan], np.asarray(column)):
            raise StresslabError(f"{where}: internal error: two different loans share a pool digest")
    loans = LoanArrays(*(np.ascontiguousarray(a[first]) for a in model.loans))
    layers = model.layers._replace(
        eligible=np.ascontiguousarray(model.layers.eligible[:, first]),
        cover_class=np.ascontiguousarray(model.layers.cover_class[first]),
    )
    size = np.bincount(pool_of_loan, minlength=first.size).astype(np.int64)
    if 2 * first.size > model.n_loans:
        warnings.warn(
            f"{where}: {model.n_loans:,} loans form {first.size:,} pools; loans pool only when identical in every "
            "model input (balance, term, rate, pd, state, segment, ...), so pooling saves little on this book",
            StresslabWarning,
            stacklevel=3,
        )
    return replace(model, loans=loans, layers=layers, pool_size=size)


def pooled_events(model: CompiledModel) -> tuple[bool, int]:
    """How a pooled book's defaults are handed to the layers: per loan or not, and how many at most.

    A cohort's defaults of a month share one average EAD. When every layer pays a linear
    function of the loss (quota shares without a per-loan limit) they are one event; an
    excess-of-loss layer or a per-loan limit applies per loan to each loan's own loss,
    so then each defaulted loan is an event with its own recovery rate.

    Returns
    -------
    per_loan : bool
    max_events : int
        Bound on the events of a path: every loan, or two cohorts per pool and month.
    """
    layers = model.layers
    per_loan = bool(np.any(layers.kind == EXCESS_OF_LOSS) or np.any(np.isfinite(layers.per_loan_limit)))
    total = int(model.pool_size.sum()) if model.pool_size is not None else model.n_loans
    return per_loan, total if per_loan else min(2 * model.n_loans * model.n_months, total)
