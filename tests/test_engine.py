"""The engine against theory (MODEL.md §9), exact expectations, and itself.

Tolerances are Monte Carlo standard errors: |mc - ref| < 4 se with se stated per check.
Seeds are fixed, so every run of the suite checks the same numbers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import book, scenario, tail_check
from reference import multifactor_count_pmf, t_copula_count_pmf, vasicek_count_pmf
from scipy import integrate, stats
from scipy.special import ndtr, ndtri

import stresslab
from stresslab.compile.model import compile_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from numpy_model import simulate_numpy  # noqa: E402


def _defaults(ds) -> np.ndarray:
    return ds.count_by_state.sel(state="D").isel(month=-1).values


def _one_period(n_loans: int, p: float, rho: float, **factors) -> tuple:
    loans = book(n_loans, pd_=p)
    scen = scenario(1, factors={"global_loading": float(np.sqrt(rho)), **factors})
    return loans, scen


def _assert_tail(counts: np.ndarray, pmf: np.ndarray, levels=(0.5, 0.9, 0.99, 0.999)) -> None:
    cdf = np.cumsum(pmf)
    ks = sorted({int(np.searchsorted(cdf, q)) + 1 for q in levels})
    for k, mc, ref, se in tail_check(counts, cdf, ks):
        assert abs(mc - ref) < 4 * se + 1e-12, f"P(N >= {k}): mc {mc:.5f} vs quadrature {ref:.5f} (se {se:.5f})"
    # a high quantile: the MC 99% VaR must sit where the reference cdf crosses 0.99
    var = np.quantile(counts, 0.99, method="inverted_cdf")
    se = np.sqrt(0.99 * 0.01 / counts.size)
    assert cdf[int(var)] >= 0.99 - 4 * se
    assert (cdf[int(var) - 1] if var > 0 else 0.0) <= 0.99 + 4 * se


def test_one_factor_gaussian_is_vasicek_mixture():
    n, p, rho = 100, 0.02, 0.2
    loans, scen = _one_period(n, p, rho)
    ds = stresslab.simulate(loans, scen, n_paths=20_000, seed=11)
    counts = _defaults(ds)
    # loss = count: unit balances, zero rate, no recoveries
    np.testing.assert_allclose(ds.loss_gross.sum("month").values, counts)
    _assert_tail(counts, vasicek_count_pmf(n, p, rho))


def test_one_factor_student_t_is_t_mixture():
    n, p, rho, nu = 100, 0.02, 0.2, 4.0
    loans, scen = _one_period(n, p, rho, copula="t", dof=nu)
    counts = _defaults(stresslab.simulate(loans, scen, n_paths=20_000, seed=12))
    _assert_tail(counts, t_copula_count_pmf(n, p, rho, nu))
    # tail dependence: the t book has a fatter far tail than the Gaussian one
    gauss = np.cumsum(vasicek_count_pmf(n, p, rho))
    k = int(np.searchsorted(gauss, 0.999)) + 1
    assert np.mean(counts >= k) > 2 * (1 - gauss[k - 1])


def test_multifactor_gaussian_matches_quadrature():
    # global + one factor per industry; regions carry no loading
    n_per, p, a_g, a_i = 40, 0.03, 0.3, 0.4
    loans = book(3 * n_per, pd_=p, industries=("catering", "retail", "transport"))
    scen = scenario(1, factors={"global_loading": a_g, "industry_loading": a_i})
    counts = _defaults(stresslab.simulate(loans, scen, n_paths=20_000, seed=13))
    _assert_tail(counts, multifactor_count_pmf([n_per] * 3, p, (a_g, a_i)))


def test_phi_one_multi_month_default_fraction():
    """phi = 1, default_after 1: given Y the default count by T is Binomial(n, 1 - (1 - p(Y))^T)."""
    n, p, rho, horizon = 400, 0.01, 0.15, 12
    loans = book(n, pd_=p, term=36, amortization="annuity")
    scen = scenario(horizon, factors={"global_loading": float(np.sqrt(rho)), "ar1": 1.0})
    counts = _defaults(stresslab.simulate(loans, scen, n_paths=8_000, seed=14))

    def cdf(k: int) -> float:
        def integrand(y: float) -> float:
            py = ndtr((ndtri(p) - np.sqrt(rho) * y) / np.sqrt(1 - rho))
            return stats.norm.pdf(y) * stats.binom.cdf(k, n, 1 - (1 - py) ** horizon)

        return integrate.quad(integrand, -9, 9, limit=200, epsabs=1e-12)[0]

    for k in (20, 50, 100, 150):
        ref = 1 - cdf(k - 1)
        se = np.sqrt(ref * (1 - ref) / counts.size)
        assert abs(np.mean(counts >= k) - ref) < 4 * se + 1e-12, (k, np.mean(counts >= k), ref)


def test_expected_defaults_exact_with_iid_factors():
    """phi = 0: months are independent, so P(default by T) = 1 - (1 - p)^T exactly."""
    n, p, horizon = 200, 0.01, 6
    loans = book(n, pd_=p, term=24, amortization="equal_principal", balance=100.0)
    scen = scenario(horizon, factors={"global_loading": 0.4, "industry_loading": 0.3, "ar1": 0.0})
    ds = stresslab.simulate(loans, scen, n_paths=4_000, seed=15)
    counts = _defaults(ds)
    q = 1 - (1 - p) ** horizon
    # se of the mean count from the sample (defaults are correlated within a path)
    assert abs(counts.mean() - n * q) < 4 * counts.std(ddof=1) / np.sqrt(counts.size)
    # expected loss is exact too: EAD at month t is the scheduled balance after t - 1 payments
    ead = 100.0 * (1 - np.arange(horizon) / 24)
    el = n * np.sum(p * (1 - p) ** np.arange(horizon) * ead)
    loss = ds.loss_gross.sum("month").values
    assert abs(loss.mean() - el) < 4 * loss.std(ddof=1) / np.sqrt(loss.size)


def test_calibrated_pd_without_stress():
    """No factor loading, no shock: the 12-month default rate is the book's pd (default_after 4)."""
    n, pd_ = 500, 0.08
    loans = book(n, pd_=pd_, term=24, amortization="annuity", rate=0.12, balance=10_000.0)
    scen = scenario(12, delinquency={"default_after": 4})
    counts = _defaults(stresslab.simulate(loans, scen, n_paths=400, seed=16))
    total = counts.sum()
    se = np.sqrt(n * counts.size * pd_ * (1 - pd_))  # loans independent without factors
    assert abs(total - n * counts.size * pd_) < 4 * se


