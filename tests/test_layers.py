"""Credit-enhancement layers in the engine (MODEL.md §5): conservation, capacity, theory."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import book, scenario
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import vasicek_count_pmf

import stresslab
from stresslab._kernels.allocation import allocate_losses
from stresslab._kernels.arrays import (
    BASIS_EAD,
    BASIS_PRINCIPAL,
    EXCESS_OF_LOSS,
    QUOTA_SHARE,
    LayerArrays,
)

ROOT = Path(__file__).resolve().parents[1]


def _layer(name: str = "cover", **keys) -> dict:
    return {"name": name, "kind": "quota_share", **keys}


def _run(loans, horizon: int, layers: list[dict], n_paths: int = 200, seed: int = 3, **tables):
    scen = scenario(horizon, **tables).with_overrides({"layers": layers})
    return stresslab.simulate(loans, scen, n_paths=n_paths, seed=seed)


def _stressed_book(n: int = 300):
    return book(n, pd_=0.1, term=12, amortization="annuity", rate=0.12, balance=10_000.0,
                industries=("catering", "retail"), regions=("east", "west"))


FACTORS = {"global_loading": 0.4, "industry_loading": 0.2}


# ------------------------------------------------------------------ allocation, per event
def _layer_arrays(draw, n_layers: int, n_loans: int) -> LayerArrays:
    floats = st.floats(0.0, 1.0)
    money = st.one_of(st.just(np.inf), st.floats(0.0, 50.0))
    kind = np.array(draw(st.lists(st.sampled_from([QUOTA_SHARE, EXCESS_OF_LOSS]), min_size=n_layers, max_size=n_layers)), np.int8)
    attachment = np.array(draw(st.lists(st.floats(0.0, 5.0), min_size=n_layers, max_size=n_layers)))
    limit = attachment + np.array(draw(st.lists(st.floats(0.1, 20.0), min_size=n_layers, max_size=n_layers)))
    return LayerArrays(
        kind=kind,
        share=np.array(draw(st.lists(floats, min_size=n_layers, max_size=n_layers))),
        attachment=attachment,
        limit=limit,
        basis=np.array(draw(st.lists(st.sampled_from([BASIS_EAD, BASIS_PRINCIPAL]), min_size=n_layers, max_size=n_layers)), np.int8),
        per_loan_limit=np.array(draw(st.lists(money, min_size=n_layers, max_size=n_layers))),
        capacity=np.array(draw(st.lists(money, min_size=n_layers, max_size=n_layers))),
        topup_every=np.zeros(n_layers, np.int64),
        annual_cap=np.array(draw(st.lists(money, min_size=n_layers, max_size=n_layers))),
        lag=np.zeros(n_layers, np.int64),
        monthly_fee=np.zeros(n_layers),
        eligible=np.array(draw(st.lists(st.lists(st.integers(0, 1), min_size=n_loans, max_size=n_loans), min_size=n_layers, max_size=n_layers)), np.uint8).reshape(n_layers, n_loans),
        failure_threshold=np.full(n_layers, -np.inf),
        failure_loading=np.zeros(n_layers),
        key=np.zeros(n_layers, np.uint64),
        cover_class=np.zeros(n_loans, np.int32),
        class_mask=np.zeros((1, n_layers), np.uint8),
    )


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_conservation_and_limits_per_loan_and_month(data):
    n_layers = data.draw(st.integers(0, 4))
    n_loans, n_months = data.draw(st.integers(1, 12)), data.draw(st.integers(1, 30))
    layers = _layer_arrays(data.draw, n_layers, n_loans)
    n_events = data.draw(st.integers(0, n_loans))
    loans = np.array(data.draw(st.permutations(range(n_loans)))[:n_events], np.int32)
    months = np.array(data.draw(st.lists(st.integers(0, n_months - 1), min_size=n_events, max_size=n_events)), np.int32)
    loss = np.array(data.draw(st.lists(st.floats(0.0, 30.0), min_size=n_events, max_size=n_events)))
    share_p = np.array(data.draw(st.lists(st.floats(0.0, 1.0), min_size=n_events, max_size=n_events)))
    failure = np.array(data.draw(st.lists(st.integers(0, n_months), min_size=n_layers, max_size=n_layers)), np.int64)
    count = np.array(data.draw(st.lists(st.integers(1, 4), min_size=n_events, max_size=n_events)), np.int64)
    paid = np.zeros((n_events, n_layers))
    left = np.zeros((n_months, n_layers))
    retained = allocate_losses(loans, months, count, loss, share_p, layers, failure, n_months, paid, left)

    # a pooled event of n loans is paid as n events of a loan each with an n-th of the loss
    each = np.repeat(np.arange(n_events), count)
    paid_each = np.zeros((each.size, n_layers))
    allocate_losses(loans[each], months[each], np.ones(each.size, np.int64), (loss / count)[each], share_p[each],
                    layers, failure, n_months, paid_each, np.zeros((n_months, n_layers)))
    np.testing.assert_allclose(np.add.reduceat(paid_each, np.cumsum(count) - count, axis=0) if n_events else paid, paid,
                               rtol=1e-9, atol=1e-9)

    # gross = payouts + retained, per event (float rounding only)
    np.testing.assert_allclose(paid.sum(axis=1) + retained, loss, rtol=1e-12, atol=1e-12)
    assert (paid >= 0).all() and (retained >= -1e-12).all()
    for k in range(n_layers):
        total = paid[:, k].sum()
        assert total <= layers.capacity[k] * (1 + 1e-12) + 1e-12  # capacity never exceeded
        for year in range(0, n_months, 12):
            in_year = (months >= year) & (months < year + 12)
            assert paid[in_year, k].sum() <= layers.annual_cap[k] * (1 + 1e-12) + 1e-12
        assert (paid[:, k] <= count * layers.per_loan_limit[k] * (1 + 1e-12)).all()
        assert (paid[months >= failure[k], k] == 0).all()  # a failed provider pays nothing
        assert (paid[layers.eligible[k, loans] == 0, k] == 0).all()
        assert (paid[:, k] <= layers.share[k] * loss * (1 + 1e-12) + 1e-12).all()
        if layers.kind[k] == EXCESS_OF_LOSS:
            assert (paid[:, k] <= count * layers.share[k] * layers.limit[k] * (1 + 1e-12) + 1e-12).all()
        left_k = left[:, k]
        assert (left_k >= 0).all()
        if np.isfinite(layers.capacity[k]):  # no top-ups here: capacity only falls
            assert (np.diff(left_k) <= 1e-9).all()
        else:
            assert np.isinf(left_k).all()


def test_pro_rata_when_capacity_runs_out_in_a_month():
    layers = LayerArrays(
        kind=np.array([QUOTA_SHARE], np.int8), share=np.ones(1), attachment=np.zeros(1), limit=np.full(1, np.inf),
        basis=np.array([BASIS_EAD], np.int8), per_loan_limit=np.full(1, np.inf), capacity=np.array([12.0]),
        topup_every=np.array([2]), annual_cap=np.full(1, np.inf), lag=np.zeros(1, np.int64), monthly_fee=np.zeros(1),
        eligible=np.ones((1, 4), np.uint8), failure_threshold=np.full(1, -np.inf), failure_loading=np.zeros(1),
        key=np.zeros(1, np.uint64), cover_class=np.zeros(4, np.int32), class_mask=np.ones((1, 1), np.uint8),
    )
    paid, left = np.zeros((4, 1)), np.zeros((4, 1))
    loans, months = np.arange(4, dtype=np.int32), np.array([0, 1, 1, 3], np.int32)
    retained = allocate_losses(loans, months, np.ones(4, np.int64), np.array([4.0, 10.0, 6.0, 20.0]), np.ones(4), layers, np.full(1, 4), 4, paid, left)
    # month 1 pays 4 (8 left); month 2 claims 16 > 8: paid pro rata 5 and 3; top-up to 12 in
    # month 3; month 4 claims 20 > 12: pays 12
    np.testing.assert_allclose(paid[:, 0], [4.0, 5.0, 3.0, 12.0])
    np.testing.assert_allclose(retained, [0.0, 5.0, 3.0, 8.0])
    np.testing.assert_allclose(left[:, 0], [8.0, 0.0, 12.0, 0.0])


# ------------------------------------------------------------------ in the engine
def test_engine_conservation_and_capacity():
    layers = [
        _layer("insurer", share=0.8, basis="ead", capacity=2e6, lag_months=2, fee_rate=0.02),
        {"name": "fund", "kind": "excess_of_loss", "share": 0.5, "attachment": 1000.0, "limit": 8000.0, "capacity": 1e6,
         "topup_every_months": 6, "eligibility": {"industries": ["retail"]}},
    ]
    ds = _run(_stressed_book(), 12, layers, factors=FACTORS)
    total = ds.layer_paid.sum("layer") + ds.loss_net
    np.testing.assert_allclose(total, ds.loss_gross, rtol=1e-12, atol=1e-6)
    assert ds.layer_paid.sel(layer="insurer").sum("month").max() <= 2e6 * (1 + 1e-12)
    assert (ds.layer_capacity_left >= 0).all()
    # the fund only covers retail loans
    assert (ds.layer_paid.sel(layer="fund").sum("month") <= ds.loss_by_industry.sel(industry="retail") + 1e-6).all()
    # lag: cash is the booked payout shifted by two months
    cash = ds.layer_cash.sel(layer="insurer").values
    np.testing.assert_allclose(cash[:, 2:], ds.layer_paid.sel(layer="insurer").values[:, :-2], rtol=1e-12)
    assert (cash[:, :2] == 0).all()
    # fee: 2% a year on the live exposure of covered loans (all loans here)
    live = ds.balance_by_state.sel(state=["C", "M1", "M2", "M3"]).sum("state")
    np.testing.assert_allclose(ds.layer_fee.sel(layer="insurer"), 0.02 / 12 * live, rtol=1e-12)
    assert (ds.layer_fee.sel(layer="fund") == 0).all()


def test_zero_capacity_pays_nothing_and_unlimited_is_the_closed_form_share():
    loans = _stressed_book()
    ds = _run(loans, 12, [_layer("none", share=0.7, capacity=0.0), _layer("all", share=0.6)], factors=FACTORS)
    assert (ds.layer_paid.sel(layer="none") == 0).all()
    assert (ds.layer_capacity_left.sel(layer="none") == 0).all()
    np.testing.assert_allclose(ds.layer_paid.sel(layer="all"), 0.6 * ds.loss_gross, rtol=1e-12)
    np.testing.assert_allclose(ds.loss_net, 0.4 * ds.loss_gross, rtol=1e-12, atol=1e-9)
    assert np.isinf(ds.layer_capacity_left.sel(layer="all")).all()


def test_principal_basis_covers_only_the_principal_part():
    loans = _stressed_book()
    ds = _run(loans, 12, [_layer("p", basis="principal"), _layer("rest")], factors=FACTORS)
    paid = ds.layer_paid.sum(["path", "month"])
    gross = float(ds.loss_gross.sum())
    assert 0.8 * gross < float(paid.sel(layer="p")) < gross  # principal is most, not all, of EAD
    np.testing.assert_allclose(float(paid.sum()), gross, rtol=1e-12)


def test_adding_capacity_never_raises_the_lenders_loss():
    loans = _stressed_book()
    nets = []
    for capacity in (0.0, 2e5, 1e6, 5e6):
        layers = [_layer("insurer", share=0.8, capacity=capacity),
                  {"name": "xl", "kind": "excess_of_loss", "attachment": 2000.0, "limit": 6000.0, "capacity": 3e5}]
        nets.append(_run(loans, 12, layers, factors=FACTORS).loss_net.sum("month").values)
    for smaller, larger in zip(nets, nets[1:]):
        assert (larger <= smaller + 1e-6).all()


def test_exhaustion_probability_matches_quadrature():
    """One month, unit losses, first miss = default: a fund of capacity c is exhausted iff N >= c."""
    n, p, rho, capacity = 100, 0.03, 0.2, 9.0
    loans = book(n, pd_=p)
    ds = _run(loans, 1, [_layer("fund", capacity=capacity)], n_paths=20_000, seed=31,
              factors={"global_loading": float(np.sqrt(rho))})
    exhausted = (ds.layer_capacity_left.sel(layer="fund").isel(month=0) == 0).values
    ref = 1 - np.cumsum(vasicek_count_pmf(n, p, rho))[int(capacity) - 1]
    se = np.sqrt(ref * (1 - ref) / exhausted.size)
    assert abs(exhausted.mean() - ref) < 4 * se, (exhausted.mean(), ref, se)


def test_counterparty_failure_probability_and_wrong_way():
    """Serially independent factors: the horizon failure probability is exactly p."""
    loans = _stressed_book(200)
    layers = [_layer("insurer", share=0.9, counterparty={"failure_probability": 0.2, "sensitivity": 0.6})]
    ds = _run(loans, 12, layers, n_paths=3000, seed=5, factors={**FACTORS, "ar1": 0.0})
    failed = ds.layer_failed.sel(layer="insurer").values
    se = np.sqrt(0.2 * 0.8 / failed.size)
    assert abs(failed.mean() - 0.2) < 4 * se
    month = ds.layer_failure_month.sel(layer="insurer").values
    assert ((month > 0) == (failed == 1)).all()
    # after failure it pays nothing
    paid = ds.layer_paid.sel(layer="insurer").values
    for path in np.flatnonzero(failed)[:200]:
        assert (paid[path, month[path] - 1:] == 0).all()
    # failures cluster in bad paths: more losses where the insurer failed
    loss = ds.loss_gross.sum("month").values
    assert loss[failed == 1].mean() > loss[failed == 0].mean()


def test_pledge_recovers_less_in_stressed_paths():
    """Pledge value follows the borrower's revenue: wrong-way risk (MODEL.md §4)."""
    loans = book(400, pd_=0.1, term=12, amortization="annuity", rate=0.1, balance=10_000.0,
                 pledge_value=8_000.0, industries=("catering", "retail"))
    ds = _run(loans, 12, [], n_paths=1000, seed=8, factors={"global_loading": 0.5, "industry_loading": 0.3},
              recovery={"unsecured_mean": 0.0, "pledge_lag_months": 0, "pledge_haircut": 0.2})
    ead = ds.balance_by_state.sel(state="D").isel(month=-1).values
    some = ead > 0
    rate = ds.recoveries.sum("month").values[some] / ead[some]  # pledge proceeds / EAD of the path
    loss = ds.loss_gross.sum("month").values[some]
    calm, stressed = loss < np.quantile(loss, 0.2), loss > np.quantile(loss, 0.8)
    diff = rate[calm].mean() - rate[stressed].mean()
    se = np.sqrt(rate[calm].var() / calm.sum() + rate[stressed].var() / stressed.sum())
    assert diff > 4 * se


