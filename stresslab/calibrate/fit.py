"""calibrate(): a loan tape -> estimates with intervals -> a fitted scenario (and its TOML)."""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from scipy.special import ndtr, ndtri

from stresslab._files import write_atomically
from stresslab.book.history import History
from stresslab.calibrate.correlation import AssetCorrelationFit, fit_asset_correlation
from stresslab.calibrate.pd import implied_pd, observed_pd, observed_pd_spread
from stresslab.calibrate.spread import ttc_rate_se_model
from stresslab.calibrate.transitions import ALL, fit_transitions, segment_labels
from stresslab.errors import StresslabError
from stresslab.scenario.scenario import Scenario
from stresslab.scenario.specs import to_table

__all__ = ["Calibration", "calibrate", "check_output_place"]

_Z95 = 1.959963984540054
_DELINQUENT = ("M1", "M2", "M3")


@dataclass(frozen=True, eq=False)
class Calibration:
    """Result of :func:`calibrate`.

    Attributes
    ----------
    scenario : Scenario
        ``base`` with the fitted ``[delinquency]`` roll rates, cure rates and prepayment
        rate, and those also as its calibration reference (the tape's PDs were measured
        under the lender's own chain, so the fitted scenario is a baseline of its own).
    transitions : xarray.Dataset
        :func:`stresslab.fit_transitions` of the tape (by segment when ``by`` is given),
        with ``rate_ttc_se_model``: the s.e. of ``rate_ttc`` under the fitted rates and the
        base's factor law (:func:`stresslab.calibrate.spread.ttc_rate_se_model`), which
        the intervals of the TOML use (the tape's own ``rate_ttc_se`` understates the
        factors' part when they persist).
    pooled : xarray.Dataset
        The pooled fit the scenario's values come from (the scenario schema holds one chain).
    pd : xarray.Dataset
        Per segment: observed (:func:`stresslab.observed_pd`) and chain-implied
        (:func:`stresslab.implied_pd`) pd over ``pd_horizon_months``, and
        ``pd_se_model``, the s.e. of the observed pd under the fitted chain and the base's
        factor law (:func:`stresslab.calibrate.pd.observed_pd_spread`: the tape's own HAC
        ``pd_se`` cannot see the factor risk of a tape a few H months long), and ``pd_z`` =
        (observed - implied) / pd_se_model.
    correlation : dict of str to AssetCorrelationFit
        Per segment: the Vasicek fit of the monthly miss (C -> M1) series, taken as one
        period a month (the months independent: ar1 = 0; with persistent factors the
        estimate stays consistent but its s.e. is too small). ρ is the systematic variance
        of the segment's average latent: the sum of squared loadings of its loans when
        they share every factor (one industry and region, or only a global factor); a
        segment spanning several industries or regions averages their factors out in part,
        so its ρ is smaller than its loans'.
    goodness : xarray.Dataset
        ``dispersion(segment, from_state)``: Pearson chi-square of the monthly counts
        against the through-the-cycle rates, over its degrees of freedom; 1 for a chain
        without factors, above 1 by the factors' month-to-month variation.
    dropped : dict
        Month pairs and cohort members left out (gaps, maturities, censored loans ...).
    base_source : str
        The file of ``base`` ("" when the built-in defaults were the base).
    """

    scenario: Scenario
    transitions: xr.Dataset
    pooled: xr.Dataset
    pd: xr.Dataset
    correlation: dict[str, AssetCorrelationFit]
    goodness: xr.Dataset
    dropped: dict[str, int]
    base_source: str

    def to_toml(self, out: str | os.PathLike[str] | None = None) -> str:
        """The fitted scenario as TOML: ``extends`` the base (relative to ``out``'s folder),
        each fitted value commented with its estimate, 95% interval and sample size."""
        return _toml(self, None if out is None else Path(out))

    def save(self, out: str | os.PathLike[str]) -> None:
        """Write :meth:`to_toml` to ``out`` atomically."""
        path = Path(out)
        text = self.to_toml(path)
        write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def check_output_place(base_source: str, out: str | os.PathLike[str]) -> None:
    """Refuse an output the fitted scenario could not be loaded from: its base must be in its folder or below."""
    if not base_source or base_source == "<dict>":
        return
    base, folder = Path(base_source).resolve(), Path(out).resolve().parent
    if not base.is_relative_to(folder):
        raise StresslabError(f"{out}: the fitted scenario extends {base_source}, which must be in the folder of "
                             f"the output or below it (scenario files load parents only from there); write it to "
                             f"{base.parent} or copy the base next to it")


