"""Golden single-loan tables of the policy levers, alone and in pairs (MODEL.md §6, docs/model.md §8).

One loan, pd = 0 (it never misses), so the engine is deterministic: every month's exposure
(principal plus a bullet's accrued interest), interest income, subsidy cost and state is
compared with a table computed here by hand (the installment paid is the interest plus the
fall of the exposure plus the month's accrual, so it is pinned by the same columns). The tables come from ``hand_schedule``, a
month-by-month bookkeeping written from docs/policy.md and docs/model.md §4 and §8 in
plain Python (not from the kernel), and a few values are spelled out as literal numbers
worked by hand in the comments. Revenue support only moves the miss probability, so with
pd = 0 it must leave the table unchanged: its golden table is the loan's own. A forced
miss (a tiny pd and a revenue collapse in one month) checks that a cap gap missed becomes
arrears.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

import stresslab

BALANCE, RATE, TERM, HORIZON = 12_000.0, 0.12, 8, 10  # 1% a month; the loan matures inside the horizon
SEASON = [0.8, 0.9, 1.0, 1.1, 1.2, 1.0, 0.9, 1.1, 1.0, 1.0, 1.0, 1.0]

LEVERS = {
    "deferral": {"start_month": 2, "months": 3, "interest": "accrued", "extend_term": True},
    "interest_subsidy": {"points": 0.03, "start_month": 3, "months": 4},
    "rate_cap": {"cap": 0.06, "from_month": 3},
    "loan_cap": {"caps": {"individual": 6_000.0}, "transition_months": 4},
    "revenue_support": {"uplift": 0.1},
    "seasonal_schedule": {},
}


@dataclass
class Row:
    exposure: float  # month-end principal plus accrued (bullet) interest
    paid: float  # interest + principal received (hand table only)
    interest: float
    subsidy: float
    state: str


def _annuity(balance: float, r: float, n: int) -> float:
    return balance * r / (1 - (1 + r) ** -n) if r > 0 else balance / n


def hand_schedule(kind: str, levers: dict) -> list[Row]:
    """The performing loan's months under the levers, by the documented rules (no engine code)."""
    r, n, b = RATE / 12, TERM, BALANCE
    level = _annuity(b, r, n) if kind == "annuity" else 0.0
    accrued = 0.0
    deferral = levers.get("deferral")
    defer_from, defer_to = (deferral["start_month"], deferral["start_month"] + deferral["months"]) if deferral else (0, 0)
    cap = levers.get("rate_cap")
    gap = 0.0
    if "loan_cap" in levers:  # the contract's balance at the start of the due month above the cap
        gap_month = min(levers["loan_cap"]["transition_months"], TERM)  # window end, or maturity first
        scheduled = BALANCE
        for _ in range(gap_month - 1):
            scheduled -= level - r * scheduled if kind == "annuity" else 0.0
        gap = max(scheduled - levers["loan_cap"]["caps"]["individual"], 0.0)
    sub = levers.get("interest_subsidy")
    shaped = "seasonal_schedule" in levers and kind == "annuity"
    if shaped:  # installment k * s_m * level keeps the present value: k = sum v^m / sum s_m v^m
        s = np.array([SEASON[m % 12] for m in range(TERM)])
        v = (1 + r) ** -np.arange(1.0, TERM + 1)
        k = v.sum() / (s * v).sum()
    rows, paid_off = [], False
    for t in range(1, HORIZON + 1):
        if paid_off:
            rows.append(Row(0.0, 0.0, 0.0, 0.0, "P"))
            continue
        if cap and t >= cap["from_month"] and r != cap["cap"] / 12:
            r = cap["cap"] / 12
            level = _annuity(b, r, n) if kind == "annuity" else 0.0
        if defer_from <= t < defer_to:
            b += r * b  # accrued interest is capitalised; the term is extended (nothing used up)
            rows.append(Row(b + accrued, 0.0, 0.0, 0.0, "C"))
            continue
        if t == defer_to and kind == "annuity":
            level = _annuity(b, r, n)
        if kind == "bullet" and n > 1:  # nothing due but the cap's excess: interest accrues to maturity
            accrued += r * b
            principal, interest = 0.0, 0.0
        else:
            interest = r * b + accrued
            accrued = 0.0
            if n == 1:
                principal = b
            else:
                principal = min(max(level * (k * SEASON[(t - 1) % 12] if shaped else 1.0) - r * b, 0.0), b)
        gap_due = gap > 0 and t >= gap_month and n > 1
        if gap_due:  # the excess over the cap falls due before maturity: extra principal
            principal += min(gap, b - principal)
            gap = 0.0
        if kind == "bullet" and n > 1 and not gap_due:  # nothing due, nothing paid
            n -= 1
            rows.append(Row(b + accrued, 0.0, 0.0, 0.0, "C"))
            continue
        subsidy = sub["points"] / 12 * b if sub and sub["start_month"] <= t < sub["start_month"] + sub["months"] else 0.0
        b -= principal
        n -= 1
        if gap_due and n > 0 and kind == "annuity":
            level = _annuity(b, r, n)
        paid_off = n == 0
        rows.append(Row(0.0 if paid_off else b + accrued, interest + principal, interest, subsidy,
                        "P" if paid_off else "C"))
    return rows


