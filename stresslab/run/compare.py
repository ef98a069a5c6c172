"""Several scenarios on the same draws: compare() and sweep() (common random numbers, MODEL.md §7).

Every random number is a pure function of (seed, path, loan, month, purpose), so runs of
different scenarios with one seed share their draws path by path, and the difference of a
metric between two scenarios is measured on paired paths.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import xarray as xr

from stresslab.book.portfolio import Portfolio
from stresslab.errors import StresslabError
from stresslab.run.schema import DESCRIPTIONS, layers_present
from stresslab.run.simulate import simulate
from stresslab.scenario.scenario import Scenario

__all__ = ["compare", "sweep", "scenario_run"]


def compare(
    portfolio: Portfolio,
    scenarios: Sequence[Scenario],
    n_paths: int,
    seed: int,
    *,
    chunk_size: int | None = None,
    threads: int | None = None,
    progress: bool | None = None,
    scheduler: object | None = None,
    workers: int | None = None,
    pooled: bool = False,
) -> xr.Dataset:
    """Run scenarios on the same book and the same draws, stacked along ``scenario``.

    Parameters
    ----------
    portfolio : Portfolio
    scenarios : sequence of Scenario
        At least one; the first is the baseline of paired comparisons. Names must differ.
    n_paths, seed, chunk_size, threads, progress, scheduler, workers, pooled
        As in :func:`stresslab.simulate`.

    Returns
    -------
    xarray.Dataset
        The variables of :func:`stresslab.simulate` with a leading ``scenario`` dimension
        (labelled by scenario name), plus ``scenario_config(scenario)``, the resolved
        scenario as JSON. Layer variables span the union of the scenarios' layers, NaN
        where a scenario has no such layer. Summarise with
        :func:`stresslab.metrics.paired.compare_summary`.
    """
    if len(scenarios) == 0:
        raise StresslabError("compare needs at least one scenario")
    names = [s.name for s in scenarios]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise StresslabError(f"scenario names must differ to label the comparison; repeated: {duplicates}")
    options = {
        "chunk_size": chunk_size, "threads": threads, "progress": progress, "scheduler": scheduler, "workers": workers,
        "pooled": pooled,
    }
    runs = [simulate(portfolio, s, n_paths, seed, **options) for s in scenarios]
    return _stack(runs, names, [s.to_json() for s in scenarios])


def sweep(
    portfolio: Portfolio,
    scenario: Scenario,
    key: str,
    values: Sequence[object],
    n_paths: int,
    seed: int,
    **kwargs: object,
) -> xr.Dataset:
    """Run one scenario with ``key`` set to each of ``values`` (e.g. a fund size), on common draws.

    Parameters
    ----------
    portfolio : Portfolio
    scenario : Scenario
    key : str
        Dotted key path, as in :meth:`Scenario.with_overrides` (``"layers.fund.capacity"``).
    values : sequence
        The values to try, in order.
    n_paths, seed, **kwargs
        As in :func:`compare`.

    Returns
    -------
    xarray.Dataset
        As :func:`compare`, with scenarios labelled ``key=value`` and, when every value is a
        number, a ``sweep_value(scenario)`` coordinate.
    """
    if len(values) == 0:
        raise StresslabError(f"sweep of {key} needs at least one value")
    variants = []
    for value in values:
        variant = scenario.with_overrides({key: value})
        variants.append(variant.with_overrides({"name": f"{key}={value}"}))
    ds = compare(portfolio, variants, n_paths, seed, **kwargs)
    ds.attrs["sweep_key"] = key
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        ds = ds.assign_coords(sweep_value=("scenario", np.array(values, dtype=float)))
    return ds


def scenario_run(ds: xr.Dataset, name: str) -> xr.Dataset:
    """One scenario of a :func:`compare` or :func:`sweep` result, as :func:`stresslab.simulate` returns it.

    Drops the layers the scenario does not have, restores integer types and the run's
    attributes (scenario name and configuration), so :func:`stresslab.summary`, the plots
    and the report take it as they take a single run.
    """
    if "scenario" not in ds.dims:
        raise StresslabError("scenario_run needs a comparison with a 'scenario' dimension")
    names = [str(n) for n in ds.scenario.values]
    if name not in names:
        raise StresslabError(f"no scenario {name!r} in the comparison; it has {names}")
    run = ds.sel(scenario=name, drop=True)
    if "layer" in run.dims:
        present = layers_present(ds)[names.index(name)]
        own = [str(k) for k, keep in zip(run.layer.values, present) if keep]
        run = run.drop_vars("layer_present", errors="ignore")
        run = run.sel(layer=own) if own else run.drop_dims("layer")
        if own:
            run = run.set_coords(["layer_capacity", "layer_kind"])
            for var, dtype in (("layer_failed", np.int8), ("layer_failure_month", np.int64)):
                run[var] = run[var].astype(dtype)
    config = str(run["scenario_config"].values)
    attrs = {k: v for k, v in ds.attrs.items() if k != "scenarios"}
    attrs.update(scenario_name=name, scenario=config)
    return run.drop_vars("scenario_config").assign_attrs(attrs)


def _stack(runs: list[xr.Dataset], names: list[str], configs: list[str]) -> xr.Dataset:
    # layer descriptions differ between scenarios: keep them per scenario
    per_scenario = [run.reset_coords([c for c in ("layer_capacity", "layer_kind") if c in run.coords]) for run in runs]
    ds = xr.concat(
        [run.expand_dims(scenario=[name]) for run, name in zip(per_scenario, names)],
        dim="scenario",
        join="outer",
        combine_attrs="drop_conflicts",
        data_vars="all",
        coords="different",
        compat="equals",
    )
    if "layer_kind" in ds:
        ds["layer_kind"] = ds.layer_kind.fillna("").astype(str)
    ds["scenario_config"] = ("scenario", np.array(configs))
    if "layer" in ds.dims:  # which layers each scenario has (the others are NaN-padded)
        own = [set(run.layer.values.tolist()) if "layer" in run.dims else set() for run in runs]
        ds["layer_present"] = (("scenario", "layer"), np.array([[v in o for v in ds.layer.values.tolist()] for o in own], dtype=np.int8),
                               {"long_name": DESCRIPTIONS["layer_present"][0], "units": "1"})
    ds.attrs["scenarios"] = json.dumps(names)
    return ds