def test_roll_and_cure_rates_from_m2():
    n = 2_000
    roll, cure = (0.35, 0.5, 0.75), (0.3, 0.2, 0.08)
    loans = book(n, pd_=0.05, term=24, amortization="annuity", rate=0.1, balance=5_000.0, state="M2")
    scen = scenario(1, delinquency={"default_after": 4, "roll_rates": list(roll), "cure_rates": list(cure)})
    ds = stresslab.simulate(loans, scen, n_paths=50, seed=17)
    frac = ds.count_by_state.isel(month=0).sum("path") / (n * 50)
    for state, ref in (("M3", roll[1]), ("C", cure[1]), ("M2", 1 - roll[1] - cure[1])):
        se = np.sqrt(ref * (1 - ref) / (n * 50))
        assert abs(float(frac.sel(state=state)) - ref) < 4 * se, state


def _baseline_run(**kwargs):
    loans = stresslab.synthetic_portfolio(300, seed=3)
    scen = stresslab.load_scenario(ROOT / "scenarios" / "services_downturn.toml")
    return stresslab.simulate(loans, scen, n_paths=60, seed=21, **kwargs)


def test_bitwise_identical_across_chunks_and_threads():
    ref = _baseline_run(chunk_size=60, threads=2)
    for kwargs in ({"chunk_size": 1}, {"chunk_size": 7}, {"chunk_size": 60, "threads": 1}, {"chunk_size": 7, "threads": 2}):
        other = _baseline_run(**kwargs)
        for name in ref.data_vars:
            assert np.array_equal(ref[name].values, other[name].values), (name, kwargs)
    assert ref.attrs == other.attrs


