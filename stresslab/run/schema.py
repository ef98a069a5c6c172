"""The result Dataset's schema in one place: variables, dims, descriptions, attrs and checks.

The engine builds a run's Dataset here (:func:`build_dataset`), and every reader (metrics,
comparisons, plots, the report, result files) takes the dims of a variable and the checks
of a run from here, so a new output variable is declared once: its dims in :data:`DIMS`,
its description in :data:`DESCRIPTIONS`.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version

import numpy as np
import xarray as xr

from stresslab._kernels.arrays import Outputs
from stresslab._rng import STREAMS_VERSION
from stresslab.book.portfolio import Portfolio
from stresslab.compile.model import CompiledModel
from stresslab.errors import InternalError, StresslabError
from stresslab.scenario.scenario import Scenario
from stresslab.vocabulary import BORROWER_TYPES, STAGES, STATES

__all__ = [
    "DIMS", "DESCRIPTIONS", "REQUIRED_VARIABLES", "LAYER_VARIABLES", "LENDER", "build_dataset", "check_finite",
    "package_versions", "variable_values", "layers_present", "require_variables", "check_result_types", "has_layers", "validate_layers",
]

# dims of every variable a run can hold (loss_by_industry and loss_by_region are sums of loss_by_cell)
DIMS = {
    "loss_gross": ("path", "month"),
    "loss_net": ("path", "month"),
    "interest_income": ("path", "month"),
    "recoveries": ("path", "month"),
    "balance_by_state": ("path", "month", "state"),
    "count_by_state": ("path", "month", "state"),
    "loss_by_cell": ("path", "industry", "region"),
    "loss_by_loan": ("path", "loan"),
    "layer_paid": ("path", "month", "layer"),
    "layer_cash": ("path", "month", "layer"),
    "layer_capacity_left": ("path", "month", "layer"),
    "layer_fee": ("path", "month", "layer"),
    "layer_failure_month": ("path", "layer"),
    "subsidy_cost": ("path", "month"),
    "deferred_count": ("path", "month"),
    "gap_paid": ("path", "month"),
    "gap_defaulted": ("path", "month"),
    "interest_foregone": ("path", "month"),
    "stage_transition": ("path", "year", "from_stage", "to_stage"),
    "allowance": ("path", "year", "from_stage"),
    "allowance_opening": ("from_stage",),
    "capped_borrowers": (),
    "gap_volume": (),
    "loss_by_industry": ("path", "industry"),
    "loss_by_region": ("path", "region"),
    "weight": ("path",),
    "layer_failed": ("path", "layer"),
    "layer_present": ("scenario", "layer"),  # comparisons only
}

DESCRIPTIONS = {
    "loss_gross": ("gross credit loss booked in the default month (EAD minus discounted recoveries)", "CNY"),
    "loss_net": ("loss retained by the lender after credit enhancements", "CNY"),
    "interest_income": ("interest received in cash", "CNY"),
    "recoveries": ("recovery cash received in the month (pledges and collection, net of cost)", "CNY"),
    "balance_by_state": ("exposure at month end by delinquency state (D: cumulative defaulted EAD)", "CNY"),
    "count_by_state": ("number of loans at month end by delinquency state", "1"),
    "loss_by_cell": ("gross loss over the horizon by industry and region", "CNY"),
    "loss_by_loan": ("gross loss over the horizon of each tracked loan", "CNY"),
    "loss_by_industry": ("gross loss over the horizon by industry", "CNY"),
    "loss_by_region": ("gross loss over the horizon by region", "CNY"),
    "layer_paid": ("loss borne by the layer, booked in the default month", "CNY"),
    "layer_cash": ("layer payout cash in the month it is paid (default month + lag)", "CNY"),
    "layer_capacity_left": ("aggregate capacity left at month end (inf: unlimited)", "CNY"),
    "layer_fee": ("fee income of the layer's provider on the covered balance", "CNY"),
    "layer_failure_month": ("month the layer's provider failed (0: no failure)", "1"),
    "subsidy_cost": ("interest paid by the state under the interest subsidy", "CNY"),
    "deferred_count": ("number of loans in a deferral at month end", "1"),
    "gap_paid": ("loan-cap gap paid by the borrowers (in its due month, or by a cure of gap arrears)", "CNY"),
    "gap_defaulted": ("loan-cap gap arrears of the loans defaulting in the month", "CNY"),
    "interest_foregone": ("interest the lender does not charge: the rate cap's cut, waived deferral interest", "CNY"),
    "stage_transition": (("exposure at the start of the year by IFRS 9 stage then and at the year's end "
                          "(S3: defaulted in the year; repaid: paid off or prepaid)"), "CNY"),
    "allowance": ("loss allowance at the end of the year of the loans in S1 (12-month ECL) and S2 (lifetime ECL)",
                  "CNY"),
    "allowance_opening": ("loss allowance at the start by stage (through the cycle)", "CNY"),
    "capped_borrowers": ("borrowers above the loan cap", "1"),
    "gap_volume": ("loan-cap gap: scheduled exposure above the caps at the months it falls due", "CNY"),
    "layer_present": ("1 if the scenario has the layer (its layer variables are NaN otherwise)", "1"),
}
# variables of a run only when its scenario has the lever they report
_LEVER_VARIABLES = {
    "gap_paid": lambda policy: policy.loan_cap is not None,
    "gap_defaulted": lambda policy: policy.loan_cap is not None,
    "interest_foregone": lambda policy: policy.rate_cap is not None
    or (policy.deferral is not None and policy.deferral.interest == "waived"),
}

# what every run has and a summary needs
REQUIRED_VARIABLES = {name: DIMS[name] for name in ("loss_gross", "loss_net", "balance_by_state", "count_by_state", "weight")}
# what a run with credit-enhancement layers has besides
LAYER_VARIABLES = {name: DIMS[name] for name in ("layer_paid", "layer_capacity_left", "layer_fee", "layer_failed")}
LENDER = "lender"  # the party bearing the retained loss in layer metrics; no layer may take its name

_INTERNAL = ("weight", "eta", "chi2")  # kernel outputs not stored as they are (weight gets its own attrs)

# loss_gross and layer_paid summed over layers + loss_net agree within this, relative to the
# larger of |gross| and the parts' absolute sum, plus 1e-6 CNY: float rounding only.
_SUM_RTOL, _SUM_ATOL = 1e-9, 1e-6


def variable_values(ds: xr.Dataset, name: str, dims: tuple[str, ...] | None = None) -> np.ndarray:
    """``ds[name]`` as a float64 array with its dims in schema order (or in the order ``dims``)."""
    return np.asarray(ds[name].transpose(*(dims or DIMS[name])).values, dtype=np.float64)


def package_versions() -> str:
    """Versions of stresslab and the libraries that shape its numbers."""
    names = ("stresslab", "numpy", "numba", "llvmlite", "scipy", "xarray")
    return "; ".join(f"{name} {version(name)}" for name in names) + f"; python {sys.version.split()[0]}"


def check_finite(out: Outputs, portfolio: Portfolio, scenario: Scenario) -> None:
    """No NaN or inf may reach a result (capacity left is inf for unlimited layers by design)."""
    for name, value in out._asdict().items():
        if name == "layer_capacity_left" or value.dtype.kind != "f":
            continue
        bad = ~np.isfinite(value)
        if bad.any():
            where = tuple(int(i[0]) for i in np.nonzero(bad))
            raise InternalError(
                f"non-finite {name} at (path, ...) index {where} in scenario {scenario.source} on book "
                f"{portfolio.source} (digest {portfolio.digest[:12]}): valid inputs must give finite results"
            )


def build_dataset(
    out: Outputs, model: CompiledModel, portfolio: Portfolio, scenario: Scenario, seed: int, n_paths: int
) -> xr.Dataset:
    """The Dataset of a run from the kernel's outputs: variables, coords and provenance attrs."""
    data = {}
    for name, value in out._asdict().items():
        if name in _INTERNAL or ("layer" in DIMS[name] and not model.layer_names):
            continue
        if name == "loss_by_loan" and not model.tracked_loans:
            continue
        if name in ("stage_transition", "allowance") and value.shape[1] == 0:  # not recorded
            continue
        if name in _LEVER_VARIABLES and not _LEVER_VARIABLES[name](scenario.policy):
            continue
        long_name, units = DESCRIPTIONS[name]
        data[name] = xr.Variable(DIMS[name], value, {"long_name": long_name, "units": units})
    data["weight"] = xr.Variable(
        ("path",), out.weight, {"long_name": "likelihood ratio of the path (1 without importance sampling)", "units": "1"}
    )
    for name, dim, axis in (("loss_by_industry", "industry", 2), ("loss_by_region", "region", 1)):
        long_name, units = DESCRIPTIONS[name]
        data[name] = xr.Variable(("path", dim), out.loss_by_cell.sum(axis=axis), {"long_name": long_name, "units": units})
    if model.allowance_opening is not None:
        long_name, units = DESCRIPTIONS["allowance_opening"]
        data["allowance_opening"] = xr.Variable(DIMS["allowance_opening"], model.allowance_opening,
                                                {"long_name": long_name, "units": units})
    for name in ("capped_borrowers", "gap_volume"):
        long_name, units = DESCRIPTIONS[name]
        data[name] = xr.Variable(DIMS[name], getattr(model.policy, name), {"long_name": long_name, "units": units})
    if model.layer_names:
        data["layer_failed"] = xr.Variable(
            ("path", "layer"),
            (out.layer_failure_month > 0).astype(np.int8),
            {"long_name": "1 if the layer's provider failed within the horizon", "units": "1"},
        )
    coords = {
        "path": np.arange(n_paths, dtype=np.int64),
        "month": np.arange(1, model.n_months + 1, dtype=np.int64),
        "state": np.array(STATES),
        "industry": np.array(model.industries),
        "region": np.array(model.regions),
    }
    if model.tracked_loans:
        coords["loan"] = np.array(model.tracked_loans)
    if "stage_transition" in data:
        coords["year"] = np.arange(1, out.stage_transition.shape[1] + 1, dtype=np.int64)
        coords["from_stage"] = np.array(STAGES[:2])
        coords["to_stage"] = np.array([*STAGES, "repaid"])
    if model.layer_names:
        coords["layer"] = np.array(model.layer_names)
        coords["layer_capacity"] = ("layer", model.layers.capacity, {"long_name": "aggregate capacity per path (inf: unlimited)", "units": "CNY"})
        coords["layer_kind"] = ("layer", np.array([s.kind for s in scenario.layers]))
    attrs = {
        "title": f"stresslab run: scenario {scenario.name}",
        "scenario_name": scenario.name,
        "scenario": scenario.to_json(),
        "scenario_text": scenario.text,
        "scenario_source": scenario.source,
        "portfolio_digest": portfolio.digest,
        "portfolio_source": portfolio.source,
        "n_loans": portfolio.n_loans,
        "book_exposure": float(portfolio.balance.sum()),  # CNY at the start: what "% of book" figures divide by
        "seed": seed,
        "n_paths": n_paths,
        "versions": package_versions(),
        "currency": "CNY",
        "sampling": model.sampling,
        "factor_shift": json.dumps(model.tables.factor_shift.tolist()),
        "chi2_shape": 0.5 * model.params.dof + model.params.chi2_shape_shift if model.params.t_copula else 0.0,
        "defensive_share": model.params.defensive_share,
        "weight_bound": 1.0 / model.params.defensive_share,
        "random_streams": STREAMS_VERSION,
        "pooled": int(model.pooled),
        "n_pools": model.n_loans if model.pooled else 0,
    }
    if scenario.capital is not None:  # the standardised RWA weighs exposure by borrower type (docs/capital.md)
        attrs["book_exposure_by_borrower_type"] = json.dumps(
            {kind: float(portfolio.balance[portfolio.borrower_type == kind].sum()) for kind in BORROWER_TYPES})
    return xr.Dataset(data, coords=coords, attrs=attrs)


