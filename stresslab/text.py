"""Plain-text tables of summaries, layers and comparisons, for the terminal and logs."""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import xarray as xr

from stresslab.book.portfolio import Portfolio
from stresslab.compile.binding import bind_names
from stresslab.metrics.summary import BOUNDS, LIVE_FLOOR, MEASURES, WINDOWS
from stresslab.reverse.result import ReverseStress
from stresslab.scenario.scenario import Scenario

__all__ = [
    "format_book",
    "format_comparison",
    "format_layers",
    "format_money",
    "format_reverse_stress",
    "format_stages",
    "format_summary",
    "pooled_text",
]


# ----------------------------------------------------------------------------- terminal
def format_money(v: float) -> str:
    """An amount in CNY for the terminal: whole units with thousands separators (``1,234,568``);
    ``inf``, ``-inf`` or ``nan`` when not finite."""
    return f"{v:,.0f}" if np.isfinite(v) else str(v)


def _with_ci(estimate: xr.DataArray, bounds: xr.DataArray, needed: int = 0, book: float = 0.0) -> str:
    """"estimate (x.xx%) [low, high]" with the share of the book's exposure ``book`` (left out
    when 0); an unbounded high end reads "n/a (too few paths: N needed)"."""
    low, high = bounds.sel(bound=list(BOUNDS)).values
    top = format_money(high) if np.isfinite(high) or not needed else f"n/a (too few paths: {int(needed):,} needed)"
    share = f" ({100 * float(estimate) / book:.2f}%)" if book > 0 else ""
    return f"{format_money(float(estimate))}{share} [{format_money(low)}, {top}]"


def _weight_lines(s: xr.Dataset) -> list[str]:
    """The sampling line of an importance-sampled run, its effective sample sizes per metric,
    and the one-line warning when the mean weight is not 1 within its interval."""
    if s.attrs.get("sampling") != "importance":
        return []
    share = float(s.attrs.get("defensive_share", np.nan))
    lines = [f"sampling: importance sampling of the loss tail (path weights are likelihood ratios); "
             f"{100 * share:g}% of paths from the nominal law, every weight <= {1 / share:g}"]
    if "tail_probability_ess" in s:
        gross = s.sel(measure="gross", window="horizon")
        per = [f"EL {float(gross['expected_loss_ess']):,.0f}"]
        per += [f"P(L > VaR {100 * a:g}%) {float(gross['tail_probability_ess'].sel(level=a)):,.0f}" for a in s["level"].values]
        lines.append("effective sample size per metric (plain paths of equal variance): " + ", ".join(per))
    if "weight_check" in s and not bool(s["weight_check"]):
        low, high = s["mean_weight_ci"].values
        lines.append(f"warning: mean weight {float(s['mean_weight']):.3f} [{low:.3f}, {high:.3f}] is not 1: EL, Std and "
                     "DPD30+ are withheld; rerun with more paths or a larger defensive_share")
    return lines


def pooled_text(attrs: Mapping[str, object]) -> str:
    """How a pooled run grouped its book, from the run's attrs: "N loans in M pools of identical loans"."""
    return f"{int(attrs.get('n_loans', 0)):,} loans in {int(attrs.get('n_pools', 0)):,} pools of identical loans"


def _dpd_lines(s: xr.Dataset) -> list[str]:
    """The DPD30+ block of :func:`format_summary`: mean and 95% quantile in chosen months, %."""
    months = s["month"].values
    shown = [t for t in dict.fromkeys((1, 3, 6, 12, 24, 36, int(months[-1]))) if t in months]
    live = s["live_share_mean"].sel(month=shown).values if "live_share_mean" in s else np.ones(len(shown))
    thin = live < LIVE_FLOOR  # too little of the book left for a ratio to mean anything

    def row(values: np.ndarray) -> str:
        return "".join("     n/a" if t else f"{v:>8.2f}" for v, t in zip(values, thin))

    lines = ["", "DPD30+ ratio by balance (M2 + M3 over C + M1 + M2 + M3), %", "  month " + "".join(f"{t:>8}" for t in shown)]
    lines.append("  mean  " + row(100 * s["dpd30_ratio_mean"].sel(month=shown).values))
    if 0.95 in s["quantile"].values:
        lines.append("  q95   " + row(100 * s["dpd30_ratio_quantile"].sel(month=shown, quantile=0.95).values))
    lines.append("  live  " + "".join(f"{100 * v:>8.2f}" for v in live) + "   (% of the book still live)")
    if thin.any():
        lines.append(f"  n/a: less than {100 * LIVE_FLOOR:g}% of the book is live in that month")
    return lines


