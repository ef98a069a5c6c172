"""Pooled mode (simulate(..., pooled=True)): grouping, theory, agreement with loan level, invariants.

Pooled mode draws each pool's monthly transitions as binomial counts, so counts by state
have exactly the loan-level law and balances and losses agree in expectation. A pooled
and a loan-level run with the same seed share their systematic factors exactly and differ
in the idiosyncratic draws only, so per-path differences (pooled minus loan level) are a
sharp test of equality in mean: z = mean(d) / (sd(d) / sqrt(n_paths)), |z| < 4.

Tolerances are Monte Carlo standard errors (4 se) with se stated per check; seeds are fixed,
so every run of the suite checks the same numbers.
"""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import book, scenario, tail_check
from reference import vasicek_count_pmf
from scipy import stats

import stresslab
from stresslab.cli import main
from stresslab.compile.model import compile_model
from stresslab.compile.pooling import pool_model
from stresslab.errors import StresslabError, StresslabWarning

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
DOWNTURN = SCENARIOS / "services_downturn.toml"

# the shipped scenarios name industries (agriculture, construction, ...) our small books
# lack: their "not in the book" warnings are expected here
pytestmark = pytest.mark.filterwarnings("ignore::stresslab.errors.StresslabWarning")


def _paired_z(pooled: np.ndarray, loan_level: np.ndarray) -> float:
    """z of the mean per-path difference; 0 when the two agree in every path."""
    d = np.asarray(pooled, dtype=float) - np.asarray(loan_level, dtype=float)
    sd = d.std(ddof=1)
    if sd == 0.0:
        return 0.0 if d.mean() == 0.0 else np.inf
    return float(d.mean() / (sd / np.sqrt(d.size)))


def _simulate(loans, scen, n_paths, seed, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StresslabWarning)
        return stresslab.simulate(loans, scen, n_paths=n_paths, seed=seed, **kwargs)


def _downturn(**overrides) -> stresslab.Scenario:
    return stresslab.load_scenario(DOWNTURN).with_overrides({"delinquency.prepayment_rate": 0.01, **overrides})


_STATES = ("C", "M1", "M2", "M3")
_PLEDGES = (0.0, 30_000.0)


