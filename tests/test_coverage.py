"""Coverage of the 95% intervals against exact quadrature, plain and importance sampling.

A one-period book of identical loans (horizon 1, bullet, default_after 1, no recoveries,
balance 1) loses its default count N, whose law is the Vasicek (Gaussian) or t-copula
binomial mixture of tests/reference.py. One simulation of R x n paths is cut into R runs of
n paths each (paths are iid, so the blocks are independent runs); every run's intervals
of EL, P(L > v) (v the exact VaR 99%), VaR 99% and ES 99% are checked against the exact
values. Under importance sampling the measure is tuned once (its own pilot draws) and all
runs use it: the intervals claim coverage given the sampling measure.

Tolerance: with R runs the coverage of a correct 95% interval has standard error
sqrt(0.95 * 0.05 / R) (1.1% at R = 400); the tests allow 4 of them either side. VaR of a
discrete loss is covered at least as often as a continuous one (the estimate often equals
the true value): only its lower limit is checked.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import book, scenario
from reference import t_copula_count_pmf, vasicek_count_pmf

import stresslab
from stresslab.estimators import controlled_terms, es_ci, mean_ci, var_ci
from stresslab.metrics.paired import compare_summary

N_LOANS, P, RHO, NU = 200, 0.02, 0.2, 5.0
LEVEL = 0.99
RUNS, PATHS = 400, 2000
COVERAGE_SE = np.sqrt(0.95 * 0.05 / RUNS)


def _exact(pmf: np.ndarray, level: float) -> dict[str, float]:
    """EL, VaR, ES and P(L > VaR) of the count law ``pmf`` (loss = count)."""
    k = np.arange(pmf.size)
    cdf = np.cumsum(pmf)
    var = int(np.searchsorted(cdf, level - 1e-12))  # smallest k with P(N <= k) >= level
    es = var + float(pmf @ np.maximum(k - var, 0)) / (1 - level)
    return {"el": float(pmf @ k), "var": var, "es": es, "tail": float(1 - cdf[var])}


def _covered(x: np.ndarray, w: np.ndarray, exact: dict[str, float], importance: bool) -> np.ndarray:
    """Whether each interval (EL, tail probability, VaR, ES) of one run holds the exact value.
    The EL interval is the summary's: under importance sampling, the control-variate estimator."""
    intervals = [
        mean_ci(controlled_terms(x, w), np.ones_like(w))[1:] if importance else mean_ci(x, w)[1:],
        mean_ci((x > exact["var"]).astype(float), w)[1:],
        var_ci(x, w, LEVEL),
        es_ci(x, w, LEVEL),
    ]
    values = (exact["el"], exact["tail"], exact["var"], exact["es"])
    return np.array([lo <= v <= hi for (lo, hi), v in zip(intervals, values)])


def _coverage(copula: str, tail: str | None) -> np.ndarray:
    factors = {"global_loading": float(np.sqrt(RHO))}
    if copula == "t":
        factors |= {"copula": "t", "dof": NU}
    pmf = vasicek_count_pmf(N_LOANS, P, RHO) if copula == "gaussian" else t_copula_count_pmf(N_LOANS, P, RHO, NU)
    exact = _exact(pmf, LEVEL)
    ds = stresslab.simulate(book(N_LOANS, pd_=P), scenario(1, factors=factors),
                            n_paths=RUNS * PATHS, seed=41, tail=tail, target=LEVEL, pilot_paths=4000)
    loss = ds.loss_gross.sum("month").values.reshape(RUNS, PATHS)
    w = ds.weight.values.reshape(RUNS, PATHS)
    return np.array([_covered(loss[r], w[r], exact, tail == "is") for r in range(RUNS)]).mean(axis=0)


@pytest.mark.parametrize("copula", ["gaussian", "t"])
@pytest.mark.parametrize("tail", [None, "is"])
def test_intervals_cover_the_exact_values(copula: str, tail: str | None) -> None:
    el, prob, var, es = _coverage(copula, tail)
    print(f"{copula} {tail or 'plain'}: coverage EL {el:.3f}, P(L > VaR) {prob:.3f}, VaR {var:.3f}, ES {es:.3f}")
    for name, c in (("EL", el), ("tail probability", prob), ("ES", es)):
        assert abs(c - 0.95) < 4 * COVERAGE_SE, (name, c)
    assert var > 0.95 - 4 * COVERAGE_SE, ("VaR", var)


def test_paired_difference_intervals_cover_the_exact_difference() -> None:
    """Two one-factor Gaussian books on common draws (loadings sqrt(0.1) and sqrt(0.3), the same
    PD): the exact EL difference is 0 and the ES 99% difference comes from the two Vasicek
    laws. 200 runs of 5,000 paths (50 tail paths at 99%), 200 bootstrap replicates each."""
    runs, paths, rhos = 200, 5000, (0.1, 0.3)
    loans = book(N_LOANS, pd_=P)
    scens = [scenario(1, name=f"rho{r}", factors={"global_loading": float(np.sqrt(r))}) for r in rhos]
    ds = stresslab.compare(loans, scens, n_paths=runs * paths, seed=43)
    exact = [_exact(vasicek_count_pmf(N_LOANS, P, r), LEVEL) for r in rhos]
    d_es = exact[1]["es"] - exact[0]["es"]
    hits = np.zeros(2)
    for r in range(runs):
        cmp = compare_summary(ds.isel(path=slice(r * paths, (r + 1) * paths)), levels=(LEVEL,), n_boot=200, boot_seed=r)
        ci = cmp["difference_ci"].sel(scenario="rho0.3")
        lo, hi = ci.sel(metric="expected_gross_loss").values
        hits[0] += lo <= 0.0 <= hi
        lo, hi = ci.sel(metric="es_99").values
        hits[1] += lo <= d_es <= hi
    coverage = hits / runs
    se = np.sqrt(0.95 * 0.05 / runs)
    print(f"paired: coverage EL difference {coverage[0]:.3f}, ES 99% difference {coverage[1]:.3f} (exact {d_es:.2f})")
    assert abs(coverage[0] - 0.95) < 4 * se and abs(coverage[1] - 0.95) < 4 * se, coverage