def format_summary(s: xr.Dataset) -> str:
    """Plain-text table of a :func:`summary` for the terminal.

    Parameters
    ----------
    s : xarray.Dataset
        The output of :func:`summary`.

    Returns
    -------
    str
        A header (scenario, paths, seed, effective sample size); for gross and net loss
        (net left out when equal to gross) a block of EL, Std, VaR and ES per level, each
        with its confidence interval in brackets, for the horizon and the first 12 months,
        in CNY with thousands separators; the DPD30+ ratio by balance (mean and 95%
        quantile, in %) in months 1, 3, 6, 12, 24, 36 and T. With layers, a "Who bears the
        loss" table (per party the expected and tail loss borne, CNY and % of gross) and a
        layer table (kind, capacity, exhaustion probability by month T and month 12, median
        exhaustion month, failure probability, expected fees).
    """
    lines = [
        f"stresslab results: scenario {s.attrs.get('scenario_name', '?')}",
        f"paths {int(s['n_paths']):,}   seed {s.attrs.get('seed', '?')}   "
        f"effective sample size {float(s['effective_sample_size']):,.0f}   "
        f"confidence intervals ({100 * float(s.attrs.get('ci', 0.95)):g}%) in brackets",
    ]
    lines += _weight_lines(s)
    withheld = "weight_check" in s and not bool(s["weight_check"])
    if int(s.attrs.get("pooled", 0)):
        lines.append(f"pooled book: {pooled_text(s.attrs)}")
    book = float(s.attrs.get("book_exposure", 0.0))  # results written before it was recorded: no shares
    if book > 0:
        lines.append(f"book exposure at the start {format_money(book)} CNY; (x%): share of it")
    metrics = ("expected_loss", "expected_loss_ci", "std_dev", "value_at_risk", "value_at_risk_ci", "expected_shortfall", "expected_shortfall_ci")
    same = all(np.array_equal(s[v].sel(measure="gross"), s[v].sel(measure="net")) for v in metrics)
    for measure in ("gross",) if same else MEASURES:
        m = s.sel(measure=measure)
        rows = [
            ("EL", ["withheld" if withheld else _with_ci(m["expected_loss"].sel(window=x), m["expected_loss_ci"].sel(window=x),
                                                          book=book) for x in WINDOWS]),
            ("Std", ["withheld" if withheld else format_money(float(m["std_dev"].sel(window=x))) for x in WINDOWS]),
        ]
        needed = m["value_at_risk_paths_needed"] if "value_at_risk_paths_needed" in m else xr.zeros_like(m["value_at_risk"])
        for level in s["level"].values:
            for label, name in (("VaR", "value_at_risk"), ("ES", "expected_shortfall")):
                at = {"level": level}
                rows.append((f"{label} {100 * level:g}%",
                             [_with_ci(m[name].sel(window=x, **at), m[name + "_ci"].sel(window=x, **at),
                                       int(needed.sel(window=x, **at)), book) for x in WINDOWS]))
        width = max(len(cell) for _, cells in rows for cell in cells) + 3
        lines += ["", f"{measure.capitalize() + ' loss, CNY':<16}" + "".join(f"{x:>{width}}" for x in WINDOWS)]
        lines += [f"  {label:<14}" + "".join(f"{cell:>{width}}" for cell in cells) for label, cells in rows]
    if same:
        lines.append("  (net loss equals gross loss)")

    lines += ["", "DPD30+ ratio by balance: withheld (mean weight check)"] if withheld else _dpd_lines(s)
    if "stage_transition_rate" in s:
        lines += _stage_lines(s)
    if "impairment_charge_mean" in s:
        lines += _provision_lines(s)
    if "capital_breach_probability" in s:
        lines += _capital_lines(s)
    if "party" in s.dims:
        from stresslab.text import format_layers

        lines += format_layers(s)
    return "\n".join(lines)


