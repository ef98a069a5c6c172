"""Reverse stress tests (docs/reverse_stress.md): events, the conditional factor paths, the written scenario.

Tolerances come from the Monte Carlo standard errors the result reports (``abs(mc - ref)
< 4 se``), never a bare tolerance; each test keeps its book small (a few seconds each).
"""

from __future__ import annotations

import math
import tomllib

import numpy as np
import pytest
from helpers import book, scenario
from scipy.optimize import minimize_scalar
from scipy.stats import binom, chi2, norm

import stresslab
from stresslab.cli import main
from stresslab.compile.model import compile_model
from stresslab.errors import StresslabError
from stresslab.reverse import parse_event
from stresslab.run.runner import run_paths
from stresslab.scenario.writer import scenario_toml

# ----------------------------------------------------------------------------- events


@pytest.mark.parametrize(
    ("text", "kind", "threshold", "layer", "month"),
    [
        ("loss > 2.5e8", "loss", 2.5e8, "", None),
        ("  net_loss>1_000_000 ", "net_loss", 1e6, "", None),
        ("loss_12m > 3", "loss_12m", 3.0, "", None),
        ("exhausted:fund", "exhausted", 1.0, "fund", None),
        ("exhausted: east fund @ 12", "exhausted", 1.0, "east fund", 12),
        ("dpd30 > 0.15", "dpd30", 0.15, "", None),
        ("capital_ratio < 0.08", "capital_ratio", 0.08, "", None),
    ],
)
def test_event_strings_parse(text, kind, threshold, layer, month):
    ev = parse_event(text)
    assert (ev.kind, ev.threshold, ev.layer, ev.month) == (kind, threshold, layer, month)


@pytest.mark.parametrize("text", ["", "loss", "loss >", "loss > abc", "loss < 5", "loss > inf", "loss >= 3",
                                  "capital_ratio > 0.1", "dpd > 0.1", "exhausted:", "exhausted:fund@x", "VaR > 3"])
def test_a_malformed_event_is_a_one_line_error_naming_the_forms(text):
    with pytest.raises(StresslabError) as info:
        parse_event(text)
    message = str(info.value)
    assert "\n" not in message and "allowed:" in message and "exhausted:LAYER" in message, message


def test_a_near_miss_of_a_quantity_is_named():
    with pytest.raises(StresslabError, match="did you mean 'dpd30'"):
        parse_event("dpd3 > 0.1")


