"""PD calibration over the factors (MODEL.md §2) against independent references.

The references are written from the model's definition, not from the kernel: a Markov
matrix power for the chain without factors, Gauss-Hermite and chi-square quadrature for
factors held fixed (ar1 = 1), and the product of independent months for ar1 = 0.
Tolerances: the integration error of the calibration's nodes (2^12 Sobol index paths;
for the t copula 32 trapezoid nodes in log chi2 x 2^10 paths), measured below against
finer nodes (at most about 2e-3 relative at the PDs used), and the normal table's 3e-8.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate
from scipy.special import ndtr, roots_hermitenorm
from scipy.stats import chi2

import stresslab.compile.calibration as cal
from stresslab.compile.calibration import (
    ChainInputs,
    FactorLaw,
    default_probability,
    entry_thresholds,
    latent_quantile,
)
from stresslab.errors import ScenarioError

ROLL = (0.35, 0.55, 0.75)
CURE = (0.30, 0.15, 0.08)
RHO = 0.1475
QMC_RTOL = 3e-3  # integration error of the nodes (see test_integration_error_is_small)


def chain(default_after: int = 4, prepayment: float = 0.0, kappa: float = 1.0) -> ChainInputs:
    return ChainInputs(default_after, ROLL, CURE, 1.0, 1.0, prepayment, kappa)


def matrix_pd(p: float, prepay: float, default_after: int, months: int) -> float:
    """P(D by ``months``) of the chain without factors, by a matrix power (states C, M1.., D, P)."""
    n = default_after + 2
    d, pp = default_after, default_after + 1
    m = np.zeros((n, n))
    m[0, 0], m[0, 1 if default_after > 1 else d], m[0, pp] = 1 - p - prepay, p, prepay
    for k in range(1, default_after):
        r, q = ROLL[k - 1], CURE[k - 1]
        m[k, k + 1 if k + 1 < default_after else d] += r
        m[k, 0] += q
        m[k, k] += 1 - r - q
    m[d, d] = m[pp, pp] = 1.0
    return float(np.linalg.matrix_power(m, months)[0, d])


@pytest.mark.parametrize("default_after", [1, 2, 4])
@pytest.mark.parametrize("prepayment", [0.0, 0.03])
def test_without_factors_the_chain_is_a_markov_matrix_power(default_after, prepayment):
    law = FactorLaw("gaussian", None, 0.9)
    c = np.array([-3.0, -2.0, -1.2])
    got = default_probability(c, 0.0, chain(default_after, prepayment), law, 12)[0]
    ref = [matrix_pd(float(ndtr(ci)), prepayment, default_after, 12) for ci in c]
    np.testing.assert_allclose(got, ref, rtol=1e-6)  # one node value: only the table's error


def _fixed_factor_gaussian(c: float, rho: float, months: int) -> float:
    y, w = roots_hermitenorm(160)
    p = ndtr((c - np.sqrt(rho) * y) / np.sqrt(1 - rho))
    return float(np.sum(w * (1 - (1 - p) ** months)) / np.sum(w))


def _fixed_factor_t(c: float, rho: float, dof: float, months: int) -> float:
    y, w = roots_hermitenorm(120)
    w = w / w.sum()

    def given_chi2(q: float) -> float:
        p = ndtr((c * np.sqrt(q / dof) - np.sqrt(rho) * y) / np.sqrt(1 - rho))
        return float(np.sum(w * (1 - (1 - p) ** months))) * chi2.pdf(q, dof)

    return integrate.quad(given_chi2, 0, np.inf, limit=200, epsabs=1e-13)[0]


@pytest.mark.parametrize("c", [-3.0, -2.5, -2.0])
def test_fixed_factors_gaussian_match_quadrature(c):
    law = FactorLaw("gaussian", None, 1.0)
    got = default_probability(np.array([c]), RHO, chain(1), law, 12)[0, 0]
    assert got == pytest.approx(_fixed_factor_gaussian(c, RHO, 12), rel=QMC_RTOL)


@pytest.mark.parametrize("dof", [4.0, 8.0])
def test_fixed_factors_student_t_match_quadrature(dof):
    law = FactorLaw("t", dof, 1.0)
    c = float(latent_quantile(np.array([0.002]), law)[0])
    got = default_probability(np.array([c]), RHO, chain(1), law, 12)[0, 0]
    assert got == pytest.approx(_fixed_factor_t(c, RHO, dof, 12), rel=QMC_RTOL)


def test_independent_months_are_a_product():
    """ar1 = 0, first miss is a default: P(D by H) = 1 - (1 - Phi(c))^H whatever rho."""
    law = FactorLaw("gaussian", None, 0.0)
    c = np.array([-3.0, -2.0])
    got = default_probability(c, RHO, chain(1), law, 12)[0]
    np.testing.assert_allclose(got, 1 - (1 - ndtr(c)) ** 12, rtol=QMC_RTOL)


@pytest.mark.parametrize("law", [FactorLaw("t", 4.0, 0.9), FactorLaw("t", 2.5, 0.0), FactorLaw("gaussian", None, 0.5)])
def test_integration_error_is_small(monkeypatch, law):
    c = latent_quantile(np.array([0.0005, 0.01]), law)
    base = default_probability(c, RHO, chain(4), law, 12)
    monkeypatch.setattr(cal, "QMC_NODES_LOG2", 15)
    monkeypatch.setattr(cal, "T_QMC_NODES_LOG2", 13)
    monkeypatch.setattr(cal, "MIXING_NODES", 64)
    cal._nodes.cache_clear()
    try:
        fine = default_probability(c, RHO, chain(4), law, 12)
    finally:
        cal._nodes.cache_clear()
    np.testing.assert_allclose(base, fine, rtol=QMC_RTOL)


@pytest.mark.parametrize("law", [FactorLaw("gaussian", None, 0.9), FactorLaw("t", 4.0, 0.5), FactorLaw("gaussian", None, 1.0)])
@pytest.mark.parametrize("default_after", [1, 2, 4])
def test_thresholds_reproduce_the_pds(law, default_after):
    pd = np.array([0.0, 0.005, 0.03, 0.15, 0.03])
    n = pd.size
    c = entry_thresholds(pd, np.full(n, RHO), np.zeros((1, 12)), np.zeros(n, dtype=int), np.ones(n),
                         chain(default_after, 0.01), law, 12)
    assert c[0] == -np.inf and c[2] == c[4]
    back = default_probability(c[1:4], RHO, chain(default_after, 0.01), law, 12)[0]
    np.testing.assert_allclose(back, pd[1:4], rtol=1e-4)  # grid interpolation error only


def test_seasonal_thresholds_with_several_volatilities():
    """A seasonal class with many sigmas (DSCR loans) is solved on a spline across 1 / sigma."""
    law = FactorLaw("gaussian", None, 0.9)
    season = -np.log(np.array([[0.9, 0.95, 1.0, 1.05, 1.1, 1.0, 0.95, 0.9, 1.0, 1.05, 1.1, 1.0]]))
    inv_sigma = np.linspace(1.0, 6.0, 12)
    pd = np.full(12, 0.04)
    c = entry_thresholds(pd, np.full(12, RHO), season, np.zeros(12, dtype=int), inv_sigma, chain(4), law, 12)
    for j in (0, 5, 11):
        back = default_probability(c[j:j + 1], RHO, chain(4), law, 12, season[0], inv_sigma[j:j + 1])[0, 0]
        assert back == pytest.approx(0.04, rel=1e-3)
    assert np.all(np.diff(c) != 0)  # the seasonal dips weigh more for a lower sigma


def test_one_month_pd_is_the_monthly_probability_exactly():
    for law in (FactorLaw("gaussian", None, 0.9), FactorLaw("t", 5.0, 0.0)):
        pd = np.array([0.01, 0.2])
        c = entry_thresholds(pd, np.full(2, RHO), np.zeros((1, 1)), np.zeros(2, dtype=int), np.ones(2), chain(1), law, 1)
        np.testing.assert_array_equal(c, latent_quantile(pd, law))


def test_one_month_pd_needs_default_after_one():
    with pytest.raises(ScenarioError, match="pd_horizon_months = 1 needs default_after = 1"):
        entry_thresholds(np.array([0.01]), np.array([RHO]), np.zeros((1, 1)), np.zeros(1, dtype=int), np.ones(1),
                         chain(4), FactorLaw("gaussian", None, 0.9), 1)


def test_unreachable_pd_names_the_limit():
    weak = ChainInputs(4, (0.1, 0.1, 0.1), (0.5, 0.4, 0.4), 1.0, 1.0, 0.0, 1.0)
    with pytest.raises(ScenarioError, match=r"at most 0\.\d+ over pd_horizon_months, but the book has pd = 0\.9900"):
        entry_thresholds(np.array([0.99]), np.array([RHO]), np.zeros((1, 12)), np.zeros(1, dtype=int), np.ones(1),
                         weak, FactorLaw("gaussian", None, 0.9), 12)


def test_more_missed_installments_to_default_need_a_higher_entry_rate():
    law = FactorLaw("gaussian", None, 0.9)
    cs = [entry_thresholds(np.array([0.05]), np.array([RHO]), np.zeros((1, 12)), np.zeros(1, dtype=int),
                           np.ones(1), chain(k), law, 12)[0] for k in (1, 2, 3, 4)]
    assert cs == sorted(cs)


def test_thresholds():
    p = np.array([0.01, 0.5])
    np.testing.assert_allclose(latent_quantile(p, FactorLaw("gaussian", None, 0.9)), [-2.3263478740408408, 0.0], atol=1e-14)
    assert latent_quantile(p, FactorLaw("t", 4.0, 0.9))[0] < latent_quantile(p, FactorLaw("gaussian", None, 0.9))[0]