def _provision_lines(s: xr.Dataset) -> list[str]:
    """IFRS 9 allowance by stage at the start and each year end, and the impairment charge of each year."""
    ends = s["year_end"].values
    mode = json.loads(s.attrs["scenario"])["ifrs9"]["allowance"].replace("_", " ") if "scenario" in s.attrs else "?"
    rows = []
    for stage in s["stage"].values:
        amount = s["allowance_mean"].sel(stage=stage).values
        cover = s["coverage_mean"].sel(stage=stage).values
        rows.append((f"{stage} (coverage)", [format_money(a) + ("" if not np.isfinite(c) else f" ({_pct(c)})")
                                            for a, c in zip(amount, cover)]))
    charge, bounds = s["impairment_charge_mean"].values, s["impairment_charge_ci"].values
    rows.append(("impairment charge of the year", [""] + [_with_ci_text(c, lo, hi) for c, (lo, hi) in zip(charge, bounds)]))
    for q in s["charge_quantile"].values:
        values = s["impairment_charge_quantile"].sel(charge_quantile=q).values
        rows.append((f"  at risk, {100 * q:g}% quantile", [""] + [format_money(v) for v in values]))
    width = max(len(cell) for _, cells in rows for cell in cells) + 3
    heads = ["start" if e == 0 else f"year {e} end" for e in ends]
    lines = ["", f"{'IFRS 9 allowance (' + mode + '), mean, CNY':<40}" + "".join(f"{h:>{width}}" for h in heads)]
    return lines + [f"  {label:<38}" + "".join(f"{c:>{width}}" for c in cells) for label, cells in rows]


_SHOWN_PNL = (("net_interest_income", "net interest income"), ("enhancement_fees", "enhancement fees"),
              ("credit_cost", "credit cost"), ("pretax_profit", "pre-tax profit"))


def _capital_lines(s: xr.Dataset) -> list[str]:
    """The lender's mean P&L by year, the capital ratio's median and 5% quantile, the breach probability."""
    years = s["year"].values
    basis = s["pnl_mean"].attrs.get("credit_cost_basis", "")
    cost = "IFRS 9 impairment net of enhancements" if basis == "ifrs9" else "net loss booked"
    rows = [(label, [_with_ci_text(m, lo, hi) for m, (lo, hi) in zip(s["pnl_mean"].sel(pnl_item=item).values,
                                                                       s["pnl_ci"].sel(pnl_item=item).values)])
            for item, label in _SHOWN_PNL]
    for q, label in ((0.5, "capital ratio, median"), (0.05, "capital ratio, 5% quantile")):
        rows.append((label, [_pct(v) for v in s["capital_ratio_quantile"].sel(ratio_quantile=q).values[1:]]))
    prob, bounds = s["capital_breach_probability"].values, s["capital_breach_probability_ci"].values
    level = float(s["capital_breach_level"])
    rows.append((f"P(ratio < {_pct(level)} by year end)", [f"{_pct(p)} [{_pct(lo)}, {_pct(hi)}]"
                                                           for p, (lo, hi) in zip(prob, bounds)]))
    width = max(len(cell) for _, cells in rows for cell in cells) + 3
    start = _pct(float(s["capital_ratio_quantile"].sel(ratio_quantile=0.5).values[0]))
    lines = ["", f"Capital (docs/capital.md; credit cost: {cost}; capital ratio at the start {start})",
             f"{'  mean, CNY':<40}" + "".join(f"{'year ' + str(y):>{width}}" for y in years)]
    return lines + [f"  {label:<38}" + "".join(f"{c:>{width}}" for c in cells) for label, cells in rows]


def _with_ci_text(value: float, low: float, high: float) -> str:
    return f"{format_money(value)} [{format_money(low)}, {format_money(high)}]"


