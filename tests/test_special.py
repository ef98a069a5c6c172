"""Special functions and counter-based random numbers of the kernels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from stresslab._kernels.special import (
    below_norm_cdf,
    beta_draw,
    binomial_draw,
    log_gamma_draw,
    ndtri,
    norm_cdf,
    normal_table,
)
from stresslab._numba import njit
from stresslab._rng import (
    PURPOSE_TRANSITION,
    mix64,
    mix64_array,
    name_keys,
    next_uniform,
    stream_key,
    uniform,
)

TABLE = normal_table()


def test_tabulated_normal_cdf_error_bound():
    z = np.linspace(-11, 11, 400_001)
    got = np.array([norm_cdf(v, *TABLE) for v in z])
    err = np.abs(got - special.ndtr(z))
    assert err.max() < 3e-8  # h^2/8 * max|phi'| with h = 1/1024
    tail = (z > -6) & (z < -2)
    assert (err[tail] / special.ndtr(z[tail])).max() < 2e-5
    assert norm_cdf(-np.inf, *TABLE) == 0.0 and norm_cdf(np.inf, *TABLE) == 1.0


def test_below_norm_cdf_is_exactly_the_interpolated_comparison():
    rng = np.random.default_rng(1)
    z = rng.normal(-2, 2, 50_000)
    cdf = np.array([norm_cdf(v, *TABLE) for v in z])
    # uniforms near the threshold and far from it
    u = np.where(rng.random(z.size) < 0.5, cdf * (1 + rng.normal(0, 1e-7, z.size)), rng.random(z.size))
    got = np.array([below_norm_cdf(a, b, *TABLE) for a, b in zip(u, z)])
    assert np.array_equal(got, u < cdf)


def test_ndtri_matches_scipy():
    p = np.concatenate([np.geomspace(1e-300, 1e-3, 500), np.linspace(1e-3, 1 - 1e-3, 5001), 1 - np.geomspace(1e-3, 1e-16, 100)])
    got = np.array([ndtri(v) for v in p])
    np.testing.assert_allclose(got, special.ndtri(p), rtol=2e-15, atol=1e-15)


@njit()
def _gamma_sample(shape: float, n: int, seed: np.uint64) -> np.ndarray:
    out = np.empty(n)
    state = seed
    for k in range(n):
        log_g, state = log_gamma_draw(shape, state)
        out[k] = np.exp(log_g)
    return out


@njit()
def _beta_sample(a: float, b: float, n: int) -> np.ndarray:
    out = np.empty(n)
    for k in range(n):
        out[k] = beta_draw(a, b, mix64(np.uint64(k)))[0]
    return out


def test_gamma_and_beta_draws_follow_their_laws():
    """Sample means within 4 standard errors of the exact mean; KS tests at the 1e-4 level."""
    n = 100_000
    for shape in (0.05, 0.4, 1.0, 2.5):
        draws = _gamma_sample(shape, n, np.uint64(12345))
        assert abs(draws.mean() - shape) < 4 * np.sqrt(shape / n)
        assert stats.kstest(draws, stats.gamma(shape).cdf).pvalue > 1e-4
    a, b = 1.2, 3.5
    draws = _beta_sample(a, b, 50_000)
    assert abs(draws.mean() - a / (a + b)) < 4 * draws.std() / np.sqrt(draws.size)
    assert stats.kstest(draws, stats.beta(a, b).cdf).pvalue > 1e-4


def test_uniforms_are_pure_functions_and_uniform():
    keys = name_keys([f"L{j}" for j in range(20_000)])
    key = np.uint64(stream_key(np.uint64(7), 3, 5, PURPOSE_TRANSITION))
    u = np.array([uniform(key, k) for k in keys])
    again = np.array([uniform(key, k) for k in keys[::-1]])[::-1]
    assert np.array_equal(u, again)  # order of drawing does not matter
    assert 0.0 < u.min() and u.max() < 1.0
    assert stats.kstest(u, "uniform").pvalue > 1e-4
    # neighbouring coordinates give unrelated streams
    other = np.uint64(stream_key(np.uint64(7), 4, 5, PURPOSE_TRANSITION))
    v = np.array([uniform(other, k) for k in keys])
    assert abs(np.corrcoef(u, v)[0, 1]) < 4 / np.sqrt(u.size)


def test_name_keys_depend_on_the_name_only():
    a = name_keys(["L1", "L2", "L3"])
    b = name_keys(["L3", "L1"])
    assert a[0] == b[1] and a[2] == b[0]
    assert len(set(name_keys([f"L{j}" for j in range(100_000)]).tolist())) == 100_000


@njit()
def _binomial_sample(n: int, p: float, draws: int) -> np.ndarray:
    out = np.empty(draws, dtype=np.int64)
    for k in range(draws):
        out[k], _ = binomial_draw(n, p, mix64(np.uint64(k) + np.uint64(977)))
    return out


@pytest.mark.parametrize(
    "n, p",
    [(1, 0.3), (10, 0.02), (40, 0.5), (200, 0.07), (5000, 0.01), (10_000, 0.97), (1_000_000, 0.003), (3_000_000, 0.5)],
)
def test_binomial_draw_follows_the_binomial_law(n: int, p: float) -> None:
    """Chi-square goodness of fit against the exact pmf (cells with expected count >= 5, the
    tails pooled), at the 1e-4 level; the mean within 4 standard errors. Covers the
    inversion (mean < 16), the order-statistic splitting, and p > 1/2 (counted as failures)."""
    draws = 40_000
    x = _binomial_sample(n, p, draws)
    assert x.min() >= 0 and x.max() <= n
    mean, sd = n * p, np.sqrt(n * p * (1 - p))
    assert abs(x.mean() - mean) < 4 * sd / np.sqrt(draws)
    lo, hi = int(stats.binom.ppf(1e-3, n, p)), int(stats.binom.ppf(1 - 1e-3, n, p))
    inner = np.arange(lo + 1, hi)  # cells: x <= lo, each k in (lo, hi), x >= hi
    observed = np.concatenate([[np.sum(x <= lo)], [np.sum(x == k) for k in inner], [np.sum(x >= hi)]])
    expected = draws * np.concatenate([[stats.binom.cdf(lo, n, p)], stats.binom.pmf(inner, n, p), [stats.binom.sf(hi - 1, n, p)]])
    small = expected < 5  # pooled into one cell
    obs = np.append(observed[~small], observed[small].sum())
    exp = np.append(expected[~small], expected[small].sum())
    if exp[-1] == 0:
        obs, exp = obs[:-1], exp[:-1]
    chi2 = ((obs - exp) ** 2 / exp).sum()
    assert stats.chi2.sf(chi2, obs.size - 1) > 1e-4, (chi2, obs.size)


def test_binomial_draw_edges() -> None:
    state = np.uint64(5)
    assert binomial_draw(0, 0.5, state)[0] == 0
    assert binomial_draw(7, 0.0, state)[0] == 0
    assert binomial_draw(7, 1.0, state)[0] == 7


def test_mix64_array_is_mix64_elementwise() -> None:
    z = np.array([0, 1, 2**63, 2**64 - 1, 0x9E3779B97F4A7C15, 12345678901234567], dtype=np.uint64)
    assert [int(v) for v in mix64_array(z)] == [int(mix64(v)) for v in z]


def _unxorshift(z: int, s: int) -> int:
    x = z
    for _ in range(64 // s + 1):
        x = z ^ (x >> s)
    return x


def _unmix64(z: int) -> int:
    """Inverse of the SplitMix64 finaliser: the word whose mix64 is ``z``."""
    mask = 2**64 - 1
    z = _unxorshift(z, 31)
    z = _unxorshift((z * pow(0x94D049BB133111EB, -1, 2**64)) & mask, 27)
    return _unxorshift((z * pow(0xBF58476D1CE4E5B9, -1, 2**64)) & mask, 30)


def test_uniforms_never_reach_0_or_1():
    """The extreme words of the mixer (all ones, all zeros) give 1 - 2^-53 and 2^-53, not 1.0
    (53 bits plus half a step rounded to 1.0, where Φ^-1 is infinite)."""
    top, bottom = _unmix64(2**64 - 1), _unmix64(0)
    assert int(mix64(np.uint64(top))) == 2**64 - 1 and int(mix64(np.uint64(bottom))) == 0
    assert uniform(np.uint64(0), np.uint64(top)) == 1.0 - 2.0**-53
    assert uniform(np.uint64(0), np.uint64(bottom)) == 2.0**-53
    golden = 0x9E3779B97F4A7C15
    assert next_uniform(np.uint64((top - golden) % 2**64))[0] == 1.0 - 2.0**-53
    assert np.isfinite(ndtri(1.0 - 2.0**-53)) and np.isfinite(ndtri(2.0**-53))


def test_normal_cdf_and_ndtri_on_nan_and_the_ends():
    assert np.isnan(norm_cdf(np.nan, *TABLE))
    assert below_norm_cdf(0.5, np.nan, *TABLE) is False
    assert below_norm_cdf(0.5, np.inf, *TABLE) and not below_norm_cdf(0.5, -np.inf, *TABLE)
    assert ndtri(0.0) == -np.inf and ndtri(1.0) == np.inf and np.isnan(ndtri(np.nan))


@pytest.mark.parametrize("dispersion, mean", [(0.99, 0.5), (0.99, 0.05), (0.9, 0.3)])
def test_beta_draw_small_shapes(dispersion: float, mean: float) -> None:
    """Recovery Beta at a dispersion near 1 (shapes near 0): no NaN (before: 0.08% NaN at 0.99),
    and the share of draws below x within 4 binomial standard errors (sqrt(q (1 - q) / n))
    of the exact q = P(X <= x), for x from 1e-200 to 0.5 (at shapes 0.005 the deciles
    themselves are below the smallest float or round to 1)."""
    size = 1.0 / dispersion - 1.0
    a, b = mean * size, (1.0 - mean) * size
    n = 40_000
    draws = _beta_sample(a, b, n)
    assert not np.isnan(draws).any()
    assert draws.min() >= 0.0 and draws.max() <= 1.0
    for x in (1e-200, 1e-50, 1e-5, 0.1, 0.5):
        q = stats.beta.cdf(x, a, b)
        assert abs(np.mean(draws <= x) - q) < 4 * np.sqrt(q * (1 - q) / n), (q, x)
    assert abs(draws.mean() - mean) < 4 * np.sqrt(dispersion * mean * (1 - mean) / n)


def test_a_run_with_recovery_dispersion_near_1_has_finite_losses():
    """Before: at dispersion 0.99 about 0.08% of the recovery draws were NaN and the run aborted."""
    from helpers import book, scenario

    import stresslab

    loans = book(400, pd_=0.5, term=1)
    scen = scenario(1, recovery={"unsecured_mean": 0.4, "dispersion": 0.99})
    ds = stresslab.simulate(loans, scen, n_paths=200, seed=3)
    assert np.isfinite(ds.loss_gross.values).all() and ds.loss_gross.sum() > 0
