"""Tests of stresslab.metrics.contributions: Euler (ES) allocation and EL contributions by segment.

Additivity is checked to float rounding on a real run and on hand-built samples with ties
and weights; the estimator is checked against an independent "fill the tail mass" reference
and against the closed-form Gaussian Euler allocation (|estimate - truth| < 4 se, seeded).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from scipy import stats

import stresslab
from stresslab.errors import StresslabError
from stresslab.estimators import es_ci, var_es
from stresslab.metrics.contributions import (
    es_contributions,
    expected_loss_contributions,
)


def _dataset(seg: np.ndarray, w: np.ndarray | None = None, by: str = "industry", months: int = 1) -> xr.Dataset:
    """A minimal run: segment losses (n_paths, n_segments); the total spread evenly over months."""
    seg = np.asarray(seg, dtype=np.float64)
    n, g = seg.shape
    total = seg.sum(axis=1)
    name = {"industry": "loss_by_industry", "region": "loss_by_region"}[by]
    return xr.Dataset(
        {
            "loss_gross": (("path", "month"), np.repeat(total[:, None] / months, months, axis=1)),
            name: (("path", by), seg),
            "weight": ("path", np.ones(n) if w is None else np.asarray(w, dtype=np.float64)),
        },
        coords={"path": np.arange(n), "month": np.arange(1, months + 1), by: [f"s{j}" for j in range(g)]},
    )


def _reference(seg: np.ndarray, w: np.ndarray, level: float) -> np.ndarray:
    """Fill the tail mass n(1-a) from the largest loss down; a tie group at the edge shares by weight."""
    total = seg.sum(axis=1)
    mass = total.size * (1 - level)
    left, acc = mass, np.zeros(seg.shape[1])
    for value in np.unique(total)[::-1]:
        group = total == value
        wg = w[group].sum()
        take = min(left, wg)
        if take > 0:
            acc += take * (w[group] @ seg[group]) / wg
        left -= take
        if left <= 1e-12 * mass:
            break
    return acc / mass


# ----------------------------------------------------------------------------- a real run
@pytest.fixture(scope="module")
def run():
    book = stresslab.synthetic_portfolio(300, seed=1)
    return stresslab.simulate(book, stresslab.load_scenario("scenarios/services_downturn.toml"), n_paths=500, seed=2)


@pytest.mark.parametrize("by", ["industry", "region"])
@pytest.mark.parametrize("level", [0.9, 0.99, 0.995])
def test_contributions_add_up_to_the_es_of_results(run, by, level):
    c = es_contributions(run, by=by, level=level)
    es = stresslab.summary(run, levels=(level,))["expected_shortfall"].sel(measure="gross", window="horizon", level=level)
    assert float(c["expected_shortfall"]) == float(es)
    assert float(c["es_contribution"].sum()) == pytest.approx(float(es), rel=1e-12)
    assert float(c["es_share"].sum()) == pytest.approx(1.0, rel=1e-12)
    assert c["es_contribution"].dims == (by,) and c[by].values.tolist() == run[by].values.tolist()
    assert np.all(c["es_contribution"].values >= 0)
    low, high = c["es_contribution_ci"].sel(bound="low").values, c["es_contribution_ci"].sel(bound="high").values
    assert np.all(low <= c["es_contribution"].values) and np.all(c["es_contribution"].values <= high)
    loss = run["loss_gross"].sum("month").values
    np.testing.assert_array_equal(c["expected_shortfall_ci"].values, es_ci(loss, run["weight"].values, level))


@pytest.mark.parametrize("by", ["industry", "region"])
def test_el_contributions_add_up_to_the_expected_loss(run, by):
    c = expected_loss_contributions(run, by=by)
    el = stresslab.summary(run, levels=(0.99,))["expected_loss"].sel(measure="gross", window="horizon")
    assert float(c["expected_loss"]) == pytest.approx(float(el), rel=1e-14)
    assert float(c["el_contribution"].sum()) == pytest.approx(float(el), rel=1e-12)
    np.testing.assert_allclose(c["el_contribution"].values, run[f"loss_by_{by}"].mean("path").values, rtol=1e-12)
    assert float(c["el_share"].sum()) == pytest.approx(1.0, rel=1e-12)


# ----------------------------------------------------------------------------- hand-built
def test_ties_at_the_var_share_the_fractional_atom():
    # n = 10, a = 0.8: tail mass 2. Three paths tie at the VaR (L = 2) with compositions
    # (2, 0), (2, 0), (0, 2); each enters with weight 2/3: contributions (4/3, 2/3), ES = 2.
    seg = np.array([[0, 0]] * 5 + [[1, 0], [0, 1], [2, 0], [2, 0], [0, 2]], dtype=float)
    c = es_contributions(_dataset(seg), level=0.8)
    assert float(c["value_at_risk"]) == 2.0 and float(c["expected_shortfall"]) == pytest.approx(2.0)
    np.testing.assert_allclose(c["es_contribution"].values, [4 / 3, 2 / 3], rtol=1e-14)
    assert int(c["tail_paths"]) == 3


def test_paths_above_the_var_count_fully():
    # n = 5, a = 0.5: mass 2.5; var_es gives VaR 2 and ES 2.4 (test_results); the path at 3
    # counts fully, the three at 2 share the remaining 1.5
    seg = np.array([[2, 0], [1, 0], [1, 2], [0, 2], [1, 1]], dtype=float)  # L = 2, 1, 3, 2, 2
    c = es_contributions(_dataset(seg), level=0.5)
    expected = (np.array([1, 2]) + 1.5 * (np.array([2, 0]) + np.array([0, 2]) + np.array([1, 1])) / 3) / 2.5
    np.testing.assert_allclose(c["es_contribution"].values, expected, rtol=1e-14)
    assert float(c["es_contribution"].sum()) == pytest.approx(2.4, rel=1e-14)


def test_weights_act_as_replication():
    # integer weights summing to n: the same tail as the replicated unweighted sample of size n
    seg = np.array([[1, 0], [0, 2], [3, 1], [1, 1], [0, 4], [2, 2]], dtype=float)
    w = np.array([2, 0, 1, 0, 2, 1], dtype=float)
    rep = np.repeat(seg, w.astype(int), axis=0)
    for level in (0.5, 0.6, 2 / 3, 0.8, 0.9):
        weighted = es_contributions(_dataset(seg, w), level=level)["es_contribution"].values
        replicated = es_contributions(_dataset(rep), level=level)["es_contribution"].values
        np.testing.assert_allclose(weighted, replicated, rtol=1e-13)


def test_matches_the_fill_the_tail_reference_with_ties_and_weights():
    rng = np.random.default_rng(11)
    for trial in range(300):
        n, g = int(rng.integers(5, 60)), int(rng.integers(1, 5))
        seg = rng.integers(0, 4, size=(n, g)).astype(float) * (rng.random((n, g)) < 0.6)  # many ties and zeros
        w = rng.choice([0.0, 0.5, 1.0, 1.5, 2.0], size=n)
        level = float(rng.choice([0.5, 0.75, 0.8, 0.9, 0.95]))
        if w.sum() < n * (1 - level) or not np.any(w > 0):
            continue
        c = es_contributions(_dataset(seg, w, months=3), level=level)
        es = var_es(seg.sum(axis=1), w, level)[1]
        np.testing.assert_allclose(c["es_contribution"].values, _reference(seg, w, level), rtol=1e-12, atol=1e-12,
                                   err_msg=f"trial {trial}")
        assert float(c["es_contribution"].sum()) == pytest.approx(es, rel=1e-12, abs=1e-12)


def test_var_atom_without_weight_still_adds_up():
    # the weights (sum 0.2) fall short of the tail mass 1.5: VaR is the smallest loss, whose
    # path has weight 0; the atom is then the unweighted mean of the paths at the VaR
    seg = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 2.0]])
    w = np.array([0.0, 0.1, 0.1])
    c = es_contributions(_dataset(seg, w), level=0.5)
    es = var_es(seg.sum(axis=1), w, 0.5)[1]
    assert float(c["es_contribution"].sum()) == pytest.approx(es, rel=1e-14)
    np.testing.assert_allclose(c["es_contribution"].values, [(0.1 + 1.3) / 1.5, (0.4) / 1.5], rtol=1e-14)


def test_a_segment_without_loss_gets_zero():
    rng = np.random.default_rng(3)
    seg = np.column_stack([rng.exponential(size=1000), np.zeros(1000), rng.exponential(2.0, size=1000)])
    c = es_contributions(_dataset(seg, by="region"), by="region", level=0.95)
    assert c["es_contribution"].sel(region="s1").item() == 0.0
    assert c["es_contribution_se"].sel(region="s1").item() == 0.0
    assert c["es_share"].sel(region="s1").item() == 0.0
    assert expected_loss_contributions(_dataset(seg, by="region"), by="region")["el_contribution"].sel(region="s1").item() == 0.0


# ----------------------------------------------------------------------------- Gaussian
MU, SD = np.array([1.0, 2.0]), np.array([1.0, 2.5])


def _gaussian_truth(level: float) -> np.ndarray:
    # Euler allocation of ES for jointly normal L = L1 + L2 (independent segments):
    # C_g = E[L_g] + Cov(L_g, L) / sd(L) * phi(z_a) / (1 - a)
    sd = np.sqrt((SD**2).sum())
    return MU + SD**2 / sd * stats.norm.pdf(stats.norm.ppf(level)) / (1 - level)


@pytest.mark.parametrize("level", [0.95, 0.99])
def test_gaussian_contributions_approach_the_closed_form(level):
    rng = np.random.default_rng(2024)
    seg = MU + SD * rng.standard_normal((400_000, 2))
    c = es_contributions(_dataset(seg), level=level)
    truth = _gaussian_truth(level)
    err = np.abs(c["es_contribution"].values - truth)
    assert np.all(err < 4 * c["es_contribution_se"].values), (c["es_contribution"].values, truth)
    es_truth = MU.sum() + np.sqrt((SD**2).sum()) * stats.norm.pdf(stats.norm.ppf(level)) / (1 - level)
    assert float(c["es_contribution"].sum()) == pytest.approx(float(c["expected_shortfall"]), rel=1e-12)
    total = seg.sum(axis=1)
    es_se = np.std(np.maximum(total - float(c["value_at_risk"]), 0), ddof=1) / (np.sqrt(total.size) * (1 - level))
    assert abs(float(c["expected_shortfall"]) - es_truth) < 4 * es_se


def test_gaussian_standard_errors_match_the_spread_over_replications():
    rng = np.random.default_rng(99)
    level, n, reps = 0.99, 20_000, 300
    estimates, ses = np.empty((reps, 2)), np.empty((reps, 2))
    for r in range(reps):
        c = es_contributions(_dataset(MU + SD * rng.standard_normal((n, 2))), level=level)
        estimates[r], ses[r] = c["es_contribution"].values, c["es_contribution_se"].values
    spread = estimates.std(axis=0, ddof=1)
    # the sd of a sd estimate over 300 replications is about 4 %: allow 20 %
    np.testing.assert_allclose(ses.mean(axis=0), spread, rtol=0.2)
    bias = estimates.mean(axis=0) - _gaussian_truth(level)
    assert np.all(np.abs(bias) < 4 * spread / np.sqrt(reps))


# ----------------------------------------------------------------------------- errors
def test_invalid_inputs_are_refused(run):
    with pytest.raises(StresslabError, match="by must be"):
        es_contributions(run, by="borrower")
    with pytest.raises(StresslabError, match="level"):
        es_contributions(run, level=1.0)
    with pytest.raises(StresslabError, match="scenario"):
        es_contributions(xr.concat([run, run], dim="scenario"))
    with pytest.raises(StresslabError, match="lack"):
        expected_loss_contributions(run.drop_vars("loss_by_region"), by="region")
    broken = run.copy()
    broken["loss_by_industry"] = run["loss_by_industry"] * 1.01
    with pytest.raises(StresslabError, match="does not add up"):
        es_contributions(broken)


def test_loan_level_contributions_add_up_to_es():
    """By loan on request: tracked loans plus the rest add up to the ES; all tracked = no rest."""
    book = stresslab.synthetic_portfolio(150, seed=4)
    scen = stresslab.load_scenario(Path(__file__).resolve().parents[1] / "scenarios" / "services_downturn.toml")
    some = list(book.loan_id[:20])
    ds = stresslab.simulate(book, scen, n_paths=300, seed=5, track_loans=some)
    c = stresslab.es_contributions(ds, by="loan", level=0.99)
    es = stresslab.summary(ds, levels=(0.99,)).expected_shortfall.sel(measure="gross", window="horizon", level=0.99)
    np.testing.assert_allclose(float(c.es_contribution.sum()), float(es), rtol=1e-10)
    assert list(c.loan.values[:-1]) == some and c.loan.values[-1] == "(other loans)"
    full = stresslab.simulate(book, scen, n_paths=300, seed=5, track_loans=list(book.loan_id))
    cf = stresslab.es_contributions(full, by="loan", level=0.99)
    np.testing.assert_allclose(float(cf.es_contribution.sel(loan="(other loans)")), 0.0, atol=1e-6 * float(es))
    np.testing.assert_allclose(cf.es_contribution.sel(loan=some).values, c.es_contribution.sel(loan=some).values, rtol=1e-9)