def test_same_seed_same_draws_other_seed_other_draws():
    a = _baseline_run()
    b = _baseline_run()
    assert np.array_equal(a.loss_gross.values, b.loss_gross.values)
    loans = stresslab.synthetic_portfolio(300, seed=3)
    c = stresslab.simulate(loans, stresslab.load_scenario(ROOT / "scenarios" / "services_downturn.toml"), n_paths=60, seed=22)
    assert not np.array_equal(a.loss_gross.values, c.loss_gross.values)


def test_invariants_on_synthetic_book():
    ds = _baseline_run()
    loans = stresslab.synthetic_portfolio(300, seed=3)
    counts = ds.count_by_state.sum("state")
    assert (counts == loans.n_loans).all()
    assert (ds.balance_by_state >= 0).all()
    assert (ds.loss_gross >= 0).all()
    # a loss never exceeds the defaulted exposure
    defaulted_ead = ds.balance_by_state.sel(state="D").isel(month=-1)
    assert (ds.loss_gross.sum("month") <= defaulted_ead + 1e-6).all()
    np.testing.assert_allclose(ds.loss_by_industry.sum("industry"), ds.loss_gross.sum("month"), rtol=1e-12)
    np.testing.assert_allclose(ds.loss_by_region.sum("region"), ds.loss_gross.sum("month"), rtol=1e-12)
    assert np.array_equal(ds.loss_net.values, ds.loss_gross.values)
    assert (ds.weight == 1).all()
    for key in ("scenario", "portfolio_digest", "seed", "n_paths", "versions"):
        assert key in ds.attrs
    assert ds.attrs["portfolio_digest"] == loans.digest


def test_downturn_raises_losses_with_common_random_numbers():
    loans = stresslab.synthetic_portfolio(400, seed=5)
    base = stresslab.simulate(loans, stresslab.load_scenario(ROOT / "scenarios" / "baseline.toml"), n_paths=200, seed=9)
    down = stresslab.simulate(loans, stresslab.load_scenario(ROOT / "scenarios" / "services_downturn.toml"), n_paths=200, seed=9)
    diff = down.loss_gross.sum("month") - base.loss_gross.sum("month")
    assert diff.mean() > 4 * diff.std() / np.sqrt(diff.size)


def test_numba_kernel_agrees_with_numpy_implementation():
    """Same draws, exact CDF vs tabulated: states agree path by path (no recovery noise)."""
    loans = stresslab.synthetic_portfolio(250, seed=4)
    scen = stresslab.load_scenario(ROOT / "scenarios" / "services_downturn.toml").with_overrides(
        {"recovery.dispersion": 0.0, "delinquency.prepayment_rate": 0.02}
    )
    ds = stresslab.simulate(loans, scen, n_paths=30, seed=5)
    ref = simulate_numpy(compile_model(loans, scen), 30, 5)
    same = (ds.count_by_state.values == ref["count_by_state"]).all(axis=2)
    assert same.mean() > 0.999
    # the kernel's tabulated normal CDF (abs. error < 3e-8) enters the recovery mean
    np.testing.assert_allclose(ds.loss_gross.values, ref["loss_gross"], rtol=1e-7, atol=1e-6)
    np.testing.assert_allclose(ds.interest_income.values, ref["interest_income"], rtol=1e-9, atol=1e-6)