def require_variables(ds: xr.Dataset, dims: dict[str, tuple[str, ...]], need: str) -> None:
    """Raise a StresslabError unless ``ds`` has each variable with exactly these dims.

    ``need`` completes the message "results lack the variable X; ..." (what needs them).
    """
    for var, want in dims.items():
        if var not in ds.data_vars:
            raise StresslabError(f"results lack the variable {var}; {need}")
        if set(ds[var].dims) != set(want):
            raise StresslabError(
                f"results variable {var} must have dims {want}; got {ds[var].dims}"
                + (" (one scenario at a time: ds.sel(scenario=...))" if "scenario" in ds[var].dims else "")
            )


def check_result_types(ds: xr.Dataset) -> None:
    """Check a run or comparison read from a file before anything reduces it.

    Every data variable over paths and the ``path`` and ``month`` coordinates must hold
    numbers (text such as ``scenario_config`` is allowed elsewhere), and
    every dimension of a data variable must have its coordinate (a file from elsewhere
    may lack either).

    Raises
    ------
    StresslabError
        Naming the variable and what it holds or lacks.
    """
    _check_numeric(ds)
    for name, variable in ds.data_vars.items():
        missing = [dim for dim in variable.dims if dim not in ds.coords]
        if missing:
            raise StresslabError(f"results variable {name} has the dimension {missing[0]} but no {missing[0]} coordinate")