_SHOWN_TRANSITIONS = (("S1", "S2"), ("S1", "S3"), ("S2", "S1"), ("S2", "S3"))


def _stage_lines(s: xr.Dataset) -> list[str]:
    """IFRS 9 stages by year: S2 and S3 shares of the exposure at the year's end, transition rates."""
    years = s["year"].values
    lines = ["", "IFRS 9 stages by balance (docs/ifrs9.md)" + "".join(f"{'year ' + str(y):>22}" for y in years)]
    # as for the DPD30+ ratio: a share of what is left when less than LIVE_FLOOR of the book is live says little
    ends = np.minimum(years * 12, int(s["month"].values[-1]))
    thin = s["live_share_mean"].sel(month=ends).values < LIVE_FLOOR
    for stage in ("S2", "S3"):
        share = s["stage_share_mean"].sel(stage=stage).values
        lines.append(f"  {stage + ' share at year end':<38}"
                     + "".join(f"{'n/a' if low else _pct(v):>22}" for v, low in zip(share, thin)))
    for origin, to in _SHOWN_TRANSITIONS:
        rate = s["stage_transition_rate"].sel(from_stage=origin, to_stage=to).values
        bounds = s["stage_transition_rate_ci"].sel(from_stage=origin, to_stage=to).values
        cells = [f"{_pct(r)} [{_pct(lo)}, {_pct(hi)}]" if np.isfinite(r) else "-" for r, (lo, hi) in zip(rate, bounds)]
        lines.append(f"  {origin + ' -> ' + to + ' in the year':<38}" + "".join(f"{c:>22}" for c in cells))
    if thin.any():
        lines.append(f"  n/a: less than {100 * LIVE_FLOOR:g}% of the book is live at that year's end")
    return lines


# ----------------------------------------------------------------------------- terminal
def _pct(v: float) -> str:
    return f"{100 * v:.1f}%" if np.isfinite(v) else "-"


def _capacity(v: float) -> str:
    return "unlimited" if v == np.inf else format_money(v)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Rows of cells as text lines: the first column left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(r: list[str]) -> str:
        return "  " + f"{r[0]:<{widths[0]}}" + "".join(f"{c:>{wd + 3}}" for c, wd in zip(r[1:], widths[1:]))

    return [line(r) for r in [header, *rows]]


def format_layers(s: xr.Dataset) -> list[str]:
    """Lines of the "Who bears the loss" and layer tables of a summary with ``party``/``layer``."""
    levels = s["level"].values
    parties = [str(p) for p in s["party"].values.tolist()]
    header = ["party", "expected"] + [f"tail {100 * a:g}%" for a in levels]
    rows = []
    for p in parties:
        cells = [f"{format_money(float(s['party_expected'].sel(party=p)))} {_pct(float(s['party_share_expected'].sel(party=p)))}"]
        cells += [f"{format_money(float(s['party_tail'].sel(party=p, level=a)))} {_pct(float(s['party_share_tail'].sel(party=p, level=a)))}"
                  for a in levels]
        rows.append([p] + cells)
    gross_expected = float(s["expected_loss"].sel(measure="gross", window="horizon"))
    gross_es = s["expected_shortfall"].sel(measure="gross", window="horizon")
    rows.append(["gross", f"{format_money(gross_expected)} 100.0%"] + [f"{format_money(float(gross_es.sel(level=a)))} 100.0%" for a in levels])
    lines = ["", "Who bears the loss over the horizon, CNY and % of gross",
             "  (tail a%: the gross ES a% split into the loss each party bears in the tail beyond VaR a%)"]
    lines += _table(header, rows)

    months = s["month"].values
    last = int(months[-1])
    header = ["layer", "kind", "capacity", f"exhausted by month {last}", "by month 12", "median month", "failure", "fees"]
    rows = []
    for layer in s["layer"].values.tolist():
        at = s.sel(layer=layer)
        exh = at["layer_exhaustion_probability"]
        median = float(at["layer_exhaustion_median_month"])
        rows.append([
            str(layer),
            str(at["layer_kind"].values) if "layer_kind" in at.coords else "-",
            _capacity(float(at["layer_capacity"])) if "layer_capacity" in at.coords else "-",
            _pct(float(exh.sel(month=last))),
            _pct(float(exh.sel(month=12))) if 12 in months else "-",
            f"{median:g}" if np.isfinite(median) else "never",
            _pct(float(at["layer_failure_probability"])),
            format_money(float(at["layer_fee_expected"])),
        ])
    lines += ["", "Credit enhancement layers (probabilities; fees: expected income over the horizon, CNY)"]
    return lines + _table(header, rows)