def test_eligibility_names_are_checked_against_the_book():
    loans = _stressed_book(20)
    with pytest.raises(stresslab.ScenarioError, match=r"\[\[layers\]\] 'cover' eligibility industries: none of \['retial'\] is "
                       r"among the book's industries \(did you mean 'retail'\?\), so it would apply to no loan"):
        _run(loans, 3, [_layer(eligibility={"industries": ["retial"]})], n_paths=2)
    with pytest.raises(stresslab.ScenarioError, match="none of \\['mining'\\] is among the book's industries, so it would apply to no loan"):
        _run(loans, 3, [_layer(eligibility={"industries": ["mining"]})], n_paths=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _run(loans, 3, [_layer(eligibility={"industries": ["retail", "mining"]})], n_paths=2)
    assert any("mining" in str(w.message) for w in caught)


def test_layers_do_not_change_the_gross_results():
    loans = _stressed_book(150)
    bare = _run(loans, 12, [], factors=FACTORS)
    layered = _run(loans, 12, [_layer("insurer", share=0.5, capacity=1e5, counterparty={"failure_probability": 0.3})], factors=FACTORS)
    for name in ("loss_gross", "count_by_state", "balance_by_state", "recoveries", "interest_income"):
        assert np.array_equal(bare[name].values, layered[name].values), name
    assert "layer" not in bare.dims