def calibrate(history: History, base: Scenario | None = None, by: str | None = None) -> Calibration:
    """Fit the scenario inputs that a loan tape identifies, with intervals and checks.

    Parameters
    ----------
    history : History
        The lender's loan tape (:func:`stresslab.load_history`).
    base : Scenario, optional
        The scenario to extend: its factor model, recoveries, layers and ``default_after``
        are kept; default the built-in defaults.
    by : str, optional
        A tape column to fit transitions, pds and correlations by segment as well.

    Returns
    -------
    Calibration

    Notes
    -----
    Fitted into the scenario: the monthly roll rates M_k -> M_{k+1} (D from the last
    delinquent state), cure rates M_k -> C and the prepayment rate C -> P, as their
    through-the-cycle estimates (``rate_ttc`` of :func:`stresslab.fit_transitions`; its
    Notes say why not the pooled cohort ratio), which is what the model takes as inputs
    (MODEL.md §3: without stress the unconditional one-month rates are the inputs). The pd
    is a column of the book, not of the scenario: the observed pd per segment is returned
    (and written as a comment) for the book. Not fitted (left to ``base``): sensitivities
    and the cycle sensitivity (a tape without stress does not identify them), the split of
    ρ into global, industry and region loadings and ar1 (the panel fit), recoveries.
    """
    if base is None:
        base = Scenario.from_dict({})
    transitions = fit_transitions(history, by=by)
    pooled = transitions if by is None else fit_transitions(history)
    rates = pooled["rate_ttc"].sel(segment=ALL)
    deq = base.delinquency
    reachable = [k for k in range(3) if k + 1 < deq.default_after]
    to = ("M2", "M3", "D")
    roll = list(deq.roll_rates)
    cure = list(deq.cure_rates)
    for k in reachable:
        target = to[k] if k + 2 < deq.default_after else "D"
        roll[k] = float(rates.sel(from_state=_DELINQUENT[k], to_state=target))
        cure[k] = float(rates.sel(from_state=_DELINQUENT[k], to_state="C"))
    prepay = float(rates.sel(from_state="C", to_state="P"))
    for name, value in [("roll", roll), ("cure", cure), ("prepayment", [prepay])]:
        if not all(math.isfinite(v) for v in value):
            raise StresslabError(f"{history.source}: the tape has no month pairs to estimate the {name} rate(s) "
                                 f"from every state; got {value}")
    fitted = {"roll_rates": roll, "cure_rates": cure, "prepayment_rate": prepay}
    reference = to_table(base.reference)
    reference["delinquency"] = {**reference["delinquency"], **fitted}
    scenario = base.with_overrides({
        "name": f"{base.name}_fitted",
        "description": f"{base.name} with the delinquency chain fitted to {history.source}",
        **{f"delinquency.{k}": v for k, v in fitted.items()},
        "calibration_reference": reference,
    })

    horizon = base.pd_horizon_months
    observed = observed_pd(history, horizon=horizon, by=by)
    rho = _segment_rho(history, base, observed["segment"].values, by)
    transitions = _with_model_se(transitions, history, scenario, by)
    pooled = transitions if by is None else _with_model_se(pooled, history, scenario, None)
    implied = implied_pd(transitions.sel(segment=observed["segment"].values), scenario, rho, horizon=horizon)
    pd = xr.merge([observed, implied], compat="override")
    spread = [observed_pd_spread(transitions["rate_ttc"].sel(segment=seg), scenario, float(rho.sel(segment=seg)),
                                 observed["members"].sel(segment=seg).values, horizon=horizon)
              for seg in observed["segment"].values]
    pd["pd_se_model"] = ("segment", np.asarray(spread), {"long_name": "model-based s.e. of pd (parametric bootstrap)"})
    pd["pd_z"] = (pd["pd"] - pd["pd_implied"]) / pd["pd_se_model"]

    correlation = {}
    for segment in transitions["segment"].values:
        monthly = transitions["monthly_count"].sel(segment=segment, from_state="C")
        counts = monthly.sum("to_state").values
        misses = monthly.sel(to_state="M1" if deq.default_after > 1 else "D").values
        keep = counts > 0
        try:
            correlation[str(segment)] = fit_asset_correlation(misses[keep], counts[keep])
        except StresslabError:  # too few months or no misses: nothing to report for the segment
            continue
    return Calibration(scenario=scenario, transitions=transitions, pooled=pooled, pd=pd, correlation=correlation,
                       goodness=_goodness(transitions),
                       dropped={**{k: int(v) for k, v in transitions.attrs.items() if k in ("gaps", "maturity", "nothing_due")},
                                **{f"pd_{k}": int(v) for k, v in observed.attrs.items() if k in ("gaps", "censored", "short_term")}},
                       base_source=base.source)