# ----------------------------------------------------------------------------- terminal
def _fmt(v: float, units: str, signed: bool = False, unit: bool = True) -> str:
    """A value (or, signed, a difference) in its units: CNY, % (differences in points), loans."""
    if not np.isfinite(v):
        return "-" if np.isnan(v) else str(v)
    sign = "+" if signed else ""
    if units == "1":
        return f"{100 * v:{sign}.2f}" + ((" pp" if signed else "%") if unit else "")
    if units == "CNY":
        return f"{v:{sign},.0f}"
    return f"{v:{sign},.1f}"


def format_comparison(s: xr.Dataset) -> str:
    """Plain-text tables of a :func:`compare_summary` for the terminal.

    Parameters
    ----------
    s : xarray.Dataset
        The output of :func:`compare_summary`.

    Returns
    -------
    str
        A header (baseline, paths, confidence level, bootstrap replicates), then one block
        per metric: a row per scenario with, when ``s`` has a numeric ``sweep_value``
        coordinate, that value first, then the scenario, the value and the difference from
        the baseline with its confidence interval in brackets. CNY amounts have thousands
        separators; probabilities and ratios are in % (differences in percentage points,
        "pp"); "-" marks a metric a scenario does not have (a layer it lacks). The expected
        gross loss block also shows the paired standard error of the difference, the one
        two independent runs would have had, and their ratio.
    """
    base = str(s.attrs.get("baseline", s["scenario"].values[0]))
    ci = float(s.attrs.get("ci", 0.95))
    lines = [
        f"stresslab comparison: {s.sizes['scenario']} scenarios, baseline {base}",
        f"paths {int(s['n_paths']):,} on common random numbers   {100 * ci:g}% confidence intervals in brackets "
        f"(means: exact paired se; VaR, ES, peak DPD30+: paired bootstrap, {s.attrs.get('n_boot', '?')} replicates)",
    ]
    sweep = "sweep_value" in s.coords and np.issubdtype(s["sweep_value"].dtype, np.number)
    sweep_head = str(s.attrs.get("sweep_key", "sweep_value"))
    labels = [str(v) for v in s["scenario"].values.tolist()]
    for metric in s["metric"].values.tolist():
        at = s.sel(metric=metric)
        if metric in _COSTS and not np.any(np.nan_to_num(at["value"].values)):
            continue  # a cost no scenario has: not a block of +0 [+0, +0]
        units = str(at["metric_units"].values)
        header = ([sweep_head] if sweep else []) + ["scenario", "value", "difference vs baseline [CI]"]
        rows = []
        for i, label in enumerate(labels):
            row = at.isel(scenario=i)
            if label == base:
                change = "(baseline)"
            elif np.isnan(float(row["difference"])):
                change = "-"
            elif "paths_needed" in row and int(row["paths_needed"]) > 0:
                change = f"{_fmt(float(row['difference']), units, True)} [n/a (too few paths: {int(row['paths_needed']):,} needed)]"
            else:
                low, high = row["difference_ci"].sel(bound=list(BOUNDS)).values
                change = (f"{_fmt(float(row['difference']), units, True)} "
                          f"[{_fmt(low, units, True, False)}, {_fmt(high, units, True, False)}]")
            cells = [f"{float(s['sweep_value'].values[i]):,.10g}"] if sweep else []
            shown = _fmt(float(row["value"]), units)
            if metric == "peak_dpd30_ratio" and "peak_dpd30_month" in s and np.isfinite(float(row["value"])):
                shown += f" (month {int(s['peak_dpd30_month'].values[i])})"
            rows.append(cells + [label, shown, change])
        widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
        first = 1 if sweep else 0  # the scenario column is left-aligned, the others right-aligned

        def line(r: list[str]) -> str:
            return "  " + "   ".join(f"{c:<{wd}}" if k == first else f"{c:>{wd}}" for k, (c, wd) in enumerate(zip(r, widths)))

        unit_text = {"CNY": "CNY", "1": "%", "loans": "loans"}.get(units, units)
        lines += ["", f"{at['metric_long_name'].values} ({metric}), {unit_text}"]
        lines += [line(r) for r in [header, *rows]]
        if metric == "expected_gross_loss" and len(labels) > 1:
            lines.append("  standard error of the difference: paired (common random numbers) vs two independent runs")
            for i, label in enumerate(labels):
                if label == base:
                    continue
                row = at.isel(scenario=i)
                ratio = float(row["crn_se_ratio"])
                gain = f"variance reduced {1 / ratio**2:,.1f}x" if np.isfinite(ratio) and ratio > 0 else "-"
                lines.append(f"    {label}: {format_money(float(row['difference_se']))} vs {format_money(float(row['independent_se']))}"
                             f" (ratio {ratio:.3f}, {gain})")
        if metric == "expected_subsidy_cost":
            lines += _per_public_cny(s, labels, base)
    return "\n".join(lines)


