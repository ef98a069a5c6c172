"""Checks of the quadrature references in tests/reference.py (MODEL.md §9).

Exact identities (sum to 1, mean n p) are held to float rounding; limits are checked by
their rate of convergence; Monte Carlo cross-checks use |mc - ref| < 4 se.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import (
    multifactor_count_pmf,
    multiperiod_default_fraction_cdf,
    multiperiod_default_fraction_mean,
    t_copula_count_pmf,
    vasicek_count_pmf,
    vasicek_large_pool_cdf,
)
from scipy import integrate, special, stats

CASES = [
    ("vasicek", lambda: vasicek_count_pmf(50, 0.02, 0.2), 50, 0.02),
    ("vasicek large n", lambda: vasicek_count_pmf(2000, 0.01, 0.3), 2000, 0.01),
    ("vasicek rho 0.9", lambda: vasicek_count_pmf(200, 0.05, 0.9), 200, 0.05),
    ("t nu=4", lambda: t_copula_count_pmf(50, 0.02, 0.2, 4.0), 50, 0.02),
    ("t nu=3 rho=0", lambda: t_copula_count_pmf(100, 0.05, 0.0, 3.0), 100, 0.05),
    ("multifactor", lambda: multifactor_count_pmf([20, 30, 10], 0.03, (0.4, 0.3)), 60, 0.03),
]


@pytest.mark.parametrize(("name", "pmf", "n", "p"), CASES, ids=[c[0] for c in CASES])
def test_pmf_sums_to_one_and_has_mean_n_p(name, pmf, n, p):
    f = pmf()
    assert f.shape == (n + 1,)
    assert np.all(f >= 0)
    assert f.sum() == pytest.approx(1.0, abs=1e-11)
    assert f @ np.arange(n + 1) == pytest.approx(n * p, rel=1e-10)  # E[N] = n p exactly


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 300), p=st.floats(1e-4, 0.5), rho=st.floats(0.0, 0.95))
def test_vasicek_pmf_identities_hold_for_any_parameters(n, p, rho):
    f = vasicek_count_pmf(n, p, rho)
    assert f.sum() == pytest.approx(1.0, abs=1e-11)
    assert f @ np.arange(n + 1) == pytest.approx(n * p, rel=1e-10, abs=1e-12)


def test_vasicek_pmf_matches_adaptive_quadrature_to_1e_10():
    n, p, rho = 40, 0.03, 0.25
    f = vasicek_count_pmf(n, p, rho)
    c = special.ndtri(p)
    for k in (0, 1, 4, 20):
        integrand = lambda y: stats.norm.pdf(y) * stats.binom.pmf(k, n, special.ndtr((c - np.sqrt(rho) * y) / np.sqrt(1 - rho)))
        exact = integrate.quad(integrand, -10, 10, epsabs=1e-14, epsrel=1e-12, limit=200)[0]
        assert abs(f[k] - exact) < 1e-10


def test_rho_zero_gives_binomial():
    n, p = 30, 0.05
    binomial = stats.binom.pmf(np.arange(n + 1), n, p)
    np.testing.assert_allclose(vasicek_count_pmf(n, p, 0.0), binomial, rtol=1e-10, atol=1e-14)
    # the pmf moves by O(rho) (about 1.1 rho here) as the correlation leaves 0
    assert np.abs(vasicek_count_pmf(n, p, 1e-8) - binomial).max() < 1e-7


def test_large_n_count_cdf_approaches_vasicek_limit_at_rate_1_over_n():
    p, rho = 0.03, 0.15
    x = np.linspace(0.005, 0.2, 40)

    def error(n):
        cdf = np.cumsum(vasicek_count_pmf(n, p, rho))
        return np.abs(cdf[np.floor(n * x + 1e-9).astype(int)] - vasicek_large_pool_cdf(x, p, rho)).max()

    e1000, e4000 = error(1000), error(4000)
    assert e4000 < e1000 / 3  # O(1/n): 4 times the loans, about a quarter of the error
    assert e4000 < 0.01


def test_large_pool_cdf_has_mean_p():
    p, rho = 0.04, 0.2
    mean = integrate.quad(lambda x: 1 - vasicek_large_pool_cdf(x, p, rho), 0, 1, epsabs=1e-13, limit=200)[0]
    assert mean == pytest.approx(p, abs=1e-10)


def test_t_copula_with_large_nu_approaches_gaussian_at_rate_1_over_nu():
    gaussian = vasicek_count_pmf(50, 0.02, 0.2)
    d3, d4 = (np.abs(t_copula_count_pmf(50, 0.02, 0.2, nu) - gaussian).max() for nu in (1e3, 1e4))
    assert d4 < d3 / 5  # O(1/nu)
    assert d4 < 1e-3


def test_t_copula_matches_monte_carlo_within_4_se():
    n, p, rho, nu, m = 20, 0.03, 0.25, 4.0, 200_000
    rng = np.random.default_rng(20240601)
    w = nu / rng.chisquare(nu, size=(m, 1))
    latent = np.sqrt(w) * (np.sqrt(rho) * rng.standard_normal((m, 1)) + np.sqrt(1 - rho) * rng.standard_normal((m, n)))
    counts = np.count_nonzero(latent < stats.t.ppf(p, nu), axis=1)
    tail = np.cumsum(t_copula_count_pmf(n, p, rho, nu)[::-1])[::-1]  # P(N >= k)
    for k in (1, 3, 6, 10):
        mc = np.mean(counts >= k)
        assert abs(mc - tail[k]) < 4 * np.sqrt(tail[k] * (1 - tail[k]) / m), k


def test_multifactor_with_zero_group_loadings_equals_vasicek():
    rho = 0.25
    f = multifactor_count_pmf([20, 30, 10], 0.03, (np.sqrt(rho), 0.0))
    np.testing.assert_allclose(f, vasicek_count_pmf(60, 0.03, rho), rtol=1e-9, atol=1e-13)


def test_multifactor_with_zero_global_loading_is_convolution_of_independent_groups():
    groups, a_g = [15, 25], [0.3, 0.5]
    f = multifactor_count_pmf(groups, [0.02, 0.05], (0.0, a_g))
    expected = np.convolve(vasicek_count_pmf(15, 0.02, 0.09), vasicek_count_pmf(25, 0.05, 0.25))
    np.testing.assert_allclose(f, expected, rtol=1e-9, atol=1e-13)


def test_multifactor_matches_brute_force_monte_carlo_within_4_se():
    groups = np.array([10, 15, 5])
    p = np.array([0.02, 0.05, 0.03])
    a_global, a_group = 0.4, np.array([0.3, 0.5, 0.2])
    m = 200_000
    rng = np.random.default_rng(7)
    group_of_loan = np.repeat(np.arange(3), groups)
    rho = a_global**2 + a_group**2
    x = a_global * rng.standard_normal((m, 1)) + (a_group * rng.standard_normal((m, 3)))[:, group_of_loan]
    latent = x + np.sqrt(1 - rho[group_of_loan]) * rng.standard_normal((m, groups.sum()))
    counts = np.count_nonzero(latent < special.ndtri(p[group_of_loan]), axis=1)
    pmf = multifactor_count_pmf(groups, p, (a_global, a_group))
    for k in range(6):
        mc = np.mean(counts == k)
        assert abs(mc - pmf[k]) < 4 * np.sqrt(pmf[k] * (1 - pmf[k]) / m), k
    tail = pmf[8:].sum()
    assert abs(np.mean(counts >= 8) - tail) < 4 * np.sqrt(tail * (1 - tail) / m)


def test_multiperiod_fraction_matches_monte_carlo_of_the_factor_within_4_se():
    p, rho, T, m = 0.01, 0.2, 12, 1_000_000
    y = np.random.default_rng(11).standard_normal(m)
    fraction = 1 - (1 - special.ndtr((special.ndtri(p) - np.sqrt(rho) * y) / np.sqrt(1 - rho))) ** T
    for x in (0.02, 0.05, 0.1, 0.2, 0.4):
        ref = multiperiod_default_fraction_cdf(x, p, rho, T)
        assert abs(np.mean(fraction <= x) - ref) < 4 * np.sqrt(ref * (1 - ref) / m), x
    mean = multiperiod_default_fraction_mean(p, rho, T)
    assert abs(fraction.mean() - mean) < 4 * fraction.std() / np.sqrt(m)


def test_multiperiod_special_cases():
    x = np.array([0.0, 0.01, 0.05, 0.3, 1.0])
    np.testing.assert_allclose(multiperiod_default_fraction_cdf(x, 0.02, 0.2, 1), vasicek_large_pool_cdf(x, 0.02, 0.2))
    assert multiperiod_default_fraction_mean(0.02, 0.2, 1) == pytest.approx(0.02, abs=1e-12)
    assert multiperiod_default_fraction_mean(0.02, 0.0, 12) == pytest.approx(1 - 0.98**12, abs=1e-12)