def _check_numeric(ds: xr.Dataset) -> None:
    per_path = [name for name, v in ds.data_vars.items() if "path" in v.dims]
    for name in [*per_path, *(c for c in ("path", "month") if c in ds.coords)]:
        if ds[name].dtype.kind not in "biuf":
            raise StresslabError(f"results variable {name} must hold numbers; got dtype {ds[name].dtype}")


def layers_present(ds: xr.Dataset) -> np.ndarray:
    """Which layers each scenario of a comparison has, bool array of shape (n_scenario, n_layer).

    From ``layer_present``; a comparison saved before it existed says it by NaN: a layer
    whose variables are NaN in every path and month is not the scenario's.
    """
    if "layer_present" in ds.data_vars:
        return np.asarray(ds["layer_present"].transpose("scenario", "layer").values) == 1
    paid = ds["layer_paid"].transpose("scenario", "path", "month", "layer").values
    return ~np.isnan(paid).all(axis=(1, 2))


def has_layers(ds: xr.Dataset) -> bool:
    """True when ``ds`` has a non-empty ``layer`` dimension (a scenario with layers)."""
    return ds.sizes.get("layer", 0) > 0


def validate_layers(ds: xr.Dataset) -> None:
    """Check the layer variables of a run; raise :class:`StresslabError` saying what is wrong.

    Checks: the variables of ``LAYER_VARIABLES`` exist with their dims; layer names are unique
    and none is "lender"; payouts and fees are finite; capacity left is >= 0 or +inf (never
    NaN); ``layer_failed`` is 0 or 1; and, for every path and month,
    ``loss_gross == sum_layers layer_paid + loss_net`` up to float rounding.
    """
    missing = [name for name in LAYER_VARIABLES if name not in ds.data_vars]
    if missing:
        raise StresslabError(
            f"results have a layer dimension but lack the variable(s) {', '.join(missing)}; "
            f"a summary with layers needs {', '.join(LAYER_VARIABLES)}"
        )
    for name, dims in LAYER_VARIABLES.items():
        if set(ds[name].dims) != set(dims):
            raise StresslabError(f"results variable {name} must have dims {dims}; got {ds[name].dims}")
    names = [str(v) for v in ds["layer"].values.tolist()]
    duplicates = sorted({v for v in names if names.count(v) > 1} | ({LENDER} & set(names)))
    if duplicates:
        raise StresslabError(
            f"layer names must be unique and not {LENDER!r} (the lender is a party of its own); "
            f"got {', '.join(map(repr, duplicates))} in {names}"
        )
    for name in ("layer_paid", "layer_fee"):
        if not np.all(np.isfinite(ds[name].values)):
            raise StresslabError(f"results variable {name} holds NaN or infinite values")
    left = variable_values(ds, "layer_capacity_left")
    if np.any(np.isnan(left) | (left < 0)):
        raise StresslabError("results variable layer_capacity_left must be >= 0 or inf (unlimited); it holds NaN or negative values")
    failed = np.asarray(ds["layer_failed"].values)
    if not np.all((failed == 0) | (failed == 1)):
        raise StresslabError("results variable layer_failed must be 0 or 1")
    gross, net, paid = variable_values(ds, "loss_gross"), variable_values(ds, "loss_net"), variable_values(ds, "layer_paid")
    parts = paid.sum(axis=2) + net
    scale = np.maximum(np.abs(gross), np.abs(paid).sum(axis=2) + np.abs(net))
    bad = np.abs(gross - parts) > _SUM_RTOL * scale + _SUM_ATOL
    if np.any(bad):
        p, t = (int(i[0]) for i in np.nonzero(bad))
        raise StresslabError(
            f"loss_gross must equal the sum of layer_paid over layers plus loss_net; it does not in "
            f"{np.count_nonzero(bad)} path-months (first: path {ds['path'].values[p]}, month "
            f"{ds['month'].values[t]}: gross {gross[p, t]!r}, parts {parts[p, t]!r})"
        )
