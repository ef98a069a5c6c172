"""compare() and sweep(): scenarios on common draws, stacked along `scenario`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import stresslab
from stresslab.run.compare import scenario_run

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("baseline", "guarantee_insurance", "compensation_fund")


@pytest.fixture(scope="module")
def runs():
    book = stresslab.synthetic_portfolio(200, seed=1)
    scenarios = [stresslab.load_scenario(ROOT / "scenarios" / f"{n}.toml") for n in NAMES]
    return book, scenarios, stresslab.compare(book, scenarios, n_paths=30, seed=1)


def test_each_scenario_of_a_comparison_is_its_own_run(runs):
    book, scenarios, ds = runs
    assert list(ds.scenario.values) == list(NAMES)
    for scen in scenarios:
        alone = stresslab.simulate(book, scen, n_paths=30, seed=1)
        run = scenario_run(ds, scen.name)
        assert run.attrs["scenario_name"] == scen.name and run.attrs["scenario"] == scen.to_json()
        for name in alone.data_vars:
            assert np.array_equal(alone[name].values, run[name].values), (scen.name, name)
            assert alone[name].dtype == run[name].dtype
        assert np.isfinite(stresslab.summary(run).expected_loss).all()


def test_comparison_round_trips_through_netcdf(runs, tmp_path):
    _, _, ds = runs
    stresslab.save_results(ds, tmp_path / "cmp.nc")
    back = stresslab.load_results(tmp_path / "cmp.nc")
    assert all(np.array_equal(ds[v].values, back[v].values, equal_nan=ds[v].dtype.kind == "f") for v in ds.data_vars)


def test_sweep_labels_and_values(runs):
    book, scenarios, _ = runs
    ds = stresslab.sweep(book, scenarios[2], "layers.0.capacity", [0.0, 5e6], n_paths=10, seed=2)
    assert list(ds.sweep_value.values) == [0.0, 5e6] and ds.attrs["sweep_key"] == "layers.0.capacity"
    left = ds.layer_capacity_left.isel(month=0).values
    assert (left[0] == 0).all()  # capacity 0: nothing to pay


def test_bad_comparisons_are_refused(runs):
    book, scenarios, ds = runs
    with pytest.raises(stresslab.StresslabError, match="names must differ"):
        stresslab.compare(book, [scenarios[0], scenarios[0]], n_paths=2, seed=1)
    with pytest.raises(stresslab.StresslabError, match="at least one scenario"):
        stresslab.compare(book, [], n_paths=2, seed=1)
    with pytest.raises(stresslab.StresslabError, match="no scenario 'nope'"):
        scenario_run(ds, "nope")