def _mixed_book(per_type: int, *, amortization: str = "annuity", term: int = 24, **extra) -> stresslab.Portfolio:
    """32 loan types (4 states x pledged or not x 2 industries x 2 regions), ``per_type`` loans each.

    helpers.book puts loan j in industry j % 2 and region (j // 2) % 2; state and pledge
    change every 4 loans, so the types are interleaved through the book.
    """
    combos = list(itertools.product(_STATES, _PLEDGES))
    n = 4 * len(combos) * per_type
    kind = [(j // 4) % len(combos) for j in range(n)]
    return book(
        n,
        pd_=0.06,
        balance=50_000.0,
        rate=0.18,
        term=term,
        amortization=amortization,
        state=[combos[k][0] for k in kind],
        pledge_value=[combos[k][1] for k in kind],
        industries=("retail", "catering"),
        regions=("east", "west"),
        **extra,
    )


# --- 1. one period: the pooled default count is the Vasicek binomial mixture ----------------


def _assert_tail(counts: np.ndarray, pmf: np.ndarray, levels=(0.1, 0.5, 0.9, 0.99, 0.999)) -> None:
    cdf = np.cumsum(pmf)
    ks = sorted({int(np.searchsorted(cdf, q)) + 1 for q in levels})
    for k, mc, ref, se in tail_check(counts, cdf, ks):
        # se = sqrt(q (1 - q) / n_paths) of a tail frequency at the quadrature value q
        assert abs(mc - ref) < 4 * se + 1e-12, f"P(N >= {k}): pooled {mc:.5f} vs quadrature {ref:.5f} (se {se:.5f})"
    assert abs(counts.mean() - pmf @ np.arange(pmf.size)) < 4 * counts.std(ddof=1) / np.sqrt(counts.size)


def test_one_period_default_count_is_vasicek_mixture():
    # horizon 1, bullet loans due in month 1, default_after 1, no recoveries: n identical
    # loans form one pool whose default count must be the one-factor Vasicek mixture
    # (MODEL.md §9). Fails if the pool's miss probability given the factor, or its binomial
    # draw, is wrong.
    n, p, rho = 100, 0.02, 0.2
    loans = book(n, pd_=p)
    scen = scenario(1, factors={"global_loading": float(np.sqrt(rho))})
    ds = stresslab.simulate(loans, scen, n_paths=20_000, seed=11, pooled=True)
    assert ds.attrs["pooled"] == 1 and ds.attrs["n_pools"] == 1
    assert (ds.count_by_state.sum("state") == n).all()
    counts = ds.count_by_state.sel(state="D").isel(month=-1).values
    np.testing.assert_allclose(ds.loss_gross.sum("month").values, counts)  # unit balances, no rate, no recoveries
    _assert_tail(counts, vasicek_count_pmf(n, p, rho))


def test_one_period_roll_count_is_vasicek_mixture():
    # The same one-period check through the delinquent branch: n identical loans start in
    # M1, default_after 2, so the month-1 default count is the number rolling M1 -> D, with
    # conditional probability Phi((Phi^-1(r1) - sqrt(rho) Y) / sqrt(1 - rho)) (MODEL.md §3,
    # cycle sensitivity 1): the Vasicek mixture with p = r1. n r1 > 16 makes binomial_draw
    # split by order statistics (beta draws) before its inversion. Fails if the pooled roll
    # probability or the binomial sampler is wrong.
    n, rho, roll, cure = 150, 0.2, (0.3, 0.5, 0.75), (0.3, 0.2, 0.1)
    loans = book(n, pd_=0.05, state="M1")
    scen = scenario(
        1,
        factors={"global_loading": float(np.sqrt(rho))},
        delinquency={"default_after": 2, "roll_rates": list(roll), "cure_rates": list(cure)},
    )
    p_roll = roll[0]
    ds = stresslab.simulate(loans, scen, n_paths=20_000, seed=41, pooled=True)
    assert ds.attrs["pooled"] == 1 and ds.attrs["n_pools"] == 1
    assert (ds.count_by_state.sum("state") == n).all()
    _assert_tail(ds.count_by_state.sel(state="D").isel(month=-1).values, vasicek_count_pmf(n, p_roll, rho))


# --- 2. agreement with loan-level simulation --------------------------------------------------

_MONTHS = (1, 3, 6, 12, 24)


@pytest.mark.parametrize(
    ("amortization", "term", "n_paths"),
    [("annuity", 24, 3_000), ("equal_principal", 18, 2_000), ("bullet", 12, 2_000)],
)
def test_pooled_agrees_with_loan_level(amortization, term, n_paths):
    # 384 loans in 32 pools of 12: mixed initial states, pledges, 2 industries x 2 regions,
    # services downturn with prepayment. Same seed: shared factors, so the paired
    # differences test equality in mean of every reported series (4 se of the per-path
    # difference). Fails on any bias of the pooled kernel: transition probabilities,
    # schedules (maturity, balloons, accrued interest), income, EAD, recoveries.
    loans = _mixed_book(12, amortization=amortization, term=term)
    scen = _downturn()
    pooled = _simulate(loans, scen, n_paths, seed=31, pooled=True)
    level = _simulate(loans, scen, n_paths, seed=31)
    assert pooled.attrs["pooled"] == 1 and pooled.attrs["n_pools"] == 32
    assert level.attrs["pooled"] == 0 and level.attrs["n_pools"] == 0
    np.testing.assert_array_equal(pooled.count_by_state.sum("state").values, loans.n_loans)

    z = {}
    for name in ("loss_gross", "loss_net", "interest_income", "recoveries"):
        z[name] = _paired_z(pooled[name].sum("month").values, level[name].sum("month").values)
    for month, state in itertools.product(_MONTHS, ("C", "M1", "M2", "M3", "D", "P")):
        for name in ("count_by_state", "balance_by_state"):
            a = pooled[name].sel(month=month, state=state).values
            b = level[name].sel(month=month, state=state).values
            z[f"{name}[{month}, {state}]"] = _paired_z(a, b)
    far = {key: round(value, 2) for key, value in z.items() if not abs(value) < 4}
    assert not far, f"paired z beyond 4: {far}"

    # equality in law of the horizon loss and the month-12 default count. Paired checks of
    # E[g] for fixed g (tail indicators at the loan-level quantiles, squared deviations
    # from the loan-level mean: the variance) keep the power of the shared factors; the KS
    # test needs independent samples, so it compares the loan-level run with a pooled
    # run of another seed (p > 1e-3: a 1-in-1000 false alarm at most).
    other = _simulate(loans, scen, n_paths, seed=32, pooled=True)
    for get in (
        lambda ds: ds.loss_gross.sum("month").values,
        lambda ds: ds.count_by_state.sel(month=12, state="D").values.astype(float),
    ):
        a, b = get(pooled), get(level)
        for q in (0.5, 0.9, 0.99):
            threshold = np.quantile(b, q)
            assert abs(_paired_z(a > threshold, b > threshold)) < 4, q
        assert abs(_paired_z((a - b.mean()) ** 2, (b - b.mean()) ** 2)) < 4
        assert stats.ks_2samp(get(other), b).pvalue > 1e-3


# --- 3. bitwise reproducibility ----------------------------------------------------------------


def test_pooled_bitwise_identical_across_chunks_and_threads():
    # Per-path random streams and per-path sums in pool order: chunking and the number of
    # threads must not move a single bit. Pools of 100 loans exercise the binomial
    # sampler's splitting, the layers (capacity, failures, fees) the allocation. Fails on
    # any state shared between paths or chunks.
    loans = _mixed_book(100, borrower_type="enterprise")
    scen = stresslab.load_scenario(SCENARIOS / "guarantee_insurance.toml").with_overrides(
        {"delinquency.prepayment_rate": 0.01, "layers.insurer.capacity": 2e7}
    )
    n_paths = 40

    def run(**kwargs):
        return _simulate(loans, scen, n_paths, seed=5, pooled=True, **kwargs)

    ref = run(chunk_size=n_paths, threads=2)
    for kwargs in ({"chunk_size": 1}, {"chunk_size": 7}, {"chunk_size": n_paths, "threads": 1}, {"chunk_size": 7, "threads": 2}):
        other = run(**kwargs)
        assert set(other.data_vars) == set(ref.data_vars)
        for name in ref.data_vars:
            np.testing.assert_array_equal(other[name].values, ref[name].values, err_msg=f"{name} {kwargs}")
        assert other.attrs == ref.attrs


# --- 4. invariants with credit-enhancement layers ----------------------------------------------


@pytest.mark.parametrize(
    ("name", "capacity_key", "capacity"),
    [("guarantee_insurance", "layers.insurer.capacity", 6e6), ("risk_sharing", "layers.guarantor.capacity", 4e6)],
)
def test_pooled_invariants_with_layers(name, capacity_key, capacity):
    # Layer scenarios without policy levers, capacities cut to bind in part of the paths of
    # this ~19m book (checked below, so the capped branch is exercised). Per path and
    # month: gross = sum of layer payouts + retained (float rounding only), capacity never
    # exceeded and equal to what is left plus what was paid (no top-ups in these
    # scenarios), a failed provider pays nothing, a loss never exceeds the exposure that
    # defaulted, counts sum to the book. Fails on lost or double-counted money or loans.
    scen = stresslab.load_scenario(SCENARIOS / f"{name}.toml").with_overrides(
        {"delinquency.prepayment_rate": 0.01, capacity_key: capacity}
    )
    assert not scen.to_dict().get("policy")  # no levers: pooled mode must accept it
    loans = _mixed_book(12, borrower_type="enterprise")
    ds = _simulate(loans, scen, 400, seed=8, pooled=True)
    assert ds.attrs["n_pools"] == 32

    paid = ds.layer_paid.values  # (path, month, layer)
    gross, net = ds.loss_gross.values, ds.loss_net.values
    np.testing.assert_allclose(paid.sum(axis=2) + net, gross, rtol=1e-9, atol=1e-6)
    assert (paid >= 0).all() and (gross >= 0).all() and (net >= -1e-6).all()

    cap = ds.layer_capacity.values
    used = np.cumsum(paid, axis=1)
    left = ds.layer_capacity_left.values
    assert (used <= cap * (1 + 1e-12)).all()
    assert (left >= 0).all()
    finite = np.isfinite(cap)
    np.testing.assert_allclose(left[..., finite], (cap - used)[..., finite], rtol=1e-9, atol=1e-6)
    k = int(np.flatnonzero(finite)[0])
    assert 0 < np.mean(left[:, -1, k] == 0) < 1, "the capacity should bind in some paths, not all"

    failure = ds.layer_failure_month.values  # 1-based, 0 = never
    for p, k in zip(*np.nonzero(failure)):
        assert (paid[p, failure[p, k] - 1 :, k] == 0).all()

    defaulted = np.diff(ds.balance_by_state.sel(state="D").values, axis=1, prepend=0.0)
    assert (gross <= defaulted * (1 + 1e-12) + 1e-6).all()
    counts = ds.count_by_state
    assert (counts.sum("state") == loans.n_loans).all()
    assert (counts >= 0).all() and (ds.balance_by_state >= 0).all()
    assert (counts.sel(state=["D", "P"]).diff("month") >= 0).all()
    np.testing.assert_allclose(ds.loss_by_industry.sum("industry"), gross.sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(ds.loss_by_region.sum("region"), gross.sum(axis=1), rtol=1e-12)


# --- 5. grouping -------------------------------------------------------------------------------

_BASE_LOAN = {
    "borrower_type": "enterprise",
    "industry": "retail",
    "region": "east",
    "balance": 50_000.0,
    "annual_rate": 0.18,
    "remaining_term": 24,
    "amortization": "annuity",
    "pd": 0.05,
    "state": "C",
    "pledge_value": 0.0,
    "dscr": np.nan,
    "recovery_mean": np.nan,
    "revenue_monthly": np.nan,
}


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame([{**_BASE_LOAN, **row} for row in rows])
    frame.insert(0, "loan_id", [f"L{j:05d}" for j in range(len(frame))])
    frame.insert(1, "borrower_id", [f"B{j:05d}" for j in range(len(frame))])
    return frame


def _pools(frame: pd.DataFrame, scen=None):
    portfolio = stresslab.Portfolio.from_frame(frame, source="<pool test>")
    model = compile_model(portfolio, scen if scen is not None else scenario(12, delinquency={"default_after": 4}))
    return model, pool_model(model)


def test_three_loan_types_shuffled_give_three_pools():
    # 3 types repeated 5, 7 and 11 times in a shuffled order (seed fixed). Expect 3 pools in
    # the order of their first loan, that loan's row (its random-stream key included)
    # and the right sizes. Fails if the grouping merges, splits or mislabels pools.
    types = [{}, {"balance": 8_000.0, "state": "M2"}, {"industry": "catering", "pledge_value": 5_000.0}]
    labels = np.repeat([0, 1, 2], [5, 7, 11])
    np.random.default_rng(2024).shuffle(labels)
    model, pooled = _pools(_frame([types[k] for k in labels]))
    first = [int(np.flatnonzero(labels == k)[0]) for k in range(3)]
    order = np.argsort(first)
    rows = np.array(first)[order]
    assert pooled.n_loans == 3
    np.testing.assert_array_equal(pooled.pool_size, np.bincount(labels)[order])
    for name, column in model.loans._asdict().items():
        np.testing.assert_array_equal(getattr(pooled.loans, name), column[rows], err_msg=name)
    np.testing.assert_array_equal(pooled.layers.cover_class, model.layers.cover_class[rows])
    assert pool_model(pooled) is pooled  # pooling a pooled model changes nothing
    assert model.pool_size is None  # the loan-level model is left as it was


@pytest.mark.parametrize(
    ("change", "pools"),
    [
        ({"balance": 50_000.01}, 2),
        ({"state": "M1"}, 2),
        ({"region": "west"}, 2),
        ({"industry": "catering"}, 2),
        ({"pd": 0.0500001}, 2),
        ({"annual_rate": 0.17}, 2),
        ({"remaining_term": 23}, 2),
        ({"amortization": "equal_principal"}, 2),
        ({"pledge_value": 1.0}, 2),
        ({"dscr": 1.5}, 2),
        ({"recovery_mean": 0.4}, 2),
        # not model inputs without layers or levers: the loans are exchangeable
        ({"borrower_type": "individual"}, 1),
        ({"revenue_monthly": 1e5}, 1),
        ({}, 1),
    ],
    ids=lambda v: str(v),
)
def test_loans_differing_in_one_input_are_not_pooled(change, pools):
    # Two loans equal but for one column (and their ids): two pools exactly when the column
    # enters the model. Fails if pooling ignores an input (wrong results) or splits on a
    # label that does not matter (lost speed).
    _, pooled = _pools(_frame([{}, change]))
    assert pooled.n_loans == pools
    np.testing.assert_array_equal(pooled.pool_size, [2] if pools == 1 else [1, 1])


def test_layer_eligibility_splits_pools():
    # guarantee_insurance covers enterprise loans only: a borrower type then decides which
    # layers pay, so the two loans may not share a pool (they do without layers, above).
    _, pooled = _pools(_frame([{}, {"borrower_type": "individual"}]), stresslab.load_scenario(SCENARIOS / "guarantee_insurance.toml"))
    assert pooled.n_loans == 2


# --- 6. what pooled mode refuses ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["interest_subsidy", "deferral_programme", "combined_response"])
def test_policy_levers_are_refused(name):
    # These levers change loans one by one (balances of 50,000 <= the subsidy's 200,000;
    # retail loans in C are deferred): the error must name pooled mode.
    loans = book(20, balance=50_000.0, rate=0.18, term=24, amortization="annuity", industries=("retail",))
    scen = stresslab.load_scenario(SCENARIOS / f"{name}.toml")
    with pytest.raises(StresslabError, match="pooled"):
        _simulate(loans, scen, 4, seed=1, pooled=True)
    assert _simulate(loans, scen, 4, seed=1).attrs["pooled"] == 0  # loan level runs them


def test_lever_that_applies_to_no_loan_is_accepted():
    # The subsidy covers balances up to 200,000 only: on a book of 300,000 loans it changes
    # no loan, so pooled mode runs (it refuses per loan, not per scenario).
    loans = book(20, balance=300_000.0, rate=0.18, term=24, amortization="annuity", industries=("retail",))
    ds = _simulate(loans, stresslab.load_scenario(SCENARIOS / "interest_subsidy.toml"), 4, seed=1, pooled=True)
    assert ds.attrs["pooled"] == 1 and ds.attrs["n_pools"] == 1
    assert (ds.subsidy_cost == 0).all()


def test_track_loans_is_refused():
    loans = book(10, term=12, amortization="annuity")
    with pytest.raises(StresslabError, match="pooled"):
        stresslab.simulate(loans, scenario(3), n_paths=4, seed=1, pooled=True, track_loans=["L000003"])


# --- 7. a book of a million loans ---------------------------------------------------------------

_TYPES = pd.DataFrame(
    {
        "borrower_type": ["individual", "enterprise", "individual", "enterprise"],
        "industry": ["retail", "catering", "retail", "services"],
        "region": ["east", "east", "west", "west"],
        "balance": [20_000.0, 50_000.0, 8_000.0, 100_000.0],
        "annual_rate": [0.12, 0.18, 0.20, 0.10],
        "remaining_term": [12, 24, 6, 36],
        "amortization": ["annuity", "equal_principal", "bullet", "annuity"],
        "pd": [0.03, 0.05, 0.08, 0.02],
        "state": ["C", "C", "M1", "M2"],
        "pledge_value": [0.0, 10_000.0, 0.0, 50_000.0],
    }
)


def test_million_loan_book_runs_pooled():
    # 1,000,000 loans of 4 types, interleaved: 4 pools of 250,000 each, 50 paths of the
    # 36-month downturn. Every month's counts sum to the book, absorbed counts never fall.
    # Fails if grouping breaks at scale or a large binomial draw loses or invents loans.
    n = 1_000_000
    frame = _TYPES.iloc[np.arange(n) % len(_TYPES)].reset_index(drop=True)
    ids = pd.Series(np.arange(n)).astype(str)
    frame.insert(0, "loan_id", "L" + ids)
    frame.insert(1, "borrower_id", "B" + ids)
    loans = stresslab.Portfolio.from_frame(frame, source="<million-loan book>")
    ds = _simulate(loans, _downturn(), 50, seed=13, pooled=True)
    assert ds.attrs["pooled"] == 1 and ds.attrs["n_pools"] == len(_TYPES) and ds.attrs["n_loans"] == n
    counts = ds.count_by_state
    assert (counts.sum("state") == n).all()
    assert (counts >= 0).all()
    assert (counts.sel(state=["D", "P"]).diff("month") >= 0).all()
    assert (counts.sel(state="D").isel(month=-1) > 0).all()
    assert np.isfinite(ds.loss_gross).all() and (ds.loss_gross >= 0).all()


# --- 8. the command line -------------------------------------------------------------------------


def test_cli_run_pooled(tmp_path, capsys):
    # `run --pooled` must give the API's pooled result bit for bit (through netCDF).
    out = tmp_path / "run.nc"
    args = ["run", str(DOWNTURN), "--synthetic", "300", "--paths", "30", "--seed", "3", "--out", str(out), "--quiet", "--pooled"]
    with pytest.warns(StresslabWarning, match="300 loans form 300 pools"):  # a synthetic book has no twins
        assert main(args) == 0
    printed = capsys.readouterr().out
    assert "services_downturn" in printed and "pooled book: 300 loans in 300 pools" in printed
    ds = stresslab.load_results(out)
    direct = _simulate(stresslab.synthetic_portfolio(300, seed=0), stresslab.load_scenario(DOWNTURN), 30, seed=3, pooled=True)
    xr.testing.assert_identical(ds, direct)
    assert ds.attrs["pooled"] == 1


def test_cli_run_pooled_book_file(tmp_path, capsys):
    # a book file of repeated loans: 32 pools
    path = tmp_path / "book.parquet"
    _mixed_book(3).save(path)
    out = tmp_path / "run.nc"
    args = ["run", str(DOWNTURN), "--portfolio", str(path), "--paths", "10", "--seed", "1", "--out", str(out), "--quiet", "--pooled"]
    assert main(args) == 0
    ds = stresslab.load_results(out)
    assert ds.attrs["pooled"] == 1 and ds.attrs["n_pools"] == 32


def test_cli_compare_pooled(tmp_path, capsys):
    # `compare --pooled` runs every scenario pooled, on common draws: the file equals the
    # API's pooled comparison, and the layered scenario's retained loss never exceeds gross
    out = tmp_path / "cmp.nc"
    files = [str(SCENARIOS / "baseline.toml"), str(SCENARIOS / "guarantee_insurance.toml")]
    args = ["compare", *files, "--synthetic", "300", "--paths", "12", "--seed", "2", "--out", str(out), "--quiet", "--pooled"]
    assert main(args) == 0
    assert "guarantee_insurance" in capsys.readouterr().out
    ds = stresslab.load_results(out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StresslabWarning)
        direct = stresslab.compare(stresslab.synthetic_portfolio(300, seed=0), [stresslab.load_scenario(f) for f in files],
                                   12, 2, pooled=True)
    for name in ("loss_gross", "loss_net", "count_by_state"):
        np.testing.assert_array_equal(ds[name].values, direct[name].values)
    net, gross = ds.loss_net.sel(scenario="guarantee_insurance"), ds.loss_gross.sel(scenario="guarantee_insurance")
    assert (net <= gross + 1e-9).all()


def test_cli_pooled_with_levers_is_one_line_error(capsys):
    args = ["run", str(SCENARIOS / "interest_subsidy.toml"), "--synthetic", "100", "--paths", "5", "--seed", "1", "--quiet", "--pooled"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "pooled" in err and err.count("\n") == 1


# --- cases where averaging within a state would be wrong: balloon cohorts, per-loan layer terms -------


def test_pledged_balloon_loans_agree_with_loan_level():
    # Bullet loans due in month 1, starting delinquent and pledged: a loan that rolls at
    # maturity carries the principal in arrears (EAD ~ 53,000), one that stays pays it
    # (EAD ~ 1,500). Loan level recovers min(EAD, V) loan by loan (V ~ 21,000). Fails if
    # the pooled kernel averages the two kinds of loan in one state (the balloon cohorts
    # keep them apart; averaging gave a paired z of -10).
    loans = book(
        48, pd_=0.06, balance=50_000.0, rate=0.18, term=1, amortization="bullet", state=["M1", "M2", "M3"] * 16,
        pledge_value=30_000.0,
    )
    scen = _downturn()
    pooled = _simulate(loans, scen, 2_000, seed=31, pooled=True)
    level = _simulate(loans, scen, 2_000, seed=31)
    for name in ("loss_gross", "recoveries"):
        assert abs(_paired_z(pooled[name].sum("month").values, level[name].sum("month").values)) < 4, name


def test_excess_of_loss_layer_agrees_with_loan_level():
    # Losses of ~5,000-7,000 straddle the insurer's 5,000 deductible; loan level pays
    # 0.8 max(0, loss_i - 5,000) loan by loan with Beta-distributed recoveries. Fails if
    # the pooled kernel applies the attachment to a cohort's average loss (z = -22 before
    # defaults became per-loan events for layers with per-loan terms).
    loans = book(
        400, pd_=0.08, balance=7_000.0, rate=0.15, term=24, amortization="annuity", borrower_type="enterprise",
        industries=("retail", "catering"), regions=("east", "west"),
    )
    scen = stresslab.load_scenario(SCENARIOS / "guarantee_insurance.toml")
    pooled = _simulate(loans, scen, 2_000, seed=5, pooled=True)
    level = _simulate(loans, scen, 2_000, seed=5)
    a = pooled.layer_paid.sum(("month", "layer")).values
    b = level.layer_paid.sum(("month", "layer")).values
    assert abs(_paired_z(a, b)) < 4
