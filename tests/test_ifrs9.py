"""IFRS 9 stages and expected credit losses (docs/ifrs9.md).

References independent of the ECL kernel: a closed-form sum for one loan by hand; the
engine's own Monte Carlo (the path kernel, a different code path) for a multi-state book;
the PD calibration's chain kernel for the 12-month PD of current loans.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import book, scenario

import stresslab as sl
from stresslab.compile.provisions import expected_credit_loss
from stresslab.errors import ScenarioError, StresslabWarning


def test_one_annuity_by_hand() -> None:
    # 24-month annuity, 10,000 at 1% a month, monthly default probability 0.005 (no factor
    # loading, default_after 1), recovery 0.4 at default with no lag or cost.
    # Convention: a default in month m (prob. (1 - p)^(m-1) p) has EAD = B_{m-1} (1 + r): the
    # balance before the missed installment and its interest; loss 0.6 EAD, discounted
    # (1 + r)^-m to the start of month 1. So ECL = 0.6 p sum_m (1 - p)^(m-1) B_{m-1} (1 + r)^-(m-1).
    p, r, n, b0 = 0.005, 0.01, 24, 10_000.0
    level = b0 * r / (1.0 - (1.0 + r) ** -n)
    balance = [b0]
    for _ in range(n - 1):
        balance.append(balance[-1] * (1.0 + r) - level)
    term = [0.6 * p * (1.0 - p) ** (m - 1) * balance[m - 1] * (1.0 + r) ** -(m - 1) for m in range(1, n + 1)]
    loan = book(1, pd_=p, balance=b0, rate=12 * r, term=n, amortization="annuity")
    sc = scenario(1, recovery={"unsecured_mean": 0.4, "dispersion": 0.0, "lag_months": 0, "cost": 0.0})
    ds = expected_credit_loss(loan, sc)
    assert float(ds.ecl_12m[0]) == pytest.approx(sum(term[:12]), rel=1e-9)
    assert float(ds.ecl_lifetime[0]) == pytest.approx(sum(term), rel=1e-9)
    assert float(ds.pd_12m[0]) == pytest.approx(1.0 - (1.0 - p) ** 12, rel=1e-9)
    assert float(ds.pd_lifetime[0]) == pytest.approx(1.0 - (1.0 - p) ** 24, rel=1e-9)
    assert int(ds.stage[0]) == 1 and float(ds.allowance[0]) == float(ds.ecl_12m[0])


_CHAIN = {
    "factors": {"global_loading": 0.3, "industry_loading": 0.25, "region_loading": 0.15, "ar1": 0.8},
    "delinquency": {"default_after": 4, "roll_rates": [0.35, 0.5, 0.7], "cure_rates": [0.3, 0.2, 0.1],
                    "prepayment_rate": 0.01},
    "recovery": {"unsecured_mean": 0.35, "dispersion": 0.2, "lag_months": 4, "cost": 0.1,
                 "cycle_sensitivity": 0.5},
    "shocks": {"industry": {"retail": {"start": 2, "trough": -0.2, "trough_month": 6, "recovery_month": 14}}},
}


@pytest.mark.parametrize("copula", ["gaussian", "t"])
@pytest.mark.parametrize("state", ["C", "M1", "M2", "M3"])
def test_ecl_is_the_mean_discounted_loss_of_the_engine(copula: str, state: str) -> None:
    # One loan per run, so its loss per month is the path's: the ECL must be the average
    # over simulated futures of its discounted loss, within 4 Monte Carlo s.e. (the s.e. of
    # the path mean; the quadrature error, about 0.5% at sobol_log2 = 12, is far below it).
    term, rate = 18, 0.24
    loan = book(1, pd_=0.06, balance=50_000.0, rate=rate, term=term, amortization="annuity", state=state)
    factors = {**_CHAIN["factors"], "copula": copula, **({"dof": 5.0} if copula == "t" else {})}
    horizon = term + 24
    sc = sl.Scenario.from_dict({"name": "chain", "horizon_months": horizon, **_CHAIN, "factors": factors})
    ds = expected_credit_loss(loan, sc, sobol_log2=12 if copula == "gaussian" else 10)
    n_paths = 100_000
    res = sl.simulate(loan, sc, n_paths=n_paths, seed=7, progress=False)
    discount = (1.0 + rate / 12.0) ** -np.arange(1, horizon + 1)
    loss = res["loss_gross"].values  # (path, month)
    for name, months in (("ecl_12m", 12), ("ecl_lifetime", horizon)):
        sample = loss[:, :months] @ discount[:months]
        se = sample.std(ddof=1) / np.sqrt(n_paths)
        assert abs(float(ds[name][0]) - sample.mean()) < 4 * se, (name, float(ds[name][0]), sample.mean(), se)
    defaulted = (res["count_by_state"].sel(state="D").values > 0)
    for name, month in (("pd_12m", 12), ("pd_lifetime", horizon)):
        share = defaulted[:, month - 1].mean()
        se = np.sqrt(share * (1 - share) / n_paths)
        assert abs(float(ds[name][0]) - share) < 4 * se + 1e-12, (name, float(ds[name][0]), share, se)


def test_pd_12m_of_current_loans_is_the_book_pd() -> None:
    # The calibration (its own chain kernel, 4,096 nodes) sets c so that a current loan with
    # an installment due every month defaults within 12 months with probability pd; the ECL
    # kernel's pd_12m of such loans (terms of at least 12 months) must give it back. Tolerance:
    # the two quadratures' errors, about 1e-3 and 5e-3 relative.
    loans = book(6, pd_=0.04, balance=10_000.0, rate=0.2, term=24, amortization="annuity",
                 industries=("retail", "services", "farming"))
    sc = sl.Scenario.from_dict({"name": "ref", "horizon_months": 12, "factors": _CHAIN["factors"],
                                "delinquency": _CHAIN["delinquency"]})
    ds = expected_credit_loss(loans, sc, sobol_log2=12)
    np.testing.assert_allclose(ds.pd_12m.values, 0.04, rtol=6e-3)


def test_stages_follow_days_past_due_and_the_relative_pd_criterion() -> None:
    states = ["C", "M1", "M2", "M3"]
    loans = [book(1, pd_=0.03, balance=1e4, rate=0.2, term=12, amortization="annuity", state=s) for s in states]
    frames = sl.Portfolio.from_frame(
        __import__("pandas").concat([lo.to_frame().assign(loan_id=f"L{k}", borrower_id=f"B{k}") for k, lo in
                                     enumerate(loans)]), source="<four states>")
    sc = sl.Scenario.from_dict({"name": "ref", "horizon_months": 12, "delinquency": _CHAIN["delinquency"]})
    ds = expected_credit_loss(frames, sc)
    assert ds.stage.values.tolist() == [1, 1, 2, 2]
    assert np.all(np.diff(ds.pd_12m.values) > 0)  # further behind, likelier to default
    np.testing.assert_array_equal(ds.allowance.values, np.where(ds.stage == 1, ds.ecl_12m, ds.ecl_lifetime))
    # an M1 loan's 12-month PD is far above its pd at origination (that of a current loan)
    strict = expected_credit_loss(frames, sc, relative_pd_multiple=3.0)
    assert strict.stage.values.tolist() == [1, 2, 2, 2]
    assert float(strict.allowance[1]) == float(ds.ecl_lifetime[1])
    with pytest.raises(ScenarioError, match="relative_pd_multiple must be above 1"):
        expected_credit_loss(frames, sc, relative_pd_multiple=0.5)


def test_levers_that_change_schedules_are_named() -> None:
    loans = book(2, pd_=0.03, balance=1e4, rate=0.2, term=12, amortization="annuity")
    sc = sl.Scenario.from_dict({"name": "lever", "horizon_months": 12,
                                "policy": {"interest_subsidy": {"points": 0.02}}})
    with pytest.warns(StresslabWarning, match=r"\[policy.interest_subsidy\] are not applied"):
        with_lever = expected_credit_loss(loans, sc)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = expected_credit_loss(loans, sl.Scenario.from_dict({"name": "plain", "horizon_months": 12}))
    np.testing.assert_array_equal(with_lever.ecl_lifetime.values, plain.ecl_lifetime.values)


def test_a_pledged_loan_is_within_the_stated_approximation() -> None:
    # With a pledge, min(EAD, pledge value) is taken at the expected EAD given default in a
    # month and node (docs/ifrs9.md): the Monte Carlo mean must still be within 4 s.e.
    term, rate = 12, 0.2
    loan = book(1, pd_=0.08, balance=40_000.0, rate=rate, term=term, amortization="annuity", state="M1",
                pledge_value=30_000.0)
    horizon = term + 24
    sc = sl.Scenario.from_dict({"name": "pledge", "horizon_months": horizon, **_CHAIN,
                                "recovery": {**_CHAIN["recovery"], "pledge_haircut": 0.3, "pledge_lag_months": 2}})
    ds = expected_credit_loss(loan, sc, sobol_log2=12)
    n_paths = 100_000
    loss = sl.simulate(loan, sc, n_paths=n_paths, seed=3, progress=False)["loss_gross"].values
    sample = loss @ (1.0 + rate / 12.0) ** -np.arange(1, horizon + 1)
    se = sample.std(ddof=1) / np.sqrt(n_paths)
    assert abs(float(ds.ecl_lifetime[0]) - sample.mean()) < 4 * se
    assert float(ds.ecl_lifetime[0]) < float(expected_credit_loss(
        book(1, pd_=0.08, balance=40_000.0, rate=rate, term=term, amortization="annuity", state="M1"), sc,
        sobol_log2=12).ecl_lifetime[0])  # the pledge lowers the loss


def test_stage_summary_adds_up() -> None:
    loans = sl.synthetic_portfolio(300, seed=4)
    ds = expected_credit_loss(loans, sl.load_scenario(sl.__path__[0] + "/library/baseline.toml"))
    stages = sl.stage_summary(ds)
    total = stages.sel(stage="total")
    assert int(total.loans) == 300 and float(total.ead) == pytest.approx(float(ds.ead.sum()), rel=1e-12)
    for name in ("loans", "ead", "allowance", "ecl_lifetime"):
        assert float(stages[name].sel(stage=["S1", "S2", "S3"]).sum()) == pytest.approx(float(total[name]), rel=1e-12)
    s1 = stages.sel(stage="S1")
    assert float(s1.coverage) == pytest.approx(float(s1.allowance / s1.ead), rel=1e-12)
    assert np.all(ds.ecl_12m <= ds.ecl_lifetime + 1e-9) and np.all(ds.pd_12m <= ds.pd_lifetime + 1e-12)
    assert np.all(ds.ecl_lifetime <= ds.ead * 1.2)  # at most the exposure and its interest to come
    text = sl.format_stages(stages)
    assert "S2" in text and "coverage" in text


def test_cli_ecl_prints_the_stages_and_writes_the_table(tmp_path, capsys) -> None:
    from stresslab.cli import main

    scenario_file = sl.__path__[0] + "/library/baseline.toml"
    out = tmp_path / "ecl.parquet"
    assert main(["ecl", scenario_file, "--synthetic", "200", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "IFRS 9 expected credit losses" in printed and "allowance" in printed
    import pandas as pd

    table = pd.read_parquet(out)
    direct = expected_credit_loss(sl.synthetic_portfolio(200, seed=0), sl.load_scenario(scenario_file))
    np.testing.assert_array_equal(table["allowance"].to_numpy(), direct.allowance.values)
    assert main(["ecl", scenario_file, "--synthetic", "20", "--out", str(tmp_path / "ecl.xlsx")]) == 2
    assert "unknown table format '.xlsx'; use .csv, .parquet or .nc" in capsys.readouterr().err
    assert not (tmp_path / "ecl.xlsx").exists()


# ----------------------------------------------------------------------------- along paths
def _four_state_book(n_each: int = 50) -> sl.Portfolio:
    import pandas as pd

    frames = []
    for k, state in enumerate(["C", "M1", "M2", "M3"]):
        frame = book(n_each, pd_=0.05, balance=10_000.0 + 1_000 * k, rate=0.24, term=30, amortization="annuity",
                     state=state, industries=("retail", "services"), regions=("east", "west")).to_frame()
        frames.append(frame.assign(loan_id=[f"{state}{j}" for j in range(n_each)],
                                   borrower_id=[f"B{state}{j}" for j in range(n_each)]))
    return sl.Portfolio.from_frame(pd.concat(frames), source="<four states>")


_RUN = {"name": "chain", "horizon_months": 30, **_CHAIN}


def test_stage_transitions_follow_the_exposure_year_by_year() -> None:
    loans = _four_state_book()
    ds = sl.simulate(loans, sl.Scenario.from_dict(_RUN), n_paths=64, seed=5, progress=False)
    flows = ds["stage_transition"]
    assert flows.dims == ("path", "year", "from_stage", "to_stage") and flows.sizes["year"] == 3
    assert list(ds["to_stage"].values) == ["S1", "S2", "S3", "repaid"]
    model = __import__("stresslab.compile.model", fromlist=["compile_model"]).compile_model(loans, sl.Scenario.from_dict(_RUN))
    start = model.loans.principal + model.loans.arrears_principal + model.loans.arrears_interest
    s2 = np.isin(loans.state, ["M2", "M3"])
    year1 = flows.isel(year=0).sum("to_stage").values  # (path, from)
    np.testing.assert_allclose(year1[:, 0], start[~s2].sum(), rtol=1e-12)
    np.testing.assert_allclose(year1[:, 1], start[s2].sum(), rtol=1e-12)
    # a year starts from where the last ended: the S1 and S2 exposure at its last month end
    balance = ds["balance_by_state"]
    for year, month in ((1, 12), (2, 24)):
        start_next = flows.isel(year=year).sum("to_stage")
        np.testing.assert_allclose(start_next.sel(from_stage="S1"), balance.sel(month=month, state=["C", "M1"]).sum("state"),
                                   rtol=1e-12)
        np.testing.assert_allclose(start_next.sel(from_stage="S2"), balance.sel(month=month, state=["M2", "M3"]).sum("state"),
                                   rtol=1e-12)
    # defaults into S3: the exposure at the start of the year of the loans that defaulted in it
    assert np.all(flows.sel(to_stage="S3").sum(("year", "from_stage")) > 0)
    s = sl.summary(ds)
    rates = s["stage_transition_rate"]
    np.testing.assert_allclose(rates.sum("to_stage"), 1.0, rtol=1e-12)
    lo, hi = s["stage_transition_rate_ci"].sel(bound="low"), s["stage_transition_rate_ci"].sel(bound="high")
    assert bool(((lo <= rates) & (rates <= hi)).all())
    assert "S1 -> S2 in the year" in sl.format_summary(s)


def test_stage_balances_hold_defaults_until_written_off() -> None:
    # one loan that defaults in month 1 for sure (pd 1 - 1e-12, default_after 1): it is in S3 for the
    # recovery's lag (4 months: written off with the last cash in month 5) and 0 after
    from stresslab.metrics.ifrs9 import stage_balances

    loan = book(1, pd_=1 - 1e-12, balance=10_000.0, rate=0.12, term=12, amortization="annuity")
    sc = scenario(8, recovery={"unsecured_mean": 0.3, "lag_months": 4})
    ds = sl.simulate(loan, sc, n_paths=4, seed=1, progress=False)
    s3 = stage_balances(ds).sel(stage="S3").values
    ead = 10_000.0 * 1.01
    np.testing.assert_allclose(s3, np.tile([ead] * 4 + [0.0] * 4, (4, 1)), rtol=1e-12)
    flows = ds["stage_transition"].isel(year=0).sum("path")
    assert float(flows.sel(from_stage="S1", to_stage="S3")) == pytest.approx(4 * 10_000.0, rel=1e-12)
    assert float(abs(flows).sum()) == pytest.approx(4 * 10_000.0, rel=1e-12)


def test_a_downturn_moves_exposure_into_stages_2_and_3() -> None:
    # paired, on common random numbers: the same book and seed, with and without the shock
    loans = _four_state_book(100)
    calm = dict(_CHAIN, shocks={"industry": {}})
    base = sl.summary(sl.simulate(loans, sl.Scenario.from_dict({**_RUN, **calm}), n_paths=200, seed=9, progress=False))
    shocked = {**_RUN, "shocks": {"industry": {"retail": -0.3, "services": -0.3}}}
    down = sl.summary(sl.simulate(loans, sl.Scenario.from_dict(shocked), n_paths=200, seed=9, progress=False))
    year1 = {"year": 1}
    for origin, to in (("S1", "S2"), ("S1", "S3"), ("S2", "S3")):
        assert float(down["stage_transition_rate"].sel(from_stage=origin, to_stage=to, **year1)) > float(
            base["stage_transition_rate"].sel(from_stage=origin, to_stage=to, **year1))
    assert float(down["stage_transition_rate"].sel(from_stage="S2", to_stage="S1", **year1)) < float(
        base["stage_transition_rate"].sel(from_stage="S2", to_stage="S1", **year1))
    assert float(down["stage_share_mean"].sel(stage="S3", **year1)) > float(base["stage_share_mean"].sel(stage="S3", **year1))


def test_a_pooled_run_records_no_stage_transitions() -> None:
    import warnings as w

    loans = book(40, pd_=0.05, balance=1e4, rate=0.2, term=12, amortization="annuity")
    with w.catch_warnings():
        w.simplefilter("ignore", StresslabWarning)
        ds = sl.simulate(loans, sl.Scenario.from_dict({"name": "p", "horizon_months": 12}), n_paths=16, seed=1,
                         progress=False, pooled=True)
    assert "stage_transition" not in ds and "year" not in ds.coords
    assert "stage_transition_rate" not in sl.summary(ds)


# ----------------------------------------------------------------------------- allowance along paths
def test_allowance_tables_reproduce_the_exact_ecl_at_the_start() -> None:
    # The tables (a 15-node Rouwenhorst chain for the index, arrears as one interest-bearing
    # amount) averaged over the stationary law must give each loan's allowance as the exact
    # per-loan computation (QMC, 4,096 paths): within 2% a loan (measured: 0.3% for the stage sums).
    from stresslab.compile.model import compile_model
    from stresslab.compile.provisions import with_allowance

    loans = _four_state_book(5)
    sc = sl.Scenario.from_dict({**_RUN, "ifrs9": {"allowance": "point_in_time"}})
    exact = expected_credit_loss(loans, sc, sobol_log2=12)
    model = with_allowance(compile_model(loans, sc), loans, sc)
    from stresslab.compile.provisions import INDEX_NODES, rouwenhorst

    _, _, stationary = rouwenhorst(INDEX_NODES, 0.8)
    rows = np.arange(loans.n_loans)
    state = model.loans.state.astype(int)
    arrears = model.loans.arrears_principal + model.loans.arrears_interest
    nodes = model.allowance.table[rows, 0, state]  # (loan, node, alpha / beta)
    table = (nodes[..., 0] + nodes[..., 1] * arrears[:, None]) @ stationary
    np.testing.assert_allclose(table, exact.allowance.values, rtol=0.02)
    opening = model.allowance_opening
    assert opening[0] == pytest.approx(float(exact.allowance[exact.stage == 1].sum()), rel=0.005)
    assert opening[1] == pytest.approx(float(exact.allowance[exact.stage == 2].sum()), rel=0.005)


def test_allowance_of_one_loan_by_hand() -> None:
    # The annuity of test_one_annuity_by_hand, no factor loading: at the end of year 1 a loan
    # still current has the 12-month ECL of months 13..24 discounted to month 12,
    # 0.6 p sum_{m=13..24} (1 - p)^(m-13) B_{m-1} (1 + r)^-(m-1-12); point in time = through the cycle.
    p, r, n, b0 = 0.005, 0.01, 24, 10_000.0
    level = b0 * r / (1.0 - (1.0 + r) ** -n)
    balance = [b0]
    for _ in range(n - 1):
        balance.append(balance[-1] * (1.0 + r) - level)
    by_hand = sum(0.6 * p * (1 - p) ** (m - 13) * balance[m - 1] * (1 + r) ** -(m - 13) for m in range(13, 25))
    loan = book(1, pd_=p, balance=b0, rate=12 * r, term=n, amortization="annuity")
    runs = {}
    for mode in ("point_in_time", "through_the_cycle"):
        sc = scenario(18, recovery={"unsecured_mean": 0.4, "dispersion": 0.0, "lag_months": 0, "cost": 0.0},
                      ifrs9={"allowance": mode})
        runs[mode] = ds = sl.simulate(loan, sc, n_paths=200, seed=2, progress=False)
        alive = (ds["count_by_state"].sel(month=12, state="C") == 1).values
        year1 = ds["allowance"].sel(year=1, from_stage="S1").values
        np.testing.assert_allclose(year1[alive], by_hand, rtol=1e-9)
        assert np.all(year1[~alive] == 0.0) and alive.mean() > 0.8
    np.testing.assert_allclose(runs["point_in_time"]["allowance"].values, runs["through_the_cycle"]["allowance"].values,
                               rtol=1e-12)


def test_impairment_charges_add_up_to_the_losses() -> None:
    from stresslab.metrics.ifrs9 import provisions

    loans = _four_state_book(30)
    sc = sl.Scenario.from_dict({**_RUN, "ifrs9": {"allowance": "point_in_time"}})
    ds = sl.simulate(loans, sc, n_paths=100, seed=4, progress=False)
    prov = provisions(ds)
    total = prov["impairment_charge"].sum("year").values
    expected = (ds["loss_gross"].sum("month") + ds["allowance"].isel(year=-1).sum("from_stage")).values \
        - float(ds["allowance_opening"].sum())
    np.testing.assert_allclose(total, expected, rtol=1e-9, atol=1e-6)
    s3 = prov["allowance_by_stage"].sel(stage="S3")
    assert float(s3.isel(year_end=0).max()) == 0.0 and float(s3.isel(year_end=1).mean()) > 0.0
    s = sl.summary(ds)
    assert set(s["impairment_charge_quantile"].dims) == {"year", "charge_quantile"}
    assert "impairment charge of the year" in sl.format_summary(s)


def test_a_downturn_raises_the_point_in_time_allowance() -> None:
    # paired on common random numbers: the shock raises the year-1 allowance; the point-in-time
    # allowance is above the through-the-cycle one in the paths whose index fell most
    loans = _four_state_book(40)
    calm = {**_RUN, "shocks": {"industry": {}}, "ifrs9": {"allowance": "point_in_time"}}
    shocked = {**calm, "shocks": {"industry": {"retail": -0.3, "services": -0.3}}}
    base = sl.simulate(loans, sl.Scenario.from_dict(calm), n_paths=200, seed=9, progress=False)
    down = sl.simulate(loans, sl.Scenario.from_dict(shocked), n_paths=200, seed=9, progress=False)
    assert float(down["allowance"].sel(year=1).sum("from_stage").mean()) > float(base["allowance"].sel(year=1).sum("from_stage").mean())
    ttc = sl.simulate(loans, sl.Scenario.from_dict({**calm, "ifrs9": {"allowance": "through_the_cycle"}}), n_paths=200,
                      seed=9, progress=False)
    gap = (base["allowance"] - ttc["allowance"]).sel(year=1).sum("from_stage").values
    assert np.array_equal(base["loss_gross"].values, ttc["loss_gross"].values)  # the same paths
    index_drop = base["loss_gross"].sum("month").values  # bad paths: large losses, low index
    worst = index_drop > np.quantile(index_drop, 0.8)
    assert gap[worst].mean() > 0.0 > gap[index_drop < np.quantile(index_drop, 0.2)].mean()


def test_allowance_needs_a_loan_level_run() -> None:
    loans = book(10, pd_=0.05, balance=1e4, rate=0.2, term=12, amortization="annuity")
    sc = sl.Scenario.from_dict({"name": "p", "horizon_months": 12, "ifrs9": {"allowance": "point_in_time"}})
    with pytest.raises(sl.StresslabError, match="needs a loan-level run"):
        sl.simulate(loans, sc, n_paths=4, seed=1, progress=False, pooled=True)
    with pytest.raises(sl.ScenarioError, match=r"\[ifrs9\] allowance must be one of 'off', 'point_in_time'"):
        sl.Scenario.from_dict({"name": "p", "horizon_months": 12, "ifrs9": {"allowance": "pit"}})


def test_allowance_fan_and_stage_mix_draw_the_estimates(tmp_path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from stresslab import plots
    from stresslab.metrics.ifrs9 import provisions, stage_balances

    loans = _four_state_book(20)
    ds = sl.simulate(loans, sl.Scenario.from_dict({**_RUN, "ifrs9": {"allowance": "point_in_time"}}), n_paths=60,
                     seed=3, progress=False)
    fig = plots.allowance_fan(ds)
    ax = fig.axes[0]
    mean = [line for line in ax.get_lines() if line.get_label() == "mean"][0]
    np.testing.assert_array_equal(mean.get_xdata(), [0, 12, 24, 30])
    expected = provisions(ds)["allowance_by_stage"].sum("stage").mean("path").values
    np.testing.assert_allclose(mean.get_ydata(), expected, rtol=1e-12)
    assert ax.get_title() and ax.get_ylabel() and ax.get_legend() is not None
    fig.savefig(tmp_path / "fan.png")
    plt.close(fig)
    fig = plots.stage_mix(ds)
    top = fig.axes[0].collections[-1].get_paths()[0].vertices[:, 1].max()
    assert top == pytest.approx(float(stage_balances(ds).sum("stage").mean("path").max()), rel=1e-9)
    plt.close(fig)
    with pytest.raises(sl.StresslabError, match="allowance_fan"):
        plots.allowance_fan(ds.drop_vars("allowance"))


def test_compare_pairs_the_impairment_charges() -> None:
    # paired on common random numbers: the difference's interval is the paired one, and a
    # scenario that records no allowance gets no value (not a zero)
    loans = _four_state_book(20)
    calm = {**_RUN, "name": "calm", "shocks": {"industry": {}}, "ifrs9": {"allowance": "point_in_time"}}
    shocked = {**calm, "name": "shocked", "shocks": {"industry": {"retail": -0.3, "services": -0.3}}}
    plain = {**calm, "name": "plain", "ifrs9": {"allowance": "off"}}
    scenarios = [sl.Scenario.from_dict(s) for s in (calm, shocked, plain)]
    ds = sl.compare(loans, scenarios, n_paths=100, seed=5, progress=False)
    s = sl.compare_summary(ds)
    from stresslab.metrics.ifrs9 import provisions

    charge = {name: provisions(ds.sel(scenario=name))["impairment_charge"].sel(year=1).values for name in ("calm", "shocked")}
    row = {"metric": "impairment_charge_year1"}
    assert float(s["value"].sel(scenario="shocked", **row)) == pytest.approx(charge["shocked"].mean(), rel=1e-12)
    d = charge["shocked"] - charge["calm"]
    assert float(s["difference"].sel(scenario="shocked", **row)) == pytest.approx(d.mean(), rel=1e-12)
    assert float(s["difference"].sel(scenario="shocked", **row)) > 0
    assert np.isnan(float(s["value"].sel(scenario="plain", **row)))


def test_the_report_has_the_ifrs9_section(tmp_path) -> None:
    loans = _four_state_book(20)
    for allowance, tables in (("off", 1), ("point_in_time", 2)):
        ds = sl.simulate(loans, sl.Scenario.from_dict({**_RUN, "ifrs9": {"allowance": allowance}}), n_paths=40, seed=3,
                         progress=False)
        out = tmp_path / f"{allowance}.html"
        sl.write_report(ds, out)
        html = out.read_text()
        section = html[html.index('<section id="ifrs9">'):]
        section = section[:section.index("</section>")]
        assert section.count("<table") == tables and "S1 → S2 in the year" in section
        assert ("impairment charge of the year" in section) == (allowance != "off")
        assert section.count("<img") == tables  # stage mix, and the allowance fan


def test_point_in_time_tables_match_the_exact_conditional_ecl() -> None:
    # The exact per-loan chain (the ECL kernel) over quasi-Monte Carlo paths of Y_1..Y_H drawn
    # from their law given Y_0 = y (mean phi^t y, covariance phi^|s-t| - phi^(s+t)) is the
    # point-in-time allowance at the start given y; the tables (15 Rouwenhorst nodes) must
    # agree at their nodes: within 3% a loan (the chain's discretisation), for y at -2, 0, +2 sd.
    from scipy.special import ndtri
    from scipy.stats import qmc

    from stresslab._kernels.ecl import ECL_LIFETIME, ECL_WINDOW, loan_expected_losses
    from stresslab.compile.model import compile_model
    from stresslab.compile.provisions import INDEX_NODES, WORKOUT_MONTHS, _density, rouwenhorst, with_allowance

    loans = _four_state_book(3)
    sc = sl.Scenario.from_dict({**_RUN, "shocks": {"industry": {}}, "ifrs9": {"allowance": "point_in_time"}})
    tables = with_allowance(compile_model(loans, sc), loans, sc).allowance.table  # (loan, end, state, node, 2)
    months = loans.remaining_term.astype(np.int64) + WORKOUT_MONTHS
    horizon = int(months.max())
    model = compile_model(loans, sl.Scenario.from_dict({**_RUN, "shocks": {"industry": {}}, "horizon_months": horizon}))
    phi = 0.8
    t = np.arange(1, horizon + 1)
    cov = phi ** np.abs(np.subtract.outer(t, t)) - np.outer(phi**t, phi**t)
    root = np.linalg.cholesky(cov + 1e-12 * np.eye(horizon))
    u = ndtri(qmc.Sobol(horizon, scramble=True, seed=3).random_base2(13)) @ root.T
    grid, _, _ = rouwenhorst(INDEX_NODES, phi)
    state = model.loans.state.astype(int)
    arrears = model.loans.arrears_principal + model.loans.arrears_interest
    for g in (INDEX_NODES // 2 - 4, INDEX_NODES // 2, INDEX_NODES // 2 + 4):  # y = -2, 0, +2 (node spacing 0.5)
        y = np.ascontiguousarray(phi**t * grid[g] + u)
        out = np.empty((loans.n_loans, 4))
        loan_expected_losses(model.loans, model.tables, model.params, _density(model), months, 12, y,
                             np.ones(len(y)), np.full(len(y), 1.0 / len(y)), out)
        exact = np.where(state <= 1, out[:, ECL_WINDOW], out[:, ECL_LIFETIME])
        node = tables[np.arange(loans.n_loans), 0, state, g]
        np.testing.assert_allclose(node[:, 0] + node[:, 1] * arrears, exact, rtol=0.03)