def engine_schedule(kind: str, levers: dict) -> list[Row]:
    """The same loan run through stresslab.simulate (one path: pd = 0 makes it deterministic)."""
    frame = pd.DataFrame({
        "loan_id": ["L1"], "borrower_id": ["B1"], "borrower_type": "individual", "industry": "retail",
        "region": "east", "balance": BALANCE, "annual_rate": RATE, "remaining_term": TERM,
        "amortization": kind, "pd": 0.0, "state": "C",
    })
    book = stresslab.Portfolio.from_frame(frame, source="<golden loan>")
    scen = stresslab.Scenario.from_dict({
        "horizon_months": HORIZON, "seasonality": {"retail": SEASON}, "policy": levers,
        "factors": {"global_loading": 0.3}, "recovery": {"unsecured_mean": 0.0},
    })
    ds = stresslab.simulate(book, scen, n_paths=1, seed=1, progress=False)
    exposure = ds.balance_by_state.isel(path=0).sel(state=["C", "M1", "M2", "M3"]).sum("state").values
    income = ds.interest_income.isel(path=0).values
    subsidy = ds.subsidy_cost.isel(path=0).values
    counts = ds.count_by_state.isel(path=0)
    states = [str(counts.state.values[int(np.argmax(counts.values[t]))]) for t in range(HORIZON)]
    return [Row(exposure[t], np.nan, income[t], subsidy[t], states[t]) for t in range(HORIZON)]


PAIRS = list(itertools.combinations(LEVERS, 2))


def _compare(kind: str, names: tuple[str, ...]) -> None:
    levers = {name: LEVERS[name] for name in names}
    want, got = hand_schedule(kind, levers), engine_schedule(kind, levers)
    for t, (w, g) in enumerate(zip(want, got), start=1):
        assert g.state == w.state, f"{names} {kind} month {t}: state {g.state}, by hand {w.state}"
        for field in ("exposure", "interest", "subsidy"):
            assert getattr(g, field) == pytest.approx(getattr(w, field), rel=1e-9, abs=1e-6), (
                f"{names} {kind} month {t}: {field} {getattr(g, field):.6f}, by hand {getattr(w, field):.6f}")


@pytest.mark.parametrize("kind", ["annuity", "bullet"])
@pytest.mark.parametrize("names", [(), *[(name,) for name in LEVERS]], ids=lambda n: "+".join(n) or "none")
def test_single_lever_golden_table(kind, names):
    _compare(kind, names)


@pytest.mark.parametrize("kind", ["annuity", "bullet"])
@pytest.mark.parametrize("names", PAIRS, ids=lambda n: "+".join(n))
def test_lever_pair_golden_table(kind, names):
    _compare(kind, names)


def test_hand_worked_values():
    """Literal numbers worked by hand, so the hand schedule itself is pinned."""
    base = hand_schedule("annuity", {})
    level = 12_000 * 0.01 / (1 - 1.01**-8)  # = 1,568.2149... (annuity factor of 8 months at 1%)
    assert base[0].paid == pytest.approx(level) and base[0].interest == pytest.approx(120.0)
    deferred = hand_schedule("annuity", {"deferral": LEVERS["deferral"]})
    # month 1 pays as usual; months 2-4 capitalise 1% a month: B_4 = (12,000 - (level - 120)) * 1.01^3
    assert deferred[3].exposure == pytest.approx((12_000 - (level - 120)) * 1.01**3)
    capped = hand_schedule("bullet", {"loan_cap": LEVERS["loan_cap"]})
    # a bullet loan pays the 6,000 excess over the 6,000 cap at the window end (month 4), nothing before
    assert [row.paid for row in capped[:4]] == [0.0, 0.0, 0.0, 6_000.0]
    assert capped[3].exposure == pytest.approx(6_000.0 + 120.0 * 4)  # four months of accrued 1% interest on 12,000
    capped = hand_schedule("annuity", {"loan_cap": LEVERS["loan_cap"]})
    # an annuity's gap comes from its scheduled balance at the start of month 4 (three level payments made):
    # 12,000 x 1.01^3 - level x (1.01^3 - 1) / 0.01 = 7,247.10..., so 1,247.10... above the cap
    scheduled = 12_000 * 1.01**3 - level * (1.01**3 - 1) / 0.01
    assert capped[3].paid == pytest.approx(level + scheduled - 6_000.0)
    both = hand_schedule("annuity", {"deferral": LEVERS["deferral"], "rate_cap": LEVERS["rate_cap"]})
    # the rate cap's month 3 lies inside the deferral: month 3 and 4 accrue at 0.5%, not 1%
    assert both[3].exposure == pytest.approx((12_000 - (level - 120)) * 1.01 * 1.005**2)


