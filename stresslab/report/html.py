"""A run's report: one self-contained HTML page with its tables and plots.

:func:`write_report` turns a run of :func:`stresslab.simulate` (MODEL.md §8) into a single
HTML file that needs nothing else to be read: figures are PNG images embedded as base64
``data:`` URIs, the style sheet is inline, and there is no script, font, link or image
from anywhere else (a Content-Security-Policy in the page forbids them). Every string that
comes from the data (scenario text and names, book source, industry and region names, ...)
is escaped with :func:`html.escape`. docs/report.md describes the sections.

The numbers are those of :func:`stresslab.summary`, :func:`stresslab.es_contributions`,
:func:`stresslab.expected_loss_contributions` and :func:`stresslab.irb_reference`; the
figures are those of :mod:`stresslab.plots`.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from stresslab import plots
from stresslab._files import write_atomically, write_failure_reason
from stresslab.book.portfolio import Portfolio
from stresslab.errors import StresslabError
from stresslab.estimators import check_level, mean_ci, quantiles_by_month
from stresslab.metrics.contributions import (
    es_contributions,
    expected_loss_contributions,
)
from stresslab.metrics.regulatory import irb_reference
from stresslab.metrics.summary import summary
from stresslab.plots._common import (
    add_legend,
    add_title,
    fan,
    money_axis,
    money_unit,
    month_axis,
)
from stresslab.run.schema import has_layers, package_versions
from stresslab.text import pooled_text

__all__ = ["write_report"]

_DPI = 100
_WIDE = (9.0, 4.3)  # inches at 100 dpi: 900 px, the width of the page's content
_TALL = (9.0, 5.2)
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

_CSS = """
:root { color-scheme: light; }
body { font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; font-size: 15px; line-height: 1.45;
       color: #1d1d1d; background: #ffffff; margin: 0; }
main { max-width: 940px; margin: 0 auto; padding: 18px 20px 48px; }
header { border-bottom: 3px solid #2171b5; margin-bottom: 12px; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 20px; margin: 30px 0 8px; padding-bottom: 3px; border-bottom: 1px solid #c6dbef; }
h3 { font-size: 16px; margin: 20px 0 6px; }
p.lead { font-size: 16px; margin: 4px 0 10px; color: #333; }
p.note, span.note { color: #555; font-size: 13px; }
p.warn { background: #fff5eb; border-left: 4px solid #fd8d3c; padding: 6px 10px; font-size: 13px; }
nav { background: #f3f7fb; border: 1px solid #c6dbef; padding: 6px 12px; margin: 10px 0 6px; font-size: 14px; line-height: 1.8; }
nav a { color: #08519c; margin-right: 14px; text-decoration: none; white-space: nowrap; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 13px; }
th, td { border: 1px solid #d9d9d9; padding: 3px 8px; vertical-align: top; }
th { background: #eef3f8; text-align: left; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; }
div.table { max-width: 100%; overflow-x: auto; }
td small, td .ci { color: #666; font-size: 11px; }
table.kv th { width: 210px; }
table.kv td { overflow-wrap: anywhere; }
figure { margin: 10px 0 22px; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid #e5e5e5; }
figcaption { font-size: 13px; color: #444; margin-top: 3px; }
details { margin: 8px 0 14px; border: 1px solid #d9d9d9; background: #fafafa; padding: 4px 10px; }
summary { cursor: pointer; font-weight: 600; }
pre { white-space: pre-wrap; word-break: break-word; font-size: 12px; line-height: 1.35; margin: 8px 0; }
code { font-size: 13px; }
footer { margin-top: 36px; font-size: 12px; color: #777; border-top: 1px solid #ddd; padding-top: 6px; }
"""


# ----------------------------------------------------------------------------- text helpers
def _e(value: object) -> str:
    """Escape any value for HTML text and attribute values."""
    return html.escape(str(value), quote=True)


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


def _with_ci(v: float, low: float, high: float, fmt: Callable[[float], str] = _money) -> str:
    return f'{_e(fmt(v))}<br><span class="ci">[{_e(fmt(low))}, {_e(fmt(high))}]</span>'


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int = 1, cls: str = "") -> str:
    """An HTML table; header cells are escaped here, body cells must be HTML already (escape them first)."""
    num = ' class="num"'
    head = "".join(f"<th{num if i >= numeric_from else ''}>{_e(h)}</th>" for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f"<td{num if i >= numeric_from else ''}>{c}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    klass = f' class="{cls}"' if cls else ""
    return f'<div class="table"><table{klass}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _kv(rows: Sequence[tuple[str, object]]) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f'<div class="table"><table class="kv"><tbody>{body}</tbody></table></div>'


def _section(anchor: str, heading: str, body: str) -> tuple[str, str, str]:
    return anchor, heading, f'<section id="{_e(anchor)}"><h2>{_e(heading)}</h2>{body}</section>'


# ----------------------------------------------------------------------------- figures
def _figure(
    draw: Callable[[Axes], object], alt: str, caption: str = "", size: tuple[float, float] = _WIDE
) -> str:
    """Draw on a new figure, embed it as a PNG data URI, close it; a note instead if the plot cannot be drawn."""
    fig = Figure(figsize=size, dpi=_DPI, layout="constrained")
    try:
        draw(fig.add_subplot())
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=_DPI)
    except StresslabError as exc:  # the data do not allow this plot (e.g. no loss at all): say so
        return f'<p class="note">{_e(alt)}: not drawn ({_e(exc)}).</p>'
    finally:
        plt.close(fig)
        fig.clear()
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    width, height = (round(v * _DPI) for v in size)
    text = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="data:image/png;base64,{data}" alt="{_e(alt)}" width="{width}" height="{height}">{text}</figure>'


def _bins(ds: xr.Dataset) -> int:
    """Histogram bins: numpy's "auto" rule, at most 120 (thousands of bars help no one in a page)."""
    x = ds["loss_gross"].transpose("path", "month").values.sum(axis=1)
    return int(min(120, max(1, np.histogram_bin_edges(x, bins="auto").size - 1)))


def _policy_fan(ds: xr.Dataset, name: str, ax: Axes, money: bool, title: str, ylabel: str) -> None:
    """Mean and 5-95% / 25-75% quantile bands over the months of a (path, month) variable."""
    values = np.asarray(ds[name].transpose("path", "month").values, dtype=np.float64)
    w = np.asarray(ds["weight"].values, dtype=np.float64)
    qs = (0.05, 0.25, 0.5, 0.75, 0.95)
    quantiles = quantiles_by_month(values, w, qs)
    months = ds["month"].values
    fan(ax, months, qs, quantiles, "#6a51a3")
    ax.plot(months, w @ values / w.size, color="black", linestyle="--", linewidth=1.5, label="mean")
    if money:
        scale, unit = money_unit(quantiles, w @ values / w.size)
        money_axis(ax.yaxis, scale)
        ax.set_ylabel(f"{ylabel}, {unit}")
    else:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0.0)
    month_axis(ax, months)
    ax.grid(True, alpha=0.3)
    add_title(ax, ds, f"{title} ({w.size:,} paths)")
    add_legend(ax)


# ----------------------------------------------------------------------------- sections
def _scenario(ds: xr.Dataset, config: dict | None) -> str:
    a = ds.attrs
    rows = [("name", a.get("scenario_name", "?"))]
    if config:
        if config.get("description"):
            rows.append(("description", config["description"]))
        for key in ("horizon_months", "start_month"):
            if key in config:
                rows.append((key.replace("_", " "), config[key]))
        shocks = config.get("shocks") or {}
        stressed = [f"{kind} {name}" for kind in ("industry", "region") for name in (shocks.get(kind) or {})]
        rows.append(("revenue shocks", ", ".join(stressed) if stressed else "none"))
        rows.append(("credit enhancement layers", ", ".join(str(layer.get("name", "?")) for layer in config.get("layers") or []) or "none"))
        rows.append(("policy levers", ", ".join(config.get("policy") or {}) or "none"))
    rows.append(("source", a.get("scenario_source", "?")))
    out = _kv(rows)
    text = a.get("scenario_text")
    if text:
        out += f"<details><summary>Scenario file (TOML, as read)</summary><pre>{_e(text)}</pre></details>"
    if config:
        resolved = json.dumps(config, indent=2, ensure_ascii=False)
        out += f"<details><summary>Resolved scenario (every value, JSON)</summary><pre>{_e(resolved)}</pre></details>"
    return out


def _book(ds: xr.Dataset, portfolio: Portfolio | None) -> str:
    a = ds.attrs
    rows = [("loans", f"{int(a['n_loans']):,}" if "n_loans" in a else "?"), ("digest (SHA-256)", a.get("portfolio_digest", "?")),
            ("source", a.get("portfolio_source", "?"))]
    if portfolio is None:
        return _kv(rows) + (
            '<p class="note">The book itself was not passed to the report: tables by segment and the IRB reference are left out.</p>'
        )
    balance = np.asarray(portfolio.balance, dtype=np.float64)
    rows.insert(1, ("total balance, CNY", _money(balance.sum())))
    out = _kv(rows)
    total = balance.sum()
    for column in ("industry", "region"):
        labels, code = portfolio.codes(column)
        body = []
        for g, label in enumerate(labels):
            mask = code == g
            bal = balance[mask]
            mix = [float(bal[portfolio.state[mask] == s].sum() / bal.sum()) for s in _BOOK_STATES]
            pd_mean = float(portfolio.pd[mask] @ bal / bal.sum())
            body.append([_e(label), f"{int(mask.sum()):,}", _e(_money(bal.sum())), _e(_pct(bal.sum() / total)),
                         _e(_pct(pd_mean, 2))] + [_e(_pct(m)) for m in mix])
        header = [column, "loans", "balance, CNY", "share", "PD (12m, balance-weighted)"] + [f"{s} %" for s in _BOOK_STATES]
        out += f"<h3>By {_e(column)}</h3>" + _table(header, body)
    out += ('<p class="note">State mix: share of the balance in each delinquency state at the start '
            "(C current, M1 1-30, M2 31-60, M3 61-90 days past due).</p>")
    return out


def _headline(s: xr.Dataset, n_months: int) -> str:
    metrics = ("expected_loss", "expected_loss_ci", "std_dev", "value_at_risk", "value_at_risk_ci",
               "expected_shortfall", "expected_shortfall_ci")
    same = all(np.array_equal(s[v].sel(measure="gross"), s[v].sel(measure="net")) for v in metrics)
    measures = ("gross",) if same else ("gross", "net")
    windows = ("horizon", "12m") if n_months > 12 else ("horizon",)  # up to 12 months the windows coincide
    window_names = {"horizon": f"months 1–{n_months}", "12m": "months 1–12"}
    header = ["metric"] + [f"{m} loss, {window_names[w]}" for m in measures for w in windows]
    rows = []

    def cells(name: str, **at: object) -> list[str]:
        out = []
        for m in measures:
            for w in windows:
                sel = s.sel(measure=m, window=w, **at)
                if name == "std_dev":
                    out.append(_e(_money(float(sel[name]))))
                else:
                    low, high = sel[f"{name}_ci"].sel(bound=["low", "high"]).values
                    out.append(_with_ci(float(sel[name]), low, high))
        return out

    rows.append(["Expected loss (EL)"] + cells("expected_loss"))
    rows.append(["Standard deviation"] + cells("std_dev"))
    for level in s["level"].values:
        rows.append([_e(f"VaR {_level(level)}")] + cells("value_at_risk", level=level))
        rows.append([_e(f"ES {_level(level)}")] + cells("expected_shortfall", level=level))
    ci = _level(s.attrs.get("ci", 0.95))
    note = (f'<p class="note">CNY. {_e(ci)} Monte Carlo confidence intervals in brackets (∞: the paths do not bound it). '
            f"Net loss: the lender's retained loss after credit enhancements"
            + (" — here equal to the gross loss (no layer pays)." if same else ".")
            + f" {int(s['n_paths']):,} paths, effective sample size {float(s['effective_sample_size']):,.0f}.</p>")
    months = s["month"].values.tolist()
    shown = [t for t in dict.fromkeys((*_DPD_MONTHS, int(months[-1]))) if t in months]
    dpd_rows = [["mean"] + [_e(_pct(float(s["dpd30_ratio_mean"].sel(month=t)), 2)) for t in shown]]
    if 0.95 in s["quantile"].values:
        dpd_rows.append(["95% quantile"] + [_e(_pct(float(s["dpd30_ratio_quantile"].sel(month=t, quantile=0.95)), 2)) for t in shown])
    dpd = "<h3>DPD30+ ratio by balance</h3>" + _table(["month"] + [str(t) for t in shown], dpd_rows)
    return _table(header, rows) + note + dpd


def _contributions(ds: xr.Dataset, level: float) -> str:
    out = ""
    for by in ("industry", "region"):
        try:
            es = es_contributions(ds, by=by, level=level)
            el = expected_loss_contributions(ds, by=by)
        except StresslabError as exc:
            out += f'<p class="note">Contributions by {_e(by)}: not computed ({_e(exc)}).</p>'
            continue
        rows = []
        for label in es[by].values.tolist():
            e, c = el.sel({by: label}), es.sel({by: label})
            rows.append([
                _e(label),
                _with_ci(float(e["el_contribution"]), *e["el_contribution_ci"].sel(bound=["low", "high"]).values),
                _e(_pct(float(e["el_share"]))),
                _with_ci(float(c["es_contribution"]), *c["es_contribution_ci"].sel(bound=["low", "high"]).values),
                _with_ci(float(c["es_share"]), *c["es_share_ci"].sel(bound=["low", "high"]).values, fmt=_pct),
            ])
        total = [
            "<strong>total</strong>",
            _with_ci(float(el["expected_loss"]), *el["expected_loss_ci"].values),
            "100.0%",
            _with_ci(float(es["expected_shortfall"]), *es["expected_shortfall_ci"].values),
            "100.0%",
        ]
        header = [by, "EL contribution, CNY", "EL share", f"ES {_level(level)} contribution, CNY", "ES share"]
        out += f"<h3>By {_e(by)}</h3>" + _table(header, rows + [total])
    return out + (
        f'<p class="note">Gross loss over the horizon. ES contributions: Euler allocation, E[L_g | L ≥ VaR {_e(_level(level))}], '
        "adding up to the ES; intervals by the delta method, rough when few paths lie in the tail.</p>"
    )


def _layers(ds: xr.Dataset, s: xr.Dataset, level: float) -> str:
    levels = s["level"].values
    header = ["party", "expected loss borne, CNY", "share"] + [f"tail {_level(a)}, CNY (share)" for a in levels]
    rows = []
    for party in s["party"].values.tolist():
        p = s.sel(party=party)
        rows.append([
            _e(party),
            _with_ci(float(p["party_expected"]), *p["party_expected_ci"].sel(bound=["low", "high"]).values),
            _e(_pct(float(p["party_share_expected"]))),
        ] + [f"{_e(_money(float(p['party_tail'].sel(level=a))))} <small>({_e(_pct(float(p['party_share_tail'].sel(level=a))))})</small>"
             for a in levels])
    gross_es = s["expected_shortfall"].sel(measure="gross", window="horizon")
    rows.append(["<strong>gross</strong>", _e(_money(float(s["expected_loss"].sel(measure="gross", window="horizon")))), "100.0%"]
                + [f"{_e(_money(float(gross_es.sel(level=a))))} <small>(100.0%)</small>" for a in levels])
    out = "<h3>Who bears the loss</h3>" + _table(header, rows)
    out += ('<p class="note">Over the horizon. Tail a: the gross ES a split into the loss each party bears in the paths '
            "beyond the gross VaR a.</p>")
    months = s["month"].values
    last = int(months[-1])
    header = ["layer", "kind", "capacity, CNY", f"P(exhausted) by month {last}", "by month 12", "median month of exhaustion",
              "P(provider fails)", "expected fees, CNY"]
    rows = []
    for layer in s["layer"].values.tolist():
        at = s.sel(layer=layer)
        exh = at["layer_exhaustion_probability"]
        median = float(at["layer_exhaustion_median_month"])
        failure = at["layer_failure_probability_ci"].sel(bound=["low", "high"]).values
        capacity = float(at["layer_capacity"]) if "layer_capacity" in at.coords else np.nan
        rows.append([
            _e(layer),
            _e(at["layer_kind"].values) if "layer_kind" in at.coords else "–",
            _e("unlimited" if np.isinf(capacity) else _money(capacity)),
            _e(_pct(float(exh.sel(month=last)))),
            _e(_pct(float(exh.sel(month=12)))) if 12 in months else "–",
            _e(f"{median:g}" if np.isfinite(median) else "never"),
            _with_ci(float(at["layer_failure_probability"]), *failure, fmt=_pct),
            _e(_money(float(at["layer_fee_expected"]))),
        ])
    out += "<h3>Layers</h3>" + _table(header, rows, numeric_from=2)
    out += _figure(lambda ax: plots.loss_allocation(ds, levels=(level,), ax=ax), "Loss allocation between layers and lender",
                   "Loss each party bears at the EL, the VaR and the ES of the gross loss.")
    for layer in ds["layer"].values.tolist():
        capacity = float(ds["layer_capacity"].sel(layer=layer)) if "layer_capacity" in ds.coords else np.nan
        if np.isinf(capacity):
            out += f'<p class="note">Layer {_e(layer)} has unlimited capacity: no capacity fan.</p>'
            continue
        out += _figure(lambda ax, layer=layer: plots.capacity_fan(ds, layer=str(layer), ax=ax), f"Capacity left of layer {layer}")
    out += _figure(lambda ax: plots.exhaustion_curve(ds, ax=ax), "Exhaustion of layer capacity")
    return out


def _policy(ds: xr.Dataset, levers: dict) -> str:
    rows = []
    for name, settings in levers.items():
        if isinstance(settings, dict):
            text = ", ".join(f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in settings.items() if v is not None)
        else:
            text = json.dumps(settings, ensure_ascii=False)
        rows.append([_e(name), _e(_LEVER_TEXT.get(name, "")), _e(text)])
    out = _table(["lever", "what it does", "settings"], rows, numeric_from=99)
    w = np.asarray(ds["weight"].values, dtype=np.float64)
    facts = []
    if "subsidy_cost" in ds.data_vars and ("interest_subsidy" in levers or np.any(ds["subsidy_cost"].values != 0)):
        total = ds["subsidy_cost"].transpose("path", "month").values.sum(axis=1)
        m, lo, hi = mean_ci(total, w)
        facts.append(("expected subsidy cost over the horizon, CNY", f"{_money(m)} [{_money(lo)}, {_money(hi)}]"))
    if "deferred_count" in ds.data_vars and ("deferral" in levers or np.any(ds["deferred_count"].values != 0)):
        mean = w @ ds["deferred_count"].transpose("path", "month").values / w.size
        t = int(np.argmax(mean))
        facts.append(("peak mean number of deferred loans", f"{mean[t]:,.1f} (month {int(ds['month'].values[t])})"))
    capped = (("capped_borrowers", "borrowers above the loan cap"),
              ("gap_volume", "exposure above the loan caps (refinancing gap), CNY"))
    for name, label in capped:
        if name in ds.data_vars and ds[name].ndim == 0 and ("loan_cap" in levers or float(ds[name]) != 0):
            value = float(ds[name])
            facts.append((label, f"{value:,.0f}"))
    if facts:
        out += _kv(facts)
    if facts and any(k.startswith("expected subsidy") for k, _ in facts):
        out += _figure(lambda ax: _policy_fan(ds, "subsidy_cost", ax, True, "Interest subsidy cost per month", "subsidy cost paid in the month"),
                       "Interest subsidy cost per month", "Paid by the state in each month: mean and quantile bands over paths.")
    if facts and any(k.startswith("peak mean number of deferred") for k, _ in facts):
        out += _figure(lambda ax: _policy_fan(ds, "deferred_count", ax, False, "Loans in a deferral at month end", "loans deferred"),
                       "Loans in a deferral per month", "Loans in a payment holiday at each month end: mean and quantile bands over paths.")
    return out


def _irb(ds: xr.Dataset, portfolio: Portfolio) -> str:
    try:
        ref = irb_reference(ds, portfolio)
    except StresslabError as exc:
        return f'<p class="note">IRB reference not computed: {_e(exc)}</p>'
    level = _level(ref.attrs.get("level", 0.999))
    rows = [["IRB capital (Basel II, one year, 99.9%)", _e(_money(float(ref["irb_capital"]))), "", ""],
            ["IRB expected loss (PD × LGD × EAD)", _e(_money(float(ref["irb_expected_loss"]))), "", ""],
            ["IRB risk-weighted assets", _e(_money(float(ref["irb_rwa"]))), "", ""]]
    for window in ref["window"].values.tolist():
        r = ref.sel(window=window)
        months = int(r["window_months"])
        rows.append([
            _e(f"simulated capital VaR {level} − EL, {window} ({months} months)"),
            _with_ci(float(r["simulated_capital"]), *r["simulated_capital_ci"].sel(bound=["low", "high"]).values),
            _e(f"{float(r['capital_ratio']):.2f}×" if np.isfinite(float(r["capital_ratio"])) else "–"),
            _e(f"VaR {_money(float(r['simulated_value_at_risk']))}, EL {_money(float(r['simulated_expected_loss']))}"),
        ])
    out = _table(["figure", "CNY", "simulated / IRB", "parts, CNY"], rows, numeric_from=1)
    note = str(ref.attrs.get("note", ""))
    out += f'<p class="note">{_e(note[:1].upper() + note[1:])}. Total EAD {_e(_money(float(ref["total_ead"])))} CNY. '
    out += ("The IRB figure is a one-year 99.9% unexpected loss of the supervisory one-factor model with fixed LGD; the "
            "simulated one is the scenario's gross loss: compare orders of magnitude (docs/regulatory.md).</p>")
    return out


def _provenance(ds: xr.Dataset, s: xr.Dataset) -> str:
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
    return _kv(rows)


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


def _check(ds: xr.Dataset, portfolio: Portfolio | None, levels: tuple[float, ...]) -> None:
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


def _render(
    ds: xr.Dataset,
    *,
    portfolio: Portfolio | None = None,
    levels: Sequence[float] = (0.95, 0.99, 0.999),
    title: str | None = None,
) -> str:
    """The HTML page of :func:`write_report` (same arguments), as text."""
    levels = tuple(float(a) for a in levels)
    _check(ds, portfolio, levels)
    s = summary(ds, levels=levels)
    config, config_problem = _scenario_config(ds)
    name = str(ds.attrs.get("scenario_name", "?"))
    heading = title if title is not None else f"Stress test report: {name}"
    tail_level = 0.99 if any(abs(a - 0.99) < 1e-12 for a in levels) else max(levels)
    plot_levels = tuple(sorted(levels)[-2:])
    n_months = int(ds.sizes["month"])

    warning = (f'<p class="warn">{_e(config_problem)}: the scenario summary and the policy section are left out.</p>'
               if config_problem else "")
    sections = [
        _section("scenario", "Scenario", _scenario(ds, config) + warning),
        _section("book", "Book", _book(ds, portfolio)),
        _section("headline", "Headline figures", _headline(s, n_months)),
    ]
    bins = _bins(ds)
    figures = (
        _figure(lambda ax: plots.loss_distribution(ds, levels=plot_levels, bins=bins, ax=ax), "Distribution of the gross loss",
                "Gross loss over the horizon per path, with EL, VaR and ES.")
        + (_figure(lambda ax: plots.loss_distribution(ds, measure="net", levels=plot_levels, bins=bins, ax=ax),
                   "Distribution of the net loss", "The lender's retained loss after credit enhancements.")
           if has_layers(ds) else "")
        + _figure(lambda ax: plots.exceedance_curve(ds, ax=ax), "Exceedance curve of the gross loss",
                  "P(L > x) on a log scale with a pointwise 95% Monte Carlo band.")
        + _figure(lambda ax: plots.dpd30_fan(ds, ax=ax), "DPD30+ ratio fan", "Share of the live balance 31+ days past due.")
        + _figure(lambda ax: plots.state_stack(ds, ax=ax), "Balance by delinquency state", "Mean balance by state; D cumulative.")
        + _figure(lambda ax: plots.loss_heatmap(ds, ax=ax), "Expected gross loss by industry and region", size=_TALL)
    )
    sections.append(_section("plots", "Loss and delinquency", figures))
    sections.append(_section("contributions", "Risk contributions by industry and region", _contributions(ds, tail_level)))
    if has_layers(ds):
        sections.append(_section("layers", "Credit enhancement layers", _layers(ds, s, tail_level)))
    levers = (config or {}).get("policy") or {}
    if levers:
        sections.append(_section("policy", "Policy levers", _policy(ds, levers)))
    if portfolio is not None:
        sections.append(_section("irb", "Regulatory reference (Basel IRB)", _irb(ds, portfolio)))
    sections.append(_section("provenance", "Provenance", _provenance(ds, s)))

    description = (config or {}).get("description") or ""
    nav = " ".join(f'<a href="#{_e(anchor)}">{_e(head)}</a>' for anchor, head, _ in sections)
    csp = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(heading)}</title><style>{_CSS}</style></head>\n<body><main>"
        f"<header><h1>{_e(heading)}</h1>"
        f'<p class="lead">Scenario <strong>{_e(name)}</strong>{": " + _e(description) if description else ""}</p>'
        f'<p class="note">{int(ds.sizes["path"]):,} paths, {n_months} months, seed {_e(ds.attrs.get("seed", "?"))}, '
        f'book of {_e(ds.attrs.get("n_loans", "?"))} loans. Amounts in {_e(ds.attrs.get("currency", "CNY"))}.</p></header>'
        f"<nav>{nav}</nav>\n"
        + "\n".join(body for _, _, body in sections)
        + '\n<footer>Written by stresslab.report.html.write_report.</footer></main></body></html>\n'
    )


def write_report(
    ds: xr.Dataset,
    path: str | os.PathLike[str],
    *,
    portfolio: Portfolio | None = None,
    levels: Sequence[float] = (0.95, 0.99, 0.999),
    title: str | None = None,
) -> None:
    """Write a run's report: one self-contained HTML page, atomically.

    Parameters
    ----------
    ds : xarray.Dataset
        A run of :func:`stresslab.simulate` (one scenario; :func:`stresslab.load_results`
        of a saved run works too).
    path : str or os.PathLike
        Target file (``.html``); replaced if it exists.
    portfolio : Portfolio, optional
        The book that was simulated (checked against the run's ``portfolio_digest``). With
        it the report adds tables of the book by industry and region and the Basel IRB
        reference; a run alone does not hold the book.
    levels : sequence of float, default (0.95, 0.99, 0.999)
        Levels of VaR and ES in the headline table, each in (0, 1). The loss distribution
        marks the two highest; ES contributions and the loss allocation use 0.99 (or the
        highest level when 0.99 is not among them).
    title : str, optional
        Page title; default "Stress test report: <scenario name>".

    Raises
    ------
    StresslabError
        If ``ds`` is not a single run (a ``scenario`` dimension, a summary), a level is
        outside (0, 1), the portfolio is not the simulated book, or the file cannot be
        written (the message says why; any earlier file at ``path`` is then unchanged and
        no temporary file is left).

    Notes
    -----
    Sections: scenario (summary, the TOML text in a collapsible block, the resolved
    JSON), book, headline figures (EL, standard deviation, VaR and ES with confidence
    intervals, gross and net, horizon and first 12 months; DPD30+ ratios), loss and
    delinquency plots (loss distribution, exceedance curve, DPD30+ fan, state stack,
    heat map), ES and EL contributions by industry and region, credit-enhancement layers
    (when the run has them), policy levers (when the scenario has them), the IRB reference
    (with ``portfolio``) and provenance. A plot the data do not allow (e.g. an exceedance
    curve with no loss at all) is replaced by a note saying why. Figures are PNG at
    100 dpi, 900 px wide, embedded as ``data:`` URIs and closed once encoded.
    """
    text = _render(ds, portfolio=portfolio, levels=levels, title=title)
    data = text.encode("utf-8")
    path = Path(path)
    if not path.parent.is_dir():
        raise StresslabError(f"could not write the report to {path}: the directory {path.parent} does not exist")

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    try:
        write_atomically(path, write)
    except OSError as exc:
        raise StresslabError(
            f"could not write the report to {path}: {write_failure_reason(exc, path.parent, len(data))}; "
            "any earlier file there is unchanged"
        ) from exc


def _shift_text(text: object) -> str:
    """The importance-sampling shift (months x factors, JSON) in one line: month 0 and its size."""
    try:
        shift = np.atleast_2d(np.asarray(json.loads(str(text)), dtype=float))
    except (TypeError, ValueError):
        return "?"
    first = ", ".join(f"{v:.2f}" for v in shift[0])
    return f"month 0: [{first}]; norm over {shift.shape[0]} months {np.linalg.norm(shift):.2f}"