def _no_simulation(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("an event that cannot be evaluated must fail before any simulation")

    monkeypatch.setattr("stresslab.reverse.stress.run_paths", refuse)
    monkeypatch.setattr("stresslab.run.importance.run_paths", refuse)


def test_capital_ratio_parses_but_says_it_needs_the_capital_model(monkeypatch):
    _no_simulation(monkeypatch)
    with pytest.raises(StresslabError, match="needs the capital model") as info:
        stresslab.reverse_stress(book(10), scenario(1), "capital_ratio < 0.08")
    assert "\n" not in str(info.value)


_LAYERS = [{"name": "fund", "kind": "quota_share", "share": 1.0, "capacity": 3.0},
           {"name": "insurer", "kind": "quota_share", "share": 0.5}]


@pytest.mark.parametrize(
    ("event", "match"),
    [
        ("loss > 100", "probability 0: the horizon gross loss can never exceed 100"),  # 100 loans of 1 CNY, rate 0
        ("net_loss > 1e9", "probability 0"),
        ("dpd30 > 1", "probability 0: a DPD30\\+ ratio is at most 1"),
        ("exhausted:insurer", "probability 0: the layer's capacity \\(unlimited\\)"),
        ("exhausted:fnd", "no layer named 'fnd' \\(did you mean 'fund'\\?\\); the scenario's layers: 'fund', 'insurer'"),
        ("exhausted:fund@2", "month 2 is outside the horizon 1..1"),
        ("loss_12m > 5", "needs a horizon of at least 12 months"),
    ],
)
def test_events_of_probability_zero_or_unknown_names_fail_before_simulating(monkeypatch, event, match):
    _no_simulation(monkeypatch)
    with pytest.raises(StresslabError, match=match) as info:
        stresslab.reverse_stress(book(100), scenario(1).with_overrides({"layers": _LAYERS}), event)
    assert "\n" not in str(info.value)


def test_an_event_the_sampling_cannot_reach_is_a_clear_error():
    # recoveries of exactly half the exposure: the loss never exceeds 50 of the 100 CNY book, though the
    # static bound (nothing recovered) allows 100; the tilt gets as far as the book's largest loss, 50
    loans = book(100, pd_=0.05)
    scen = scenario(1, factors={"global_loading": 0.5},
                    recovery={"unsecured_mean": 0.5, "dispersion": 0.0, "cycle_sensitivity": 0.0, "lag_months": 0})
    with pytest.raises(StresslabError, match="cannot reach it") as info:
        stresslab.reverse_stress(loans, scen, "loss > 60", n_paths=500, pilot_paths=500, check_paths=0, progress=False)
    assert "happened in 0 of 500" in str(info.value) and "\n" not in str(info.value)


# ----------------------------------------------------------------------------- the scenario key


def test_innovation_mean_shifts_the_factor_as_the_vasicek_formula_says():
    # one period, one factor, ar1 = 1: Z_1 = Z_0 = eta_0 ~ N(m, 1), so the expected default rate is
    # E[Phi((c - sqrt(rho) Z) / sqrt(1 - rho))] = Phi(c - sqrt(rho) m), c = Phi^-1(p)
    n, p, rho, m = 500, 0.02, 0.2, -1.5
    scen = scenario(1, factors={"global_loading": math.sqrt(rho), "ar1": 1.0, "innovation_mean": {"global": [m]}})
    ds = stresslab.simulate(book(n, pd_=p), scen, n_paths=4000, seed=3, progress=False)
    rate = ds.count_by_state.sel(state="D").isel(month=0).values / n
    expected = norm.cdf(norm.ppf(p) - math.sqrt(rho) * m)
    assert abs(rate.mean() - expected) < 4 * rate.std(ddof=1) / math.sqrt(rate.size), (rate.mean(), expected)


def test_innovation_mean_lists_longer_than_the_horizon_are_refused():
    with pytest.raises(StresslabError, match=r"innovation_mean.*global.*has 4 values but horizon_months = 2"):
        scenario(2, factors={"innovation_mean": {"global": [0.0, 0.1, 0.2, 0.3]}})


def test_innovation_mean_names_are_bound_to_the_book():
    loans = book(20, industries=("retail", "catering"), regions=("east",))
    scen = scenario(2, factors={"innovation_mean": {"industry": {" Retail ": [0.0, -1.0]}, "region": {"east": [0.5]}}})
    mean = compile_model(loans, scen).tables.factor_mean  # [global, catering, retail, east]
    assert mean.shape == (3, 4)
    np.testing.assert_array_equal(mean[:, 2], [0.0, -1.0, 0.0])
    np.testing.assert_array_equal(mean[:, 3], [0.5, 0.0, 0.0])
    assert not mean[:, :2].any()


# ----------------------------------------------------------------------------- one factor: closed forms


def _vasicek_references(n: int, p: float, rho: float, k: int, m: float = 0.0) -> dict[str, float]:
    """P(N > k), E[Z | N > k] and the mode of Z given N > k for n loans and Z ~ N(m, 1), by quadrature.

    Given Z the default count is Binomial(n, p(Z)), p(z) = Phi((Phi^-1(p) - sqrt(rho) z) / sqrt(1 - rho)):
    exact for a finite book.
    """
    z = np.linspace(-9.0, 3.0, 240_001)
    pz = norm.cdf((norm.ppf(p) - math.sqrt(rho) * z) / math.sqrt(1.0 - rho))
    density = norm.pdf(z - m) * binom.sf(k, n, pz)
    prob = np.trapezoid(density, z)
    mean = np.trapezoid(z * density, z) / prob
    mode = minimize_scalar(lambda x: -norm.logpdf(x - m) - binom.logsf(k, n, norm.cdf(
        (norm.ppf(p) - math.sqrt(rho) * x) / math.sqrt(1.0 - rho))), bounds=(-8.0, 0.0), method="bounded",
        options={"xatol": 1e-8}).x
    return {"probability": prob, "mean": mean, "mode": float(mode)}


def test_one_factor_large_homogeneous_book_recovers_the_closed_forms():
    # Vasicek large pool: L / n -> p(Z), decreasing in Z, so L > x iff Z < z* with p(z*) = x / n, and
    #   P(L > x) = Phi(z*),   E[Z | Z < z*] = -phi(z*) / Phi(z*),   mode of Z given the event = z*
    # (the density phi(z) on z < z* peaks at the boundary point nearest 0). A book of n loans blurs the
    # boundary by the binomial noise of L given Z: the exact finite-n values (quadrature) differ from the
    # limits by less than 0.01 here (checked below), and the estimates are tested against them within 4 s.e.
    n, p, rho, z_star = 20_000, 0.01, 0.2, -3.0
    k = int(n * norm.cdf((norm.ppf(p) - math.sqrt(rho) * z_star) / math.sqrt(1.0 - rho)))  # event: N > k
    limit = {"probability": norm.cdf(z_star), "mean": -norm.pdf(z_star) / norm.cdf(z_star), "mode": z_star}
    exact = _vasicek_references(n, p, rho, k)
    assert abs(exact["mean"] - limit["mean"]) < 0.01 and abs(exact["mode"] - limit["mode"]) < 0.05
    assert abs(exact["probability"] / limit["probability"] - 1.0) < 0.05

    scen = scenario(1, factors={"global_loading": math.sqrt(rho)})
    r = stresslab.reverse_stress(book(n, pd_=p), scen, f"loss > {k}", n_paths=4000, seed=3, check_paths=0,
                                 progress=False)
    assert abs(r.probability - exact["probability"]) < 4 * r.probability_se
    mean = float(r.factor_mean.sel(month=1, factor="global"))
    se = float(r.factor_mean_se.sel(month=1, factor="global"))
    assert abs(mean - exact["mean"]) < 4 * se, (mean, exact["mean"], se)
    mode = float(r.factor_mode.sel(month=1, factor="global"))
    assert abs(mode - exact["mode"]) < 4 * r.mode_distance_se, (mode, exact["mode"], r.mode_distance_se)
    assert mode > mean  # the mode lies on the boundary, the mean beyond it
    # the industry and region factors carry no loading: their conditional means are 0
    others = r.factor_mean.sel(month=1).drop_sel(factor="global")
    assert (abs(others) < 4 * r.factor_mean_se.sel(month=1).drop_sel(factor="global")).all()


def test_a_base_scenario_with_its_own_innovation_mean_is_the_model_the_event_is_taken_under():
    # ar1 = 1: Z = eta_0 ~ N(m0, 1) under the base; L > x iff Z < z* (large pool), so P = Phi(z* - m0) and
    # E[Z | Z < z*] = m0 - phi(z* - m0) / Phi(z* - m0) (checked against the exact finite-book values, which the
    # estimates must match within 4 s.e.); the written mean is m0 + E[eta_0 - m0 | E].
    n, p, rho, z_star, m0 = 20_000, 0.01, 0.2, -3.0, -1.0
    k = int(n * norm.cdf((norm.ppf(p) - math.sqrt(rho) * z_star) / math.sqrt(1.0 - rho)))
    exact = _vasicek_references(n, p, rho, k, m0)
    a = z_star - m0
    assert abs(exact["mean"] - (m0 - norm.pdf(a) / norm.cdf(a))) < 0.01
    assert abs(exact["probability"] / norm.cdf(a) - 1.0) < 0.02
    scen = scenario(1, factors={"global_loading": math.sqrt(rho), "ar1": 1.0, "innovation_mean": {"global": [m0]}})
    r = stresslab.reverse_stress(book(n, pd_=p), scen, f"loss > {k}", n_paths=3000, seed=7, check_paths=0,
                                 progress=False)
    assert abs(r.probability - exact["probability"]) < 4 * r.probability_se
    mean, se = float(r.factor_mean.sel(month=1, factor="global")), float(r.factor_mean_se.sel(month=1, factor="global"))
    assert abs(mean - exact["mean"]) < 4 * se, (mean, exact["mean"], se)
    written = r.scenario.factors.innovation_mean.global_[0]
    assert written == pytest.approx(m0 + float(r.innovation_mean.sel(month=0, factor="global")), abs=1e-4)
    assert written == pytest.approx(mean, abs=1e-4 + 1e-9)  # ar1 = 1: Z_1 = eta_0


# ----------------------------------------------------------------------------- two factors: plain MC


def _plain_conditional_factor_mean(loans, scen, event, n_paths, seed):
    """Brute force: plain MC paths with their innovations; E[Z_t | event] with s.e., Z built here from eta."""
    model = compile_model(loans, scen)
    out = run_paths(model, seed, n_paths, progress=False, record_eta=True)
    hit = event.occurred(event.score(out, model)).astype(bool)
    a, phi = model.tables.sqrt_cov, model.params.ar1
    z = np.einsum("kl,ptl->ptk", a, out.eta)
    for t in range(1, z.shape[1]):
        z[:, t] = phi * z[:, t - 1] + math.sqrt(1 - phi * phi) * z[:, t]
    z = z[hit, 1:]
    return hit.mean(), z.mean(axis=0), z.std(axis=0, ddof=1) / math.sqrt(hit.sum())


def test_two_factor_book_agrees_with_brute_force_plain_monte_carlo():
    # global and industry factors (two industries), three months with persistent factors; an event of
    # probability about 1% (0.5% in 20,000 plain paths ahead of the test): 60,000 plain paths give some 600 event paths to compare with
    loans = book(400, pd_=0.02, term=3, amortization="annuity", industries=("retail", "catering"))
    scen = scenario(3, factors={"global_loading": 0.35, "industry_loading": {"default": 0.2, "retail": 0.45},
                                "ar1": 0.7})
    event = parse_event("loss > 82")
    share, mc_mean, mc_se = _plain_conditional_factor_mean(loans, scen, event, 60_000, 21)
    assert 0.003 < share < 0.03, share
    r = stresslab.reverse_stress(loans, scen, event, n_paths=6000, seed=4, check_paths=0, progress=False)
    assert abs(r.probability - share) < 4 * math.hypot(r.probability_se, math.sqrt(share * (1 - share) / 60_000))
    is_mean = r.factor_mean.transpose("month", "factor").values
    is_se = r.factor_mean_se.transpose("month", "factor").values
    z = (is_mean - mc_mean) / np.hypot(is_se, mc_se)
    assert (abs(z) < 4).all(), z
    # the retail factor (the larger loading) drives the event more than the catering one
    assert float(r.factor_mean.sel(month=1, factor="industry:retail")) < float(
        r.factor_mean.sel(month=1, factor="industry:catering"))
    assert r.drivers.loc[("industry", "retail"), "lift"] > 1 > r.drivers.loc[("industry", "catering"), "lift"]


# ----------------------------------------------------------------------------- the written scenario


@pytest.fixture(scope="module")
def two_factor_result():
    loans = book(400, pd_=0.02, term=3, amortization="annuity", industries=("retail", "catering"))
    scen = scenario(3, factors={"global_loading": 0.35, "industry_loading": {"default": 0.2, "retail": 0.45},
                                "ar1": 0.7})
    return loans, stresslab.reverse_stress(loans, scen, "loss > 82", n_paths=4000, seed=5, check_paths=4000,
                                           progress=False)


def test_the_written_scenario_reproduces_the_event_at_the_stated_share(two_factor_result, tmp_path):
    loans, r = two_factor_result
    path = tmp_path / "worst.toml"
    r.to_toml(path)
    text = path.read_text()
    assert f"shows the event in {r.reproduction:.1%}" in text  # stated in the file
    written = stresslab.load_scenario(path)
    assert written == r.scenario and written.factors.innovation_mean is not None
    # re-run on other draws: the share is the stated one within the two runs' s.e.
    ds = stresslab.simulate(loans, written, n_paths=8000, seed=99, progress=False)
    share = float((ds.loss_gross.sum("month").values > 82).mean())
    se = math.sqrt(share * (1 - share) / 8000)
    stated_se = (r.reproduction_ci[1] - r.reproduction_ci[0]) / (2 * r.z)
    assert abs(share - r.reproduction) < 4 * math.hypot(se, stated_se), (share, r.reproduction)
    assert share >= r.reproduction_ci[0] - 4 * se  # at least the stated frequency
    assert r.reproduction > 0.3  # the event is common there, against 1% under the model


def test_the_result_reports_distance_mode_and_intervals(two_factor_result):
    _, r = two_factor_result
    lo, hi = r.probability_ci
    assert 0 <= lo < r.probability < hi
    assert r.factor_mean.dims == ("month", "factor") and list(r.factor_mean.month) == [1, 2, 3]
    assert list(r.factor_mean.factor.values) == ["global", "industry:catering", "industry:retail", "region:east"]
    assert list(r.innovation_mean.month) == [0, 1, 2, 3]
    low, high = r.factor_mean_ci()
    assert (low < r.factor_mean).all() and (r.factor_mean < high).all()
    # distance: the (debiased) length of the mean innovation path; its chi-square and one-direction tails
    assert 0 < r.distance < np.linalg.norm(r.innovation_mean.values)
    assert r.direction_probability == pytest.approx(norm.sf(r.distance))
    assert r.distance_probability == pytest.approx(chi2.sf(r.distance**2, 4 * 4))  # (T + 1) K = 4 x 4
    assert 0 < r.mode_distance < r.distance + 4 * r.mode_distance_se
    assert set(r.drivers.columns) == {"share", "share_se", "base_share", "lift"}
    assert r.drivers.xs("industry")["share"].sum() == pytest.approx(1.0)


def test_scenario_toml_reads_back_as_the_same_scenario():
    scen = stresslab.load_scenario(stresslab.__path__[0] + "/library/compensation_fund.toml")
    assert stresslab.Scenario.from_dict(tomllib.loads(scenario_toml(scen))) == scen


# ----------------------------------------------------------------------------- other events and the CLI


def test_layer_exhaustion_probability_agrees_with_plain_monte_carlo():
    loans = book(300, pd_=0.03, term=6, amortization="annuity")
    scen = scenario(6, factors={"global_loading": 0.4, "ar1": 0.8}).with_overrides(
        {"layers": [{"name": "fund", "kind": "quota_share", "share": 0.8, "capacity": 60.0}]})
    plain = stresslab.simulate(loans, scen, n_paths=20_000, seed=8, progress=False)
    hit = (plain.layer_capacity_left.sel(layer="fund").isel(month=slice(0, 4)) <= 0).any("month").values
    share, se = hit.mean(), hit.std(ddof=1) / math.sqrt(hit.size)
    assert 0.01 < share < 0.08, share  # 3.7%
    r = stresslab.reverse_stress(loans, scen, "exhausted:fund@4", n_paths=3000, seed=2, check_paths=0, progress=False)
    assert abs(r.probability - share) < 4 * math.hypot(se, r.probability_se), (r.probability, share)


def test_dpd30_event_probability_agrees_with_plain_monte_carlo():
    # the peak DPD30+ ratio by balance over the months with at least 1% of the book live (the summary's rule)
    loans = book(300, pd_=0.03, term=36, amortization="annuity")
    scen = scenario(8, factors={"global_loading": 0.45, "ar1": 0.8}, delinquency={"default_after": 4})
    plain = stresslab.simulate(loans, scen, n_paths=20_000, seed=8, progress=False)
    by_state = plain.balance_by_state
    live = by_state.sel(state=["C", "M1", "M2", "M3"]).sum("state")
    ratio = (by_state.sel(state=["M2", "M3"]).sum("state") / live).where(live >= 0.01 * float(loans.balance.sum()), 0.0)
    hit = (ratio > 0.1).any("month").values
    share, se = hit.mean(), hit.std(ddof=1) / math.sqrt(hit.size)
    assert 0.005 < share < 0.05, share  # about 2%
    r = stresslab.reverse_stress(loans, scen, "dpd30 > 0.1", n_paths=3000, seed=6, check_paths=0, progress=False)
    assert abs(r.probability - share) < 4 * math.hypot(se, r.probability_se), (r.probability, share)


def test_cli_reverse_writes_a_scenario_that_loads(tmp_path, capsys):
    out = tmp_path / "worst.toml"
    scen = stresslab.__path__[0] + "/library/baseline.toml"
    status = main(["reverse", scen, "--synthetic", "200", "--event", "loss > 3e6", "--out", str(out),
                   "--paths", "2000", "--pilot-paths", "1000", "--check-paths", "500", "--quiet"])
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert "P(event) = " in printed and "conditional mean of the factors" in printed and str(out) in printed
    written = stresslab.load_scenario(out)
    assert written.name == "baseline_reverse" and written.factors.innovation_mean is not None
    assert out.read_text().startswith("# Reverse stress test of scenario 'baseline'")


def test_cli_reverse_malformed_event_is_one_line_and_exit_2(tmp_path, capsys):
    scen = stresslab.__path__[0] + "/library/baseline.toml"
    status = main(["reverse", scen, "--synthetic", "20", "--event", "loss >> 3", "--out", str(tmp_path / "w.toml")])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "allowed:" in err
    assert not (tmp_path / "w.toml").exists()
