"""The values of a run's report page: numbers formatted as text, table rows, figures.

:func:`page_values` computes everything the template ``templates/report.html.j2`` shows and
nothing of how it looks: there is no HTML here. Each section is a
:class:`~types.SimpleNamespace` with an ``id`` (the anchor, and the name of its template
``templates/sections/<id>.html.j2``), a ``heading`` and the values its template reads.
Table cells are text, :class:`CI` (a figure with its interval) or :class:`Share` (an
amount with its share); figures are :class:`~stresslab.report.figures.Plot`.

The numbers are those of :func:`stresslab.summary`, :func:`stresslab.es_contributions`,
:func:`stresslab.expected_loss_contributions` and :func:`stresslab.irb_reference`; the
figures are those of :mod:`stresslab.plots`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np
import xarray as xr

from stresslab import plots
from stresslab.book.portfolio import Portfolio
from stresslab.errors import StresslabError
from stresslab.estimators import check_level, mean_ci
from stresslab.metrics.contributions import (
    es_contributions,
    expected_loss_contributions,
)
from stresslab.metrics.regulatory import irb_reference
from stresslab.metrics.summary import summary
from stresslab.report.figures import TALL, bins, plot, policy_fan
from stresslab.run.schema import has_layers, package_versions
from stresslab.text import pooled_text

__all__ = ["CI", "Share", "Table", "check", "page_values"]

_DPD_MONTHS = (1, 3, 6, 12, 24, 36)
_BOOK_STATES = ("C", "M1", "M2", "M3")
_LEVER_TEXT = {
    "loan_cap": "single-borrower loan cap: the balance above the cap falls due (refinancing gap)",
    "deferral": "payment holiday: nothing due for some months, state frozen",
    "interest_subsidy": "interest subsidy: the state pays part of the interest",
    "rate_cap": "interest rate cap: loans above it are re-priced",
    "revenue_support": "revenue support (e.g. tax relief): borrowers' revenue raised",
    "seasonal_schedule": "seasonal installments: the schedule follows the industry's season",
    "collection": "collection strategy: recovery rate, lag and cost preset",
}


# ----------------------------------------------------------------------------- cells and tables
class CI(NamedTuple):
    """A figure and its confidence interval, as text: shown as ``value [low, high]``."""

    value: str
    low: str
    high: str


class Share(NamedTuple):
    """An amount and its share of a total, as text: shown as ``value (share)``."""

    value: str
    share: str


Cell = str | CI | Share


class Table(NamedTuple):
    """A table: a header, body rows of cells and an optional total row (its first cell bold)."""

    header: list[str]
    rows: list[list[Cell]]
    total: list[Cell] | None = None
    numeric_from: int = 1  # columns from this one on hold numbers (right-aligned)


def _money(v: float) -> str:
    v = float(v)
    if np.isnan(v):
        return "–"
    if np.isinf(v):
        return "∞" if v > 0 else "−∞"
    return f"{v:,.0f}"


def _pct(v: float, digits: int = 1) -> str:
    v = float(v)
    return f"{100 * v:.{digits}f}%" if np.isfinite(v) else "–"


def _level(a: float) -> str:
    return f"{100 * float(a):g}%"


def _ci(v: float, bounds: object, fmt: Callable[[float], str] = _money, needed: int = 0) -> CI:
    """``v`` with the interval ``bounds`` (a DataArray with a ``bound`` dim, or a (low, high) pair).

    An upper bound of +inf (a VaR or ES the paths cannot bound from above) reads "n/a (too
    few paths[: N needed])", with ``needed`` from the summary's ``value_at_risk_paths_needed``.
    """
    if isinstance(bounds, xr.DataArray) and "bound" in bounds.dims:
        bounds = bounds.sel(bound=["low", "high"]).values
    low, high = bounds
    if np.isposinf(float(high)):
        return CI(fmt(v), fmt(low), f"n/a (too few paths{f': {needed:,} needed' if needed else ''})")
    return CI(fmt(v), fmt(low), fmt(high))


def _kv(rows: list[tuple[str, object]]) -> list[tuple[str, str]]:
    """Rows of a key-value table, values as text."""
    return [(key, str(value)) for key, value in rows]


# ----------------------------------------------------------------------------- sections
def _scenario(ds: xr.Dataset, config: dict | None, problem: str) -> SimpleNamespace:
    a = ds.attrs
    rows: list[tuple[str, object]] = [("name", a.get("scenario_name", "?"))]
    if config:
        if config.get("description"):
            rows.append(("description", config["description"]))
        for key in ("horizon_months", "start_month"):
            if key in config:
                rows.append((key.replace("_", " "), config[key]))
        shocks = config.get("shocks") or {}
        stressed = [f"{kind} {name}" for kind in ("industry", "region") for name in (shocks.get(kind) or {})]
        rows.append(("revenue shocks", ", ".join(stressed) if stressed else "none"))
        layers = ", ".join(str(layer.get("name", "?")) for layer in config.get("layers") or [])
        rows.append(("credit enhancement layers", layers or "none"))
        rows.append(("policy levers", ", ".join(config.get("policy") or {}) or "none"))
    rows.append(("source", a.get("scenario_source", "?")))
    text = a.get("scenario_text")
    return SimpleNamespace(
        id="scenario", heading="Scenario", rows=_kv(rows),
        text=str(text) if text else "",
        resolved=json.dumps(config, indent=2, ensure_ascii=False) if config else "",
        problem=problem,
    )


def _book(ds: xr.Dataset, portfolio: Portfolio | None) -> SimpleNamespace:
    a = ds.attrs
    rows: list[tuple[str, object]] = [
        ("loans", f"{int(a['n_loans']):,}" if "n_loans" in a else "?"),
        ("digest (SHA-256)", a.get("portfolio_digest", "?")),
        ("source", a.get("portfolio_source", "?")),
    ]
    section = SimpleNamespace(id="book", heading="Book", with_book=portfolio is not None, tables=[])
    if portfolio is None:
        section.rows = _kv(rows)
        return section
    balance = np.asarray(portfolio.balance, dtype=np.float64)
    total = balance.sum()
    rows.insert(1, ("total balance, CNY", _money(total)))
    section.rows = _kv(rows)
    for column in ("industry", "region"):
        labels, code = portfolio.codes(column)
        body: list[list[Cell]] = []
        for g, label in enumerate(labels):
            mask = code == g
            bal = balance[mask]
            mix = [float(bal[portfolio.state[mask] == s].sum() / bal.sum()) for s in _BOOK_STATES]
            pd_mean = float(portfolio.pd[mask] @ bal / bal.sum())
            body.append([str(label), f"{int(mask.sum()):,}", _money(bal.sum()), _pct(bal.sum() / total), _pct(pd_mean, 2)]
                        + [_pct(m) for m in mix])
        header = [column, "loans", "balance, CNY", "share", "PD (12m, balance-weighted)"] + [f"{s} %" for s in _BOOK_STATES]
        section.tables.append((column, Table(header, body)))
    return section


def _headline(s: xr.Dataset, n_months: int) -> SimpleNamespace:
    metrics = ("expected_loss", "expected_loss_ci", "std_dev", "value_at_risk", "value_at_risk_ci",
               "expected_shortfall", "expected_shortfall_ci")
    same = all(np.array_equal(s[v].sel(measure="gross"), s[v].sel(measure="net")) for v in metrics)
    measures = ("gross",) if same else ("gross", "net")
    windows = ("horizon", "12m") if n_months > 12 else ("horizon",)  # up to 12 months the windows coincide
    window_names = {"horizon": f"months 1–{n_months}", "12m": "months 1–12"}
    header = ["metric"] + [f"{m} loss, {window_names[w]}" for m in measures for w in windows]

    def cells(name: str, **at: object) -> list[Cell]:
        out: list[Cell] = []
        for m in measures:
            for w in windows:
                sel = s.sel(measure=m, window=w, **at)
                if name == "std_dev":
                    out.append(_money(float(sel[name])))
                    continue
                needed = int(sel["value_at_risk_paths_needed"]) if name != "expected_loss" else 0
                out.append(_ci(float(sel[name]), sel[f"{name}_ci"], needed=needed))
        return out

    rows = [["Expected loss (EL)"] + cells("expected_loss"), ["Standard deviation"] + cells("std_dev")]
    for level in s["level"].values:
        rows.append([f"VaR {_level(level)}"] + cells("value_at_risk", level=level))
        rows.append([f"ES {_level(level)}"] + cells("expected_shortfall", level=level))
    months = s["month"].values.tolist()
    shown = [t for t in dict.fromkeys((*_DPD_MONTHS, int(months[-1]))) if t in months]
    dpd: list[list[Cell]] = [["mean"] + [_pct(float(s["dpd30_ratio_mean"].sel(month=t)), 2) for t in shown]]
    if 0.95 in s["quantile"].values:
        q95 = s["dpd30_ratio_quantile"].sel(quantile=0.95)
        dpd.append(["95% quantile"] + [_pct(float(q95.sel(month=t)), 2) for t in shown])
    return SimpleNamespace(
        id="headline", heading="Headline figures", table=Table(header, rows),
        ci=_level(s.attrs.get("ci", 0.95)), net_is_gross=same,
        paths=f"{int(s['n_paths']):,}", ess=f"{float(s['effective_sample_size']):,.0f}",
        dpd=Table(["month"] + [str(t) for t in shown], dpd),
    )


def _plots(ds: xr.Dataset, levels: tuple[float, ...]) -> SimpleNamespace:
    n_bins = bins(ds)
    figures = [plot(lambda ax: plots.loss_distribution(ds, levels=levels, bins=n_bins, ax=ax),
                    "Distribution of the gross loss", "Gross loss over the horizon per path, with EL, VaR and ES.")]
    if has_layers(ds):
        figures.append(plot(lambda ax: plots.loss_distribution(ds, measure="net", levels=levels, bins=n_bins, ax=ax),
                            "Distribution of the net loss", "The lender's retained loss after credit enhancements."))
    figures += [
        plot(lambda ax: plots.exceedance_curve(ds, ax=ax), "Exceedance curve of the gross loss",
             "P(L > x) on a log scale with a pointwise 95% Monte Carlo band."),
        plot(lambda ax: plots.dpd30_fan(ds, ax=ax), "DPD30+ ratio fan", "Share of the live balance 31+ days past due."),
        plot(lambda ax: plots.state_stack(ds, ax=ax), "Balance by delinquency state", "Mean balance by state; D cumulative."),
        plot(lambda ax: plots.loss_heatmap(ds, ax=ax), "Expected gross loss by industry and region", size=TALL),
    ]
    return SimpleNamespace(id="plots", heading="Loss and delinquency", figures=figures)


def _contributions(ds: xr.Dataset, level: float) -> SimpleNamespace:
    parts = []
    for by in ("industry", "region"):
        try:
            es = es_contributions(ds, by=by, level=level)
            el = expected_loss_contributions(ds, by=by)
        except StresslabError as exc:
            parts.append(SimpleNamespace(by=by, table=None, problem=str(exc)))
            continue
        rows: list[list[Cell]] = []
        for label in es[by].values.tolist():
            e, c = el.sel({by: label}), es.sel({by: label})
            rows.append([
                str(label),
                _ci(float(e["el_contribution"]), e["el_contribution_ci"]),
                _pct(float(e["el_share"])),
                _ci(float(c["es_contribution"]), c["es_contribution_ci"]),
                _ci(float(c["es_share"]), c["es_share_ci"], fmt=_pct),
            ])
        total: list[Cell] = ["total", _ci(float(el["expected_loss"]), el["expected_loss_ci"].values), "100.0%",
                             _ci(float(es["expected_shortfall"]), es["expected_shortfall_ci"].values), "100.0%"]
        header = [by, "EL contribution, CNY", "EL share", f"ES {_level(level)} contribution, CNY", "ES share"]
        parts.append(SimpleNamespace(by=by, table=Table(header, rows, total), problem=""))
    return SimpleNamespace(id="contributions", heading="Risk contributions by industry and region", parts=parts,
                           level=_level(level))


def _layers(ds: xr.Dataset, s: xr.Dataset, level: float) -> SimpleNamespace:
    levels = s["level"].values
    header = ["party", "expected loss borne, CNY", "share"] + [f"tail {_level(a)}, CNY (share)" for a in levels]
    rows: list[list[Cell]] = []
    for party in s["party"].values.tolist():
        p = s.sel(party=party)
        rows.append([str(party), _ci(float(p["party_expected"]), p["party_expected_ci"]), _pct(float(p["party_share_expected"]))]
                    + [Share(_money(float(p["party_tail"].sel(level=a))), _pct(float(p["party_share_tail"].sel(level=a))))
                       for a in levels])
    gross_es = s["expected_shortfall"].sel(measure="gross", window="horizon")
    gross: list[Cell] = ["gross", _money(float(s["expected_loss"].sel(measure="gross", window="horizon"))), "100.0%"]
    gross += [Share(_money(float(gross_es.sel(level=a))), "100.0%") for a in levels]
    parties = Table(header, rows, gross)

    months = s["month"].values
    last = int(months[-1])
    header = ["layer", "kind", "capacity, CNY", f"P(exhausted) by month {last}", "by month 12", "median month of exhaustion",
              "P(provider fails)", "expected fees, CNY"]
    rows = []
    for layer in s["layer"].values.tolist():
        at = s.sel(layer=layer)
        exh = at["layer_exhaustion_probability"]
        median = float(at["layer_exhaustion_median_month"])
        capacity = float(at["layer_capacity"]) if "layer_capacity" in at.coords else np.nan
        rows.append([
            str(layer),
            str(at["layer_kind"].values) if "layer_kind" in at.coords else "–",
            "unlimited" if np.isinf(capacity) else _money(capacity),
            _pct(float(exh.sel(month=last))),
            _pct(float(exh.sel(month=12))) if 12 in months else "–",
            f"{median:g}" if np.isfinite(median) else "never",
            _ci(float(at["layer_failure_probability"]), at["layer_failure_probability_ci"], fmt=_pct),
            _money(float(at["layer_fee_expected"])),
        ])

    capacity_fans = []  # (layer, its capacity fan; None when the layer's capacity is unlimited)
    for layer in ds["layer"].values.tolist():
        capacity = float(ds["layer_capacity"].sel(layer=layer)) if "layer_capacity" in ds.coords else np.nan
        fan = None if np.isinf(capacity) else plot(lambda ax, layer=layer: plots.capacity_fan(ds, layer=str(layer), ax=ax),
                                                   f"Capacity left of layer {layer}")
        capacity_fans.append((str(layer), fan))
    return SimpleNamespace(
        id="layers", heading="Credit enhancement layers", parties=parties, layers=Table(header, rows, numeric_from=2),
        allocation=plot(lambda ax: plots.loss_allocation(ds, levels=(level,), ax=ax), "Loss allocation between layers and lender",
                        "Loss each party bears at the EL, the VaR and the ES of the gross loss."),
        capacity_fans=capacity_fans,
        exhaustion=plot(lambda ax: plots.exhaustion_curve(ds, ax=ax), "Exhaustion of layer capacity"),
    )


def _policy(ds: xr.Dataset, levers: dict) -> SimpleNamespace:
    rows: list[list[Cell]] = []
    for name, settings in levers.items():
        if isinstance(settings, dict):
            text = ", ".join(f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in settings.items() if v is not None)
        else:
            text = json.dumps(settings, ensure_ascii=False)
        rows.append([str(name), _LEVER_TEXT.get(name, ""), text])
    w = np.asarray(ds["weight"].values, dtype=np.float64)
    facts = []
    figures = []
    if "subsidy_cost" in ds.data_vars and ("interest_subsidy" in levers or np.any(ds["subsidy_cost"].values != 0)):
        m, lo, hi = mean_ci(ds["subsidy_cost"].transpose("path", "month").values.sum(axis=1), w)
        facts.append(("expected subsidy cost over the horizon, CNY", f"{_money(m)} [{_money(lo)}, {_money(hi)}]"))
        figures.append(plot(lambda ax: policy_fan(ds, "subsidy_cost", ax, True, "Interest subsidy cost per month",
                                                  "subsidy cost paid in the month"),
                            "Interest subsidy cost per month", "Paid by the state in each month: mean and quantile bands over paths."))
    if "deferred_count" in ds.data_vars and ("deferral" in levers or np.any(ds["deferred_count"].values != 0)):
        mean = w @ ds["deferred_count"].transpose("path", "month").values / w.size
        t = int(np.argmax(mean))
        facts.append(("peak mean number of deferred loans", f"{mean[t]:,.1f} (month {int(ds['month'].values[t])})"))
        figures.append(plot(lambda ax: policy_fan(ds, "deferred_count", ax, False, "Loans in a deferral at month end",
                                                  "loans deferred"),
                            "Loans in a deferral per month",
                            "Loans in a payment holiday at each month end: mean and quantile bands over paths."))
    capped = (("capped_borrowers", "borrowers above the loan cap"),
              ("gap_volume", "exposure above the loan caps (refinancing gap), CNY"))
    for name, label in capped:
        if name in ds.data_vars and ds[name].ndim == 0 and ("loan_cap" in levers or float(ds[name]) != 0):
            facts.append((label, f"{float(ds[name]):,.0f}"))
    return SimpleNamespace(id="policy", heading="Policy levers",
                           levers=Table(["lever", "what it does", "settings"], rows, numeric_from=3),  # no number column
                           facts=facts, figures=figures)


def _ifrs9(ds: xr.Dataset, s: xr.Dataset) -> SimpleNamespace:
    """IFRS 9 stages by year (shares, transition rates) and, when recorded, the allowance and impairment charge."""
    years = [int(y) for y in s["year"].values]
    header = ["year end"] + [f"year {y}" for y in years]
    rows: list[list[Cell]] = []
    for stage in ("S2", "S3"):
        rows.append([f"{stage} share of the exposure"] + [_pct(v) for v in s["stage_share_mean"].sel(stage=stage).values])
    for origin, to in (("S1", "S2"), ("S1", "S3"), ("S2", "S1"), ("S2", "S3")):
        rate = s["stage_transition_rate"].sel(from_stage=origin, to_stage=to)
        bounds = s["stage_transition_rate_ci"].sel(from_stage=origin, to_stage=to)
        rows.append([f"{origin} → {to} in the year"] + [_ci(float(rate.sel(year=y)), bounds.sel(year=y), _pct)
                                                     for y in years])
    stages = Table(header, rows)
    figures = [plot(lambda ax: plots.stage_mix(ds, ax=ax), "Exposure by IFRS 9 stage",
                    "Mean exposure by stage over the months; S3: defaulted, recoveries still to come.")]
    provisions = None
    if "impairment_charge_mean" in s:
        ends = [int(e) for e in s["year_end"].values]
        head = ["allowance, mean"] + ["start" if e == 0 else f"year {e} end" for e in ends]
        body: list[list[Cell]] = []
        for stage in s["stage"].values:
            body.append([f"{stage} (coverage)"] + [
                Share(_money(a), _pct(c)) if np.isfinite(c) else _money(a)
                for a, c in zip(s["allowance_mean"].sel(stage=stage).values, s["coverage_mean"].sel(stage=stage).values)])
        body.append(["impairment charge of the year", ""] + [
            _ci(float(s["impairment_charge_mean"].sel(year=y)), s["impairment_charge_ci"].sel(year=y)) for y in years])
        for q in s["charge_quantile"].values:
            body.append([f"charge at risk, {_level(q)} quantile", ""] + [
                _money(v) for v in s["impairment_charge_quantile"].sel(charge_quantile=q).values])
        provisions = Table(head, body)
        figures.insert(0, plot(lambda ax: plots.allowance_fan(ds, ax=ax), "Loss allowance fan",
                               "Total allowance (S1 + S2 + S3) at the start and each year end: quantile bands and mean."))
    return SimpleNamespace(id="ifrs9", heading="IFRS 9 stages and provisions", stages=stages, provisions=provisions,
                           figures=figures)


_PNL_LABELS = {"interest_income": "interest income", "funding_cost": "funding cost",
               "net_interest_income": "net interest income", "enhancement_fees": "enhancement fees",
               "credit_cost": "credit cost", "pretax_profit": "pre-tax profit", "tax": "tax",
               "dividends": "dividends", "after_tax_profit": "after-tax profit"}


def _capital(ds: xr.Dataset, s: xr.Dataset) -> SimpleNamespace:
    """The lender's mean P&L by year, the capital ratio's quantiles and the breach probability, the ratio fan."""
    years = [int(y) for y in s["year"].values]
    pnl = Table(["mean, CNY"] + [f"year {y}" for y in years], [
        [_PNL_LABELS[item]] + [_ci(float(s["pnl_mean"].sel(year=y, pnl_item=item)),
                                   s["pnl_ci"].sel(year=y, pnl_item=item)) for y in years]
        for item in s["pnl_item"].values])
    ends = [int(e) for e in s["year_end"].values]
    rows: list[list[Cell]] = [[f"capital ratio, {_level(q)} quantile"] + [
        _pct(v) for v in s["capital_ratio_quantile"].sel(ratio_quantile=q).values] for q in s["ratio_quantile"].values]
    level = _pct(float(s["capital_breach_level"]))
    rows.append([f"P(ratio below {level} by the year end)", ""] + [
        _ci(float(s["capital_breach_probability"].sel(year=y)), s["capital_breach_probability_ci"].sel(year=y), _pct)
        for y in years])
    rows.append(["P(first breach at the year end)", ""] + [
        _pct(v) for v in s["capital_first_breach_probability"].values])
    ratio = Table(["capital ratio"] + ["start" if e == 0 else f"year {e} end" for e in ends], rows)
    basis = "IFRS 9 impairment net of enhancements" if s["pnl_mean"].attrs.get("credit_cost_basis") == "ifrs9" \
        else "the net loss booked (after enhancements)"
    figures = [plot(lambda ax: plots.capital_ratio_fan(ds, ax=ax), "Capital ratio fan",
                    f"Capital / RWA at the start and each year end with a live book: quantile bands; breach level {level}.")]
    return SimpleNamespace(id="capital", heading="P&L and capital", pnl=pnl, ratio=ratio, basis=basis, figures=figures)


def _irb(ds: xr.Dataset, portfolio: Portfolio) -> SimpleNamespace:
    section = SimpleNamespace(id="irb", heading="Regulatory reference (Basel IRB)", problem="")
    try:
        ref = irb_reference(ds, portfolio)
    except StresslabError as exc:
        section.problem = str(exc)
        return section
    level = _level(ref.attrs.get("level", 0.999))
    rows: list[list[Cell]] = [
        ["IRB capital (Basel II, one year, 99.9%)", _money(float(ref["irb_capital"])), "", ""],
        ["IRB expected loss (PD × LGD × EAD)", _money(float(ref["irb_expected_loss"])), "", ""],
        ["IRB risk-weighted assets", _money(float(ref["irb_rwa"])), "", ""],
    ]
    for window in ref["window"].values.tolist():
        r = ref.sel(window=window)
        ratio = float(r["capital_ratio"])
        rows.append([
            f"simulated capital VaR {level} − EL, {window} ({int(r['window_months'])} months)",
            _ci(float(r["simulated_capital"]), r["simulated_capital_ci"]),
            f"{ratio:.2f}×" if np.isfinite(ratio) else "–",
            f"VaR {_money(float(r['simulated_value_at_risk']))}, EL {_money(float(r['simulated_expected_loss']))}",
        ])
    note = str(ref.attrs.get("note", ""))
    section.table = Table(["figure", "CNY", "simulated / IRB", "parts, CNY"], rows)
    section.note = note[:1].upper() + note[1:]
    section.total_ead = _money(float(ref["total_ead"]))
    return section


def _provenance(ds: xr.Dataset, s: xr.Dataset) -> SimpleNamespace:
    a = ds.attrs
    rows = [
        ("scenario", a.get("scenario_name", "?")),
        ("scenario source", a.get("scenario_source", "?")),
        ("book source", a.get("portfolio_source", "?")),
        ("book digest (SHA-256)", a.get("portfolio_digest", "?")),
        ("loans", a.get("n_loans", "?")),
        ("seed", a.get("seed", "?")),
        ("paths", a.get("n_paths", ds.sizes["path"])),
        ("effective sample size", f"{float(s['effective_sample_size']):,.1f}"),
        ("sampling", a.get("sampling", "?")),
    ]
    if int(a.get("pooled", 0)):
        rows.append(("pooled book", pooled_text(a)))
    if a.get("sampling") == "importance":
        rows += [("factor shift", _shift_text(a.get("factor_shift"))), ("chi-square shape (tilted paths)", a.get("chi2_shape", "?"))]
    rows += [
        ("currency", a.get("currency", "CNY")),
        ("versions of the run", a.get("versions", "?")),
        ("versions of this report", package_versions()),
        ("report written", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")),
    ]
    return SimpleNamespace(id="provenance", heading="Provenance", rows=_kv(rows))


def _shift_text(text: object) -> str:
    """The importance-sampling shift (months x factors, JSON) in one line: month 0 and its size."""
    try:
        shift = np.atleast_2d(np.asarray(json.loads(str(text)), dtype=float))
    except (TypeError, ValueError):
        return "?"
    first = ", ".join(f"{v:.2f}" for v in shift[0])
    return f"month 0: [{first}]; norm over {shift.shape[0]} months {np.linalg.norm(shift):.2f}"


# ----------------------------------------------------------------------------- the page
def _scenario_config(ds: xr.Dataset) -> tuple[dict | None, str]:
    text = ds.attrs.get("scenario")
    if not text:
        return None, "the run has no scenario JSON (attr 'scenario')"
    try:
        config = json.loads(text)
    except (TypeError, ValueError) as exc:
        return None, f"the run's scenario JSON does not parse ({exc})"
    return (config, "") if isinstance(config, dict) else (None, "the run's scenario JSON is not an object")


def check(ds: xr.Dataset, portfolio: Portfolio | None, levels: tuple[float, ...]) -> None:
    """Refuse what :func:`~stresslab.report.html.write_report` cannot report (see its Raises)."""
    if not isinstance(ds, xr.Dataset):
        raise StresslabError(f"write_report needs a run (xarray.Dataset from stresslab.simulate); got {type(ds).__name__}")
    if "scenario" in ds.dims:
        raise StresslabError("write_report reports one run: select a scenario of the comparison with ds.sel(scenario=...)")
    if "expected_loss" in ds.data_vars and "loss_gross" not in ds.data_vars:
        raise StresslabError("write_report needs the run itself, not its summary")
    for a in levels:
        check_level(a, "each of levels")
    if portfolio is not None:
        if not isinstance(portfolio, Portfolio):
            raise StresslabError(f"portfolio must be a stresslab Portfolio; got {type(portfolio).__name__}")
        digest = ds.attrs.get("portfolio_digest")
        if digest is not None and digest != portfolio.digest:
            raise StresslabError(
                f"the run was simulated on another book (digest {str(digest)[:12]}, this book {portfolio.digest[:12]}); "
                "pass the portfolio that was simulated, or none"
            )


def page_values(ds: xr.Dataset, portfolio: Portfolio | None, levels: tuple[float, ...], title: str | None) -> dict:
    """The variables of ``templates/report.html.j2`` for a checked run (see :func:`check`)."""
    s = summary(ds, levels=levels)
    config, config_problem = _scenario_config(ds)
    name = str(ds.attrs.get("scenario_name", "?"))
    tail_level = 0.99 if any(abs(a - 0.99) < 1e-12 for a in levels) else max(levels)
    n_months = int(ds.sizes["month"])

    sections = [
        _scenario(ds, config, config_problem),
        _book(ds, portfolio),
        _headline(s, n_months),
        _plots(ds, tuple(sorted(levels)[-2:])),
        _contributions(ds, tail_level),
    ]
    if has_layers(ds):
        sections.append(_layers(ds, s, tail_level))
    levers = (config or {}).get("policy") or {}
    if levers:
        sections.append(_policy(ds, levers))
    if "stage_transition_rate" in s:
        sections.append(_ifrs9(ds, s))
    if "capital_breach_probability" in s:
        sections.append(_capital(ds, s))
    if portfolio is not None:
        sections.append(_irb(ds, portfolio))
    sections.append(_provenance(ds, s))
    return {
        "title": title if title is not None else f"Stress test report: {name}",
        "name": name,
        "description": str((config or {}).get("description") or ""),
        "paths": f"{int(ds.sizes['path']):,}",
        "months": str(n_months),
        "seed": str(ds.attrs.get("seed", "?")),
        "loans": str(ds.attrs.get("n_loans", "?")),
        "currency": str(ds.attrs.get("currency", "CNY")),
        "sections": sections,
    }
