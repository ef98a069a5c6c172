"""simulate_history(): the loan tape of one simulated path, written by the engine's own kernel.

The loan kernel (stresslab._kernels.paths) keeps a loan's state in registers and reports
only per-path sums. Every random number is a pure function of (seed, path, loan, month,
purpose) (MODEL.md §7), so a book of ONE loan, with that loan's random-stream key, run on
path p, follows exactly the trajectory the loan has in path p of the whole book. This
runner does that loan by loan, reading each loan's state and exposure from the one-loan
``count_by_state`` and ``balance_by_state``: the tape is path p of :func:`stresslab.simulate`
(tests/test_history.py checks that its counts by state are that path's, bitwise), and
nothing in the kernel changes.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from stresslab._kernels.arrays import LayerArrays, LoanArrays, PolicyArrays
from stresslab._kernels.paths import _simulate_path
from stresslab._kernels.settlement import drawn_factors, path_scratch
from stresslab.book.history import STATE_CODES, History, month_index
from stresslab.book.portfolio import Portfolio
from stresslab.compile.model import CompiledModel, compile_model
from stresslab.errors import InternalError, StresslabError
from stresslab.run.runner import NO_ALLOWANCE, allocate, check_int
from stresslab.scenario.scenario import Scenario

__all__ = ["simulate_history"]

# PolicyArrays fields shared by all loans; every other field is per loan (checked)
_SHARED_POLICY = frozenset({"enabled", "deferral_states", "shape"})

# static columns of the book copied to every row of a loan (the loan book's format)
_STATIC = ("borrower_id", "borrower_type", "industry", "region", "amortization", "annual_rate", "pd")


def simulate_history(
    portfolio: Portfolio, scenario: Scenario, months: int, seed: int, *, path: int = 0, first_month: str | None = None
) -> History:
    """The loan tape of one simulated path: each loan's state and exposure at every month-end.

    Parameters
    ----------
    portfolio : Portfolio
        The book at the tape's first month-end (month 0).
    scenario : Scenario
        The scenario; its ``horizon_months`` is replaced by ``months``.
    months : int
        Months simulated after the first month-end (1..120).
    seed : int
        Simulation seed, as in :func:`stresslab.simulate`.
    path : int
        Which Monte Carlo path (default 0): the tape is exactly that path of
        ``simulate(portfolio, scenario, n_paths > path, seed)``.
    first_month : str, optional
        Calendar month ``YYYY-MM`` of horizon month 1; its month must be the scenario's
        ``start_month`` (the seasonality's calendar). Default: 2021 and ``start_month``.

    Returns
    -------
    History
        Rows: every loan at month 0 (the month before ``first_month``, its state in the
        book) and at each later month-end while it is live, plus the month it defaults (D,
        balance = EAD) or is paid off (P, balance 0); then it leaves the tape. Columns as
        docs/history.md: ``loan_id``, ``month``, ``state``, ``balance`` (exposure: principal
        and arrears), the book's static columns, and ``remaining_term`` (contractual months
        to maturity at that month-end: the book's term less the months elapsed, not moved
        by deferrals).

    Notes
    -----
    One kernel call per loan (about 0.3 ms each on this machine): meant for demo and test
    books (tens of thousands of loans), not for production books.
    """
    months = check_int("months", months, 1, 120)
    seed = check_int("seed", seed, 0, 2**63 - 1)
    path = check_int("path", path, 0, 2**40)
    if first_month is None:
        first_month = f"2021-{scenario.start_month:02d}"
    match = re.fullmatch(r"(\d{4})-(0[1-9]|1[0-2])", str(first_month))
    if match is None or int(match.group(2)) != scenario.start_month:
        raise StresslabError(f"first_month must be YYYY-MM in the scenario's start_month ({scenario.start_month}); "
                             f"got {first_month!r}")
    if scenario.horizon_months != months:
        scenario = scenario.with_overrides({"horizon_months": months})
    model = compile_model(portfolio, scenario)
    state, exposure = _loan_paths(model, seed, path)
    return _tape(portfolio, model, state, exposure, month_index(int(match.group(1)), int(match.group(2))) - 1)


def _loan_paths(model: CompiledModel, seed: int, path: int) -> tuple[np.ndarray, np.ndarray]:
    """Month-end state codes (n_loans, T + 1; -1 after absorption) and exposures of every loan."""
    n, t_max = model.n_loans, model.n_months
    loans, policy = model.loans, model.policy.arrays
    for name, a in [*loans._asdict().items(), *policy._asdict().items()]:
        if name not in _SHARED_POLICY and a.shape[:1] != (n,):
            raise InternalError(f"kernel input {name} has shape {a.shape}, not per loan ({n},): update _SHARED_POLICY")
    layers = _no_layers(model.layers)  # layers settle losses after the month loop: they never change a loan's path
    out = allocate(model, 1)
    state = np.full((n, t_max + 1), -1, dtype=np.int8)
    exposure = np.zeros((n, t_max + 1))
    state[:, 0] = loans.state
    exposure[:, 0] = loans.principal + loans.arrears_principal + loans.arrears_interest
    one_policy = policy._asdict()
    seed64 = np.uint64(seed)
    scratch = path_scratch(t_max, 1, model.tables, layers, model.params, drawn_factors(loans, model.tables, False))
    for j in range(n):
        for a in out:
            a.fill(0)
        loan = LoanArrays(*(a[j : j + 1] for a in loans))
        pol = PolicyArrays(**{k: a if k in _SHARED_POLICY else a[j : j + 1] for k, a in one_policy.items()})
        _simulate_path(path, 0, seed64, loan, model.tables, model.params, pol, layers, NO_ALLOWANCE, out, scratch)
        count = out.count_by_state[0]  # (T, 6): a one at the loan's state (absorbing states stay counted)
        s = count.argmax(axis=1)
        end = np.flatnonzero(s >= STATE_CODES["D"])
        last = int(end[0]) + 1 if end.size else t_max
        state[j, 1 : last + 1] = s[:last]
        exposure[j, 1 : last + 1] = out.balance_by_state[0, np.arange(last), s[:last]]
    return state, exposure


def _no_layers(layers: LayerArrays) -> LayerArrays:
    """The layer arrays of a one-loan book without layers."""
    empty = {k: a[:0] for k, a in layers._asdict().items() if a.ndim == 1}
    return LayerArrays(**{
        **empty,
        "eligible": np.zeros((0, 1), dtype=layers.eligible.dtype),
        "cover_class": np.zeros(1, dtype=layers.cover_class.dtype),
        "class_mask": np.zeros((1, 0), dtype=layers.class_mask.dtype),
    })


def _tape(portfolio: Portfolio, model: CompiledModel, state: np.ndarray, exposure: np.ndarray, month0: int) -> History:
    live = state >= 0
    loan, t = np.nonzero(live)  # row-major: by loan, then month
    frame = pd.DataFrame({
        "loan_id": portfolio.loan_id[loan],
        "month": month0 + t,
        "state": state[loan, t],
        "balance": np.where(state[loan, t] == STATE_CODES["P"], 0.0, exposure[loan, t]),
    })
    for name in _STATIC:
        frame[name] = getattr(portfolio, name)[loan]
    frame["remaining_term"] = np.maximum(portfolio.remaining_term[loan] - t, 0)
    order = np.lexsort((frame["month"].to_numpy(), frame["loan_id"].to_numpy()))
    frame = frame.iloc[order].reset_index(drop=True)
    return History(frame=frame, source=f"<simulated: {portfolio.source}, {model.n_months} months>", gaps=0)
