"""Issue 21: a scenario without stress gives the book's PD and roll/cure table back (MODEL.md §2-4, §9).

Written from the spec, not from the code:

- §3: with Δ = 0 the month-1 transition frequencies of loans that start in any state are
  the roll / cure / prepayment inputs, for both copulas, any dof, any loadings, any ar1 and
  any cycle sensitivity κ of the delinquent states (κ² ρ < 1).
- §2: ``pd`` is the unconditional probability that a current loan with an installment
  every month defaults within ``pd_horizon_months``; with pd_horizon_months = 1 and
  default_after = 1 the monthly entry probability is ``pd`` exactly. The calibration runs on
  the chain of the calibration reference (root of ``extends``), so a stress on top of a
  baseline stresses the book; a copula change keeps the PD.
- §4: without stress the unsecured recovery mean averaged over the factors is m_0 exactly;
  averaged over defaults it is lower when β > 0 (downturn LGD).
- §2-3: a revenue shock raises the miss and roll thresholds and the cure threshold, so
  misses and rolls rise and cures fall with its size, loan by loan on common draws.
- §9: the one-period closed forms, stated through pd_horizon_months = 1.

Tolerances: 4 Monte Carlo standard errors, counted ACROSS PATHS. The loans of one path
share the factors (and W under the t copula), so they are not independent: the estimator
is the mean over paths of a per-path frequency f_p, whose s.e. is std(f_p) / sqrt(n_paths).
Paired comparisons (common random numbers, MODEL.md §7) use the s.e. of the per-path
difference. Seeds are fixed on purpose, so every run checks the same numbers.

Only month 1 is compared with the transition inputs: in later months, under persistent
factors (ar1 > 0), the loans found in a state were selected by earlier draws (they sit in
bad paths and bad cells more often than average), so their frequencies differ from the
inputs, as in real data (MODEL.md §9). The PD, in contrast, is a statement about the whole
horizon of a loan that starts current, and is checked over pd_horizon_months.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import book, tail_check
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import (
    multiperiod_default_fraction_mean,
    t_copula_count_pmf,
    vasicek_count_pmf,
)
from scipy import integrate, optimize, stats
from scipy.special import ndtr, ndtri

import stresslab
from stresslab.scenario.scenario import Scenario

STATES = ("C", "M1", "M2", "M3", "D", "P")
LOADINGS = {"global_loading": 0.3, "industry_loading": 0.3, "region_loading": 0.2}
RHO = 0.3**2 + 0.3**2 + 0.2**2  # Var(X_j) = 0.22 (industry and region factors independent)
ROLL = (0.35, 0.55, 0.75)
CURE = (0.30, 0.15, 0.08)
INDUSTRIES = ("catering", "retail", "transport")
REGIONS = ("east", "west")


# --- helpers --------------------------------------------------------------------------------


def _scenario(horizon: int, *, copula: str = "gaussian", dof: float | None = None, ar1: float = 0.5,
              loadings: dict | None = None, delinquency: dict | None = None, recovery: dict | None = None,
              name: str = "unstressed", **top) -> Scenario:
    """A standalone scenario (its own calibration reference): no shock, no lever, no seasonality."""
    factors = {**(LOADINGS if loadings is None else loadings), "copula": copula, "ar1": ar1}
    if dof is not None:
        factors["dof"] = dof
    data = {
        "name": name,
        "horizon_months": horizon,
        "factors": factors,
        "delinquency": {"default_after": 4, "roll_rates": list(ROLL), "cure_rates": list(CURE), **(delinquency or {})},
        "recovery": {"unsecured_mean": 0.0, **(recovery or {})},
        **top,
    }
    return Scenario.from_dict(data)


def _mean_se(x: np.ndarray) -> tuple[float, float]:
    """Mean over paths and its s.e. std / sqrt(n_paths) (paths are iid; loans within one are not)."""
    x = np.asarray(x, dtype=float)
    return float(x.mean()), float(x.std(ddof=1) / np.sqrt(x.size))


def _assert_close(per_path: np.ndarray, ref: float, what: str) -> None:
    mean, se = _mean_se(per_path)
    z = (mean - ref) / se if se > 0 else (0.0 if mean == ref else np.inf)
    # 1e-12: a frequency that cannot vary across paths (e.g. a rate of 0) must be exact
    assert abs(mean - ref) < 4 * se + 1e-12, (
        f"{what}: simulated {mean:.5f} vs input {ref:.5f} (se {se:.5f}, z {z:+.1f})")


def _month1_freq(ds, n_loans: int) -> dict[str, np.ndarray]:
    """Per-path month-1 frequency of each month-end state, shape (n_paths,) each."""
    counts = ds.count_by_state.isel(month=0)
    return {s: counts.sel(state=s).values / n_loans for s in STATES}


def _defaults_at(ds, month: int) -> np.ndarray:
    return ds.count_by_state.sel(state="D").sel(month=month).values


# --- 1. month-1 transition frequencies are the inputs (MODEL.md §3, §9) ---------------------

# (copula, dof, ar1, kappa): both copulas, t with 4 and 8 dof, every ar1 the issue names,
# and a weaker / stronger cycle response of the delinquent states (kappa² rho = 0.055, 0.495 < 1).
FACTOR_CASES = [
    *[("gaussian", None, ar1, 1.0) for ar1 in (0.0, 0.5, 0.9, 1.0)],
    *[("t", 4.0, ar1, 1.0) for ar1 in (0.0, 0.5, 0.9, 1.0)],
    *[("t", 8.0, ar1, 1.0) for ar1 in (0.0, 0.5, 0.9, 1.0)],
    ("gaussian", None, 0.5, 0.5),
    ("gaussian", None, 0.5, 1.5),
    ("t", 4.0, 0.9, 0.5),
    ("t", 4.0, 0.9, 1.5),
]
# Sizes: the per-path frequency varies mostly with the path's factors (and W), not with the
# binomial noise of its loans, so for a given cost (loans x paths) few loans per path and many
# paths give the smallest s.e.: 60 loans = 10 per (industry, region) cell.
N_LOANS_1, N_PATHS_1 = 60, 10_000


def _case_id(case) -> str:
    copula, dof, ar1, kappa = case
    return f"{copula}{'' if dof is None else int(dof)}-ar{ar1:g}-kappa{kappa:g}"


@pytest.mark.parametrize("case", FACTOR_CASES, ids=_case_id)
def test_month1_transitions_equal_inputs(case):
    copula, dof, ar1, kappa = case
    factors = {"copula": copula, "dof": dof, "ar1": ar1}
    seed = 2100 + FACTOR_CASES.index(case)

    # C with default_after 1 and pd_horizon_months 1: C -> D is pd exactly, C -> P the prepayment rate
    pd_, prepay = 0.05, 0.03
    loans = book(N_LOANS_1, pd_=pd_, term=36, amortization="annuity", industries=INDUSTRIES, regions=REGIONS)
    scen = _scenario(1, **factors, pd_horizon_months=1,
                     delinquency={"default_after": 1, "prepayment_rate": prepay, "cycle_sensitivity": kappa})
    f = _month1_freq(stresslab.simulate(loans, scen, n_paths=N_PATHS_1, seed=seed), N_LOANS_1)
    _assert_close(f["D"], pd_, f"C -> D ({_case_id(case)})")
    _assert_close(f["P"], prepay, f"C -> P ({_case_id(case)})")
    _assert_close(f["C"], 1 - pd_ - prepay, f"C -> C ({_case_id(case)})")
    for s in ("M1", "M2", "M3"):  # default_after 1: the first miss is D
        assert not f[s].any(), f"C -> {s} with default_after 1"

    # M1, M2, M3 with default_after 4. The pd only sets the entry threshold of C and plays no
    # part in these month-1 rates: pd 0 spares the calibration (pd > 0 in the test below).
    for k, start in enumerate(("M1", "M2", "M3")):
        loans = book(N_LOANS_1, pd_=0.0, term=36, amortization="annuity", state=start,
                     industries=INDUSTRIES, regions=REGIONS)
        scen = _scenario(1, **factors, delinquency={"prepayment_rate": prepay, "cycle_sensitivity": kappa})
        f = _month1_freq(stresslab.simulate(loans, scen, n_paths=N_PATHS_1, seed=seed + 100 * (k + 1)), N_LOANS_1)
        rolled = ("M2", "M3", "D")[k]
        _assert_close(f[rolled], ROLL[k], f"{start} -> {rolled} ({_case_id(case)})")
        _assert_close(f["C"], CURE[k], f"{start} -> C ({_case_id(case)})")
        _assert_close(f[start], 1 - ROLL[k] - CURE[k], f"{start} -> {start} ({_case_id(case)})")
        others = [s for s in STATES if s not in (rolled, "C", start)]
        for s in others:
            assert not f[s].any(), f"{start} -> {s}: not a one-month transition"


@pytest.mark.parametrize("copula,dof", [("gaussian", None), ("t", 4.0)])
@pytest.mark.parametrize("default_after", [2, 3])
def test_month1_roll_into_default_follows_default_after(copula, dof, default_after):
    """With default_after k + 1, a loan in M_k that misses again is D: M_k -> D is the roll rate r_k
    (and a calibrated pd > 0, here a 4-month PD, does not move the delinquent states' rates)."""
    k = default_after - 1  # start in M_k
    start = f"M{k}"
    loans = book(N_LOANS_1, pd_=0.01, term=36, amortization="annuity", state=start,
                 industries=INDUSTRIES, regions=REGIONS)
    scen = _scenario(1, copula=copula, dof=dof, ar1=0.9, pd_horizon_months=4,
                     delinquency={"default_after": default_after})
    f = _month1_freq(stresslab.simulate(loans, scen, n_paths=N_PATHS_1, seed=2200 + default_after), N_LOANS_1)
    _assert_close(f["D"], ROLL[k - 1], f"{start} -> D (default_after {default_after}, {copula})")
    _assert_close(f["C"], CURE[k - 1], f"{start} -> C (default_after {default_after}, {copula})")
    _assert_close(f[start], 1 - ROLL[k - 1] - CURE[k - 1], f"{start} -> {start}")


# --- 2. the pd_horizon_months default share of current loans is pd (MODEL.md §2, §9) -------

PD_CASES = [
    (pd_, default_after, copula, ar1)
    for pd_ in (0.005, 0.03, 0.15)
    for default_after in (1, 2, 4)
    for copula in ("gaussian", "t")
    for ar1 in (0.0, 0.9, 1.0)
]
N_LOANS_2, N_PATHS_2 = 60, 12_000  # see N_LOANS_1: between-path variance dominates


@pytest.mark.parametrize("case", PD_CASES, ids=lambda c: f"pd{c[0]:g}-da{c[1]}-{c[2]}-ar{c[3]:g}")
def test_pd_horizon_default_share_is_pd(case):
    pd_, default_after, copula, ar1 = case
    # the rare PD under the t copula varies most across paths (W): more paths for it
    n_paths = 4 * N_PATHS_2 if (pd_ < 0.01 and copula == "t") else N_PATHS_2
    loans = book(N_LOANS_2, pd_=pd_, term=36, amortization="annuity", industries=INDUSTRIES, regions=REGIONS)
    scen = _scenario(12, copula=copula, dof=4.0 if copula == "t" else None, ar1=ar1,
                     delinquency={"default_after": default_after}, pd_horizon_months=12)
    ds = stresslab.simulate(loans, scen, n_paths=n_paths, seed=2300 + PD_CASES.index(case))
    _assert_close(_defaults_at(ds, 12) / N_LOANS_2, pd_, f"12-month default share {case}")


@pytest.mark.parametrize("copula", ["gaussian", "t"])
def test_pd_holds_with_prepayment_seasonality_and_other_horizons(copula):
    """Prepayment is a competing risk and seasonality of the reference is part of the calibration."""
    pd_, n_paths = 0.05, 8_000
    season = [1.3, 1.2, 1.1, 1.0, 0.9, 0.8, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2]
    # one industry with seasonality (each seasonal industry is a calibration class of its own,
    # the costly case under the t copula), two regions
    loans = book(N_LOANS_2, pd_=pd_, term=30, amortization="annuity", industries=("retail",), regions=REGIONS)
    dof = 4.0 if copula == "t" else None
    # 12-month PD, prepayment 2% a month, seasonality in retail, start in March
    scen = _scenario(12, copula=copula, dof=dof, ar1=0.9, start_month=3,
                     delinquency={"default_after": 4, "prepayment_rate": 0.02},
                     seasonality={"retail": season})
    ds = stresslab.simulate(loans, scen, n_paths=n_paths, seed=2400)
    _assert_close(_defaults_at(ds, 12) / N_LOANS_2, pd_, f"12-month default share with prepayment ({copula})")
    # a 6-month PD read at month 6, and a 24-month PD at month 24 (terms at least the horizon)
    for pd_horizon, seed in ((6, 2401), (24, 2402)):
        scen = _scenario(pd_horizon, copula=copula, dof=dof, ar1=0.5, pd_horizon_months=pd_horizon,
                         delinquency={"default_after": 2})
        ds = stresslab.simulate(loans, scen, n_paths=n_paths, seed=seed)
        _assert_close(_defaults_at(ds, pd_horizon) / N_LOANS_2, pd_, f"{pd_horizon}-month default share ({copula})")


# --- 3. the unsecured recovery mean averages to m_0 without stress (MODEL.md §4) ------------

M0 = 0.4
# The kernels evaluate Φ by interpolation in a table, absolute error < 3e-8 (stresslab/_kernels/
# special.py, tests/test_special.py): the identities that hold exactly in real arithmetic
# (m = m_0 when beta X = 0) hold to that accuracy per recovery rate.
PHI_TABLE_ERROR = 3e-8
RECOVERY = {"unsecured_mean": M0, "dispersion": 0.0, "cost": 0.0, "lag_months": 0, "discount_rate": 0.0}


def _recovery_per_path(ds) -> tuple[np.ndarray, np.ndarray]:
    """(recoveries, defaulted EAD) per path over the horizon."""
    rec = ds.recoveries.sum("month").values
    ead = ds.balance_by_state.sel(state="D").isel(month=-1).values  # cumulative defaulted EAD
    return rec, ead


@pytest.mark.parametrize("copula,dof", [("gaussian", None), ("t", 4.0)])
@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0])
def test_recovery_mean_over_factors_is_m0(copula, dof, beta):
    # pd = 1 - 1e-9, one-month PD, default_after 1: every loan defaults in month 1 whatever the
    # factors, so the average recovery rate over all loans is the factor average of m_{j,1}
    n, n_paths = 30, 12_000
    loans = book(n, pd_=1 - 1e-9, balance=1.0, rate=0.0, term=1, amortization="bullet",
                 industries=INDUSTRIES, regions=REGIONS)
    scen = _scenario(1, copula=copula, dof=dof, pd_horizon_months=1, delinquency={"default_after": 1},
                     recovery={**RECOVERY, "cycle_sensitivity": beta})
    ds = stresslab.simulate(loans, scen, n_paths=n_paths, seed=2500 + int(10 * beta))
    rec, ead = _recovery_per_path(ds)
    assert np.all(ead == n * 1.0), "every loan defaults in month 1 at EAD = its balance"
    rate = rec / ead
    mean, se = _mean_se(rate)
    assert abs(mean - M0) < 4 * se + PHI_TABLE_ERROR, (
        f"recovery rate averaged over factors (beta {beta}, {copula}): {mean:.6f} vs m0 {M0} (se {se:.6f})")
    if beta == 0.0:  # no cycle response and no dispersion: every loan recovers m_0
        assert np.all(np.abs(rate - M0) <= PHI_TABLE_ERROR), np.abs(rate - M0).max()
    # gross loss = EAD - PV(recoveries), no lag, no cost, no discount
    np.testing.assert_allclose(ds.loss_gross.sum("month").values, ead - rec, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("copula,dof", [("gaussian", None), ("t", 4.0)])
def test_recovery_over_defaults_is_below_m0_downturn_lgd(copula, dof):
    n, n_paths, pd_ = 2_000, 1_000, 0.03
    loans = book(n, pd_=pd_, term=1, amortization="bullet", industries=INDUSTRIES, regions=REGIONS)

    def run(beta: float, loadings: dict | None = None):
        scen = _scenario(1, copula=copula, dof=dof, loadings=loadings, pd_horizon_months=1,
                         delinquency={"default_after": 1}, recovery={**RECOVERY, "cycle_sensitivity": beta})
        return _recovery_per_path(stresslab.simulate(loans, scen, n_paths=n_paths, seed=2600))

    # beta > 0: defaults cluster where X is low, and so does the recovery mean: the recovery rate
    # over defaults (pooled ratio sum rec / sum EAD, s.e. by the delta method across paths) < m_0
    rec, ead = run(1.0)
    ratio = rec.sum() / ead.sum()
    se = np.std(rec - ratio * ead, ddof=1) / np.sqrt(n_paths) / ead.mean()
    assert ratio + 4 * se < M0, f"downturn recovery over defaults {ratio:.4f} (se {se:.4f}) not below m0 {M0}"
    # beta = 0: exactly m_0 over defaults; and a loan without factor loading recovers m_0 whatever beta
    rec, ead = run(0.0)
    assert np.all(np.abs(rec - M0 * ead) <= PHI_TABLE_ERROR * ead), "beta 0: recovery m0 over defaults"
    rec, ead = run(2.0, loadings={"global_loading": 0.0, "industry_loading": 0.0, "region_loading": 0.0})
    assert np.all(np.abs(rec - M0 * ead) <= PHI_TABLE_ERROR * ead), "no loading: recovery m0 whatever beta"


def test_explicit_recovery_values_win_over_the_collection_preset():
    """MODEL.md §4: an explicit [recovery] value wins over a [policy.collection] preset's."""
    n, n_paths = 50, 20
    loans = book(n, pd_=1 - 1e-9, term=1, amortization="bullet")
    preset = {"policy": {"collection": {"strategy": "legal_action"}}}  # m_0 0.35, lag 12, cost 0.25
    base = {"dispersion": 0.0, "discount_rate": 0.0, "cycle_sensitivity": 0.0}

    def loss_and_cash(recovery: dict) -> tuple[np.ndarray, np.ndarray]:
        data = {"name": "preset", "horizon_months": 1, "pd_horizon_months": 1, "factors": LOADINGS,
                "delinquency": {"default_after": 1}, "recovery": {**base, **recovery}, **preset}
        ds = stresslab.simulate(loans, Scenario.from_dict(data), n_paths=n_paths, seed=2650)
        return ds.loss_gross.sum("month").values, ds.recoveries.sum("month").values

    # preset alone: recovery 0.35 net of 25% cost, after 12 months (beyond the 1-month horizon:
    # no cash in the series, but it counts in the loss)
    tol = n * PHI_TABLE_ERROR  # the recovery mean goes through the tabulated Φ
    loss, cash = loss_and_cash({})
    np.testing.assert_allclose(loss, n * (1 - 0.35 * 0.75), rtol=0, atol=tol)
    np.testing.assert_allclose(cash, 0.0, atol=1e-12)
    # explicit values win, each on its own
    loss, _ = loss_and_cash({"cost": 0.5})
    np.testing.assert_allclose(loss, n * (1 - 0.35 * 0.5), rtol=0, atol=tol)
    loss, _ = loss_and_cash({"unsecured_mean": 0.6})
    np.testing.assert_allclose(loss, n * (1 - 0.6 * 0.75), rtol=0, atol=tol)
    loss, cash = loss_and_cash({"lag_months": 0, "cost": 0.0})
    np.testing.assert_allclose(cash, n * 0.35, rtol=0, atol=tol)
    np.testing.assert_allclose(loss, n * (1 - 0.35), rtol=0, atol=tol)


# --- 4. a revenue shock raises misses and rolls and lowers cures, monotonically --------------

SHOCKS = (0.3, 0.0, -0.05, -0.15, -0.3, -0.5, -0.8)  # revenue up 30% ... down 80%: stress rising
N_LOANS_4, N_PATHS_4 = 400, 300


def _shocked(shock: float, *, copula: str = "gaussian", dof: float | None = None,
             sensitivities: dict | None = None, horizon: int = 1, default_after: int = 4,
             pd_horizon: int = 4) -> Scenario:
    return _scenario(horizon, copula=copula, dof=dof, ar1=0.9, name=f"shock {shock:+.4f}", pd_horizon_months=pd_horizon,
                     delinquency={"sensitivities": sensitivities or {"roll": 1.0, "cure": 1.0},
                                  "default_after": default_after},
                     shocks={"industry": {"retail": shock}})


def _month1_moves(shock: float, start: str, seed: int, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """(adverse, cures) per path in month 1: C -> D misses (default_after 1, a one-month pd 0.05),
    or M_k -> M_{k+1}/D rolls and M_k -> C cures (default_after 4; pd 0: the C threshold plays no
    part in month 1, and the run needs no calibration)."""
    if start == "C":
        loans = book(N_LOANS_4, pd_=0.05, term=36, amortization="annuity")
        kwargs.update(default_after=1, pd_horizon=1)
    else:
        loans = book(N_LOANS_4, pd_=0.0, term=36, amortization="annuity", state=start)
    ds = stresslab.simulate(loans, _shocked(shock, **kwargs), n_paths=N_PATHS_4, seed=seed)
    counts = ds.count_by_state.isel(month=0)
    adverse = {"C": "D", "M1": "M2", "M2": "M3", "M3": "D"}[start]
    cures = counts.sel(state="C").values if start != "C" else np.zeros(N_PATHS_4)
    return counts.sel(state=adverse).values, cures


@pytest.mark.parametrize("start", ["C", "M1", "M2", "M3"])
@pytest.mark.parametrize("copula,dof,sens", [("gaussian", None, None), ("t", 4.0, {"roll": 2.0, "cure": 0.5})])
def test_revenue_shock_is_monotone_path_by_path(start, copula, dof, sens):
    """Common draws: a larger shock moves every threshold up, so each path's counts move one way."""
    runs = [_month1_moves(s, start, seed=2700, copula=copula, dof=dof, sensitivities=sens) for s in SHOCKS]
    adverse = np.array([a for a, _ in runs])  # (shock, path)
    cures = np.array([c for _, c in runs])
    assert np.all(np.diff(adverse, axis=0) >= 0), f"{start}: misses/rolls fall somewhere as the shock grows"
    assert np.all(np.diff(cures, axis=0) <= 0), f"{start}: cures rise somewhere as the shock grows"
    # and strictly in expectation between neighbours up to -30% (paired s.e. across paths;
    # beyond, the rates saturate near 0 or 1 and a difference may be too small to resolve)
    for i in range(SHOCKS.index(-0.3)):
        d, se = _mean_se(adverse[i + 1] - adverse[i])
        assert d > 4 * se, f"{start}: shock {SHOCKS[i]} -> {SHOCKS[i + 1]} adds {d:.2f} (se {se:.2f}) adverse moves"
        if start != "C":
            d, se = _mean_se(cures[i] - cures[i + 1])
            assert d > 4 * se, f"{start}: shock {SHOCKS[i]} -> {SHOCKS[i + 1]} removes {d:.2f} (se {se:.2f}) cures"


@settings(max_examples=12, deadline=None, derandomize=True)
@given(
    a=st.floats(-0.9, 1.0), b=st.floats(-0.9, 1.0),
    start=st.sampled_from(["C", "M1", "M2", "M3"]),
    roll=st.floats(0.0, 3.0), cure=st.floats(0.0, 3.0),
)
def test_revenue_shock_monotone_property(a, b, start, roll, cure):
    lo, hi = sorted((a, b))  # hi: more revenue, less stress
    sens = {"roll": roll, "cure": cure}
    adv_hi, cure_hi = _month1_moves(hi, start, seed=2800, sensitivities=sens)
    adv_lo, cure_lo = _month1_moves(lo, start, seed=2800, sensitivities=sens)
    assert np.all(adv_lo >= adv_hi) and np.all(cure_lo <= cure_hi), (lo, hi, start, sens)


def test_revenue_shock_raises_12_month_defaults_in_expectation():
    shocks = (0.0, -0.1, -0.2, -0.3)
    n, n_paths = 100, 4_000
    loans = book(n, pd_=0.01, term=36, amortization="annuity")
    ds = stresslab.compare(loans, [_shocked(s, horizon=12) for s in shocks], n_paths, seed=2900)
    defaults = ds.count_by_state.sel(state="D").isel(month=-1).values  # (scenario, path)
    # the unshocked run is the calibration reference itself: its 4-month PD within 4 s.e.
    _assert_close(ds.count_by_state.sel(state="D").sel(month=4).values[0] / n, 0.01, "unshocked 4-month default share")
    for i in range(len(shocks) - 1):
        d, se = _mean_se(defaults[i + 1] - defaults[i])
        assert d > 4 * se, f"shock {shocks[i]} -> {shocks[i + 1]}: {d:.2f} more defaults (se {se:.2f})"


# --- 5. the calibration reference: stresses show, copula changes keep the PD (MODEL.md §2) ---

_BASELINE = """\
name = "baseline"
horizon_months = 12
pd_horizon_months = 12

[factors]
copula = "gaussian"
global_loading = 0.3
industry_loading = 0.3
region_loading = 0.2
ar1 = 0.9

[delinquency]
default_after = 4
roll_rates = [0.35, 0.55, 0.75]
cure_rates = [0.30, 0.15, 0.08]

[recovery]
unsecured_mean = 0.0
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_extending_scenario_that_raises_roll_rates_shows_more_defaults(tmp_path):
    pd_, n, n_paths = 0.03, 120, 8_000
    base = _write(tmp_path, "baseline.toml", _BASELINE)
    stress = _write(tmp_path, "rolls_up.toml", 'extends = "baseline.toml"\nname = "rolls_up"\n\n'
                    "[delinquency]\nroll_rates = [0.5, 0.7, 0.9]\n")
    # the same stressed chain, but calibrated on itself: the raise is absorbed, pd comes back
    _write(tmp_path, "rolls_up_alone.toml", _BASELINE.replace('"baseline"', '"rolls_up_alone"')
           .replace("roll_rates = [0.35, 0.55, 0.75]", "roll_rates = [0.5, 0.7, 0.9]"))
    absorbed = _write(tmp_path, "rolls_up_absorbed.toml",
                      'extends = "baseline.toml"\nname = "rolls_up_absorbed"\n'
                      'calibration_reference = "rolls_up_alone.toml"\n\n'
                      "[delinquency]\nroll_rates = [0.5, 0.7, 0.9]\n")
    scenarios = [stresslab.load_scenario(p) for p in (base, stress, absorbed)]
    loans = book(n, pd_=pd_, term=36, amortization="annuity", industries=INDUSTRIES, regions=REGIONS)
    ds = stresslab.compare(loans, scenarios, n_paths, seed=3000)
    d = ds.count_by_state.sel(state="D").isel(month=-1).values  # (scenario, path)
    _assert_close(d[0] / n, pd_, "baseline 12-month default share")
    diff, se = _mean_se(d[1] - d[0])
    assert diff > 4 * se, f"raising roll rates on the baseline adds {diff:.1f} defaults (se {se:.1f}): absorbed?"
    _assert_close(d[2] / n, pd_, "12-month default share calibrated on the stressed chain itself")


def _chain_default_share(p: float, roll, cure, months: int) -> float:
    """P(D by ``months``) of a loan starting current, without factors: the Markov chain C, M1..M3, D
    (default_after 4; miss p from C, roll r_k / cure q_k / stay from M_k, MODEL.md §3)."""
    step = np.zeros((5, 5))
    step[0, :2] = 1 - p, p
    for k in range(3):
        step[k + 1, k + 2] = roll[k]
        step[k + 1, 0] = cure[k]
        step[k + 1, k + 1] = 1 - roll[k] - cure[k]
    step[4, 4] = 1.0
    return float(np.linalg.matrix_power(step, months)[0, 4])


def test_stress_on_the_baseline_chain_without_factors_matches_the_markov_chain(tmp_path):
    """Zero loadings: loans are independent and the stressed share has a closed form. The entry
    probability p solves the baseline chain's 12-month PD = pd; the stress keeps p and raises
    the roll rates, so its 12-month share is the stressed chain's at that p (0.0404 for pd 0.03)."""
    pd_, n, n_paths, stressed = 0.03, 2_000, 400, (0.5, 0.7, 0.9)
    no_factors = (_BASELINE.replace("global_loading = 0.3", "global_loading = 0.0")
                  .replace("industry_loading = 0.3", "industry_loading = 0.0")
                  .replace("region_loading = 0.2", "region_loading = 0.0"))
    base = _write(tmp_path, "baseline.toml", no_factors)
    stress = _write(tmp_path, "rolls_up.toml", 'extends = "baseline.toml"\nname = "rolls_up"\n\n'
                    f"[delinquency]\nroll_rates = {list(stressed)}\n")
    p = optimize.brentq(lambda x: _chain_default_share(x, ROLL, CURE, 12) - pd_, 1e-9, 0.5, xtol=1e-15)
    ref = _chain_default_share(p, stressed, CURE, 12)
    loans = book(n, pd_=pd_, term=36, amortization="annuity")
    ds = stresslab.compare(loans, [stresslab.load_scenario(f) for f in (base, stress)], n_paths, seed=3050)
    d = ds.count_by_state.sel(state="D").isel(month=-1).values / n
    _assert_close(d[0], pd_, "baseline 12-month default share, no factors")
    _assert_close(d[1], ref, "stressed 12-month default share, no factors (Markov chain at the baseline's p)")


def test_copula_change_keeps_expected_defaults_and_fattens_the_tail(tmp_path):
    pd_, n, n_paths = 0.03, 300, 20_000
    base = _write(tmp_path, "baseline.toml", _BASELINE)
    files = [base] + [
        _write(tmp_path, f"t{dof}.toml", f'extends = "baseline.toml"\nname = "t{dof}"\n\n'
               f'[factors]\ncopula = "t"\ndof = {dof}\n')
        for dof in (8, 4)
    ]
    scenarios = [stresslab.load_scenario(p) for p in files]
    loans = book(n, pd_=pd_, term=36, amortization="annuity", industries=INDUSTRIES, regions=REGIONS)
    ds = stresslab.compare(loans, scenarios, n_paths, seed=3100)
    d = ds.count_by_state.sel(state="D").isel(month=-1).values.astype(float)  # (gaussian, t8, t4) x path
    for i, label in enumerate(("gaussian", "t8", "t4")):
        _assert_close(d[i] / n, pd_, f"12-month default share, {label}")
        if i:
            diff, se = _mean_se(d[i] - d[0])
            assert abs(diff) < 4 * se, f"{label} - gaussian expected defaults {diff:.2f} (paired se {se:.2f})"
    # VaR 99.9% of the default count rises as dof falls. Order-statistic bounds: the
    # 99.9% quantile lies between the order statistics at n q -/+ 4 sqrt(n q (1 - q)).
    q = 0.999
    var = [float(np.quantile(x, q, method="inverted_cdf")) for x in d]
    assert var[0] < var[1] < var[2], f"VaR 99.9% gaussian, t8, t4: {var}"
    half = 4 * np.sqrt(n_paths * q * (1 - q))
    lo, hi = int(np.floor(n_paths * q - half)), int(np.ceil(n_paths * q + half))
    s = np.sort(d, axis=1)
    assert s[0, min(hi, n_paths - 1)] < s[2, lo], (
        f"gaussian VaR upper bound {s[0, min(hi, n_paths - 1)]} not below t4 lower bound {s[2, lo]}")


# --- 6. one-period and phi = 1 closed forms through pd_horizon_months (MODEL.md §9) ---------


def _assert_tail(counts: np.ndarray, pmf: np.ndarray, levels=(0.5, 0.9, 0.99, 0.999)) -> None:
    cdf = np.cumsum(pmf)
    ks = sorted({int(np.searchsorted(cdf, q)) + 1 for q in levels})
    for k, mc, ref, se in tail_check(counts, cdf, ks):
        # se = sqrt(q (1 - q) / n_paths): each path gives one count, paths are iid
        assert abs(mc - ref) < 4 * se + 1e-12, f"P(N >= {k}): mc {mc:.5f} vs quadrature {ref:.5f} (se {se:.5f})"


def _one_factor(n: int, p: float, rho: float, horizon: int = 1, pd_horizon: int = 1, ar1: float = 0.0,
                **factors) -> tuple:
    loans = book(n, pd_=p, term=1 if horizon == 1 else 36, amortization="bullet" if horizon == 1 else "annuity")
    scen = _scenario(horizon, loadings={"global_loading": float(np.sqrt(rho)), "industry_loading": 0.0,
                                        "region_loading": 0.0},
                     ar1=ar1, pd_horizon_months=pd_horizon, delinquency={"default_after": 1}, **factors)
    return loans, scen


@pytest.mark.parametrize("copula", ["gaussian", "t"])
def test_one_period_is_the_one_factor_mixture_with_one_month_pd(copula):
    n, p, rho, nu = 100, 0.02, 0.2, 4.0
    extra = {"copula": "t", "dof": nu} if copula == "t" else {}
    loans, scen = _one_factor(n, p, rho, **extra)
    ds = stresslab.simulate(loans, scen, n_paths=20_000, seed=3200)
    counts = _defaults_at(ds, 1)
    pmf = t_copula_count_pmf(n, p, rho, nu) if copula == "t" else vasicek_count_pmf(n, p, rho)
    _assert_tail(counts, pmf)


def _phi_one_tail(n: int, p: float, rho: float, horizon: int, k: int) -> float:
    """P(N >= k): given Y the T-month count is Binomial(n, 1 - (1 - p(Y))^T) (MODEL.md §9)."""
    def integrand(y: float) -> float:
        py = ndtr((ndtri(p) - np.sqrt(rho) * y) / np.sqrt(1 - rho))
        return stats.norm.pdf(y) * stats.binom.sf(k - 1, n, 1 - (1 - py) ** horizon)

    return integrate.quad(integrand, -9, 9, limit=200, epsabs=1e-12)[0]


@pytest.mark.parametrize("pd_horizon", [1, 12])
def test_phi_one_multi_month_default_count(pd_horizon):
    """phi = 1, default_after 1, 12 months. pd_horizon 1: the monthly p is pd. pd_horizon 12: the
    monthly p solves E[1 - (1 - p(Y))^12] = pd (the calibration integral in closed form)."""
    n, rho, horizon, n_paths = 400, 0.15, 12, 8_000
    pd_ = 0.01 if pd_horizon == 1 else 0.08
    p = pd_ if pd_horizon == 1 else optimize.brentq(
        lambda x: multiperiod_default_fraction_mean(x, rho, horizon) - pd_, 1e-8, pd_, xtol=1e-14)
    loans, scen = _one_factor(n, pd_, rho, horizon=horizon, pd_horizon=pd_horizon, ar1=1.0)
    counts = _defaults_at(stresslab.simulate(loans, scen, n_paths=n_paths, seed=3300 + pd_horizon), horizon)
    for k in (10, 30, 60, 100, 150):
        ref = _phi_one_tail(n, p, rho, horizon, k)
        se = np.sqrt(ref * (1 - ref) / n_paths)
        assert abs(np.mean(counts >= k) - ref) < 4 * se + 1e-12, (k, np.mean(counts >= k), ref, se)