# cost metrics of compare_summary, shown only when some scenario has the cost
_COSTS = ("expected_subsidy_cost", "expected_interest_foregone", "expected_enhancement_cost")


def _per_public_cny(s: xr.Dataset, labels: list[str], base: str) -> list[str]:
    """Gross loss avoided per CNY of public money (the subsidy cost), for scenarios that spend some."""
    loss = s["difference"].sel(metric="expected_gross_loss").values
    cost = s["difference"].sel(metric="expected_subsidy_cost").values
    out = [f"  {label}: {-loss[i] / cost[i]:,.2f} CNY of gross loss avoided per CNY of subsidy (point estimates)"
           for i, label in enumerate(labels) if label != base and np.isfinite(cost[i]) and cost[i] > 0]
    return ["  public money: expected gross loss avoided / extra expected subsidy cost", *out] if out else []


# ----------------------------------------------------------------------------- books
def format_book(portfolio: Portfolio, scenario: Scenario | None = None) -> str:
    """Plain-text profile of a loan book, and what a scenario would see of it.

    Parameters
    ----------
    portfolio : Portfolio
    scenario : Scenario, optional
        With a scenario: its names bound to the book (case- and space-insensitively,
        :func:`stresslab.compile.binding.bind_names`; absent ones are warned about) and
        the share of the book's balance each revenue shock touches.

    Returns
    -------
    str
        Size and exposure; balance shares by industry, region, borrower type, state and
        amortisation; remaining terms; PDs (balance-weighted mean and quantiles); the extra
        columns carried.
    """
    bal = portfolio.balance
    total = float(bal.sum())
    lines = [f"book {portfolio.source}: {portfolio.n_loans:,} loans, {len(set(portfolio.borrower_id.tolist())):,} borrowers, "
             f"exposure {format_money(total)} CNY (digest {portfolio.digest[:12]})"]
    for column in ("industry", "region", "borrower_type", "state", "amortization"):
        labels, codes = portfolio.codes(column)
        share = np.bincount(codes, weights=bal, minlength=len(labels)) / total
        count = np.bincount(codes, minlength=len(labels))
        order = np.argsort(-share, kind="stable")
        cells = ", ".join(f"{labels[k]} {100 * share[k]:.1f}% ({count[k]:,})" for k in order)
        lines.append(f"  {column.replace('_', ' ')}: {cells}")
    term = portfolio.remaining_term
    lines.append(f"  remaining term, months: min {term.min()}, median {int(np.median(term))}, max {term.max()}")
    q = np.quantile(portfolio.pd, (0.05, 0.5, 0.95))
    lines.append(f"  pd: balance-weighted mean {100 * float(bal @ portfolio.pd) / total:.2f}%, "
                 f"5% / 50% / 95% quantiles {100 * q[0]:.2f}% / {100 * q[1]:.2f}% / {100 * q[2]:.2f}%")
    if portfolio.extra:
        lines.append(f"  extra columns carried (not used by the model): {', '.join(portfolio.extra)}")
    if scenario is not None:
        bound = bind_names(portfolio, scenario)
        lines.append(f"scenario {scenario.source}: names bound to the book")
        for kind, shocks, column in (("industry", bound.industry_shocks, portfolio.industry),
                                     ("region", bound.region_shocks, portfolio.region)):
            for name, _ in shocks:
                hit = float(bal[column == name].sum()) / total
                lines.append(f"  [shocks.{kind}] {name}: {100 * hit:.1f}% of the balance")
    return "\n".join(lines)