def _with_model_se(ds: xr.Dataset, history: History, scenario: Scenario, by: str | None) -> xr.Dataset:
    """``ds`` with ``rate_ttc_se_model`` (stresslab.calibrate.spread) for each of its segments."""
    rho = _segment_rho(history, scenario, ds["segment"].values, by)
    out = {}
    for scale, name, what in [("rate", "rate_ttc_se_model", "rate_ttc"), ("probit", "rate_ttc_probit_se_model", "probit of rate_ttc")]:
        se = xr.concat([ttc_rate_se_model(ds, seg, scenario, float(rho.sel(segment=seg)), scale=scale)
                        for seg in ds["segment"].values], dim="segment")
        se.attrs = {"long_name": f"model-based s.e. of {what} (parametric bootstrap over the factors)"}
        out[name] = se.drop_vars("segment", errors="ignore").assign_coords(segment=ds["segment"])
    return ds.assign(**out)


def _segment_rho(history: History, base: Scenario, segments: np.ndarray, by: str | None) -> xr.DataArray:
    """Systematic variance of each segment's latent under ``base``: its industries' rho, averaged over rows."""
    f = history.frame
    names = f["industry"].astype(str).to_numpy() if "industry" in f.columns else np.full(len(f), "")
    industries = sorted(set(names))
    with warnings.catch_warnings():  # base may name industries the tape has not: irrelevant here
        warnings.simplefilter("ignore")
        loads = np.asarray(base.factors.loadings(industries), dtype=float)
    rho_of = dict(zip(industries, (loads**2).sum(axis=1)))
    rho = np.array([rho_of[n] for n in names])
    group = segment_labels(history, by)
    values = [float(rho[group == s].mean()) for s in segments]
    return xr.DataArray(values, coords={"segment": segments}, dims="segment")


def _goodness(ds: xr.Dataset) -> xr.Dataset:
    monthly = ds["monthly_count"]
    at_risk = monthly.sum("to_state")
    expected = at_risk * ds["rate_ttc"]
    used = ds["rate_ttc"] > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        cells = xr.where(used & (expected > 0), (monthly - expected) ** 2 / expected, 0.0)
    chi2 = cells.sum(("month", "to_state"))
    months = (at_risk > 0).sum("month")
    dof = (months - 1) * (used.sum("to_state") - 1)
    return xr.Dataset({"chi2": chi2, "dof": dof, "dispersion": chi2 / dof.where(dof > 0)})


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _exact(x: float) -> str:
    return repr(float(x))  # shortest text that reads back as the same float