def test_cap_gap_missed_becomes_arrears():
    """A bullet loan that misses the excess falling due carries it as arrears (forced miss: revenue -99%)."""
    frame = pd.DataFrame({
        "loan_id": ["L1"], "borrower_id": ["B1"], "borrower_type": "individual", "industry": "retail",
        "region": "east", "balance": BALANCE, "annual_rate": RATE, "remaining_term": TERM,
        "amortization": "bullet", "pd": 1e-9, "state": "C",
    })
    book = stresslab.Portfolio.from_frame(frame, source="<golden loan>")
    scen = stresslab.Scenario.from_dict({
        "horizon_months": 5, "shocks": {"industry": {"retail": [0, 0, 0, -0.99, 0]}},
        "policy": {"loan_cap": LEVERS["loan_cap"]}, "recovery": {"unsecured_mean": 0.0},
        "delinquency": {"cure_rates": [0.0, 0.0, 0.0]},
    })
    ds = stresslab.simulate(book, scen, n_paths=1, seed=1, progress=False)
    counts = ds.count_by_state.isel(path=0)
    assert int(counts.sel(state="M1", month=4)) == 1  # missed in month 4, when the excess fell due
    accrued = BALANCE * 0.01 * 4  # bullet interest accrues until maturity; exposure counts it
    assert float(ds.balance_by_state.isel(path=0).sel(state="M1", month=4)) == pytest.approx(BALANCE + accrued)


def test_non_extending_deferral_past_maturity_leaves_the_balance_due():
    """A 4-month loan deferred for 6 months without extension: the term runs out in the deferral,
    so the whole capitalised balance falls due in month 7 (by hand: 12,000 x 1.01^6, plus 1%)."""
    frame = pd.DataFrame({
        "loan_id": ["L1"], "borrower_id": ["B1"], "borrower_type": "individual", "industry": "retail",
        "region": "east", "balance": BALANCE, "annual_rate": RATE, "remaining_term": 4,
        "amortization": "annuity", "pd": 0.0, "state": "C",
    })
    scen = stresslab.Scenario.from_dict({
        "horizon_months": 10, "recovery": {"unsecured_mean": 0.0},
        "policy": {"deferral": {"start_month": 1, "months": 6, "interest": "accrued", "extend_term": False}},
    })
    ds = stresslab.simulate(stresslab.Portfolio.from_frame(frame, source="<golden loan>"), scen, n_paths=1, seed=1,
                            progress=False)
    owed = BALANCE * 1.01**6
    assert float(ds.balance_by_state.isel(path=0).sel(state="C", month=6)) == pytest.approx(owed)
    assert float(ds.interest_income.isel(path=0).sel(month=7)) == pytest.approx(0.01 * owed)
    assert int(ds.count_by_state.isel(path=0).sel(state="P", month=7)) == 1


def _foregone(levers: dict) -> np.ndarray:
    frame = pd.DataFrame({
        "loan_id": ["L1"], "borrower_id": ["B1"], "borrower_type": "individual", "industry": "retail",
        "region": "east", "balance": BALANCE, "annual_rate": RATE, "remaining_term": TERM,
        "amortization": "annuity", "pd": 0.0, "state": "C",
    })
    scen = stresslab.Scenario.from_dict({"horizon_months": HORIZON, "policy": levers, "recovery": {"unsecured_mean": 0.0}})
    ds = stresslab.simulate(stresslab.Portfolio.from_frame(frame, source="<golden loan>"), scen, n_paths=1, seed=1,
                            progress=False)
    return ds.interest_foregone.isel(path=0).values


def test_interest_foregone_by_hand():
    """The lender's interest foregone: the rate cap's cut on the balance at the start of each month
    from month 3; a waived deferral's whole contract interest in its months (balance frozen)."""
    capped = hand_schedule("annuity", {"rate_cap": LEVERS["rate_cap"]})
    start = [BALANCE] + [row.exposure for row in capped[:-1]]
    want = [(RATE - 0.06) / 12 * b if t >= 3 else 0.0 for t, b in enumerate(start, start=1)]
    np.testing.assert_allclose(_foregone({"rate_cap": LEVERS["rate_cap"]}), want, rtol=1e-12, atol=1e-9)
    waived = {**LEVERS["deferral"], "interest": "waived"}
    after_month_1 = hand_schedule("annuity", {})[0].exposure
    want = [0.01 * after_month_1 if 2 <= t <= 4 else 0.0 for t in range(1, HORIZON + 1)]
    np.testing.assert_allclose(_foregone({"deferral": waived}), want, rtol=1e-12, atol=1e-9)