def format_stages(stages: xr.Dataset) -> str:
    """The IFRS 9 stage table of a book (:func:`stresslab.metrics.ifrs9.stage_summary`) as text."""
    attrs = stages.attrs
    criterion = attrs.get("relative_pd_multiple", "off")
    lines = [
        f"IFRS 9 expected credit losses: {attrs.get('portfolio', '?')} under {attrs.get('scenario', '?')}",
        "  stages by days past due (S1 <= 30, S2 31-90, S3 defaulted)"
        + ("" if criterion == "off" else f", and S2 when the 12-month PD is above {criterion:g} x the pd"),
        "",
    ]
    rows = []
    for name in stages["stage"].values:
        row = stages.sel(stage=name)
        rows.append([str(name), f"{int(row.loans):,}", format_money(float(row.ead)), _pct(float(row.ead_share)),
                     _pct(float(row.pd_12m)), format_money(float(row.allowance)), _pct(float(row.coverage))])
    lines += _table(["stage", "loans", "EAD", "share", "PD 12m", "allowance", "coverage"], rows)
    lines += ["", "  allowance: 12-month ECL in S1, lifetime ECL in S2, discounted at each loan's rate (docs/ifrs9.md)"]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- reverse stress tests
def format_reverse_stress(result: ReverseStress, n_factors: int = 8) -> str:
    """A reverse stress test for the terminal: its findings, the factor paths and the drivers.

    Parameters
    ----------
    result : ReverseStress
        From :func:`stresslab.reverse_stress`.
    n_factors : int
        Factors shown, those with the lowest conditional mean (averaged over months) first.

    Returns
    -------
    str
        The result's header lines; a table of E[Z_t | event] by factor at months 1, 12
        (when the horizon has it) and T, its lowest month with the standard error there,
        and the mode's value in that month; the drivers (share of the gross loss in the
        event against the unconditional share).
    """
    mean, se, mode = result.factor_mean, result.factor_mean_se, result.factor_mode
    months = sorted({1, min(12, mean.sizes["month"]), mean.sizes["month"]})
    order = np.argsort(mean.mean("month").values)[:n_factors]
    head = ["factor", *(f"month {m}" for m in months), "lowest (month)", "s.e.", "mode there"]
    rows = []
    for k in order:
        column = mean.isel(factor=k)
        low = int(column.argmin("month"))
        rows.append([str(mean["factor"].values[k]), *(f"{float(column.sel(month=m)):+.3f}" for m in months),
                     f"{float(column[low]):+.3f} ({int(mean['month'][low])})", f"{float(se.isel(factor=k)[low]):.3f}",
                     f"{float(mode.isel(factor=k)[low]):+.3f}"])
    lines = [*result.header(), "", "conditional mean of the factors given the event (standard deviations):"]
    lines += _table(head, rows)
    lines += ["", "drivers (share of the gross loss in the event, s.e.; unconditional share):"]
    drivers = [[kind, name, f"{row.share:.1%}", f"{row.share_se:.1%}", f"{row.base_share:.1%}"]
               for (kind, name), row in result.drivers.iterrows()]
    lines += _table(["kind", "name", "share", "s.e.", "unconditional"], drivers)
    return "\n".join(lines)