def test_jit_and_pure_python_agree():
    """The kernel run as plain Python (STRESSLAB_DISABLE_JIT=1) gives the same numbers."""
    code = (
        "import numpy as np, stresslab, sys;"
        "b = stresslab.synthetic_portfolio(40, seed=1);"
        "s = stresslab.load_scenario(sys.argv[1]);"
        "ds = stresslab.simulate(b, s, n_paths=3, seed=2);"
        "np.save(sys.argv[2], ds.loss_gross.values); np.save(sys.argv[3], ds.count_by_state.values)"
    )
    scen_path = str(ROOT / "scenarios" / "services_downturn.toml")
    out = {}
    for flag in ("0", "1"):
        files = [f"{os.environ.get('TMPDIR', '/tmp')}/jit{flag}_{k}.npy" for k in ("loss", "count")]
        env = {**os.environ, "STRESSLAB_DISABLE_JIT": flag}
        subprocess.run([sys.executable, "-c", code, scen_path, *files], check=True, env=env, cwd=ROOT)
        out[flag] = [np.load(f) for f in files]
    np.testing.assert_array_equal(out["0"][1], out["1"][1])
    np.testing.assert_allclose(out["0"][0], out["1"][0], rtol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_paths": 0}, "n_paths must be an integer >= 1; got 0"),
        ({"n_paths": 2.5}, "n_paths must be an integer; got 2.5"),
        ({"seed": -1}, "seed must be an integer in 0.."),
        ({"chunk_size": 0}, "chunk_size must be an integer >= 1; got 0"),
        ({"threads": 0}, "threads must be an integer in 1.."),
    ],
)
def test_bad_arguments(kwargs, message):
    args = {"n_paths": 10, "seed": 1, **kwargs}
    with pytest.raises(stresslab.StresslabError, match=message.replace("(", r"\(").replace(".", r"\.")):
        stresslab.simulate(book(5), scenario(1), **args)


def test_loan_already_defaulted_under_default_after_is_refused():
    loans = book(3, state="M2", term=6, amortization="annuity")
    with pytest.raises(stresslab.PortfolioError, match=r"row 1 \(loan_id 'L000000'\), column 'state': 'M2' is already a default"):
        stresslab.simulate(loans, scenario(3, delinquency={"default_after": 2}), n_paths=2, seed=1)


def test_unreachable_pd_is_refused():
    loans = book(3, pd_=0.9, term=12, amortization="annuity")
    scen = scenario(3, delinquency={"default_after": 4, "roll_rates": [0.1, 0.1, 0.1], "cure_rates": [0.5, 0.5, 0.5]})
    with pytest.raises(stresslab.ScenarioError, match="at most"):
        stresslab.simulate(loans, scen, n_paths=2, seed=1)


@pytest.mark.parametrize("path", sorted((ROOT / "scenarios").glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_scenario_runs_and_conserves_loss(path):
    loans = stresslab.synthetic_portfolio(400, seed=2)
    ds = stresslab.simulate(loans, stresslab.load_scenario(path), n_paths=20, seed=1)
    paid = ds.layer_paid.sum("layer") if "layer" in ds.dims else 0.0
    np.testing.assert_allclose(paid + ds.loss_net, ds.loss_gross, rtol=1e-12, atol=1e-6)
    assert (ds.count_by_state.sum("state") == loans.n_loans).all()
    s = stresslab.summary(ds)
    assert np.isfinite(s.expected_loss).all()


def test_runs_beyond_the_machine_are_refused_up_front(monkeypatch):
    import stresslab.run.budget as budget

    loans = book(10)
    monkeypatch.setattr(budget, "available_memory", lambda: 50e6)
    with pytest.raises(stresslab.StresslabError, match=r"needs about .* GiB .* paths fit"):
        stresslab.simulate(loans, scenario(12), n_paths=200_000, seed=1)
    monkeypatch.setattr(budget, "available_memory", lambda: 1e12)
    monkeypatch.setattr(budget, "_STEPS_PER_SECOND_PER_THREAD", 1e-3)
    with pytest.raises(stresslab.StresslabError, match=r"would take about .* days"):
        stresslab.simulate(loans, scenario(12), n_paths=100_000, seed=1)
    monkeypatch.setattr(budget, "_STEPS_PER_SECOND_PER_THREAD", 1.0)
    with pytest.warns(stresslab.StresslabWarning, match="hours"):
        stresslab.simulate(loans, scenario(12), n_paths=1_000, seed=1)