def _toml(result: Calibration, out: Path | None) -> str:
    scn, pooled = result.scenario, result.pooled.sel(segment=ALL)
    deq = scn.delinquency
    lines = [f"# Fitted by stresslab calibrate from {result.transitions.attrs['source']}",
             "# Each fitted value: through-the-cycle estimate (mean of the monthly cohort rates), its 95% interval",
             "# (probit(estimate) -+ 1.96 s.e., the s.e. under the base's factor law: docs/calibration.md) and n = month pairs.",
             f"# Month pairs left out: {json.dumps(result.dropped)}", ""]
    if result.base_source and result.base_source != "<dict>":
        base = Path(result.base_source).resolve()
        folder = out.resolve().parent if out is not None else None
        if out is not None:
            check_output_place(result.base_source, out)
        rel = os.path.relpath(base, folder) if folder is not None else str(base)
        lines.append(f"extends = {json.dumps(Path(rel).as_posix())}")
    lines += [f"name = {json.dumps(scn.name)}", f"description = {json.dumps(scn.description)}", ""]

    def comment(from_state: str, to_state: str) -> str:
        cell = pooled.sel(from_state=from_state, to_state=to_state)
        est, se = float(cell["rate_ttc"]), float(cell["rate_ttc_probit_se_model"])
        n = int(pooled["at_risk"].sel(from_state=from_state))
        lo, hi = (ndtr(ndtri(est) + z * se) for z in (-_Z95, _Z95)) if 0.0 < est < 1.0 else (est, est)
        return f"{from_state}->{to_state} {_fmt(est)} [{_fmt(lo)}, {_fmt(hi)}], n = {n:,}"

    table = []
    roll_notes, cure_notes = [], []
    for k in range(3):
        if k + 1 < deq.default_after:
            target = ("M2", "M3", "D")[k] if k + 2 < deq.default_after else "D"
            roll_notes.append(comment(_DELINQUENT[k], target))
            cure_notes.append(comment(_DELINQUENT[k], "C"))
        else:
            roll_notes.append(f"{_DELINQUENT[k]}: not reached with default_after = {deq.default_after} (base value)")
            cure_notes.append(roll_notes[-1])
    table.append(f"roll_rates = [{', '.join(_exact(v) for v in deq.roll_rates)}]")
    table += [f"#   {note}" for note in roll_notes]
    table.append(f"cure_rates = [{', '.join(_exact(v) for v in deq.cure_rates)}]")
    table += [f"#   {note}" for note in cure_notes]
    table.append(f"prepayment_rate = {_exact(deq.prepayment_rate)}  # {comment('C', 'P')}")
    lines += ["[delinquency]", *table, ""]
    # the PDs of the book were measured under this chain: it is its own calibration reference
    lines += ["[calibration_reference.delinquency]",
              f"default_after = {deq.default_after}",
              f"roll_rates = [{', '.join(_exact(v) for v in deq.roll_rates)}]",
              f"cure_rates = [{', '.join(_exact(v) for v in deq.cure_rates)}]",
              f"prepayment_rate = {_exact(deq.prepayment_rate)}",
              f"sensitivities = {{ roll = {_exact(deq.roll_sensitivity)}, cure = {_exact(deq.cure_sensitivity)} }}", ""]
    lines.append("[calibration_reference.seasonality]")
    lines += [f"{name} = [{', '.join(_exact(v) for v in values)}]" for name, values in scn.reference.seasonal_factors]
    lines.append("")
    lines.append(f"# Observed {result.pd.attrs.get('horizon', scn.pd_horizon_months)}-month pd of current loans "
                 "(for the book's pd column; not a scenario key):")
    for segment in result.pd["segment"].values:
        p = result.pd.sel(segment=segment)
        book = f", book {_fmt(float(p['pd_book']))}" if "pd_book" in p else ""
        lo, hi = float(p["pd"] - _Z95 * p["pd_se_model"]), float(p["pd"] + _Z95 * p["pd_se_model"])
        lines.append(f"#   {segment}: {_fmt(float(p['pd']))} [{_fmt(lo)}, {_fmt(hi)}], "
                     f"{int(p['members'].sum()):,} loan-cohorts; implied by the fitted chain "
                     f"{_fmt(float(p['pd_implied']))} [{_fmt(float(p['pd_implied_lower']))}, "
                     f"{_fmt(float(p['pd_implied_upper']))}]{book}")
    lines.append("# Asset correlation of each segment's monthly miss series (Vasicek MLE, months taken independent; rho of")
    lines.append("# the segment's average latent; not written: the split into loadings and ar1 needs the panel fit):")
    for segment, fit in result.correlation.items():
        lines.append(f"#   {segment}: rho {_fmt(fit.rho)} (s.e. {_fmt(fit.rho_se)}), monthly miss rate "
                     f"{_fmt(fit.pd)} (s.e. {_fmt(fit.pd_se)}), {fit.n_periods} months")
    return "\n".join(lines) + "\n"
